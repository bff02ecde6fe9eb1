"""From a scheme and a key (a key file, or an experiment PRNG key) to a dataset cipher.

The one place that turns a scheme name, its options and a key into the
functions that encrypt and decrypt a dataset's examples. The trainer's
on-device encryption (`lie_jax.training`) and the data owner's offline
encryption (`lie_jax.owner`, `lie-jax encrypt`) both go through it, so the
same key file and options give byte-identical ciphertexts on both sides.

Scheme facts come from the scheme's record (`lie_jax.ciphers.SCHEMES[name]`):
its options and defaults, whether it has per-image keys, whether it decrypts.

Keys. A key file's secret gives one ChaCha20 JAX PRNG key per scheme,
configuration and dataset nonce (`key_file_prng_key`, HKDF through
`lie_jax.keys.derive_prng_key`). With per-image keys, example i of split s is
encrypted under the cipher key generated from
fold_in(fold_in(prng, SPLIT_IDS[s]), i), so the same example always gets the
same ciphertext, whatever batch it lands in; otherwise every image uses one
cipher key generated from `prng`.

Nonces. Per-image keys depend only on (split, index): two datasets encrypted
under one key file without nonces give image i the same key, and then
`|cA - cB| == |pA - pB|` leaks one patient's scan from another's. Every
dataset encryption therefore draws `lie_jax.keys.new_nonce()`, stores it in
its manifest and passes it here (`nonce=`); the nonce changes every key,
per-image and shared alike, so decrypting needs the same nonce. nonce=None
is for experiments and for ciphers that must match across tools without a
manifest.

Example:
  >>> import numpy as np
  >>> from lie_jax import keys
  >>> from lie_jax.data import encryption
  >>> secret = keys.SecretKey(bytes(range(32)))
  >>> options = encryption.scheme_options("le")
  >>> options
  {'block_size': 4}
  >>> cipher = encryption.key_file_cipher(secret, "le", image_shape=(8, 8, 1), options=options)
  >>> images = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1)
  >>> indices = np.zeros(1, np.int32)
  >>> y = cipher.encrypt(images, indices, "train")
  >>> bool((np.asarray(cipher.decrypt(y, indices, "train")) == images).all())
  True
  >>> nonce = keys.new_nonce()  # one per dataset, stored in its manifest
  >>> cipher = encryption.key_file_cipher(secret, "le", image_shape=(8, 8, 1), options=options,
  ...                                     per_image_keys=True, nonce=nonce)
  >>> y = cipher.encrypt(images, indices, "train")
  >>> bool((np.asarray(cipher.decrypt(y, indices, "train")) == images).all())
  True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
from jax.typing import ArrayLike

from lie_jax import ciphers
from lie_jax import keys

# Splits get unrelated per-image keys.
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

# (images uint8 [B, H, W, C], indices int [B], split) -> ciphertexts (or plain images).
SplitCipherFn = Callable[[ArrayLike, ArrayLike, str], jax.Array]


class Cipher(NamedTuple):
  """A scheme bound to one key: what both the trainer and the data owner's tools apply.

  Attributes:
    encrypt: (images uint8 [B, H, W, C], indices int [B], split) -> the
      scheme's ciphertext batch. With per-image keys, example `indices[i]` of
      `split` is encrypted under fold_in(fold_in(prng, SPLIT_IDS[split]),
      indices[i]); otherwise every image uses one cipher key and `indices`
      and `split` are ignored.
    decrypt: the inverse, same arguments (None for lossy schemes).
    cipher_key: the shared cipher key (None with per-image keys).
  """

  encrypt: SplitCipherFn
  decrypt: SplitCipherFn | None
  cipher_key: Any


def scheme_options(scheme: str, *, block_size: int | None = None,
                   options: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The `generate_key` options of `scheme`: `options`, plus the block size where it has one.

  Schemes with a block size always name it (`block_size`, else the scheme's
  default), so the key derivation, which covers exactly these options, gives
  the same key to the trainer and to the data owner's tools. Other defaults
  are left to the scheme.

  Args:
    scheme: a name in `lie_jax.ciphers.SCHEMES`.
    block_size: B for schemes with blocks; ignored by the others.
    options: further `generate_key` options.

  Returns:
    A new dict of options.

  Raises:
    ValueError: unknown scheme, or an option the scheme does not take.

  Example:
    >>> from lie_jax.data import encryption
    >>> encryption.scheme_options("huang2022"), encryption.scheme_options("pe", block_size=4)
    ({'block_size': 2}, {})
  """
  record = ciphers.get_scheme(scheme)
  options = dict(options or {})
  if "block_size" in record.options and "block_size" not in options:
    options["block_size"] = (record.options["block_size"] if block_size is None
                             else int(block_size))
  record.check_options(options)  # raises on unknown options
  return options


def key_file_prng_key(secret: keys.SecretKey, *, scheme: str, image_shape: tuple[int, int, int],
                      options: Mapping[str, Any], nonce: bytes | None = None) -> jax.Array:
  """The PRNG key a key file gives one scheme, configuration and dataset nonce.

  Args:
    secret: the data owner's key (`lie_jax.keys.read_key_file`).
    scheme, image_shape, options: as for `make_cipher`.
    nonce: the dataset's nonce (`lie_jax.keys.new_nonce()`, >= 16 bytes), or
      None; mixed into the HKDF info, so each nonce gives unrelated keys.

  Raises:
    ValueError: a nonce shorter than 16 bytes or not bytes.
  """
  shape = tuple(int(s) for s in image_shape)
  return keys.derive_prng_key(secret, scheme=scheme, nonce=nonce, image_shape=shape,
                              **_hashable(options))


def _hashable(options: Mapping[str, Any]) -> dict[str, Any]:
  """Options as `generate_key` takes them: JSON lists (from a manifest) back to tuples."""
  return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def make_cipher(scheme: str, prng: jax.Array, *, image_shape: tuple[int, int, int],
                options: Mapping[str, Any], per_image_keys: bool = False) -> Cipher:
  """Binds `scheme` to `prng` (from `key_file_prng_key`, or an experiment key).

  Args:
    scheme: a name in `lie_jax.ciphers.SCHEMES`.
    prng: JAX PRNG key (a dataset nonce is already in a key file's key:
      `key_file_prng_key`).
    image_shape: (H, W, C) of the plain images.
    options: `generate_key` options (see `scheme_options`).
    per_image_keys: image i of a split gets its own key from (split, i).

  Returns:
    A `Cipher`.

  Raises:
    ValueError: unknown scheme or option, or per-image keys for a scheme without them.
  """
  record = ciphers.get_scheme(scheme)
  options = _hashable(options)
  if per_image_keys:
    if not record.per_image_keys:
      raise ValueError(f"cipher {scheme!r} has no per-image keys")

    def split_key(split: str) -> jax.Array:
      return jax.random.fold_in(prng, SPLIT_IDS[split])

    def encrypt(images, indices, split):
      return record.encrypt_per_image(split_key(split), images, indices=indices, **options)

    def decrypt(images, indices, split):
      return record.decrypt_per_image(split_key(split), images, indices=indices, **options)

    return Cipher(encrypt, decrypt if record.invertible else None, None)
  cipher_key = record.generate_key(prng, image_shape=tuple(image_shape), **options)

  def encrypt_shared(images, indices, split):
    del indices, split  # one key for every image
    return record.encrypt(cipher_key, images)

  def decrypt_shared(images, indices, split):
    del indices, split
    return record.decrypt(cipher_key, images)

  return Cipher(encrypt_shared, decrypt_shared if record.invertible else None, cipher_key)


def key_file_cipher(secret: keys.SecretKey, scheme: str, *, image_shape: tuple[int, int, int],
                    options: Mapping[str, Any], per_image_keys: bool = False,
                    nonce: bytes | None = None) -> Cipher:
  """`make_cipher` under the key a key file gives `scheme`, its options, image shape and nonce.

  Args:
    secret: the data owner's key (`lie_jax.keys.read_key_file`).
    scheme, image_shape, options, per_image_keys: as for `make_cipher`;
      options as from `scheme_options` (lists and tuples derive the same key).
    nonce: the dataset's nonce (`lie_jax.keys.new_nonce()`, stored in its
      manifest), or None. It changes every key, per-image and shared: each
      dataset encryption with a fresh nonce reuses no key of another.

  Raises:
    ValueError: unknown scheme or option, per-image keys for a scheme
      without them, or a nonce shorter than 16 bytes.
  """
  options = _hashable(options)
  prng = key_file_prng_key(secret, scheme=scheme, image_shape=image_shape, options=options,
                           nonce=nonce)
  return make_cipher(scheme, prng, image_shape=image_shape, options=options,
                     per_image_keys=per_image_keys)
