"""Learnable image encryption schemes as pure, jit-compiled, vmap-batched JAX functions.

This subpackage imports only jax and numpy, so other JAX projects can take
the ciphers alone. One module per scheme, each with `generate_key(key, *,
image_shape, **options)` (a cipher key: a pytree of arrays), `encrypt` and
`decrypt` (where invertible) of uint8 [H, W, C] or [N, H, W, C] images
(C = 1 or 3), `nominal_key_space_bits`, and `SCHEME`, its `Scheme` record
(collected in SCHEMES), whose `encrypt_per_image` / `decrypt_per_image` give
image i of a batch the key generated from fold_in(key, indices[i]).
docs/SCHEMES.md states what each scheme computes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lie_jax.ciphers import blockwise
from lie_jax.ciphers import ele
from lie_jax.ciphers import etc
from lie_jax.ciphers import huang2022
from lie_jax.ciphers import le
from lie_jax.ciphers import morph
from lie_jax.ciphers import pe
from lie_jax.ciphers import vit
from lie_jax.ciphers._core import BlockTransform
from lie_jax.ciphers._core import COLOR_PERMUTATIONS
from lie_jax.ciphers._core import KeyGeometry
from lie_jax.ciphers._core import Scheme
from lie_jax.ciphers._core import apply_transform
from lie_jax.ciphers._core import block_positions
from lie_jax.ciphers._core import blockify
from lie_jax.ciphers._core import pad_to_blocks
from lie_jax.ciphers._core import unblockify

SCHEMES: dict[str, Scheme] = {m.SCHEME.name: m.SCHEME for m in (
    le, ele, etc, pe, huang2022, vit, morph, blockwise)}
INVERTIBLE = tuple(name for name, s in SCHEMES.items() if s.invertible)

# Bits of secret in a key of each JAX PRNG implementation (its key data); "chacha20" is
# lie_jax.chacha's, which lie_jax.keys.derive_prng_key uses.
PRNG_KEY_BITS = {"threefry2x32": 64, "rbg": 128, "unsafe_rbg": 128, "chacha20": 256}


class KeySpace(NamedTuple):
  """Bits of key space: nominal (distinct cipher keys), prng (bits of the PRNG key the
  cipher key is drawn from) and effective (the smaller: what a key search faces)."""

  nominal_bits: float
  prng_bits: float
  effective_bits: float


def get_scheme(name: str) -> Scheme:
  """The `Scheme` record of a scheme name (see SCHEMES); ValueError listing them if unknown."""
  try:
    return SCHEMES[name]
  except (KeyError, TypeError):
    raise ValueError(f"unknown scheme {name!r}; choose one of {sorted(SCHEMES)}") from None


def key_space_bits(scheme: str, *, image_shape: tuple[int, int, int],
                   prng_impl: str = "chacha20", **options: Any) -> KeySpace:
  """The honest effective key space of a scheme and configuration, as a `KeySpace`.

  `effective_bits` is the smaller of the scheme's nominal key space (for
  `image_shape` and the `generate_key` options) and the bits of the PRNG key
  the cipher key is drawn from (`prng_impl`: default "chacha20", 256 bits, as
  key files give; "threefry2x32", jax.random's default, 64). Where the nominal
  space is under 128 bits (LE at B=4 on 28x28x1: 118) no key reaches 128 bits.

  Example:
    >>> from lie_jax import ciphers
    >>> ks = ciphers.key_space_bits("le", image_shape=(28, 28, 1), block_size=4)
    >>> round(ks.nominal_bits), round(ks.effective_bits), ks.prng_bits
    (118, 118, 256.0)
  """
  if prng_impl not in PRNG_KEY_BITS:
    raise ValueError(f"prng_impl must be one of {sorted(PRNG_KEY_BITS)}, got {prng_impl!r}")
  record = get_scheme(scheme)
  options = record.check_options(options)
  nominal = record.nominal_key_space_bits(image_shape=tuple(image_shape), **options)
  prng = float(PRNG_KEY_BITS[prng_impl])
  return KeySpace(nominal_bits=nominal, prng_bits=prng, effective_bits=min(nominal, prng))


__all__ = [
    "SCHEMES", "INVERTIBLE", "PRNG_KEY_BITS", "KeySpace", "Scheme", "get_scheme",
    "key_space_bits", "BlockTransform", "KeyGeometry", "COLOR_PERMUTATIONS", "apply_transform",
    "block_positions", "blockify", "unblockify", "pad_to_blocks", *SCHEMES]
