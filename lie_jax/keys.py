"""Secret key files and key derivation: where a cipher key's randomness comes from.

A key file holds >= 128 bits (default 256) of secret from the OS CSPRNG, a
format version and a public fingerprint. Cipher keys are never drawn from a
small integer seed in production: `derive_prng_key` runs HKDF-SHA256 (RFC
5869) over the secret, with the scheme and its parameters as the `info`
(purpose separation: two schemes, or one scheme with two block sizes, get
unrelated keys), and wraps the output as a JAX PRNG key for the ciphers'
`generate_key`.

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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import warnings
from typing import Any

import jax
import numpy as np

KEY_FILE_FORMAT = "lie-jax-key"
KEY_FILE_VERSION = 1
MIN_SECRET_BYTES = 16
DEFAULT_SECRET_BYTES = 32
_SALT = b"lie-jax/v1"
_FINGERPRINT_INFO = b"lie-jax/fingerprint/v1"
_CIPHER_INFO = "lie-jax/cipher-key/v1"


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
  """A new secret from the OS CSPRNG (`secrets.token_bytes`)."""
  if num_bytes < MIN_SECRET_BYTES:
    raise ValueError(f"num_bytes must be >= {MIN_SECRET_BYTES}, got {num_bytes}")
  return SecretKey(secrets.token_bytes(num_bytes))


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


def read_key_file(path: str | os.PathLike) -> SecretKey:
  """Reads and verifies a key file written by `write_key_file`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: corrupt file, wrong format or version, or a fingerprint that
      does not match the secret (messages never contain key material).
  """
  path = os.fspath(path)
  try:
    with open(path, "rb") as f:
      raw = f.read(1 << 16)
  except FileNotFoundError:
    raise FileNotFoundError(f"key file {path!r} does not exist") from None
  mode = stat.S_IMODE(os.stat(path).st_mode)
  if mode & 0o077:
    warnings.warn(f"key file {path!r} is readable by other users (mode {oct(mode)}); "
                  f"run: chmod 600 {path}", stacklevel=2)
  try:
    payload = json.loads(raw.decode("ascii"))
  except (UnicodeDecodeError, json.JSONDecodeError):
    raise _corrupt(path, "not JSON text") from None
  if not isinstance(payload, dict) or payload.get("format") != KEY_FILE_FORMAT:
    raise _corrupt(path, f"missing format marker {KEY_FILE_FORMAT!r}")
  version = payload.get("version")
  if version != KEY_FILE_VERSION:
    raise ValueError(f"key file {path!r} has format version {version!r}; this lie_jax reads "
                     f"version {KEY_FILE_VERSION}")
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


def derive_prng_key(secret: SecretKey, *, scheme: str, **params: Any) -> jax.Array:
  """A JAX PRNG key for one scheme and configuration, derived with HKDF-SHA256.

  Args:
    secret: the owner's `SecretKey`.
    scheme: cipher scheme name (e.g. "le").
    **params: everything that defines the cipher key (image_shape,
      block_size, ...): different values give unrelated keys.

  Returns:
    A threefry2x32 JAX PRNG key (64 bits of the secret's entropy, see
    `lie_jax.ciphers.key_space_bits`), to pass to `generate_key` or the
    per-image functions.

  Example:
    >>> from lie_jax import keys
    >>> s = keys.SecretKey(bytes(range(32)))
    >>> k = keys.derive_prng_key(s, scheme="le", image_shape=(28, 28, 1), block_size=4)
    >>> k.dtype
    key<fry>
  """
  if not isinstance(secret, SecretKey):
    raise TypeError(f"secret must be a SecretKey (see read_key_file), got {type(secret).__name__}")
  purpose = f"{_CIPHER_INFO}/{scheme}/{_canonical(params)}"
  words = np.frombuffer(secret.derive_bytes(purpose, 8), dtype=">u4").astype(np.uint32)
  return jax.random.wrap_key_data(words, impl="threefry2x32")
