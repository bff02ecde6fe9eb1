"""Encryption inside the training step: from a config's `cipher` group to a jittable function.

For experiments the server-side code encrypts on the device, inside the
jitted step, with keys derived from the data owner's key file (or, when no
key file is configured, from the run's seed: fine for experiments on public
data, never for real patients). With `per_image_keys`, example i of a split is
encrypted under the key derived from (split, i), so the same example always
gets the same ciphertext, whatever batch it lands in.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from lie_jax import ciphers
from lie_jax import keys

PLAIN = "none"
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
  """

  scheme: str
  encode: Callable[[jax.Array, jax.Array, str], jax.Array]
  cipher_key: Any
  key_fingerprint: str | None


def _scheme_options(module, cipher_config) -> dict[str, Any]:
  params = inspect.signature(module.generate_key).parameters
  options = cipher_config.get("options") or {}
  options = dict(options.to_dict() if hasattr(options, "to_dict") else options)
  if "block_size" in params and "block_size" not in options:
    options["block_size"] = cipher_config.block_size
  unknown = set(options) - set(params)
  if unknown:
    raise ValueError(f"cipher {cipher_config.name!r} has no option(s) {sorted(unknown)}; "
                     f"it takes {[p for p in params if p not in ('key', 'image_shape')]}")
  return options


def _prng_key(cipher_config, seed: int, scheme: str, image_shape, options):
  secret_file = cipher_config.get("secret_file")
  if secret_file:
    secret = keys.read_key_file(secret_file)
    prng = keys.derive_prng_key(secret, scheme=scheme, image_shape=tuple(image_shape), **options)
    return prng, secret.fingerprint
  return jax.random.fold_in(jax.random.key(seed), 0x11E), "seed"


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
  module = ciphers.get_scheme(scheme)
  options = _scheme_options(module, cipher_config)
  prng, fingerprint = _prng_key(cipher_config, seed, scheme, image_shape, options)
  if cipher_config.get("per_image_keys", False):
    if not hasattr(module, "encrypt_per_image"):
      raise ValueError(f"cipher {scheme!r} has no per-image keys")

    def encode(images, indices, split):
      split_key = jax.random.fold_in(prng, SPLIT_IDS[split])
      return _to_float(module.encrypt_per_image(split_key, images, indices=indices, **options))

    return InputEncoder(scheme, encode, None, fingerprint)
  cipher_key = module.generate_key(prng, image_shape=tuple(image_shape), **options)
  return InputEncoder(scheme, lambda images, indices, split: _to_float(
      module.encrypt(cipher_key, images)), cipher_key, fingerprint)
