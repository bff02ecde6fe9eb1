"""lie_jax.data.encryption: the one place that turns a scheme and a key into a dataset cipher.

Oracles: the scheme's own generate_key / encrypt, applied by hand with the documented key
derivation (per-image key of example i of split s: generate_key(fold_in(fold_in(prng,
SPLIT_IDS[s]), i))).
"""

import chex
import jax
import numpy as np
import pytest

from lie_jax import ciphers
from lie_jax import keys
from lie_jax.ciphers import le
from lie_jax.data import encryption

SHAPE = (8, 8, 3)


def _images(n=4, shape=SHAPE, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_scheme_options_name_the_block_size_and_check_options():
  assert encryption.scheme_options("le") == {"block_size": 4}
  assert encryption.scheme_options("huang2022") == {"block_size": 2}
  assert encryption.scheme_options("le", block_size=8) == {"block_size": 8}
  assert encryption.scheme_options("le", block_size=8, options={"block_size": 2}) == {
      "block_size": 2}
  assert encryption.scheme_options("pe", block_size=4) == {}
  assert encryption.scheme_options("morph") == {}
  assert encryption.scheme_options("le", options={"layout": "chw"}) == {
      "block_size": 4, "layout": "chw"}
  with pytest.raises(ValueError, match="blocksize"):
    encryption.scheme_options("le", options={"blocksize": 4})
  with pytest.raises(ValueError, match="unknown scheme 'nope'"):
    encryption.scheme_options("nope")


def test_shared_key_cipher_is_generate_key_then_encrypt():
  prng = jax.random.key(7)
  cipher = encryption.make_cipher("le", prng, image_shape=SHAPE, options={"block_size": 4})
  x = _images()
  expected_key = le.generate_key(prng, image_shape=SHAPE, block_size=4)
  expected = np.asarray(le.encrypt(expected_key, x))
  for split in ("train", "test"):  # one key for every split and index
    y = cipher.encrypt(x, np.arange(4), split)
    chex.assert_type(y, np.uint8)
    np.testing.assert_array_equal(np.asarray(y), expected)
  np.testing.assert_array_equal(np.asarray(cipher.decrypt(expected, np.arange(4), "val")), x)
  chex.assert_trees_all_equal(cipher.cipher_key, expected_key)


@pytest.mark.parametrize("scheme", ["le", "pe", "etc"])
def test_per_image_keys_follow_split_and_index(scheme):
  prng = jax.random.key(3)
  options = encryption.scheme_options(scheme)
  cipher = encryption.make_cipher(scheme, prng, image_shape=SHAPE, options=options,
                                  per_image_keys=True)
  assert cipher.cipher_key is None
  record = ciphers.get_scheme(scheme)
  x, indices = _images(), np.array([5, 0, 9, 2])
  for split in ("train", "val"):
    y = np.asarray(cipher.encrypt(x, indices, split))
    split_key = jax.random.fold_in(prng, encryption.SPLIT_IDS[split])
    for i, index in enumerate(indices):
      key_i = record.generate_key(jax.random.fold_in(split_key, int(index)), image_shape=SHAPE,
                                  **options)
      np.testing.assert_array_equal(y[i], np.asarray(record.encrypt(key_i, x[i:i + 1]))[0])
    np.testing.assert_array_equal(np.asarray(cipher.decrypt(y, indices, split)), x)
  # Splits get unrelated keys: the same example differs between them.
  assert not np.array_equal(np.asarray(cipher.encrypt(x, indices, "train")),
                            np.asarray(cipher.encrypt(x, indices, "test")))


def test_key_file_cipher_uses_the_derived_key_and_accepts_json_lists():
  secret = keys.SecretKey(bytes(range(32)))
  options = {"block_size": 4, "transforms": ["shuffle", "flip"]}  # as read from a manifest
  cipher = encryption.key_file_cipher(secret, "blockwise", image_shape=SHAPE, options=options)
  prng = keys.derive_prng_key(secret, scheme="blockwise", image_shape=SHAPE, block_size=4,
                              transforms=("shuffle", "flip"))
  expected = encryption.make_cipher("blockwise", prng, image_shape=SHAPE,
                                    options={"block_size": 4, "transforms": ("shuffle", "flip")})
  x = _images()
  np.testing.assert_array_equal(np.asarray(cipher.encrypt(x, np.arange(4), "train")),
                                np.asarray(expected.encrypt(x, np.arange(4), "train")))
  other = encryption.key_file_cipher(keys.SecretKey(bytes(32)), "blockwise", image_shape=SHAPE,
                                     options=options)
  assert not np.array_equal(np.asarray(other.encrypt(x, np.arange(4), "train")),
                            np.asarray(expected.encrypt(x, np.arange(4), "train")))


@pytest.mark.parametrize("scheme", sorted(ciphers.SCHEMES))
def test_every_scheme_builds_a_cipher_as_its_record_says(scheme):
  record = ciphers.get_scheme(scheme)
  options = encryption.scheme_options(scheme)
  cipher = encryption.make_cipher(scheme, jax.random.key(0), image_shape=SHAPE, options=options)
  y = cipher.encrypt(_images(2), np.arange(2), "train")
  chex.assert_type(y, record.cipher_dtype(**options).type)
  chex.assert_axis_dimension(y, 0, 2)
  assert (cipher.decrypt is None) == (not record.invertible)
  if not record.per_image_keys:
    with pytest.raises(ValueError, match="no per-image keys"):
      encryption.make_cipher(scheme, jax.random.key(0), image_shape=SHAPE, options=options,
                             per_image_keys=True)


@pytest.mark.parametrize("scheme", ["le", "pe", "blockwise"])
def test_dataset_nonces_give_unrelated_per_image_keys(scheme):
  # Issue 17: without a nonce, image i of every dataset under one key file got the same key,
  # so for two batches |cA - cB| == |pA - pB| pixel by pixel. With fresh nonces it must not.
  secret = keys.SecretKey(bytes(range(32)))
  options = encryption.scheme_options(scheme)
  make = lambda nonce: encryption.key_file_cipher(secret, scheme, image_shape=SHAPE,
                                                  options=options, per_image_keys=True,
                                                  nonce=nonce)
  nonce_a, nonce_b = keys.new_nonce(), keys.new_nonce()
  p_a, p_b = _images(4, seed=1), _images(4, seed=2)
  indices = np.arange(4)
  c_a = np.asarray(make(nonce_a).encrypt(p_a, indices, "train")).astype(int)
  c_b = np.asarray(make(nonce_b).encrypt(p_b, indices, "train")).astype(int)
  plain_diff = np.abs(p_a.astype(int) - p_b.astype(int))
  # Sorted per image: the leak survives the position moves of pe and blockwise.
  leak = lambda c, d, i: np.array_equal(np.sort(np.abs(c[i] - d[i]).reshape(-1)),
                                        np.sort(plain_diff[i].reshape(-1)))
  for i in indices:
    assert not np.array_equal(np.abs(c_a[i] - c_b[i]), plain_diff[i])
    assert not leak(c_a, c_b, i)
  # The same image under two nonces: unrelated ciphertexts, not a shifted copy.
  c_a_on_b = np.asarray(make(nonce_b).encrypt(p_a, indices, "train")).astype(int)
  assert (c_a != c_a_on_b).mean() > 0.5
  # The control (the test can fail): with one nonce, as with none, the key reuse shows.
  c_b_same = np.asarray(make(nonce_a).encrypt(p_b, indices, "train")).astype(int)
  if scheme in ("pe", "blockwise"):  # moves and negations: |cA - cB| is |pA - pB| moved
    assert all(leak(c_a, c_b_same, i) for i in indices)
  # The same nonce reproduces, and decrypts.
  np.testing.assert_array_equal(np.asarray(make(nonce_a).encrypt(p_a, indices, "train")), c_a)
  np.testing.assert_array_equal(
      np.asarray(make(nonce_a).decrypt(c_a.astype(np.uint8), indices, "train")), p_a)


def test_nonce_is_in_the_key_derivation_for_shared_keys_too():
  secret = keys.SecretKey(bytes(range(32)))
  options = encryption.scheme_options("le")
  nonce = bytes(range(16))
  cipher = encryption.key_file_cipher(secret, "le", image_shape=SHAPE, options=options,
                                      nonce=nonce)
  prng = keys.derive_prng_key(secret, scheme="le", nonce=nonce, image_shape=SHAPE, block_size=4)
  expected = le.generate_key(prng, image_shape=SHAPE, block_size=4)
  chex.assert_trees_all_equal(cipher.cipher_key, expected)
  plain = encryption.key_file_cipher(secret, "le", image_shape=SHAPE, options=options)
  assert not np.array_equal(np.asarray(plain.cipher_key.perm), np.asarray(expected.perm))
  with pytest.raises(ValueError, match="nonce"):
    encryption.key_file_cipher(secret, "le", image_shape=SHAPE, options=options, nonce=b"short")
