"""Huang 2022: Huang, Yap, Chiu, Sun, "Privacy-preserving deep learning with
learnable image encryption on medical images", IEEE Access 10:66345-66355.

A RECONSTRUCTION. The full text was not available to us; this follows
secondary descriptions of the work, which list three client-side stages built
on PE (`lie_jax.ciphers.pe`):
  1. negative-positive transform (per value, keyed: x -> 255 - x);
  2. colour channel shuffling with a secret key (per pixel);
  3. a block-wise "statistical" filter that fills every B x B block, channel
     by channel, with one statistic of it: "median", "mean", "max" or "min".
Stages 1-2 are exactly PE's transform. Stage 3 is lossy, so this scheme has
NO decrypt. Integer rounding of the statistics (our choice): mean =
floor(sum / count + 1/2); median = the mean of the two middle values rounded
half up (the middle value when the count is odd).

Each stage is its own pure function (`negative_positive`, `shuffle_colors`,
`block_filter`); `encrypt` composes them. Whether the filter makes the scheme
resist the published attacks on PE is measured by the security suite, not
assumed.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import huang2022
  >>> k = huang2022.generate_key(jax.random.key(0), image_shape=(28, 28, 1), block_size=2)
  >>> huang2022.encrypt(k, np.zeros((28, 28, 1), np.uint8)).shape
  (28, 28, 1)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lie_jax.ciphers import _apply
from lie_jax.ciphers import _blocks
from lie_jax.ciphers import pe
from lie_jax.ciphers._keytree import cipher_key, static_field

STATISTICS = ("median", "mean", "max", "min")


@cipher_key
class Huang2022Key:
  """Huang 2022 key: a PE key plus the (public) filter choice.

  Attributes:
    pixel_key: `pe.PEKey` for the negative-positive and colour-shuffle stages.
    geometry: filter block size, channels, image shape.
    statistic: one of STATISTICS.
  """

  pixel_key: pe.PEKey
  geometry: _apply.KeyGeometry = static_field()
  statistic: str = static_field(default="median")


def _check_statistic(statistic: str) -> str:
  if statistic not in STATISTICS:
    raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
  return statistic


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 2,
                 statistic: str = "median") -> Huang2022Key:
  """Draws a key: PE's negation bits and colour orders, plus the filter settings."""
  geometry = _apply.make_geometry(image_shape, block_size=block_size)
  return Huang2022Key(pixel_key=pe.generate_key(key, image_shape=geometry.cipher_shape(
      geometry.image_shape)), geometry=geometry, statistic=_check_statistic(statistic))


def _block_statistic(blocks: jax.Array, statistic: str) -> jax.Array:
  """blocks: [..., count, C] uint8 -> [..., 1, C] uint8."""
  if statistic == "max":
    return blocks.max(axis=-2, keepdims=True)
  if statistic == "min":
    return blocks.min(axis=-2, keepdims=True)
  count = blocks.shape[-2]
  wide = blocks.astype(jnp.int32)
  if statistic == "mean":
    out = (wide.sum(axis=-2, keepdims=True) + count // 2) // count
  else:
    ordered = jnp.sort(wide, axis=-2)
    lo = ordered[..., (count - 1) // 2:(count - 1) // 2 + 1, :]
    hi = ordered[..., count // 2:count // 2 + 1, :]
    out = (lo + hi + 1) // 2
  return out.astype(jnp.uint8)


def block_filter(images: Any, *, block_size: int, statistic: str = "median") -> jax.Array:
  """Stage 3: fills every B x B block, per channel, with one statistic of it.

  Args:
    images: [H, W, C] or [N, H, W, C] uint8, H and W divisible by block_size.
    block_size: B.
    statistic: "median", "mean", "max" or "min".

  Returns:
    Filtered images, uint8, same shape.
  """
  images = _apply.check_images(images)
  _check_statistic(statistic)
  block_size = _blocks.check_block_size(block_size)
  return _filter(jnp.asarray(images), block_size, statistic)


@jax.jit
def _negative_positive(pixel_key: pe.PEKey, images: jax.Array) -> jax.Array:
  return images ^ (pixel_key.negate.astype(jnp.uint8) * 255)


@jax.jit
def _shuffle_colors(pixel_key: pe.PEKey, images: jax.Array) -> jax.Array:
  shuffle_only = pe.PEKey(negate=jnp.zeros_like(pixel_key.negate), color=pixel_key.color,
                          geometry=pixel_key.geometry)
  return pe.pixel_cipher.encrypt_shared(shuffle_only, images)


def _filter_impl(images: jax.Array, block_size: int, statistic: str) -> jax.Array:
  *lead, h, w, c = images.shape
  blocks = _blocks.blockify(images, block_size=block_size)  # [..., nb, B*B*C]
  blocks = blocks.reshape(*blocks.shape[:-1], block_size * block_size, c)
  stat = _block_statistic(blocks, statistic)
  filled = jnp.broadcast_to(stat, blocks.shape).reshape(*blocks.shape[:-2], block_size ** 2 * c)
  return _blocks.unblockify(filled, image_shape=(h, w, c), block_size=block_size)


_filter = jax.jit(_filter_impl, static_argnums=(1, 2))


def negative_positive(cipher_key: Huang2022Key, images: Any) -> jax.Array:
  """Stage 1: x -> 255 - x where the key's negation bit is set. Same shape and dtype.

  Images must have the key's (padded) shape.
  """
  _apply.expect_key(cipher_key, Huang2022Key, "huang2022.negative_positive")
  return _apply.encrypt_with(_negative_positive, cipher_key.pixel_key, images)


def shuffle_colors(cipher_key: Huang2022Key, images: Any) -> jax.Array:
  """Stage 2: per-pixel keyed colour permutation (identity for C = 1). Same shape and dtype."""
  _apply.expect_key(cipher_key, Huang2022Key, "huang2022.shuffle_colors")
  return _apply.encrypt_with(_shuffle_colors, cipher_key.pixel_key, images)


def _encrypt_shared(cipher_key: Huang2022Key, images: jax.Array) -> jax.Array:
  shuffled = pe.pixel_cipher.encrypt_shared(cipher_key.pixel_key, images)
  return _filter_impl(shuffled, cipher_key.geometry.block_size, cipher_key.statistic)


def _encrypt_keys(keys: Huang2022Key, images: jax.Array) -> jax.Array:
  shuffled = pe.pixel_cipher.encrypt_keys(keys.pixel_key, images)
  return _filter_impl(shuffled, keys.geometry.block_size, keys.statistic)


_encrypt = jax.jit(_encrypt_shared)


def encrypt(cipher_key: Huang2022Key, images: Any, *, padding: str = "none") -> jax.Array:
  """Encrypts (lossily) [H, W, C] or [N, H, W, C] uint8 images: NP, colour shuffle, filter.

  There is no decrypt: the block filter discards information.
  """
  _apply.expect_key(cipher_key, Huang2022Key, "huang2022.encrypt")
  return _apply.encrypt_with(_encrypt, cipher_key, images, padding=padding)


encrypt_per_image, _ = _apply.per_image_api(generate_key, _encrypt_keys, None, scheme="huang2022")


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 2,
                           statistic: str = "median") -> float:
  """PE's key space on the (padded) image; the filter adds no secret."""
  del statistic
  return pe.nominal_key_space_bits(image_shape=_blocks.padded_shape(tuple(image_shape), block_size))
