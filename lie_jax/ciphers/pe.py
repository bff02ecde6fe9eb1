"""PE: Sirichotedumrong, Kinoshita, Kiya, "Pixel-based image encryption without
key management for privacy-preserving deep neural networks", IEEE Access 2019.

No blocks. For every pixel and channel a key bit; where it is 1,
x -> x XOR 255 (= 255 - x). Then every pixel's colour components are shuffled
with one of the 6 permutations (keyed per pixel): output channel c is the
negated channel `COLOR_PERMUTATIONS[color[p]][c]`. With C = 1 only the
negative-positive step remains. The scheme's defining mode is one fresh key
per image, thrown away after use: `SCHEME.encrypt_per_image`.

In the library's terms PE is a block transform with 1 x 1 blocks: pixel p's
values are gathered by its colour permutation and XORed with the negation
bits of their source channels.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import pe
  >>> x = np.zeros((4, 28, 28, 1), np.uint8)
  >>> y = pe.SCHEME.encrypt_per_image(jax.random.key(0), x)
  >>> bool((pe.SCHEME.decrypt_per_image(jax.random.key(0), y) == x).all())
  True
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
from lie_jax.ciphers._keytree import cipher_key, static_field

COLOR_PERMUTATIONS = _core.COLOR_PERMUTATIONS


@cipher_key
class PEKey:
  """PE key.

  Attributes:
    negate: [H, W, C] bool, negative-positive bit of every value (before the shuffle).
    color: [H, W] uint8 in 0..5, colour permutation of every pixel (0 for C = 1).
      Keys made elsewhere may hold any integer dtype.
    geometry: channels and the image shape the key was made for (block size 1).
  """

  negate: jax.Array
  color: jax.Array
  geometry: _core.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int]) -> PEKey:
  """Draws a PE key for images of `image_shape` (H, W, C)."""
  geometry = _core.make_geometry(image_shape, block_size=1)
  h, w, c = geometry.image_shape
  k_neg, k_col = jax.random.split(key)
  return PEKey(negate=jax.random.bernoulli(k_neg, 0.5, (h, w, c)),
               color=jax.random.randint(k_col, (h, w), 0, 6 if c == 3 else 1, jnp.uint8),
               geometry=geometry)


def key_from_arrays(negate: ArrayLike, color: ArrayLike | None = None) -> PEKey:
  """Builds a PE key from negate [H, W, C] (bools or 0/1) and color [H, W] (codes 0..5
  into COLOR_PERMUTATIONS, C = 3 only; default none), e.g. as recovered by an attack."""
  negate = np.asarray(negate)
  if negate.ndim != 3:
    raise ValueError(f"negate must be [H, W, C], got shape {negate.shape}")
  geometry = _core.make_geometry(negate.shape, block_size=1)
  h, w, c = geometry.image_shape
  color = np.zeros((h, w), np.uint8) if color is None else np.asarray(color)
  if color.shape != (h, w) or not np.issubdtype(color.dtype, np.integer):
    raise ValueError(f"color must be [{h}, {w}] integers, got {color.dtype} {color.shape}")
  if color.min(initial=0) < 0 or color.max(initial=0) > (5 if c == 3 else 0):
    raise ValueError(f"color codes must be in 0..{5 if c == 3 else 0}")
  return PEKey(negate=jnp.asarray(negate.astype(bool)), color=jnp.asarray(color), geometry=geometry)


def pixel_transform(cipher_key: PEKey) -> _core.BlockTransform:
  """PE as a block transform with 1 x 1 blocks: [H*W] pixels of C values each."""
  h, w, c = cipher_key.geometry.image_shape
  negate = cipher_key.negate.reshape(h * w, c)
  if c == 1:
    return _core.BlockTransform(xor=negate.astype(jnp.uint8) * 255)
  value_perm = jnp.asarray(COLOR_PERMUTATIONS)[cipher_key.color.reshape(-1).astype(jnp.int32)]
  # NP comes first, so output value c carries the bit of its source channel.
  negate = jnp.take_along_axis(negate, value_perm, axis=1)
  return _core.BlockTransform(value_perm=value_perm, xor=negate.astype(jnp.uint8) * 255)


_encrypt_one = functools.partial(_core.transform_image, transform=pixel_transform)
_decrypt_one = functools.partial(_encrypt_one, inverse=True)


def encrypt(cipher_key: PEKey, images: ArrayLike) -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images with one PE key (same dtype and shape)."""
  return _core.encrypt_with(SCHEME, cipher_key, images)


def decrypt(cipher_key: PEKey, images: ArrayLike) -> jax.Array:
  """Inverts `encrypt` exactly."""
  return _core.decrypt_with(SCHEME, cipher_key, images)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int]) -> float:
  """H*W*C negation bits + H*W*log2(6) colour orders (C = 3)."""
  h, w, c = image_shape
  return h * w * c + (h * w * math.log2(6) if c == 3 else 0.0)


SCHEME = _core.Scheme(
    name="pe", title="Sirichotedumrong, Kinoshita, Kiya, IEEE Access 2019", key_type=PEKey,
    generate_key=generate_key, encrypt=encrypt, decrypt=decrypt, encrypt_image=_encrypt_one,
    decrypt_image=_decrypt_one, nominal_key_space_bits=nominal_key_space_bits, options={},
    kind="pixel", scrambles_blocks=False, native_adaptation="pixel", plain_inputs_claim=True)
