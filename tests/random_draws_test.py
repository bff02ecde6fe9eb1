"""The key-drawing helpers give valid, (nearly) uniform draws."""

import itertools

import jax
import jax.numpy as jnp
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


@pytest.mark.parametrize("size", [1, 3, 17, 96, 128])
def test_sort_words_equals_numpy_sort(size):
  rng = np.random.default_rng(size)
  # Duplicates and the largest word (the value the network pads with) included.
  # 300 rows: enough for the network (which needs _NETWORK_MIN_ROWS).
  words = rng.integers(0, 2**32, (60, 5, size), dtype=np.uint32)
  words[0, 0, ::3] = 2**32 - 1
  words[1, 1] = rng.integers(0, 4, size)
  expected = np.sort(words, axis=-1)
  np.testing.assert_array_equal(jax.jit(_blocks.sort_words)(words), expected)
  np.testing.assert_array_equal(_blocks.sort_words(words[2, 3]), expected[2, 3])
  # Under vmap (the batching rule moves the batch into the network's lanes), also nested.
  np.testing.assert_array_equal(jax.jit(jax.vmap(_blocks.sort_words))(words), expected)
  np.testing.assert_array_equal(jax.vmap(jax.vmap(_blocks.sort_words))(words), expected)
  np.testing.assert_array_equal(
      jax.vmap(_blocks.sort_words, in_axes=1, out_axes=1)(words), expected)


@pytest.mark.parametrize("chunked", [False, True])
def test_sort_words_below_the_network_and_in_chunks_equals_numpy_sort(chunked):
  # 3 rows: jnp.sort. Over twice the values one network sorts at once: the network in
  # chunks of _NETWORK_CHUNK_ROWS rows, the last one padded.
  rows = 2 * (_blocks._NETWORK_CHUNK_VALUES // 128) + 77 if chunked else 3  # pylint: disable=protected-access
  assert rows % _blocks._NETWORK_CHUNK_ROWS or not chunked  # pylint: disable=protected-access
  words = np.random.default_rng(0).integers(0, 2**32, (rows, 128), dtype=np.uint32)
  words[-1] = 2**32 - 1
  np.testing.assert_array_equal(jax.jit(_blocks.sort_words)(words), np.sort(words, axis=-1))
  np.testing.assert_array_equal(jax.vmap(_blocks.sort_words)(words.reshape(-1, 8, 16)),
                                np.sort(words.reshape(-1, 8, 16), axis=-1))


@pytest.mark.parametrize("size", [1, 5, 64, 128, 129, 300])
def test_invert_permutations_equals_argsort(size):
  rng = np.random.default_rng(size)
  perms = np.stack([rng.permutation(size) for _ in range(6)]).astype(np.int32)
  expected = np.argsort(perms, axis=-1)
  np.testing.assert_array_equal(_blocks.invert_permutations(jnp.asarray(perms)), expected)
  np.testing.assert_array_equal(jax.vmap(_blocks.invert_permutations)(jnp.asarray(perms)),
                                expected)
  # 300 rows: through the sorting network.
  many = np.stack([rng.permutation(size) for _ in range(300)]).astype(np.int32)
  np.testing.assert_array_equal(jax.jit(_blocks.invert_permutations)(jnp.asarray(many)),
                                np.argsort(many, axis=-1))


@pytest.mark.parametrize("count, size", [(None, 48), (4, 96), (None, 128), (3, 7)])
def test_random_permutations_sort_packed_words(count, size):
  # Oracle: the packed-word construction of the docstring, sorted by NumPy. It
  # pins the permutations a key gives (keys made before the network must not change).
  key = jax.random.key(size)
  shape = (size,) if count is None else (count, size)
  words = np.asarray(jax.random.bits(key, shape, jnp.uint32))
  packed = (words & ~np.uint32(127)) | np.arange(size, dtype=np.uint32)
  expected = (np.sort(packed, axis=-1) & 127).astype(np.int32)
  np.testing.assert_array_equal(_blocks.random_permutations(key, count, size), expected)
  # The per-image path draws them under vmap: 300 keys, enough rows for the sorting network.
  keys = jax.random.split(key, 300)
  rows = 300 * (count or 1)
  assert _blocks._NETWORK_MIN_ROWS <= rows  # pylint: disable=protected-access
  batched = jax.jit(jax.vmap(lambda k: _blocks.random_permutations(k, count, size)))(keys)
  words = np.asarray(jax.vmap(lambda k: jax.random.bits(k, shape, jnp.uint32))(keys))
  packed = (words & ~np.uint32(127)) | np.arange(size, dtype=np.uint32)
  np.testing.assert_array_equal(batched, (np.sort(packed, axis=-1) & 127).astype(np.int32))


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


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (64, 96), (2, 3, 4)])
def test_random_words_equal_jax_random_bits(shape):
  # Oracle: JAX's own threefry (the CPU path unrolls the same rounds).
  key = jax.random.key(sum(shape))
  expected = jax.random.bits(key, shape, jnp.uint32)
  words = _blocks.random_words(key, shape)
  assert words.shape == shape and words.dtype == jnp.uint32
  np.testing.assert_array_equal(words, expected)
  np.testing.assert_array_equal(jax.jit(_blocks.random_words, static_argnums=1)(key, shape),
                                expected)
  keys = jax.random.split(key, 6).reshape(2, 3)
  expected = jax.vmap(jax.vmap(lambda k: jax.random.bits(k, shape, jnp.uint32)))(keys)
  np.testing.assert_array_equal(
      jax.jit(jax.vmap(jax.vmap(lambda k: _blocks.random_words(k, shape))))(keys), expected)
  # Consumers that read each word many times see the same words.
  np.testing.assert_array_equal(jax.jit(lambda k: _blocks.random_flags(k, (100,)))(key),
                                (np.asarray(jax.random.bits(key, (4,), jnp.uint32))[:, None]
                                 >> np.arange(32, dtype=np.uint32) & 1).reshape(-1)[:100])


def test_random_words_other_keys_fall_back_to_jax():
  rbg = jax.random.key(1, impl="rbg")
  np.testing.assert_array_equal(_blocks.random_words(rbg, (5,)),
                                jax.random.bits(rbg, (5,), jnp.uint32))
  raw = jax.random.PRNGKey(2)  # legacy uint32 key data
  np.testing.assert_array_equal(_blocks.random_words(raw, (5,)),
                                jax.random.bits(raw, (5,), jnp.uint32))
  key = jax.random.key(3)
  with jax.threefry_partitionable(False):
    np.testing.assert_array_equal(_blocks.random_words(key, (9,)),
                                  jax.random.bits(key, (9,), jnp.uint32))
  assert _blocks.random_words(key, (0, 4)).shape == (0, 4)
