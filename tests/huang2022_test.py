"""Huang 2022 reconstruction: stages compose, the filter is the stated statistic."""

import jax
import numpy as np
import pytest

from lie_jax.ciphers import huang2022, pe
from tests.cipher_cases import random_images


def _reference_filter(x, b, statistic):
  """Loop-based oracle over blocks and channels."""
  out = np.empty_like(x)
  n, h, w, c = x.shape
  for i in range(n):
    for r in range(0, h, b):
      for s in range(0, w, b):
        for ch in range(c):
          v = np.sort(x[i, r:r + b, s:s + b, ch].astype(np.int64).ravel())
          if statistic == "max":
            val = v[-1]
          elif statistic == "min":
            val = v[0]
          elif statistic == "mean":
            val = (v.sum() + len(v) // 2) // len(v)
          else:
            val = (v[(len(v) - 1) // 2] + v[len(v) // 2] + 1) // 2
          out[i, r:r + b, s:s + b, ch] = val
  return out


@pytest.mark.parametrize("statistic", huang2022.STATISTICS)
@pytest.mark.parametrize("block_size", [2, 3])
def test_block_filter_matches_loop_oracle(statistic, block_size):
  x = random_images((2, 6, 12, 3), seed=block_size)
  got = np.asarray(huang2022.block_filter(x, block_size=block_size, statistic=statistic))
  np.testing.assert_array_equal(got, _reference_filter(x, block_size, statistic))


@pytest.mark.parametrize("shape", [(16, 16, 3), (16, 16, 1)])
def test_encrypt_is_the_three_stages_composed(shape):
  k = huang2022.generate_key(jax.random.key(0), image_shape=shape, block_size=2,
                             statistic="mean")
  x = random_images((3,) + shape)
  staged = huang2022.shuffle_colors(k, huang2022.negative_positive(k, x))
  staged = huang2022.block_filter(staged, block_size=2, statistic="mean")
  np.testing.assert_array_equal(np.asarray(huang2022.encrypt(k, x)), np.asarray(staged))
  # Stages 1-2 are PE's transform with the same key.
  np.testing.assert_array_equal(
      np.asarray(huang2022.shuffle_colors(k, huang2022.negative_positive(k, x))),
      np.asarray(pe.encrypt(k.pixel_key, x)))


def test_negative_positive_is_255_minus_x_where_keyed():
  k = huang2022.generate_key(jax.random.key(1), image_shape=(8, 8, 3))
  x = random_images((8, 8, 3))
  mask = np.asarray(k.pixel_key.negate)
  expected = np.where(mask, 255 - x, x)
  np.testing.assert_array_equal(np.asarray(huang2022.negative_positive(k, x)), expected)


def test_filter_is_lossy_and_blocks_are_constant():
  k = huang2022.generate_key(jax.random.key(0), image_shape=(8, 8, 1), block_size=4)
  y = np.asarray(huang2022.encrypt(k, random_images((8, 8, 1))))
  blocks = y.reshape(2, 4, 2, 4).transpose(0, 2, 1, 3).reshape(4, 16)
  assert (blocks == blocks[:, :1]).all()
  assert not hasattr(huang2022, "decrypt")


def test_bad_statistic():
  with pytest.raises(ValueError, match="statistic must be one of"):
    huang2022.generate_key(jax.random.key(0), image_shape=(8, 8, 1), statistic="mode")


@pytest.mark.parametrize("statistic", huang2022.STATISTICS)
@pytest.mark.parametrize("block_size", [4, 5])
def test_block_filter_larger_blocks(statistic, block_size):
  # 16 and 25 values per block: even and odd counts for the median.
  x = random_images((2, 2 * block_size, 3 * block_size, 3), seed=block_size)
  got = np.asarray(huang2022.block_filter(x, block_size=block_size, statistic=statistic))
  np.testing.assert_array_equal(got, _reference_filter(x, block_size, statistic))


def test_block_filter_rejects_blocks_that_do_not_divide():
  with pytest.raises(ValueError, match="not divisible by block_size=4"):
    huang2022.block_filter(np.zeros((1, 6, 6, 1), np.uint8), block_size=4)
