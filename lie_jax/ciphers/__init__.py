"""Learnable image encryption schemes as pure, jit-compiled, vmap-batched JAX functions.

This subpackage imports only jax and numpy, so other JAX projects can take
the ciphers alone. One module per scheme; each has

  generate_key(key, *, image_shape, ...) -> cipher key (a pytree of arrays)
  encrypt(cipher_key, images) / decrypt(cipher_key, images)   (decrypt where invertible)
  encrypt_per_image(key, images, *, indices=None, ...)          (image i keyed by fold_in)
  nominal_key_space_bits(*, image_shape, ...)

Images are uint8 [H, W, C] or [N, H, W, C], C = 1 or 3. See each module's
docstring for the scheme's exact convention.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from lie_jax.ciphers import blockwise
from lie_jax.ciphers import ele
from lie_jax.ciphers import etc
from lie_jax.ciphers import huang2022
from lie_jax.ciphers import le
from lie_jax.ciphers import morph
from lie_jax.ciphers import pe
from lie_jax.ciphers import vit
from lie_jax.ciphers._blocks import blockify
from lie_jax.ciphers._blocks import pad_to_blocks
from lie_jax.ciphers._blocks import unblockify

SCHEMES = {
    "le": le,
    "ele": ele,
    "etc": etc,
    "pe": pe,
    "huang2022": huang2022,
    "vit": vit,
    "morph": morph,
    "blockwise": blockwise,
}
INVERTIBLE = tuple(name for name, module in SCHEMES.items() if hasattr(module, "decrypt"))

# Bits of secret in a key of each JAX PRNG implementation (its key data).
PRNG_KEY_BITS = {"threefry2x32": 64, "rbg": 128, "unsafe_rbg": 128}


class KeySpace(NamedTuple):
  """Key space of a scheme and configuration, in bits.

  nominal_bits: log2 of the number of distinct cipher keys the scheme allows.
  prng_bits: bits of the PRNG key the cipher key is generated from.
  effective_bits: min of the two: what a key search actually faces.
  """

  nominal_bits: float
  prng_bits: float
  effective_bits: float


def get_scheme(name: str):
  """The cipher module of a scheme name (see SCHEMES)."""
  try:
    return SCHEMES[name]
  except KeyError:
    raise ValueError(f"unknown scheme {name!r}; choose one of {sorted(SCHEMES)}") from None


def key_space_bits(scheme: str, *, image_shape: tuple[int, int, int],
                   prng_impl: str = "threefry2x32", **options) -> KeySpace:
  """The honest effective key space of a scheme and configuration.

  Args:
    scheme: a name in SCHEMES.
    image_shape: (H, W, C) of the images.
    prng_impl: the JAX PRNG implementation the cipher key is generated with
      (`lie_jax.keys.derive_prng_key` uses "threefry2x32": 64 bits).
    **options: the scheme's `generate_key` options (block_size, ...).

  Returns:
    A `KeySpace`; `effective_bits` is the smaller of the scheme's nominal
    space and what the PRNG key can reach.

  Example:
    >>> from lie_jax import ciphers
    >>> ks = ciphers.key_space_bits("le", image_shape=(28, 28, 1), block_size=4)
    >>> round(ks.nominal_bits), ks.effective_bits
    (118, 64.0)
  """
  if prng_impl not in PRNG_KEY_BITS:
    raise ValueError(f"prng_impl must be one of {sorted(PRNG_KEY_BITS)}, got {prng_impl!r}")
  nominal = get_scheme(scheme).nominal_key_space_bits(image_shape=tuple(image_shape), **options)
  prng = float(PRNG_KEY_BITS[prng_impl])
  return KeySpace(nominal_bits=nominal, prng_bits=prng, effective_bits=min(nominal, prng))


__all__ = [
    "SCHEMES", "INVERTIBLE", "KeySpace", "get_scheme", "key_space_bits", "blockify",
    "unblockify", "pad_to_blocks", *SCHEMES,
]
del math
