"""ChaCha20 PRNG: RFC 8439 vectors, a pure-Python oracle, and jax.random behaviour."""

from __future__ import annotations

import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lie_jax import chacha

_MASK = 0xFFFFFFFF
_RFC_KEY = bytes(range(32))  # RFC 8439 2.3.2 and 2.4.2: 00 01 02 ... 1f


# An independent pure-Python ChaCha20 on Python ints (RFC 8439 section 2), used as the oracle.
def _rotl(x: int, n: int) -> int:
  return ((x << n) | (x >> (32 - n))) & _MASK


def _quarter_round(a: int, b: int, c: int, d: int) -> tuple[int, int, int, int]:
  a = (a + b) & _MASK
  d = _rotl(d ^ a, 16)
  c = (c + d) & _MASK
  b = _rotl(b ^ c, 12)
  a = (a + b) & _MASK
  d = _rotl(d ^ a, 8)
  c = (c + d) & _MASK
  b = _rotl(b ^ c, 7)
  return a, b, c, d


def _block(key: list[int], counter: int, nonce: list[int]) -> list[int]:
  init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key, counter, *nonce]
  s = list(init)
  for _ in range(10):
    for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                       (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
      s[a], s[b], s[c], s[d] = _quarter_round(s[a], s[b], s[c], s[d])
  return [(x + x0) & _MASK for x, x0 in zip(s, init)]


def _words(data: bytes) -> list[int]:
  return list(struct.unpack(f"<{len(data) // 4}I", data))


def _keystream(key: list[int], num_blocks: int) -> bytes:
  return b"".join(struct.pack("<16I", *_block(key, i, [0, 0, 0])) for i in range(num_blocks))


def _key_words(key: jax.Array) -> list[int]:
  return [int(w) for w in jax.random.key_data(key)]


def _random_key(rng: np.random.Generator) -> jax.Array:
  return chacha.key_from_bytes(rng.bytes(32))


def test_oracle_quarter_round_matches_rfc_2_1_1_and_2_2_1():
  assert _quarter_round(0x11111111, 0x01020304, 0x9B8D6F43, 0x01234567) == (
      0xEA2A92F4, 0xCB1CF8CE, 0x4581472E, 0x5881C4BB)
  assert _quarter_round(0x516461B1, 0x2A5F714C, 0x53372767, 0x3D631689) == (
      0xBDB886DC, 0xCFACAFD2, 0xE46BEA80, 0xCCC07C79)


def test_block_matches_rfc_2_3_2():
  expected = [0xE4E7F110, 0x15593BD1, 0x1FDD0F50, 0xC47120A3, 0xC7F4D1C7, 0x0368C033,
              0x9AAA2204, 0x4E6CD4C3, 0x466482D2, 0x09AA9F07, 0x05D7C214, 0xA2028BD9,
              0xD19C12B5, 0xB94E16DE, 0xE883D0CB, 0x4E3C50A2]
  key, nonce = _words(_RFC_KEY), _words(bytes.fromhex("000000090000004a00000000"))
  assert _block(key, 1, nonce) == expected
  out = chacha.chacha20_block(np.array(key, np.uint32), 1, np.array(nonce, np.uint32))
  assert out.dtype == jnp.uint32 and out.shape == (16,)
  assert out.tolist() == expected


def test_block_encrypts_rfc_2_4_2_sunscreen():
  plaintext = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
               b"for the future, sunscreen would be it.")
  ciphertext = bytes.fromhex(
      "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
      "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
      "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
      "5af90bbf74a35be6b40b8eedf2785e42874d")
  key = jnp.asarray(_words(_RFC_KEY), jnp.uint32)
  nonce = jnp.asarray(_words(bytes.fromhex("000000000000004a00000000")), jnp.uint32)
  blocks = jax.jit(jax.vmap(chacha.chacha20_block, in_axes=(None, 0, None)))(
      key, jnp.arange(1, 3, dtype=jnp.uint32), nonce)
  stream = np.asarray(blocks).astype("<u4").tobytes()
  assert bytes(p ^ s for p, s in zip(plaintext, stream)) == ciphertext


def test_block_matches_oracle_on_random_inputs():
  rng = np.random.default_rng(0)
  keys = rng.integers(0, 2**32, (20, 8), dtype=np.uint32)
  counters = rng.integers(0, 2**32, 20, dtype=np.uint32)
  nonces = rng.integers(0, 2**32, (20, 3), dtype=np.uint32)
  counters[0], nonces[1] = _MASK, _MASK  # wrap-around at the top of the word
  got = jax.jit(jax.vmap(chacha.chacha20_block))(keys, counters, nonces)
  for i in range(20):
    assert got[i].tolist() == _block(keys[i].tolist(), int(counters[i]), nonces[i].tolist())


def test_block_rejects_wrong_shapes():
  with pytest.raises(ValueError, match="key \\[8\\]"):
    chacha.chacha20_block(np.zeros(4, np.uint32), 0, np.zeros(3, np.uint32))


def test_zero_key_bytes_are_rfc_a1_test_vector_1():
  stream = jax.random.bits(chacha.key_from_bytes(bytes(32)), (64,), dtype=jnp.uint8)
  assert bytes(np.asarray(stream)) == bytes.fromhex(
      "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
      "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586")


@pytest.mark.parametrize("dtype, shape", [
    (jnp.uint32, (3, 7)), (jnp.uint32, (40,)), (jnp.uint32, ()), (jnp.uint8, (13,)),
    (jnp.uint16, (5, 7)), (jnp.uint8, (0,))])
def test_random_bits_are_the_keystream_little_endian(dtype, shape):
  key = _random_key(np.random.default_rng(1))
  stream = _keystream(_key_words(key), 3)
  size, width = int(np.prod(shape)), np.dtype(dtype).itemsize
  expected = np.frombuffer(stream[:size * width], np.dtype(dtype).newbyteorder("<"))
  got = jax.random.bits(key, shape, dtype=dtype)
  assert got.dtype == dtype and got.shape == shape
  np.testing.assert_array_equal(np.asarray(got).reshape(-1), expected)


def test_random_bits_64():
  with jax.enable_x64(True):
    key = _random_key(np.random.default_rng(2))
    got = jax.random.bits(key, (9,), dtype=jnp.uint64)
    assert got.dtype == jnp.uint64
    expected = np.frombuffer(_keystream(_key_words(key), 2)[:72], "<u8")
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_random_bits_refuse_more_than_2_32_blocks():
  key = chacha.key_from_bytes(bytes(32))
  with pytest.raises(ValueError, match="at most 4294967296 blocks"):
    jax.jit(lambda k: jax.random.bits(k, (2**36 + 1,))).lower(key)


def test_split_and_fold_in_follow_the_documented_construction():
  key = _random_key(np.random.default_rng(3))
  words = _key_words(key)
  children = jax.random.key_data(jax.random.split(key, 5))
  assert children.shape == (5, 8)
  for i in range(5):
    assert children[i].tolist() == _block(words, i, [1, 0, 0])[:8]
  grid = jax.random.key_data(jax.random.split(key, (2, 3)))
  np.testing.assert_array_equal(grid.reshape(6, 8), jax.random.key_data(jax.random.split(key, 6)))
  for data in (0, 1, 12345, _MASK):
    assert _key_words(jax.random.fold_in(key, data)) == _block(words, 0, [2, data, 0])[:8]


def test_seed_puts_the_integer_in_the_low_words():
  assert _key_words(jax.random.key(5, impl=chacha.CHACHA20)) == [5, 0, 0, 0, 0, 0, 0, 0]
  with jax.enable_x64(True):
    key = jax.random.key(2**40 + 3, impl=chacha.CHACHA20)
    assert _key_words(key) == [3, 2**8, 0, 0, 0, 0, 0, 0]


def test_keys_are_distinct_across_fold_in_data_split_indices_and_parents():
  key = _random_key(np.random.default_rng(4))
  folded = jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(key, i)))(jnp.arange(200))
  children = jax.random.key_data(jax.random.split(key, 200))
  other = jax.random.key_data(jax.random.split(_random_key(np.random.default_rng(5)), 200))
  all_keys = np.concatenate([folded, children, other, jax.random.key_data(key)[None]])
  assert len({row.tobytes() for row in np.asarray(all_keys)}) == len(all_keys)


def _draws(key):
  return {"permutation": jax.random.permutation(key, 10),
          "randint": jax.random.randint(key, (4,), 0, 100),
          "bernoulli": jax.random.bernoulli(key, 0.5, (6,)),
          "bits": jax.random.bits(key, (3,)),
          "uniform": jax.random.uniform(key, (3,)),
          "split": jax.random.key_data(jax.random.split(key, 2)),
          "fold_in": jax.random.key_data(jax.random.fold_in(key, 9))}


def test_jit_equals_eager_and_vmap_equals_loop():
  key = _random_key(np.random.default_rng(6))
  eager = _draws(key)
  jax.tree.map(np.testing.assert_array_equal, jax.jit(_draws)(key), eager)
  batched = jax.jit(jax.vmap(lambda i: _draws(jax.random.fold_in(key, i))))(jnp.arange(4))
  for i in range(4):
    one = _draws(jax.random.fold_in(key, i))
    jax.tree.map(lambda b, o: np.testing.assert_array_equal(b[i], o), batched, one)
  assert 0 <= int(eager["randint"].min()) and int(eager["randint"].max()) < 100
  assert eager["bernoulli"].dtype == jnp.bool_


def test_permutation_is_a_permutation_and_roughly_uniform():
  key = _random_key(np.random.default_rng(7))
  perm = np.asarray(jax.random.permutation(key, 1000))
  np.testing.assert_array_equal(np.sort(perm), np.arange(1000))
  assert not np.array_equal(perm, np.arange(1000))
  perms = jax.jit(jax.vmap(lambda i: jax.random.permutation(jax.random.fold_in(key, i), 8)))(
      jnp.arange(2000))
  counts = np.zeros((8, 8))
  np.add.at(counts, (np.tile(np.arange(8), 2000), np.asarray(perms).reshape(-1)), 1)
  chi2 = ((counts - 250) ** 2 / 250).sum()
  assert chi2 < 111.1, chi2  # chi-square, 49 dof, p = 1e-6


def test_bytes_are_roughly_uniform():
  stream = jax.random.bits(_random_key(np.random.default_rng(8)), (2**16,), dtype=jnp.uint8)
  counts = np.bincount(np.asarray(stream), minlength=256)
  chi2 = ((counts - 256) ** 2 / 256).sum()
  assert chi2 < 377.1, chi2  # chi-square, 255 dof, p = 1e-6


def test_key_from_bytes_round_trip_and_errors():
  data = np.random.default_rng(9).bytes(32)
  key = chacha.key_from_bytes(data)
  assert key.shape == () and jax.random.key_impl(key) == chacha.CHACHA20
  assert _key_words(key) == _words(data)
  assert np.asarray(jax.random.key_data(key)).astype("<u4").tobytes() == data
  assert chacha.KEY_BITS == 256
  for bad in (b"", bytes(31), bytes(33)):
    with pytest.raises(ValueError, match=f"32 bytes, got {len(bad)}$"):
      chacha.key_from_bytes(bad)
  with pytest.raises(TypeError, match="wants bytes, got str"):
    chacha.key_from_bytes("x" * 32)


def test_generator_is_integer_only_so_every_backend_gives_the_same_bits():
  # Bit-identity across CPU, GPU and TPU rests on this: no floating-point op anywhere in the
  # key schedule (split, fold_in) or the keystream, only uint32 add, xor, shift and rotate.
  key = chacha.key_from_bytes(bytes(range(32)))

  def float_vars(fn, *args):
    jaxpr = jax.make_jaxpr(fn)(*args)
    found = []

    def walk(jp):
      for eqn in jp.eqns:
        for var in [*eqn.invars, *eqn.outvars]:
          dtype = getattr(getattr(var, "aval", None), "dtype", None)
          if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
            found.append((eqn.primitive.name, dtype))
        for param in eqn.params.values():  # jit, scan, while, cond: the bodies too
          for sub in param if isinstance(param, (list, tuple)) else [param]:
            if hasattr(sub, "eqns"):
              walk(sub)
            elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
              walk(sub.jaxpr)

    walk(jaxpr.jaxpr)
    return found

  # The implementation's own functions on raw key words: jax.random.bits on a typed key is one
  # opaque random_bits primitive in a jaxpr, so it would hide them.
  raw = np.asarray(jax.random.key_data(key))
  # pylint: disable=protected-access
  split, fold_in, random_bits = chacha._split, chacha._fold_in, chacha._random_bits
  assert float_vars(lambda k: split(k, (3,)), raw) == []
  assert float_vars(lambda k: fold_in(k, np.uint32(7)), raw) == []
  for width in (8, 16, 32):  # 64 needs jax_enable_x64
    assert float_vars(lambda k: random_bits(k, width, (40,)), raw) == []
  assert float_vars(lambda k: chacha.chacha20_block(k, 0, np.zeros(3, np.uint32)), raw) == []
  # The check can fail: floats are seen, at the top level and inside jit bodies.
  assert float_vars(lambda k: jax.random.uniform(k, (4,)), key)
  assert float_vars(lambda k: jax.jit(lambda x: random_bits(x, 8, (4,)) / 2.0)(k), raw)


def test_impl_name_names_the_key_space_bits_entry():
  from lie_jax import ciphers  # pylint: disable=import-outside-toplevel
  assert chacha.impl_name(chacha.key_from_bytes(bytes(32))) == "chacha20"
  assert chacha.impl_name(jax.random.key(0)) == "threefry2x32"
  assert chacha.impl_name(jax.random.key(0, impl="rbg")) == "rbg"
  # The table's bits are the keys' own: 32 per key-data word.
  for key in (chacha.key_from_bytes(bytes(32)), jax.random.key(0), jax.random.key(0, impl="rbg")):
    bits = np.asarray(jax.random.key_data(key)).size * 32
    assert ciphers.PRNG_KEY_BITS[chacha.impl_name(key)] == bits
