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

import functools
import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
from lie_jax.ciphers._keytree import cipher_key, static_field


@cipher_key
class LEKey:
  """LE key: one nibble permutation shared by all blocks.

  Attributes:
    perm: [2d] int32 permutation of 0..2d-1 (d = B*B*C), ICCE-TW 2018 convention.
    geometry: block size, channels, block vector layout (any H, W divisible by B).
  """

  perm: jax.Array
  geometry: _core.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 4,
                 layout: str = "hwc") -> LEKey:
  """Draws an LE key: a uniform permutation of 0..2*B*B*C-1.

  Only C of `image_shape` matters: the key fits any H, W divisible by
  block_size. `layout` orders the values of a block vector ("hwc" or "chw").
  """
  geometry = _core.make_geometry(image_shape, block_size=block_size, layout=layout,
                                 fixed_shape=False)
  d = block_size * block_size * geometry.channels
  return LEKey(perm=jax.random.permutation(key, 2 * d).astype(jnp.int32), geometry=geometry)


def key_from_permutation(perm: ArrayLike, *, block_shape: tuple[int, int, int],
                         layout: str = "hwc") -> LEKey:
  """Imports a published LE key: perm [2d], d = B*B*C (the reference code's `key` array).

  block_shape is (B, B, C); layout the block vector order perm refers to.
  """
  b, b2, c = (int(s) for s in block_shape)
  if b != b2:
    raise ValueError(f"block_shape must be square (B, B, C), got {tuple(block_shape)}")
  geometry = _core.make_geometry((b, b, c), block_size=b, layout=layout, fixed_shape=False)
  perm = _core.check_permutation(perm, 2 * b * b * c, "perm")
  if perm.ndim != 1:
    raise ValueError(f"perm must be 1-D, got shape {perm.shape}")
  return LEKey(perm=jnp.asarray(perm), geometry=geometry)


def nibble_transform(perms: ArrayLike, block_perm: ArrayLike | None = None
                     ) -> _core.BlockTransform:
  """The nibble-vector `BlockTransform` of LE permutations ([2d] shared or [nb, 2d]).

  Gather by the permutation, XOR 15 where exactly one of the source and the
  output position is flipped; `block_perm` ([nb], ELE) scrambles the blocks.
  """
  perms = jnp.asarray(perms)
  d = perms.shape[-1] // 2
  mask = perms > d
  flips = (jnp.take_along_axis(mask, perms, axis=-1) ^ mask).astype(jnp.uint8) * 15
  return _core.BlockTransform(block_perm=block_perm, value_perm=perms, xor=flips)


_one = functools.partial(_core.transform_image, transform=lambda k: nibble_transform(k.perm),
                         nibbles=True)
_encrypt_one, _decrypt_one = _one, functools.partial(_one, inverse=True)


def encrypt(cipher_key: LEKey, images: ArrayLike) -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images with LE (H, W divisible by B)."""
  return _core.encrypt_with(SCHEME, cipher_key, images)


def decrypt(cipher_key: LEKey, images: ArrayLike) -> jax.Array:
  """Inverts `encrypt`: [H, W, C] or [N, H, W, C] uint8 -> same shape uint8."""
  return _core.decrypt_with(SCHEME, cipher_key, images)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4,
                           layout: str = "hwc") -> float:
  """log2((2d)!): the number of permutations (the flips follow from the permutation)."""
  del layout
  d = block_size * block_size * image_shape[2]
  return math.lgamma(2 * d + 1) / math.log(2)


SCHEME = _core.Scheme(
    name="le", title="Tanaka, ICCE-TW 2018", key_type=LEKey, generate_key=generate_key,
    encrypt=encrypt, decrypt=decrypt, encrypt_image=_encrypt_one, decrypt_image=_decrypt_one,
    nominal_key_space_bits=nominal_key_space_bits, options={"block_size": 4, "layout": "hwc"},
    kind="block", scrambles_blocks=False, native_adaptation="block")
