"""PE: Sirichotedumrong, Kinoshita, Kiya, "Pixel-based image encryption without
key management for privacy-preserving deep neural networks", IEEE Access 2019.

No blocks. For every pixel and channel a key bit; where it is 1,
x -> x XOR 255 (= 255 - x). Then every pixel's colour components are shuffled
with one of the 6 permutations (keyed per pixel): output channel c is the
negated channel `_blocks.COLOR_PERMUTATIONS[color[p]][c]`. With C = 1 only the
negative-positive step remains. The scheme's defining mode is one fresh key
per image, thrown away after use: `encrypt_per_image`.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import pe
  >>> x = np.zeros((4, 28, 28, 1), np.uint8)
  >>> y = pe.encrypt_per_image(jax.random.key(0), x)
  >>> bool((pe.decrypt_per_image(jax.random.key(0), y) == x).all())
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
class PEKey:
  """PE key.

  Attributes:
    negate: [H, W, C] bool, negative-positive bit of every value (before the shuffle).
    color: [H, W] uint8 in 0..5, colour permutation of every pixel (0 for C = 1).
      Keys made elsewhere may hold any integer dtype.
    geometry: channels and the image shape the key was made for (block size 1).
  """

  negate: jax.Array
  color: jax.Array
  geometry: _apply.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int]) -> PEKey:
  """Draws a PE key for images of `image_shape` (H, W, C)."""
  geometry = _apply.make_geometry(image_shape, block_size=1)
  h, w, c = geometry.image_shape
  k_neg, k_col = jax.random.split(key)
  # uint8 codes: the shared path reads a quarter of the bytes (1.4-1.8x faster on 32x32x3).
  color = (_blocks.random_digits(k_col, (h, w), 6) if c == 3
           else jnp.zeros((h, w), jnp.uint8))
  return PEKey(negate=_blocks.random_flags(k_neg, (h, w, c)), color=color, geometry=geometry)


def pixel_transform(cipher_key: PEKey) -> _blocks.BlockTransform:
  """PE as a block transform with 1 x 1 blocks: [H*W, C] values per pixel."""
  h, w, c = cipher_key.geometry.image_shape
  negate = cipher_key.negate.reshape(h * w, c)
  if c == 1:
    return _blocks.BlockTransform(xor=negate.astype(jnp.uint8) * 255)
  value_perm = jnp.asarray(_blocks.COLOR_PERMUTATIONS)[cipher_key.color.reshape(-1)]
  # NP comes first, so output value c carries the bit of its source channel.
  negate = jnp.take_along_axis(negate, value_perm, axis=1)
  return _blocks.BlockTransform(value_perm=value_perm, xor=negate.astype(jnp.uint8) * 255)


def _source_channels(color: jax.Array, *, inverse: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The channel each output channel reads, from colour codes (arithmetic, no table).

  For `_blocks.COLOR_PERMUTATIONS` (itertools order), permutation k sends
  channel k // 2 first, then the two others in order, swapped when k is odd.
  Its inverse is permutation k with the codes 3 and 4 exchanged.
  """
  k = color
  if inverse:
    k = jnp.where((k == 3) | (k == 4), k ^ 7, k)
  first = k >> 1
  lower = jnp.where(first == 0, 1, 0).astype(k.dtype)  # the other two channels, in order
  upper = jnp.where(first == 2, 1, 2).astype(k.dtype)
  odd = (k & 1) == 1
  return first, jnp.where(odd, upper, lower), jnp.where(odd, lower, upper)


def _shuffle_colors(images: jax.Array, color: jax.Array, *, inverse: bool = False) -> jax.Array:
  """out[..., c] = images[..., COLOR_PERMUTATIONS[color][c]] (or the inverse permutation).

  Element-wise: each output value selects among its pixel's three values by
  its source channel. No gather, and nothing but the output is written (3-5x
  faster than selecting among six channel-shuffled copies of the images).
  """
  if images.shape[-1] == 1:
    return images
  sources = [s[..., None] for s in _source_channels(color, inverse=inverse)]
  channel = jnp.arange(3, dtype=color.dtype)
  src = jnp.where(channel == 0, sources[0], jnp.where(channel == 1, sources[1], sources[2]))
  values = [images[..., i:i + 1] for i in range(3)]
  return jnp.where(src == 0, values[0], jnp.where(src == 1, values[1], values[2]))


def _negation_mask(cipher_key: PEKey) -> jax.Array:
  return cipher_key.negate.astype(jnp.uint8) * jnp.uint8(255)


def _encrypt_pixels(cipher_key: PEKey, images: jax.Array) -> jax.Array:
  # Key arrays are [H, W, ...] (one key) or [N, H, W, ...] (one per image): both broadcast.
  negated = images ^ _negation_mask(cipher_key)
  return _shuffle_colors(negated, cipher_key.color)


def _decrypt_pixels(cipher_key: PEKey, images: jax.Array) -> jax.Array:
  unshuffled = _shuffle_colors(images, cipher_key.color, inverse=True)
  return unshuffled ^ _negation_mask(cipher_key)


# `pixel_transform` states PE as a block transform (1 x 1 blocks), the form the
# other schemes use; these executors compute the same map with selects.
pixel_cipher = _apply.BlockCipher(encrypt_shared=_encrypt_pixels, decrypt_shared=_decrypt_pixels,
                                  encrypt_keys=_encrypt_pixels, decrypt_keys=_decrypt_pixels)
_encrypt = jax.jit(pixel_cipher.encrypt_shared)
_decrypt = jax.jit(pixel_cipher.decrypt_shared)


def encrypt(cipher_key: PEKey, images: Any) -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images with one PE key (same dtype and shape)."""
  _apply.expect_key(cipher_key, PEKey, "pe.encrypt")
  return _apply.encrypt_with(_encrypt, cipher_key, images)


def decrypt(cipher_key: PEKey, images: Any) -> jax.Array:
  """Inverts `encrypt` exactly."""
  _apply.expect_key(cipher_key, PEKey, "pe.decrypt")
  return _apply.decrypt_with(_decrypt, cipher_key, images)


encrypt_per_image, decrypt_per_image = _apply.per_image_api(
    generate_key, pixel_cipher.encrypt_keys, pixel_cipher.decrypt_keys, scheme="pe")


def nominal_key_space_bits(*, image_shape: tuple[int, int, int]) -> float:
  """H*W*C negation bits + H*W*log2(6) colour orders (C = 3)."""
  h, w, c = image_shape
  return h * w * c + (h * w * math.log2(6) if c == 3 else 0.0)
