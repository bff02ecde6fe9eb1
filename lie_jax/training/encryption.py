"""Encryption inside the training step: from a config's `cipher` group to a jittable function.

For experiments the server-side code encrypts on the device, inside the
jitted step, with keys derived from the data owner's key file (or, when no
key file is configured, from the run's seed: fine for experiments on public
data, never for real patients). With `per_image_keys`, example i of a split is
encrypted under the key derived from (split, i), so the same example always
gets the same ciphertext, whatever batch it lands in.

The cipher itself comes from `lie_jax.data.encryption` (`scheme_options`,
`key_file_prng_key`, `make_cipher`), which the data owner's tools
(`lie_jax.owner`) use too, so a dataset encrypted offline with
`lie-jax encrypt` and the on-device encryption with the same key file and
options agree byte for byte. Such a dataset is trained on without any key
(`encrypted_data_encoder`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.typing import ArrayLike

from lie_jax import ciphers
from lie_jax import keys
from lie_jax.data import encrypted_dir
from lie_jax.data import encryption

PLAIN = "none"
# config.cipher.name for a dataset the data owner encrypted offline (`lie-jax encrypt`).
FROM_MANIFEST = "manifest"


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
    nonce: hex of the nonce mixed into a key file's keys (a fresh one per
      run, or the data owner's dataset nonce); None for seed keys and plain.
  """

  scheme: str
  encode: Callable[[ArrayLike, ArrayLike, str], jax.Array]
  cipher_key: Any
  key_fingerprint: str | None
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  per_image_keys: bool = False
  pre_encrypted: bool = False
  nonce: str | None = None


def _as_dict(options: Any) -> dict[str, Any]:
  """config.cipher.options (a ConfigDict, a dict or None) as a plain dict of the options set
  (lie_jax/configs/default.py declares every scheme's options as None placeholders)."""
  if not options:
    return {}
  options = options.to_dict() if isinstance(options, ml_collections.ConfigDict) else options
  return {k: v for k, v in dict(options).items() if v is not None}


def _prng_key(cipher_config, seed: int, scheme: str, image_shape: tuple[int, int, int],
              options: Mapping[str, Any], nonce: bytes | None) -> tuple[jax.Array, str]:
  """(PRNG key, its public origin): from the key file, else an experiment key from `seed`."""
  secret_file = cipher_config.get("secret_file")
  if secret_file:
    if nonce is None:
      raise ValueError("a key file's keys need a nonce: pass make_input_encoder(nonce="
                       "lie_jax.keys.new_nonce()) and keep it to resume the run")
    secret = keys.read_key_file(secret_file)
    prng = encryption.key_file_prng_key(secret, scheme=scheme, image_shape=image_shape,
                                        options=options, nonce=nonce)
    return prng, secret.fingerprint
  return jax.random.fold_in(jax.random.key(seed), 0x11E), "seed"


def _to_float(x: ArrayLike) -> jax.Array:
  """Ciphertexts (or plain images) as float32 model inputs: uint8 / 255, FFX codes / 999."""
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.floating):  # morphed vectors
    return x
  if x.dtype == jnp.uint16:  # blockwise FFX codes 0..999
    return x.astype(jnp.float32) / 999.0
  return x.astype(jnp.float32) / 255.0


def make_input_encoder(cipher_config, *, image_shape: tuple[int, int, int],
                       seed: int, nonce: bytes | None = None) -> InputEncoder:
  """Builds the encoder for `config.cipher` (fields: name, block_size,
  per_image_keys, secret_file, options).

  Args:
    cipher_config: `config.cipher`.
    image_shape: (H, W, C) of the images.
    seed: the run's seed (experiment keys, when no key file is named).
    nonce: with a key file, the run's nonce (`lie_jax.keys.new_nonce()`: draw
      one per run and keep it for resuming), mixed into every key so that no
      two runs (nor a run and an owner-encrypted dataset) share keys. Ignored
      for seed keys.

  Raises:
    ValueError: unknown scheme or option, per-image keys for a scheme without
      them, or a key file without a nonce.
  """
  scheme = cipher_config.name
  if scheme == PLAIN:
    return InputEncoder(PLAIN, lambda images, indices, split: _to_float(images), None, None)
  options = encryption.scheme_options(scheme, block_size=cipher_config.get("block_size"),
                                      options=_as_dict(cipher_config.get("options")))
  prng, fingerprint = _prng_key(cipher_config, seed, scheme, image_shape, options, nonce)
  per_image_keys = bool(cipher_config.get("per_image_keys", False))
  cipher = encryption.make_cipher(scheme, prng, image_shape=image_shape, options=options,
                                  per_image_keys=per_image_keys)
  return InputEncoder(scheme, lambda images, indices, split: _to_float(
      cipher.encrypt(images, indices, split)), cipher.cipher_key, fingerprint, options,
                      per_image_keys, nonce=nonce.hex() if fingerprint != "seed" else None)


def ciphertext_augmentation_error(encoder: InputEncoder) -> str | None:
  """Why the server may not flip and shift `encoder`'s ciphertexts (None: it may).

  A flip or shift moves whole pixels. It maps a ciphertext to a ciphertext of the augmented
  image only for a cipher that transforms each pixel in place with its own key, drawn fresh
  for every image (PE, Sirichotedumrong et al. 2019): the moved key is another random key.
  Block ciphers mix pixels inside and across blocks (no key reproduces a flipped or shifted
  block), a lossy block filter (huang2022) averages blocks that a shift misaligns, and with
  one shared key the moved key is not the key: the model would see ciphertexts under keys it
  never trains on elsewhere.
  """
  if encoder.scheme == PLAIN:
    return None
  scheme = ciphers.get_scheme(encoder.scheme)
  block = encoder.options.get("block_size", 1)
  if scheme.kind != "pixel" or block != 1:
    return (f"{encoder.scheme} is a {scheme.kind} cipher"
            + (f" with {block}x{block} blocks" if block != 1 else "")
            + ": a flip or shift of its ciphertexts is no ciphertext of the augmented image; "
            "augment plain images before encryption (config.data.augment) instead")
  if not encoder.per_image_keys:
    return (f"{encoder.scheme} with one shared key: a shifted ciphertext is encrypted under "
            "a moved key, not the key; set config.cipher.per_image_keys=True (PE's defining "
            "mode) or augment plain images before encryption (config.data.augment)")
  return None


def encrypted_data_cipher(data_config) -> dict[str, Any] | None:
  """The manifest's "cipher" section when `config.data` names an encrypted dataset directory
  (source "encrypted", or "auto" with a path holding manifest.json); None otherwise."""
  path = data_config.get("path")
  source = data_config.get("source", "auto")
  if source == "encrypted" or (source == "auto" and encrypted_dir.is_encrypted_dir(path)):
    return encrypted_dir.read_manifest(path)["cipher"]
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
                      bool(data_cipher.get("per_image_keys", False)), pre_encrypted=True,
                      nonce=data_cipher.get("nonce"))
