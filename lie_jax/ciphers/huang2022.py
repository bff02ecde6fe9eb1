"""Huang 2022: Huang, Yap, Chiu, Sun, "Privacy-preserving deep learning with
learnable image encryption on medical images", IEEE Access 10:66345-66355.

A RECONSTRUCTION. The full text was not available to us; this follows
secondary descriptions of the work, which list three client-side stages built
on PE (`lie_jax.ciphers.pe`)::

  1. negative-positive transform (per value, keyed: x -> 255 - x);
  2. colour channel shuffling with a secret key (per pixel);
  3. a block-wise "statistical" filter that fills every B x B block, channel
     by channel, with one statistic of it: "median", "mean", "max" or "min".

Stages 1-2 are exactly PE's transform. Stage 3 is lossy, so this scheme has
NO decrypt. Integer rounding of the statistics (our choice): mean =
floor(sum / count + 1/2); median = the mean of the two middle values rounded
half up (the middle value when the count is odd).

Each stage is its own function (`negative_positive`, `shuffle_colors`,
`block_filter`). Whether the filter resists the attacks on PE is measured by
the security suite, not assumed.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import huang2022
  >>> k = huang2022.generate_key(jax.random.key(0), image_shape=(28, 28, 1), block_size=2)
  >>> huang2022.encrypt(k, np.zeros((28, 28, 1), np.uint8)).shape
  (28, 28, 1)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
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
  geometry: _core.KeyGeometry = static_field()
  statistic: str = static_field(default="median")


def _check_statistic(statistic: str) -> str:
  if statistic not in STATISTICS:
    raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
  return statistic


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 2,
                 statistic: str = "median") -> Huang2022Key:
  """Draws a key: PE's negation bits and colour orders, plus the filter settings."""
  geometry = _core.make_geometry(image_shape, block_size=block_size)
  pixel_key = pe.generate_key(key, image_shape=geometry.image_shape)
  return Huang2022Key(pixel_key=pixel_key, geometry=geometry, statistic=_check_statistic(statistic))


def _filter_one(image: jax.Array, block_size: int, statistic: str) -> jax.Array:
  h, w, c = image.shape
  b = block_size
  view = _core.block_view(image, b).transpose(0, 2, 4, 1, 3).reshape(h // b, w // b, c, b * b)
  count = b * b
  if statistic == "max":
    stat = view.max(axis=-1)
  elif statistic == "min":
    stat = view.min(axis=-1)
  elif statistic == "mean":
    stat = (2 * view.astype(jnp.int32).sum(axis=-1) + count) // (2 * count)
  else:
    ordered = jnp.sort(view, axis=-1).astype(jnp.int32)
    stat = (ordered[..., (count - 1) // 2] + ordered[..., count // 2] + 1) // 2
  stat = stat.astype(jnp.uint8)[:, None, :, None, :]
  return jnp.broadcast_to(stat, (h // b, b, w // b, b, c)).reshape(h, w, c)


def block_filter(images: ArrayLike, *, block_size: int, statistic: str = "median") -> jax.Array:
  """Stage 3: fills every B x B block, per channel, with one statistic of it.

  images: [H, W, C] or [N, H, W, C] uint8, H and W divisible by block_size;
  statistic: one of STATISTICS. Returns uint8 images of the same shape.
  """
  images = _core.check_images(images)
  b, statistic = _core.check_block_size(block_size), _check_statistic(statistic)
  _core.block_view(images, b)  # a clear error when B does not divide H, W
  return _filter(jnp.asarray(images).reshape(-1, *images.shape[-3:]), b, statistic).reshape(
      images.shape)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _filter(images: jax.Array, block_size: int, statistic: str) -> jax.Array:
  return jax.vmap(lambda x: _filter_one(x, block_size, statistic))(images)


def negative_positive(cipher_key: Huang2022Key, images: ArrayLike) -> jax.Array:
  """Stage 1: x -> 255 - x where the key's negation bit is set (same shape and dtype)."""
  _core.expect_key(cipher_key, Huang2022Key, "huang2022.negative_positive")
  k = cipher_key.pixel_key
  return pe.encrypt(pe.PEKey(negate=k.negate, color=jnp.zeros_like(k.color), geometry=k.geometry),
                    images)


def shuffle_colors(cipher_key: Huang2022Key, images: ArrayLike) -> jax.Array:
  """Stage 2: per-pixel keyed colour permutation (identity for C = 1). Same shape and dtype."""
  _core.expect_key(cipher_key, Huang2022Key, "huang2022.shuffle_colors")
  k = cipher_key.pixel_key
  return pe.encrypt(pe.PEKey(negate=jnp.zeros_like(k.negate), color=k.color, geometry=k.geometry),
                    images)


def _encrypt_one(cipher_key: Huang2022Key, image: jax.Array) -> jax.Array:
  shuffled = _core.apply_transform(pe.pixel_transform(cipher_key.pixel_key), image, block_size=1)
  return _filter_one(shuffled, cipher_key.geometry.block_size, cipher_key.statistic)


def encrypt(cipher_key: Huang2022Key, images: ArrayLike) -> jax.Array:
  """Encrypts (lossily) [H, W, C] or [N, H, W, C] uint8 images: NP, colour shuffle, filter.

  There is no decrypt: the block filter discards information.
  """
  return _core.encrypt_with(SCHEME, cipher_key, images)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 2,
                           statistic: str = "median") -> float:
  """PE's key space; the filter adds no secret."""
  del statistic
  return pe.nominal_key_space_bits(image_shape=image_shape)


SCHEME = _core.Scheme(
    name="huang2022", title="Huang et al., IEEE Access 2022 (reconstruction)",
    key_type=Huang2022Key, generate_key=generate_key, encrypt=encrypt, decrypt=None,
    encrypt_image=_encrypt_one, decrypt_image=None, nominal_key_space_bits=nominal_key_space_bits,
    options={"block_size": 2, "statistic": "median"}, kind="pixel", scrambles_blocks=False,
    native_adaptation="pixel")
