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

import functools
import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
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
  geometry: _core.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 4,
                 layout: str = "hwc") -> ELEKey:
  """Draws an ELE key for images of `image_shape` (H, W, C), H and W divisible by block_size."""
  geometry = _core.make_geometry(image_shape, block_size=block_size, layout=layout)
  nb = _core.num_blocks(geometry.image_shape, block_size)
  k_perm, k_block = jax.random.split(key)
  d = block_size * block_size * geometry.channels
  return ELEKey(perms=_core.random_permutations(k_perm, nb, 2 * d),
                block_perm=jax.random.permutation(k_block, nb).astype(jnp.int32), geometry=geometry)


def _transform(cipher_key: ELEKey) -> _core.BlockTransform:
  bp = cipher_key.block_perm
  return le.nibble_transform(cipher_key.perms[bp], block_perm=bp)


_one = functools.partial(_core.transform_image, transform=_transform, nibbles=True)
_encrypt_one, _decrypt_one = _one, functools.partial(_one, inverse=True)


def encrypt(cipher_key: ELEKey, images: ArrayLike) -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images with ELE (same dtype and shape)."""
  return _core.encrypt_with(SCHEME, cipher_key, images)


def decrypt(cipher_key: ELEKey, images: ArrayLike) -> jax.Array:
  """Inverts `encrypt` exactly."""
  return _core.decrypt_with(SCHEME, cipher_key, images)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4,
                           layout: str = "hwc") -> float:
  """nb * log2((2d)!) + log2(nb!)."""
  del layout
  nb = _core.num_blocks(tuple(image_shape), block_size)
  d = block_size * block_size * image_shape[2]
  return (nb * math.lgamma(2 * d + 1) + math.lgamma(nb + 1)) / math.log(2)


SCHEME = _core.Scheme(
    name="ele", title="Madono et al., AAAI-20 PPAI", key_type=ELEKey, generate_key=generate_key,
    encrypt=encrypt, decrypt=decrypt, encrypt_image=_encrypt_one, decrypt_image=_decrypt_one,
    nominal_key_space_bits=nominal_key_space_bits, options={"block_size": 4, "layout": "hwc"},
    kind="block", scrambles_blocks=True, native_adaptation="ele")
