"""Key files, HKDF and key derivation; secrets never leak."""

import hashlib
import hmac
import json
import os
import pickle
import stat

import jax
import numpy as np
import pytest

from lie_jax import keys
from lie_jax.ciphers import le


def test_hkdf_matches_rfc5869_test_cases():
  # RFC 5869, appendix A, test cases 1 and 3.
  okm = keys.hkdf_sha256(bytes([0x0B] * 22), salt=bytes(range(13)),
                         info=bytes(range(0xF0, 0xFA)), length=42)
  assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                       "34007208d5b887185865")
  okm = keys.hkdf_sha256(bytes([0x0B] * 22), info=b"", length=42)
  assert okm.hex() == ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                       "9d201395faa4b61a96c8")


def test_key_file_round_trip_mode_and_contents(tmp_path):
  path = tmp_path / "owner.key"
  secret = keys.write_key_file(path)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
  assert keys.read_key_file(path) == secret
  payload = json.loads(path.read_text())
  assert payload["format"] == keys.KEY_FILE_FORMAT
  assert payload["version"] == keys.KEY_FILE_VERSION
  assert payload["fingerprint"] == secret.fingerprint
  assert len(bytes.fromhex(payload["secret"])) * 8 >= 128


def test_key_file_never_overwritten(tmp_path):
  path = tmp_path / "owner.key"
  first = keys.write_key_file(path)
  with pytest.raises(FileExistsError, match="refusing to overwrite"):
    keys.write_key_file(path)
  assert keys.read_key_file(path) == first


def test_secrets_are_random_and_large_enough():
  a, b = keys.generate_secret(), keys.generate_secret()
  assert a != b and a.bits >= 128
  with pytest.raises(ValueError, match="at least 128 bits"):
    keys.SecretKey(b"short")


@pytest.mark.parametrize("content,match", [
    (b"\x00\xff garbage", "not JSON"),
    (b'{"format": "something-else"}', "format marker"),
    (b'{"format": "lie-jax-key", "version": 99, "secret": "00", "fingerprint": ""}',
     "version 99"),
    (b'{"format": "lie-jax-key", "version": 1, "secret": "zz", "fingerprint": ""}', "damaged"),
])
def test_corrupt_key_files_are_refused(tmp_path, content, match):
  path = tmp_path / "bad.key"
  path.write_bytes(content)
  os.chmod(path, 0o600)
  with pytest.raises(ValueError, match=match):
    keys.read_key_file(path)


def test_edited_secret_is_detected_by_fingerprint(tmp_path):
  path = tmp_path / "owner.key"
  keys.write_key_file(path)
  payload = json.loads(path.read_text())
  flipped = payload["secret"][:-1] + ("0" if payload["secret"][-1] != "0" else "1")
  payload["secret"] = flipped
  path.write_text(json.dumps(payload))
  with pytest.raises(ValueError, match="fingerprint does not match") as info:
    keys.read_key_file(path)
  assert flipped not in str(info.value)


def test_missing_key_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    keys.read_key_file(tmp_path / "nope.key")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_key_file_open_to_other_users_is_refused_unless_allowed(tmp_path, mode):
  path = tmp_path / "owner.key"
  secret = keys.write_key_file(path)
  os.chmod(path, mode)
  with pytest.raises(ValueError, match="chmod 600") as info:
    keys.read_key_file(path)
  assert str(path) in str(info.value) and "\n" not in str(info.value)
  assert secret._secret.hex() not in str(info.value)  # pylint: disable=protected-access
  with pytest.warns(UserWarning, match="chmod 600"):
    assert keys.read_key_file(path, allow_insecure_permissions=True) == secret


def test_non_regular_key_paths_are_refused_without_blocking(tmp_path):
  fifo = tmp_path / "key.fifo"
  os.mkfifo(fifo, 0o600)  # opening it for reading would block forever: must not be opened
  with pytest.raises(ValueError, match="not a regular file"):
    keys.read_key_file(fifo)
  link = tmp_path / "link.key"
  os.symlink(fifo, link)
  with pytest.raises(ValueError, match="not a regular file"):
    keys.read_key_file(link)
  with pytest.raises(ValueError, match="not a regular file"):
    keys.read_key_file(tmp_path)
  if os.path.exists("/dev/zero"):  # an endless device
    with pytest.raises(ValueError, match="not a regular file"):
      keys.read_key_file("/dev/zero")


def test_oversized_key_file_is_refused(tmp_path):
  path = tmp_path / "big.key"
  path.write_bytes(b" " * (1 << 17))
  os.chmod(path, 0o600)
  with pytest.raises(ValueError, match="larger than"):
    keys.read_key_file(path)


@pytest.mark.parametrize("num_bytes", [0, 15, 1025, 10**9, -1, True, 16.0, "32"])
def test_generate_secret_is_bounded(num_bytes):
  with pytest.raises(ValueError, match="16..1024 bytes"):
    keys.generate_secret(num_bytes)


def test_generate_secret_accepts_its_bounds():
  assert keys.generate_secret(16).bits == 128
  assert keys.generate_secret(1024).bits == 8192


def test_new_nonce_is_fresh_and_128_bits():
  nonces = {keys.new_nonce() for _ in range(64)}
  assert len(nonces) == 64
  assert all(isinstance(n, bytes) and len(n) * 8 >= 128 for n in nonces)


def test_secret_never_in_repr_str_or_pickle():
  secret = keys.SecretKey(bytes(range(32)))
  hex_secret = bytes(range(32)).hex()
  assert hex_secret not in repr(secret) and hex_secret not in str(secret)
  assert secret.fingerprint in repr(secret)
  with pytest.raises(TypeError, match="cannot be pickled"):
    pickle.dumps(secret)


def test_cipher_key_repr_hides_arrays():
  k = le.generate_key(jax.random.key(0), image_shape=(8, 8, 1), block_size=4)
  text = repr(k)
  assert "hidden" in text
  for value in np.asarray(k.perm)[:8]:
    assert f" {value}," not in text


def test_derivation_is_deterministic_and_purpose_separated():
  secret = keys.SecretKey(bytes(range(32)))
  data = lambda k: tuple(np.asarray(jax.random.key_data(k)).tolist())
  a = keys.derive_prng_key(secret, scheme="le", image_shape=(28, 28, 1), block_size=4)
  b = keys.derive_prng_key(secret, scheme="le", image_shape=(28, 28, 1), block_size=4)
  c = keys.derive_prng_key(secret, scheme="le", image_shape=(28, 28, 1), block_size=2)
  d = keys.derive_prng_key(secret, scheme="ele", image_shape=(28, 28, 1), block_size=4)
  e = keys.derive_prng_key(keys.SecretKey(bytes(32)), scheme="le", image_shape=(28, 28, 1),
                           block_size=4)
  assert data(a) == data(b)
  assert len({data(a), data(c), data(d), data(e)}) == 4


def _oracle_key_bytes(secret: bytes, info: bytes) -> bytes:
  # Independent oracle: HKDF-SHA256 via hmac directly, per RFC 5869 (one block suffices).
  prk = hmac.new(b"lie-jax/v1", secret, hashlib.sha256).digest()
  return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_derivation_matches_independent_hkdf():
  secret = bytes(range(32))
  info = b'lie-jax/cipher-key/v2/{"params":{"block_size":4},"scheme":"le"}'
  expected = np.frombuffer(_oracle_key_bytes(secret, info), "<u4").astype(np.uint32)
  k = keys.derive_prng_key(keys.SecretKey(secret), scheme="le", block_size=4)
  assert str(k.dtype) == "key<cc20>"
  np.testing.assert_array_equal(np.asarray(jax.random.key_data(k)), expected)
  nonce = bytes(range(100, 116))
  info = (b'lie-jax/cipher-key/v2/{"nonce":"' + nonce.hex().encode() +
          b'","params":{"block_size":4,"image_shape":[8,8,3]},"scheme":"le"}')
  expected = np.frombuffer(_oracle_key_bytes(secret, info), "<u4").astype(np.uint32)
  k = keys.derive_prng_key(keys.SecretKey(secret), scheme="le", nonce=nonce, block_size=4,
                           image_shape=(8, 8, 3))
  np.testing.assert_array_equal(np.asarray(jax.random.key_data(k)), expected)


def test_kdf_version_is_public_and_an_int():
  assert keys.KDF_VERSION == 2 and isinstance(keys.KDF_VERSION, int)


def test_nonce_separates_keys_and_reproduces():
  secret = keys.SecretKey(bytes(range(32)))
  data = lambda k: tuple(np.asarray(jax.random.key_data(k)).tolist())
  derive = lambda nonce: data(keys.derive_prng_key(secret, scheme="le", nonce=nonce,
                                                   image_shape=(8, 8, 1), block_size=4))
  a, b = keys.new_nonce(), keys.new_nonce()
  assert derive(a) == derive(a) == derive(bytearray(a))
  assert len({derive(a), derive(b), derive(None)}) == 3


@pytest.mark.parametrize("nonce", [b"", bytes(15), "00" * 16, 12345, [0] * 16])
def test_bad_nonces_are_refused(nonce):
  with pytest.raises(ValueError, match="nonce"):
    keys.derive_prng_key(keys.SecretKey(bytes(32)), scheme="le", nonce=nonce, block_size=4)


def test_derivation_wants_a_secret_key():
  with pytest.raises(TypeError, match="SecretKey"):
    keys.derive_prng_key(bytes(32), scheme="le")
  with pytest.raises(TypeError, match="SecretKey"):
    keys.manifest_mac(bytes(32), b"x")


def test_manifest_mac_matches_independent_hmac_and_purpose_separation():
  secret = bytes(range(32))
  prk = hmac.new(b"lie-jax/v1", secret, hashlib.sha256).digest()
  mac_key = hmac.new(prk, b"lie-jax/manifest-mac/v1\x01", hashlib.sha256).digest()
  assert keys.mac_key(keys.SecretKey(secret)) == mac_key
  payload = b'{"name":"scans","shards":[]}'
  expected = hmac.new(mac_key, payload, hashlib.sha256).hexdigest()
  assert keys.manifest_mac(keys.SecretKey(secret), payload) == expected
  # The MAC key is none of the other derived keys.
  cipher_key = _oracle_key_bytes(secret, b'lie-jax/cipher-key/v2/{"params":{},"scheme":"le"}')
  assert mac_key != cipher_key


def test_verify_manifest_mac():
  secret, other = keys.SecretKey(bytes(range(32))), keys.SecretKey(bytes(32))
  payload = b'{"name":"scans"}'
  mac = keys.manifest_mac(secret, payload)
  assert keys.verify_manifest_mac(secret, payload, mac)
  assert not keys.verify_manifest_mac(secret, payload + b" ", mac)
  assert not keys.verify_manifest_mac(other, payload, mac)
  flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
  assert not keys.verify_manifest_mac(secret, payload, flipped)
  for bad in (None, 5, b"00", "", mac[:-2], mac + "00", mac.upper(), "zz" * 32, "é" * 64,
              ["a"], mac.encode()):
    assert keys.verify_manifest_mac(secret, payload, bad) is False
