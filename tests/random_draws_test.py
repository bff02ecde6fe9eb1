"""The key-drawing helpers give valid, (nearly) uniform draws."""

import itertools

import jax
import numpy as np
import pytest

from lie_jax.ciphers import _blocks


@pytest.mark.parametrize("size", [1, 2, 5, 127, 128, 129, 300])
def test_random_permutations_are_permutations(size):
  perms = np.asarray(_blocks.random_permutations(jax.random.key(size), 50, size))
  assert perms.shape == (50, size) and perms.dtype == np.int32
  np.testing.assert_array_equal(np.sort(perms, axis=1), np.tile(np.arange(size), (50, 1)))
  single = np.asarray(_blocks.random_permutations(jax.random.key(0), None, size))
  assert single.shape == (size,)
  if size > 5:
    assert len({p.tobytes() for p in perms}) == 50


@pytest.mark.parametrize("size", [3, 200])
def test_random_permutations_uniform(size):
  perms = np.asarray(_blocks.random_permutations(jax.random.key(1), 30000, size))
  if size == 3:
    counts = [np.all(perms == p, axis=1).sum() for p in itertools.permutations(range(3))]
    expected = 30000 / 6
  else:  # where element 0 lands: uniform over the 200 positions
    counts = np.bincount(np.argmax(perms == 0, axis=1), minlength=size)
    expected = 30000 / size
  chi2 = sum((c - expected) ** 2 / expected for c in counts)
  dof = len(counts) - 1
  assert chi2 < dof + 6 * np.sqrt(2 * dof)


@pytest.mark.parametrize("upper", [1, 3, 4, 6, 256])
def test_random_below_range_and_uniformity(upper):
  draws = np.asarray(_blocks.random_below(jax.random.key(upper), (60001,), upper))
  assert draws.min() >= 0 and draws.max() < upper
  counts = np.bincount(draws, minlength=upper)
  expected = len(draws) / upper
  dof = max(upper - 1, 1)
  assert ((counts - expected) ** 2 / expected).sum() < dof + 6 * np.sqrt(2 * dof)


@pytest.mark.parametrize("upper", [3, 6, 4])
def test_random_below_consecutive_draws_are_independent(upper):
  # Consecutive draws come from the same random word: their pairs must be uniform too.
  draws = np.asarray(_blocks.random_below(jax.random.key(7), (120000,), upper))
  pairs = draws[0::2] * upper + draws[1::2]
  counts = np.bincount(pairs, minlength=upper * upper)
  expected = len(pairs) / upper ** 2
  dof = upper * upper - 1
  assert ((counts - expected) ** 2 / expected).sum() < dof + 6 * np.sqrt(2 * dof)


@pytest.mark.parametrize("m", [1, 6, 46656, 59049, 65535, 65536])
def test_scale_words_is_exact_floor(m):
  words = np.concatenate([np.array([0, 1, 2**16 - 1, 2**16, 2**32 - 1], np.uint32),
                          np.random.default_rng(m).integers(0, 2**32, 10000, dtype=np.uint32)])
  expected = (words.astype(np.uint64) * m) >> np.uint64(32)
  np.testing.assert_array_equal(np.asarray(_blocks.scale_words(jax.numpy.asarray(words), m)),
                                expected.astype(np.uint32))


@pytest.mark.parametrize("upper", [3, 5, 6, 7, 100, 255])
def test_random_below_digits_are_those_of_the_scaled_word(upper):
  # Oracle in uint64: word i gives the k base-`upper` digits of
  # floor(word * upper**k / 2**32), least significant first (upper**k <= 2**16).
  key = jax.random.key(upper)
  k = max(j for j in range(1, 17) if upper ** j <= 2 ** 16)
  size = 10 * k + 3
  words = np.asarray(jax.random.bits(key, (-(-size // k),), jax.numpy.uint32)).astype(np.uint64)
  v = (words * np.uint64(upper ** k)) >> np.uint64(32)
  digits = (v[:, None] // np.uint64(upper) ** np.arange(k, dtype=np.uint64)) % np.uint64(upper)
  np.testing.assert_array_equal(np.asarray(_blocks.random_below(key, (size,), upper)),
                                digits.reshape(-1)[:size].astype(np.int32))


def test_random_flags_are_fair_and_independent_per_position():
  flags = np.asarray(_blocks.random_flags(jax.random.key(0), (1000, 33)))
  assert flags.dtype == bool and flags.shape == (1000, 33)
  assert abs(flags.mean() - 0.5) < 0.01
  assert np.all(np.abs(flags.mean(axis=0) - 0.5) < 0.07)  # every bit position fair
