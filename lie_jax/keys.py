"""Secret key files and key derivation: where a cipher key's randomness comes from.

A key file holds a secret of at least 128 bits (`generate_secret` draws 128 to
8192, default 256) from the OS CSPRNG, a format version and a public
fingerprint. `read_key_file` refuses a key file that other users can read or
write (unless told otherwise) and anything that is not a regular file (a
FIFO, a device, a directory).

Cipher keys are never drawn from a small integer seed in production:
`derive_prng_key` runs HKDF-SHA256 (RFC 5869) over the secret, with the
scheme, its parameters and an optional dataset nonce as the `info` (purpose
separation: two schemes, one scheme with two block sizes, or two datasets
with two nonces get unrelated keys), and wraps the 32 output bytes as a
ChaCha20 JAX PRNG key (`lie_jax.chacha`: 256-bit keys, a cryptographic
generator, integer-only so bit-identical on CPU, GPU and TPU) for the
ciphers' `generate_key` and per-image functions. `new_nonce` draws a fresh
128-bit dataset nonce; `KDF_VERSION` names this derivation in manifests.

`manifest_mac` / `verify_manifest_mac` authenticate a manifest with
HMAC-SHA256 under a key derived from the secret for that purpose alone.

The secret never appears in a repr, a log line, an exception or a pickle;
the fingerprint (a hash of the secret under its own HKDF purpose) is public
and identifies the key in manifests and messages.

Example:
  >>> import tempfile, os
  >>> from lie_jax import keys
  >>> path = os.path.join(tempfile.mkdtemp(), "hospital.key")
  >>> secret = keys.write_key_file(path)
  >>> keys.read_key_file(path).fingerprint == secret.fingerprint
  True
  >>> oct(os.stat(path).st_mode & 0o777)
  '0o600'
  >>> mac = keys.manifest_mac(secret, b'{"name": "scans"}')
  >>> keys.verify_manifest_mac(secret, b'{"name": "scans"}', mac)
  True
  >>> keys.verify_manifest_mac(secret, b'{"name": "other"}', mac)
  False
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import warnings
from typing import Any

import jax
import numpy as np

from lie_jax import chacha

KEY_FILE_FORMAT = "lie-jax-key"
KEY_FILE_VERSION = 1
# The key-derivation version recorded in manifests: bump it (and regenerate
# tests/kat_test.py) whenever `derive_prng_key` or a sampler changes a key.
KDF_VERSION = 2
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 1024
DEFAULT_SECRET_BYTES = 32
MIN_NONCE_BYTES = 16
_MAX_KEY_FILE_BYTES = 1 << 16
_SALT = b"lie-jax/v1"
_FINGERPRINT_INFO = b"lie-jax/fingerprint/v1"
_CIPHER_INFO = "lie-jax/cipher-key/v2"
_MAC_INFO = "lie-jax/manifest-mac/v1"
_HEX_MAC = re.compile(r"[0-9a-f]{64}")


def hkdf_sha256(ikm: bytes, *, info: bytes, length: int, salt: bytes = b"") -> bytes:
  """HKDF with SHA-256 (RFC 5869): extract with `salt`, expand with `info`."""
  if not 0 < length <= 255 * 32:
    raise ValueError(f"HKDF length must be in 1..{255 * 32}, got {length}")
  prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
  okm, block = b"", b""
  for counter in range(1, -(-length // 32) + 1):
    block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
    okm += block
  return okm[:length]


class SecretKey:
  """A data owner's secret. Its repr shows only the public fingerprint."""

  __slots__ = ("_secret",)

  def __init__(self, secret: bytes):
    if not isinstance(secret, (bytes, bytearray)):
      raise TypeError(f"secret must be bytes, got {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
      raise ValueError(f"secret must hold at least {MIN_SECRET_BYTES * 8} bits, "
                       f"got {len(secret) * 8}")
    self._secret = bytes(secret)

  @property
  def fingerprint(self) -> str:
    """Public identifier: 16 hex digits in groups of 4 (a one-way hash of the secret)."""
    digest = hkdf_sha256(self._secret, info=_FINGERPRINT_INFO, length=8, salt=_SALT).hex()
    return "-".join(digest[i:i + 4] for i in range(0, 16, 4))

  @property
  def bits(self) -> int:
    return len(self._secret) * 8

  def derive_bytes(self, purpose: str, length: int) -> bytes:
    """HKDF-SHA256 output for a purpose string (distinct purposes, unrelated bytes)."""
    return hkdf_sha256(self._secret, info=purpose.encode("utf-8"), length=length, salt=_SALT)

  def __repr__(self) -> str:
    return f"SecretKey(fingerprint={self.fingerprint!r})"

  __str__ = __repr__

  def __eq__(self, other: object) -> bool:
    return isinstance(other, SecretKey) and hmac.compare_digest(self._secret, other._secret)

  def __hash__(self) -> int:
    return hash(self.fingerprint)

  def __reduce__(self):
    raise TypeError("SecretKey cannot be pickled: keep secrets in key files, not checkpoints")


def generate_secret(num_bytes: int = DEFAULT_SECRET_BYTES) -> SecretKey:
  """A new secret of `num_bytes` (16..1024) from the OS CSPRNG (`secrets.token_bytes`)."""
  if (isinstance(num_bytes, bool) or not isinstance(num_bytes, (int, np.integer))
      or not MIN_SECRET_BYTES <= num_bytes <= MAX_SECRET_BYTES):
    raise ValueError(f"a secret is {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes "
                     f"({MIN_SECRET_BYTES * 8}..{MAX_SECRET_BYTES * 8} bits), got {num_bytes!r}")
  return SecretKey(secrets.token_bytes(int(num_bytes)))


def new_nonce() -> bytes:
  """A fresh dataset nonce: 16 bytes (128 bits) from the OS CSPRNG.

  Draw one per dataset encryption and store it (hex) in the manifest: mixed
  into `derive_prng_key`, it gives that dataset per-image keys unrelated to
  every other dataset's under the same key file.
  """
  return secrets.token_bytes(MIN_NONCE_BYTES)


def write_key_file(path: str | os.PathLike, secret: SecretKey | None = None) -> SecretKey:
  """Writes a new key file with mode 0600; never overwrites an existing file.

  Args:
    path: where to create the key file (must not exist).
    secret: the secret to store (default: a new 256-bit secret).

  Returns:
    The stored `SecretKey`.

  Raises:
    FileExistsError: if `path` exists (the old key may still be needed to
      decrypt data: delete it yourself if you mean to).
  """
  secret = secret or generate_secret()
  payload = {
      "format": KEY_FILE_FORMAT,
      "version": KEY_FILE_VERSION,
      "fingerprint": secret.fingerprint,
      "secret": secret._secret.hex(),  # pylint: disable=protected-access
  }
  data = (json.dumps(payload, indent=1) + "\n").encode("ascii")
  try:
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
  except FileExistsError:
    raise FileExistsError(f"key file {os.fspath(path)!r} already exists; refusing to overwrite "
                          "it (data encrypted under it would become undecryptable)") from None
  try:
    os.fchmod(fd, 0o600)  # in case the umask widened nothing but the platform did
    os.write(fd, data)
    os.fsync(fd)
  finally:
    os.close(fd)
  return secret


def _corrupt(path: str, why: str) -> ValueError:
  return ValueError(f"key file {path!r} is not a valid lie_jax key file: {why}")


def read_key_file(path: str | os.PathLike, *,
                  allow_insecure_permissions: bool = False) -> SecretKey:
  """Reads and verifies a key file written by `write_key_file`.

  Args:
    path: the key file.
    allow_insecure_permissions: read a key file that other users can read
      or write (with a warning) instead of refusing it.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a regular file (a FIFO, a device, a directory: refused
      before it is opened, so a FIFO cannot block the reader); readable or
      writable by group or others (unless allowed); corrupt file, wrong
      format or version, or a fingerprint that does not match the secret.
      Messages never contain key material.
  """
  path = os.fspath(path)
  try:
    info = os.stat(path)
  except FileNotFoundError:
    raise FileNotFoundError(f"key file {path!r} does not exist") from None
  if not stat.S_ISREG(info.st_mode):
    raise ValueError(f"key file {path!r} is not a regular file; give the path of a key file "
                     "made by `lie-jax keygen`")
  # O_NONBLOCK: should the path turn into a FIFO after the check, open() must not hang on it;
  # fstat below re-checks the object actually opened.
  flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
  try:
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
  except FileNotFoundError:
    raise FileNotFoundError(f"key file {path!r} does not exist") from None
  try:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
      raise ValueError(f"key file {path!r} is not a regular file; give the path of a key file "
                       "made by `lie-jax keygen`")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
      if not allow_insecure_permissions:
        raise ValueError(f"key file {path!r} is readable or writable by other users (mode "
                         f"{oct(mode)}); refusing it: run chmod 600 {path}")
      warnings.warn(f"key file {path!r} is readable or writable by other users (mode "
                    f"{oct(mode)}); run: chmod 600 {path}", stacklevel=2)
    with os.fdopen(fd, "rb", closefd=False) as f:
      raw = f.read(_MAX_KEY_FILE_BYTES + 1)
  finally:
    os.close(fd)
  if len(raw) > _MAX_KEY_FILE_BYTES:
    raise _corrupt(path, f"larger than {_MAX_KEY_FILE_BYTES} bytes")
  try:
    payload = json.loads(raw.decode("ascii"))
  except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
    raise _corrupt(path, "not JSON text") from None
  if not isinstance(payload, dict) or payload.get("format") != KEY_FILE_FORMAT:
    raise _corrupt(path, f"missing format marker {KEY_FILE_FORMAT!r}")
  version = payload.get("version")
  if version != KEY_FILE_VERSION or isinstance(version, bool):
    raise ValueError(f"key file {path!r} has format version {repr(version)[:20]}; this lie_jax "
                     f"reads version {KEY_FILE_VERSION}")
  hex_secret = payload.get("secret")
  try:
    secret = SecretKey(bytes.fromhex(hex_secret))
  except (TypeError, ValueError):
    raise _corrupt(path, "the secret field is damaged") from None
  if payload.get("fingerprint") != secret.fingerprint:
    raise _corrupt(path, "the fingerprint does not match the secret (file damaged or edited)")
  return secret


def _canonical(params: dict[str, Any]) -> str:
  def plain(value):
    if isinstance(value, (tuple, list)):
      return [plain(v) for v in value]
    if isinstance(value, np.integer):
      return int(value)
    return value

  return json.dumps({k: plain(v) for k, v in params.items()}, sort_keys=True,
                    separators=(",", ":"))


def _check_secret(secret: Any) -> None:
  if not isinstance(secret, SecretKey):
    raise TypeError(f"secret must be a SecretKey (see read_key_file), got {type(secret).__name__}")


def derive_prng_key(secret: SecretKey, *, scheme: str, nonce: bytes | None = None,
                    **params: Any) -> jax.Array:
  """A ChaCha20 JAX PRNG key for one scheme, configuration and dataset, by HKDF-SHA256.

  The HKDF `info` is "lie-jax/cipher-key/v2/" followed by the canonical JSON
  (sorted keys, no spaces) of {"scheme": scheme, "params": params} plus
  "nonce": the nonce's hex when one is given; 32 output bytes become the key
  (`lie_jax.chacha.key_from_bytes`). `KDF_VERSION` names this construction.

  Args:
    secret: the owner's `SecretKey`.
    scheme: cipher scheme name (e.g. "le").
    nonce: None (one key for every use of this configuration: experiments,
      a shared cipher key), or a dataset nonce of >= 16 bytes (`new_nonce`):
      every nonce gives an unrelated key, so two datasets encrypted under
      the same key file share no per-image keys.
    **params: everything that defines the cipher key (image_shape,
      block_size, ...): different values give unrelated keys.

  Returns:
    A chacha20 JAX PRNG key (256 bits, see `lie_jax.ciphers.key_space_bits`),
    to pass to `generate_key` or the per-image functions.

  Raises:
    TypeError: `secret` is not a `SecretKey`, or a parameter is not JSON data.
    ValueError: `nonce` is not bytes of at least 16 bytes.

  Example:
    >>> from lie_jax import keys
    >>> s = keys.SecretKey(bytes(range(32)))
    >>> k = keys.derive_prng_key(s, scheme="le", image_shape=(28, 28, 1), block_size=4)
    >>> str(k.dtype)
    'key<cc20>'
    >>> n = bytes(16)
    >>> a = keys.derive_prng_key(s, scheme="le", nonce=n, block_size=4)
    >>> b = keys.derive_prng_key(s, scheme="le", nonce=bytes(15) + b"\\x01", block_size=4)
    >>> bool((jax.random.key_data(a) == jax.random.key_data(b)).all())
    False
  """
  _check_secret(secret)
  description: dict[str, Any] = {"scheme": scheme, "params": params}
  if nonce is not None:
    if not isinstance(nonce, (bytes, bytearray)) or len(nonce) < MIN_NONCE_BYTES:
      what = f"{len(nonce)} bytes" if isinstance(nonce, (bytes, bytearray)) else (
          type(nonce).__name__)
      raise ValueError(f"a dataset nonce is bytes of at least {MIN_NONCE_BYTES} "
                       f"(keys.new_nonce()), got {what}")
    description["nonce"] = bytes(nonce).hex()
  purpose = f"{_CIPHER_INFO}/{_canonical(description)}"
  return chacha.key_from_bytes(secret.derive_bytes(purpose, chacha.KEY_BITS // 8))


def mac_key(secret: SecretKey) -> bytes:
  """The 32-byte manifest MAC key: HKDF of the secret under its own purpose."""
  _check_secret(secret)
  return secret.derive_bytes(_MAC_INFO, 32)


def manifest_mac(secret: SecretKey, payload: bytes) -> str:
  """HMAC-SHA256 of `payload` (canonical manifest bytes) under `mac_key`, as 64 hex digits."""
  if not isinstance(payload, (bytes, bytearray)):
    raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
  return hmac.new(mac_key(secret), bytes(payload), hashlib.sha256).hexdigest()


def verify_manifest_mac(secret: SecretKey, payload: bytes, mac: Any) -> bool:
  """Whether `mac` is `manifest_mac(secret, payload)`, compared in constant time.

  A malformed `mac` (not 64 lowercase hex digits, not a string) is False;
  this never raises on bad input with key material in the message.
  """
  expected = manifest_mac(secret, payload)
  if not isinstance(mac, str) or not _HEX_MAC.fullmatch(mac):
    return False
  return hmac.compare_digest(expected, mac)
