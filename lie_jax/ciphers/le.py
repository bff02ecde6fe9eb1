"""LE: Tanaka, "Learnable Image Encryption", ICCE-TW 2018.

Every byte of a B x B x C block is split into its low and high nibbles, giving
2d values (d = B*B*C) ordered [the d low nibbles in block order, then the d
high nibbles]. One key permutation pi of 0..2d-1 is shared by every block of
every image; the flip mask is the positions i with pi[i] > d (strictly: pi[i]
= d is not flipped). Encryption flips the masked nibbles (v -> 15 - v),
gathers w[i] = v[pi[i]], flips the masked positions again and re-packs
(high << 4) | low. Decryption is the same with argsort(pi) and the same mask.

This is the convention of the published ICCE-TW 2018 reference code, checked
byte for byte against its known-answer vector (tests/reference_test.py). Tanaka's
later numpy package orders nibbles high-first and scatters instead of
gathering: a different cipher, not implemented here.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import le
  >>> k = le.generate_key(jax.random.key(0), image_shape=(28, 28, 1), block_size=4)
  >>> x = np.zeros((2, 28, 28, 1), np.uint8)
  >>> bool((le.decrypt(k, le.encrypt(k, x)) == x).all())
  True
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lie_jax.ciphers import _apply
from lie_jax.ciphers import _blocks
from lie_jax.ciphers._keytree import cipher_key, static_field


@cipher_key
class LEKey:
  """LE key: one nibble permutation shared by all blocks.

  Attributes:
    perm: [2d] int32 permutation of 0..2d-1 (d = B*B*C), ICCE-TW 2018 convention.
    geometry: block size, channels, block vector layout (any H, W divisible by B).
  """

  perm: jax.Array
  geometry: _apply.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 4,
                 layout: str = "hwc") -> LEKey:
  """Draws an LE key.

  Args:
    key: JAX PRNG key.
    image_shape: (H, W, C) of the images; only C matters (the key fits any
      H, W divisible by block_size).
    block_size: B.
    layout: order of the values in a block vector ("hwc" or "chw").

  Returns:
    An `LEKey` with a uniform random permutation of 0..2*B*B*C-1.
  """
  geometry = _apply.make_geometry(image_shape, block_size=block_size, layout=layout,
                                  fixed_shape=False)
  d = block_size * block_size * geometry.channels
  return LEKey(perm=_blocks.random_permutations(key, None, 2 * d), geometry=geometry)


def key_from_permutation(perm: Any, *, block_shape: tuple[int, int, int],
                         layout: str = "hwc") -> LEKey:
  """Imports a published LE key (ICCE-TW 2018 convention).

  Args:
    perm: permutation of 0..2d-1, d = B*B*C (e.g. the `key` array of the
      reference code's key file).
    block_shape: (B, B, C).
    layout: block vector order the permutation refers to.
  """
  b, b2, c = (int(s) for s in block_shape)
  if b != b2:
    raise ValueError(f"block_shape must be square (B, B, C), got {tuple(block_shape)}")
  geometry = _apply.make_geometry((b, b, c), block_size=b, layout=layout, fixed_shape=False)
  perm = _blocks.check_permutation(perm, 2 * b * b * c, "perm")
  if perm.ndim != 1:
    raise ValueError(f"perm must be 1-D, got shape {perm.shape}")
  return LEKey(perm=jnp.asarray(perm), geometry=geometry)


def nibble_transform(perms: jax.Array, block_perm: jax.Array | None = None
                     ) -> _blocks.BlockTransform:
  """The block transform of LE-style keys, over nibble vectors.

  Args:
    perms: [2d] shared, or [nb, 2d] per output block, LE permutations.
    block_perm: optional [nb] block scrambling (ELE).
  """
  d = perms.shape[-1] // 2
  mask = perms > d
  # Flipped before the gather at the source position, and again after it at the output.
  flips = (jnp.take_along_axis(mask, perms, axis=-1) ^ mask).astype(jnp.uint8) * 15
  return _blocks.BlockTransform(block_perm=block_perm, value_perm=perms, xor=flips)


# Batches up to 16 MiB run through the block executor (see `_apply.block_cipher`).
_cipher = _apply.block_cipher(lambda k: nibble_transform(k.perm), nibbles=True,
                              shared_blocks_max_bytes=16 << 20)
_encrypt = jax.jit(_cipher.encrypt_shared)
_decrypt = jax.jit(_cipher.decrypt_shared)


def encrypt(cipher_key: LEKey, images: Any, *, padding: str = "none") -> jax.Array:
  """Encrypts images with LE.

  Args:
    cipher_key: an `LEKey`.
    images: [H, W, C] or [N, H, W, C] uint8; C must match the key.
    padding: "none" (H, W must be divisible by B) or "edge" (edge-replicate
      up to the next multiple of B; the output is then larger).

  Returns:
    Encrypted images, uint8, same shape (padded shape with padding="edge").
  """
  _apply.expect_key(cipher_key, LEKey, "le.encrypt")
  return _apply.encrypt_with(_encrypt, cipher_key, images, padding=padding)


def decrypt(cipher_key: LEKey, images: Any) -> jax.Array:
  """Inverts `encrypt`: [H, W, C] or [N, H, W, C] uint8 -> same shape uint8."""
  _apply.expect_key(cipher_key, LEKey, "le.decrypt")
  return _apply.decrypt_with(_decrypt, cipher_key, images)


encrypt_per_image, decrypt_per_image = _apply.per_image_api(
    generate_key, _cipher.encrypt_keys, _cipher.decrypt_keys, scheme="le")


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4,
                           layout: str = "hwc") -> float:
  """log2((2d)!): the number of permutations (the flips follow from the permutation)."""
  del layout
  d = block_size * block_size * image_shape[2]
  return math.lgamma(2 * d + 1) / math.log(2)
