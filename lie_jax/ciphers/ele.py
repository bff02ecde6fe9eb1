"""ELE: Madono, Tanaka, Onishi, Ogawa, "Block-wise scrambled image recognition
using adaptation network", AAAI-20 PPAI workshop.

LE (see `lie_jax.ciphers.le`) with a different nibble permutation for every
block position, followed by a secret permutation of the block positions
(block scrambling). Convention: block b is first LE-encrypted in place with
`perms[b]`; then output block j is the encrypted block `block_perm[j]`
(a gather over block positions, row-major block order).

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import ele
  >>> k = ele.generate_key(jax.random.key(0), image_shape=(28, 28, 1), block_size=4)
  >>> x = np.arange(784, dtype=np.uint8).reshape(28, 28, 1)
  >>> bool((ele.decrypt(k, ele.encrypt(k, x)) == x).all())
  True
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from lie_jax.ciphers import _apply
from lie_jax.ciphers import _blocks
from lie_jax.ciphers import le
from lie_jax.ciphers._keytree import cipher_key, static_field


@cipher_key
class ELEKey:
  """ELE key.

  Attributes:
    perms: [nb, 2d] int32, the LE permutation of each block position (before scrambling).
    block_perm: [nb] int32, output block j is (encrypted) input block block_perm[j].
    geometry: block size, channels, layout and the image shape the key was made for.
  """

  perms: jax.Array
  block_perm: jax.Array
  geometry: _apply.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 4,
                 layout: str = "hwc") -> ELEKey:
  """Draws an ELE key for images of `image_shape` (H, W, C).

  H and W need not be multiples of block_size if images are encrypted with
  padding="edge"; the key then covers the padded grid.
  """
  geometry = _apply.make_geometry(image_shape, block_size=block_size, layout=layout)
  h, w, c = geometry.cipher_shape(geometry.image_shape)
  nb = (h // block_size) * (w // block_size)
  k_perm, k_block = jax.random.split(key)
  return ELEKey(perms=_blocks.random_permutations(k_perm, nb, 2 * block_size * block_size * c),
                block_perm=_blocks.random_permutations(k_block, None, nb),
                geometry=geometry)


def _transform(cipher_key: ELEKey) -> _blocks.BlockTransform:
  bp = cipher_key.block_perm
  return le.nibble_transform(cipher_key.perms[bp], block_perm=bp)


_cipher = _apply.block_cipher(_transform, nibbles=True)
_encrypt = jax.jit(_cipher.encrypt_shared)
_decrypt = jax.jit(_cipher.decrypt_shared)


def encrypt(cipher_key: ELEKey, images: Any, *, padding: str = "none") -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images with ELE (same dtype and shape)."""
  _apply.expect_key(cipher_key, ELEKey, "ele.encrypt")
  return _apply.encrypt_with(_encrypt, cipher_key, images, padding=padding)


def decrypt(cipher_key: ELEKey, images: Any) -> jax.Array:
  """Inverts `encrypt` (crops any edge padding back to the key's image shape)."""
  _apply.expect_key(cipher_key, ELEKey, "ele.decrypt")
  return _apply.decrypt_with(_decrypt, cipher_key, images)


encrypt_per_image, decrypt_per_image = _apply.per_image_api(
    generate_key, _cipher.encrypt_keys, _cipher.decrypt_keys, scheme="ele")


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4,
                           layout: str = "hwc") -> float:
  """nb * log2((2d)!) + log2(nb!)."""
  del layout
  h, w, c = _blocks.padded_shape(tuple(image_shape), block_size)
  nb = (h // block_size) * (w // block_size)
  d = block_size * block_size * c
  return (nb * math.lgamma(2 * d + 1) + math.lgamma(nb + 1)) / math.log(2)
