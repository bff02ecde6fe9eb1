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

import functools
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


def _merge_sort_comparators(size: int) -> list[tuple[int, int]]:
  """Batcher's odd-even merge sort on `size` wires (padded to a power of two).

  Comparators (i, j), i < j, put the minimum on wire i. Those that touch a
  padding wire (j >= size) are dropped: padding stands for +infinity at the
  end, where such a comparator changes nothing.
  """
  n = _blocks.next_power_of_two(size)
  pairs = []
  p = 1
  while p < n:
    k = p
    while k >= 1:
      for j in range(k % p, n - k, 2 * k):
        for i in range(min(k, n - j - k)):
          if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < size:
            pairs.append((i + j, i + j + k))
      k //= 2
    p *= 2
  return pairs


def _order_statistics(values: list[jax.Array], ranks: tuple[int, ...]) -> list[jax.Array]:
  """The elementwise rank-r values (0 = smallest) of the arrays in `values`.

  A sorting network of element-wise minima and maxima, keeping only the
  comparators the requested ranks depend on; XLA fuses it into one loop.
  """
  pairs = _merge_sort_comparators(len(values))
  needed, kept = set(ranks), []
  for i, j in reversed(pairs):
    if i in needed or j in needed:
      kept.append((i, j))
      needed |= {i, j}
  wires = list(values)
  for i, j in reversed(kept):
    wires[i], wires[j] = jnp.minimum(wires[i], wires[j]), jnp.maximum(wires[i], wires[j])
  return [wires[r] for r in ranks]


def _block_statistic(view: jax.Array, statistic: str) -> jax.Array:
  """view: [..., H/B, B, W/B, B, C] uint8 -> [..., H/B, 1, W/B, 1, C] uint8.

  Computed from the B*B strided slices of the view (one per position in the
  block), element-wise, which XLA:CPU fuses into one loop; its reductions
  over the two strided block axes, and `jnp.sort` for the median, run 5-20x
  slower.
  """
  b = view.shape[-2]
  count = b * b
  values = [view[..., r:r + 1, :, s:s + 1, :] for r in range(b) for s in range(b)]
  if statistic == "max":
    return functools.reduce(jnp.maximum, values)
  if statistic == "min":
    return functools.reduce(jnp.minimum, values)
  if statistic == "mean":
    total = functools.reduce(jnp.add, [v.astype(jnp.int32) for v in values])
    return ((total + count // 2) // count).astype(jnp.uint8)
  lo, hi = _order_statistics(values, ((count - 1) // 2, count // 2))
  return (lo >> 1) + (hi >> 1) + ((lo | hi) & 1)  # (lo + hi + 1) // 2 without overflow


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
  return images ^ pe._negation_mask(pixel_key)


@jax.jit
def _shuffle_colors(pixel_key: pe.PEKey, images: jax.Array) -> jax.Array:
  return pe._shuffle_colors(images, pixel_key.color)


def _filter_impl(images: jax.Array, block_size: int, statistic: str) -> jax.Array:
  view = _blocks.block_view(images, block_size)
  # One statistic per block and channel, written to a buffer and then
  # broadcast: fused into the broadcast, it is recomputed for every value of
  # the block (4x slower for 2 x 2 blocks on RGB).
  stat = _blocks.separately(lambda v: _block_statistic(v, statistic), view)
  return jnp.broadcast_to(stat, view.shape).reshape(images.shape)


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
  if images.shape[-1] == 3:
    # One key: PE's colour shuffle runs on its own (`separately`); XLA would
    # otherwise move it into the filter's statistic, 3x slower on RGB. (For
    # C = 1, PE is an XOR and fusing it is faster.)
    shuffled = _blocks.separately(pe.pixel_cipher.encrypt_shared, cipher_key.pixel_key, images)
  else:
    shuffled = pe.pixel_cipher.encrypt_shared(cipher_key.pixel_key, images)
  return _filter_impl(shuffled, cipher_key.geometry.block_size, cipher_key.statistic)


def _encrypt_keys(keys: Huang2022Key, images: jax.Array) -> jax.Array:
  # Per-image keys: PE stays fused, so its keys are computed where they are
  # used; passing them to `separately` would write them out (1.6x slower).
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
