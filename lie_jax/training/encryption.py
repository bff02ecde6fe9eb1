"""Encryption inside the training step: from a config's `cipher` group to a jittable function.

For experiments the server-side code encrypts on the device, inside the
jitted step, with keys derived from the data owner's key file (or, when no
key file is configured, from the run's seed: fine for experiments on public
data, never for real patients). With `per_image_keys`, example i of a split is
encrypted under the key derived from (split, i), so the same example always
gets the same ciphertext, whatever batch it lands in.

`make_cipher` and `key_file_prng_key` are shared with the data owner's tools
(`lie_jax.owner`), so a dataset encrypted offline with `lie-jax encrypt` and
the on-device encryption with the same key file and options agree byte for
byte. Such a dataset is trained on without any key (`encrypted_data_encoder`).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from lie_jax import ciphers
from lie_jax import keys

PLAIN = "none"
# config.cipher.name for a dataset the data owner encrypted offline (`lie-jax encrypt`).
FROM_MANIFEST = "manifest"
# Splits get unrelated per-image keys.
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class InputEncoder:
  """Turns uint8 image batches into model inputs, encrypting them on the way.

  Attributes:
    scheme: cipher name, or "none" for plain images.
    encode: (images uint8 [B, H, W, C], indices int [B], split) -> float32
      model inputs ([B, H, W, C] in [0, 1], or [B, n] morphed vectors).
    cipher_key: the shared cipher key (None for plain or per-image keys);
      needed to build key-dependent layers (morph). Never saved.
    key_fingerprint: public fingerprint of the key file, or "seed" for
      experiment keys derived from the run's seed.
    options: the scheme's `generate_key` options (block_size, ...).
    per_image_keys: whether image i of a split has its own key.
    pre_encrypted: the images arrive encrypted (by the data owner) and
      `encode` only scales them.
  """

  scheme: str
  encode: Callable[[jax.Array, jax.Array, str], jax.Array]
  cipher_key: Any
  key_fingerprint: str | None
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  per_image_keys: bool = False
  pre_encrypted: bool = False


class Cipher(NamedTuple):
  """A scheme bound to one key: what both the trainer and the data owner's tools apply.

  Attributes:
    encrypt: (images uint8 [B, H, W, C], indices int [B], split) -> the
      scheme's ciphertext batch. With per-image keys, example `indices[i]` of
      `split` is encrypted under fold_in(fold_in(prng, SPLIT_IDS[split]),
      indices[i]); otherwise every image uses one cipher key.
    decrypt: the inverse, same arguments (None for lossy schemes).
    cipher_key: the shared cipher key (None with per-image keys).
  """

  encrypt: Callable[[jax.Array, jax.Array, str], jax.Array]
  decrypt: Callable[[jax.Array, jax.Array, str], jax.Array] | None
  cipher_key: Any


def scheme_options(scheme: str, *, block_size: int | None = None,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
  """The `generate_key` options of `scheme`: `options` plus `block_size` where it takes one.

  Raises:
    ValueError: unknown scheme, or an option the scheme does not take.
  """
  module = ciphers.get_scheme(scheme)
  params = inspect.signature(module.generate_key).parameters
  options = dict(options.to_dict() if hasattr(options, "to_dict") else (options or {}))
  if "block_size" in params and "block_size" not in options and block_size is not None:
    options["block_size"] = int(block_size)
  unknown = set(options) - set(params)
  if unknown:
    raise ValueError(f"cipher {scheme!r} has no option(s) {sorted(unknown)}; "
                     f"it takes {[p for p in params if p not in ('key', 'image_shape')]}")
  return options


def key_file_prng_key(secret: keys.SecretKey, *, scheme: str, image_shape: tuple[int, int, int],
                      options: dict[str, Any]) -> jax.Array:
  """The PRNG key a key file gives one scheme and configuration (trainer and owner tools alike)."""
  shape = tuple(int(s) for s in image_shape)
  return keys.derive_prng_key(secret, scheme=scheme, image_shape=shape, **options)


def _prng_key(cipher_config, seed: int, scheme: str, image_shape, options):
  secret_file = cipher_config.get("secret_file")
  if secret_file:
    secret = keys.read_key_file(secret_file)
    prng = key_file_prng_key(secret, scheme=scheme, image_shape=image_shape, options=options)
    return prng, secret.fingerprint
  return jax.random.fold_in(jax.random.key(seed), 0x11E), "seed"


def make_cipher(scheme: str, prng: jax.Array, *, image_shape: tuple[int, int, int],
                options: dict[str, Any], per_image_keys: bool) -> Cipher:
  """Binds `scheme` to `prng` (from `key_file_prng_key` or an experiment seed).

  Args:
    scheme: a name in `lie_jax.ciphers.SCHEMES`.
    prng: JAX PRNG key.
    image_shape: (H, W, C) of the plain images.
    options: `generate_key` options (see `scheme_options`).
    per_image_keys: image i of a split gets its own key from (split, i).

  Returns:
    A `Cipher`.
  """
  module = ciphers.get_scheme(scheme)
  has_decrypt = hasattr(module, "decrypt")
  if per_image_keys:
    if not hasattr(module, "encrypt_per_image"):
      raise ValueError(f"cipher {scheme!r} has no per-image keys")

    def split_key(split):
      return jax.random.fold_in(prng, SPLIT_IDS[split])

    def encrypt(images, indices, split):
      return module.encrypt_per_image(split_key(split), images, indices=indices, **options)

    def decrypt(images, indices, split):
      return module.decrypt_per_image(split_key(split), images, indices=indices, **options)

    return Cipher(encrypt, decrypt if has_decrypt else None, None)
  cipher_key = module.generate_key(prng, image_shape=tuple(image_shape), **options)
  return Cipher(lambda images, indices, split: module.encrypt(cipher_key, images),
                (lambda images, indices, split: module.decrypt(cipher_key, images))
                if has_decrypt else None, cipher_key)


def _to_float(x: jax.Array) -> jax.Array:
  if jnp.issubdtype(x.dtype, jnp.floating):  # morphed vectors
    return x
  if x.dtype == jnp.uint16:  # blockwise FFX codes 0..999
    return x.astype(jnp.float32) / 999.0
  return x.astype(jnp.float32) / 255.0


def make_input_encoder(cipher_config, *, image_shape: tuple[int, int, int],
                       seed: int) -> InputEncoder:
  """Builds the encoder for `config.cipher` (fields: name, block_size,
  per_image_keys, secret_file, options)."""
  scheme = cipher_config.name
  if scheme == PLAIN:
    return InputEncoder(PLAIN, lambda images, indices, split: _to_float(images), None, None)
  options = scheme_options(scheme, block_size=cipher_config.block_size,
                           options=cipher_config.get("options"))
  prng, fingerprint = _prng_key(cipher_config, seed, scheme, image_shape, options)
  per_image_keys = bool(cipher_config.get("per_image_keys", False))
  cipher = make_cipher(scheme, prng, image_shape=image_shape, options=options,
                       per_image_keys=per_image_keys)
  return InputEncoder(scheme, lambda images, indices, split: _to_float(
      cipher.encrypt(images, indices, split)), cipher.cipher_key, fingerprint, options,
                      per_image_keys)


def encrypted_data_cipher(data_config) -> dict[str, Any] | None:
  """The manifest's "cipher" section when `config.data` names an encrypted dataset directory
  (source "encrypted", or "auto" with a path holding manifest.json); None otherwise."""
  from lie_jax.data import sources  # pylint: disable=g-import-not-at-top
  from lie_jax.owner import store  # pylint: disable=g-import-not-at-top

  path = data_config.get("path")
  source = data_config.get("source", "auto")
  if source == "encrypted" or (source == "auto" and sources.is_encrypted_dir(path)):
    return store.read_manifest(path)["cipher"]
  return None


def encrypted_data_encoder(cipher_config, data_cipher: dict[str, Any]) -> InputEncoder:
  """The encoder for data the data owner already encrypted (`lie-jax encrypt`): no key, no
  second encryption; scheme and options come from the dataset's manifest.

  Args:
    cipher_config: `config.cipher`; its name must be "manifest" (take everything
      from the manifest) or the manifest's scheme (then its block_size must
      agree), and it must name no key file: the server trains without the key.
    data_cipher: the manifest's "cipher" section (scheme, options,
      per_image_keys, key_fingerprint).

  Raises:
    ValueError: the config asks for another scheme or block size, or a key file.
  """
  scheme, options = data_cipher["scheme"], dict(data_cipher.get("options") or {})
  if cipher_config.name not in (FROM_MANIFEST, scheme):
    raise ValueError(f"the dataset is already encrypted with {scheme!r} by its owner; set "
                     f"config.cipher.name={FROM_MANIFEST!r} (or {scheme!r}): lie_jax never "
                     f"encrypts twice (config.cipher.name is {cipher_config.name!r})")
  if (cipher_config.name == scheme and "block_size" in options
      and cipher_config.block_size != options["block_size"]):
    raise ValueError(f"the dataset was encrypted with block_size={options['block_size']} but "
                     f"config.cipher.block_size={cipher_config.block_size}; set "
                     f"config.cipher.name={FROM_MANIFEST!r} to take it from the manifest")
  if cipher_config.get("secret_file"):
    raise ValueError("config.cipher.secret_file is set, but the dataset is already encrypted: "
                     "the server trains without the key (remove secret_file)")
  return InputEncoder(scheme, lambda images, indices, split: _to_float(images), None,
                      data_cipher.get("key_fingerprint"), options,
                      bool(data_cipher.get("per_image_keys", False)), pre_encrypted=True)
