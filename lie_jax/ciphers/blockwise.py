"""Key-based block-wise transforms: AprilPyone & Kiya, "Block-wise image
transformation with secret key for adversarially robust defense", IEEE TIFS 2021.

One key shared by every block (block size B, d = B*B*C values), with any of
three transforms, applied in this order::

  "shuffle": pixel shuffling, y[i] = x[perm[i]] inside every block;
  "flip":    bit flipping, y[i] = 255 - y[i] where flip_mask[i] (a keyed half
             of the d positions: exactly floor(d/2) of them);
  "ffx":     format-preserving encryption of every value: a keyed injection
             of 0..255 into the 3-digit codes 0..999, one per block position.
             The paper uses FFX (an AES-based Feistel cipher); AES is outside
             jax + numpy, so here each position's injection is a uniformly
             drawn table, with the same input and output format. Outputs are
             uint16 codes 0..999 (exactly invertible); rescale with
             `codes / 999` for a network.

"shuffle" and "flip" keep dtype uint8.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import blockwise
  >>> k = blockwise.generate_key(jax.random.key(0), image_shape=(28, 28, 1), block_size=4,
  ...                            transforms=("shuffle", "flip"))
  >>> x = np.zeros((28, 28, 1), np.uint8)
  >>> bool((blockwise.decrypt(k, blockwise.encrypt(k, x)) == x).all())
  True
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
from lie_jax.ciphers._keytree import cipher_key, static_field

TRANSFORMS = ("shuffle", "flip", "ffx")
FFX_CODES = 1000


@cipher_key
class BlockwiseKey:
  """Block-wise transform key (shared by all blocks).

  Attributes:
    perm: [d] int32 pixel-shuffling permutation (identity without "shuffle").
    flip_mask: [d] bool positions to negate (all False without "flip").
    ffx_table: [d, 256] uint16 code of every value at every position ([d, 0]
      without "ffx").
    geometry: block size, channels, layout (any H, W divisible by B).
    transforms: the transforms applied, in TRANSFORMS order.
  """

  perm: jax.Array
  flip_mask: jax.Array
  ffx_table: jax.Array
  geometry: _core.KeyGeometry = static_field()
  transforms: tuple[str, ...] = static_field(default=("shuffle",))


def _check_transforms(transforms: Sequence[str]) -> tuple[str, ...]:
  if isinstance(transforms, str):
    transforms = (transforms,)
  unknown = [t for t in transforms if t not in TRANSFORMS]
  if unknown or not transforms:
    raise ValueError(f"transforms must be a non-empty subset of {TRANSFORMS}, got {transforms!r}")
  return tuple(t for t in TRANSFORMS if t in transforms)


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 4,
                 transforms: Sequence[str] = ("shuffle",), layout: str = "hwc") -> BlockwiseKey:
  """Draws a key for C-channel images (only C of image_shape matters)."""
  transforms = _check_transforms(transforms)
  geometry = _core.make_geometry(image_shape, block_size=block_size, layout=layout,
                                 fixed_shape=False)
  d = block_size * block_size * geometry.channels
  k_perm, k_flip, k_ffx = jax.random.split(key, 3)
  perm = jnp.arange(d, dtype=jnp.int32)
  flip_mask = jnp.zeros((d,), bool)
  ffx_table = jnp.zeros((d, 0), jnp.uint16)
  if "shuffle" in transforms:
    perm = jax.random.permutation(k_perm, d).astype(jnp.int32)
  if "flip" in transforms:
    flip_mask = jax.random.permutation(k_flip, d) < d // 2
  if "ffx" in transforms:
    ffx_table = _core.random_permutations(k_ffx, d, FFX_CODES)[:, :256].astype(jnp.uint16)
  return BlockwiseKey(perm=perm, flip_mask=flip_mask, ffx_table=ffx_table, geometry=geometry,
                      transforms=transforms)


def key_from_arrays(*, block_shape: tuple[int, int, int], permutation: ArrayLike | None = None,
                    flip_mask: ArrayLike | None = None, layout: str = "hwc") -> BlockwiseKey:
  """Imports a key from a [d] pixel-shuffling permutation and/or a [d] flip mask (d = B*B*C)."""
  b, b2, c = (int(s) for s in block_shape)
  if b != b2:
    raise ValueError(f"block_shape must be square (B, B, C), got {tuple(block_shape)}")
  if permutation is None and flip_mask is None:
    raise ValueError("give a permutation, a flip_mask, or both")
  geometry = _core.make_geometry((b, b, c), block_size=b, layout=layout, fixed_shape=False)
  d = b * b * c
  perm, mask, transforms = np.arange(d, dtype=np.int32), np.zeros((d,), bool), []
  if permutation is not None:
    perm = _core.check_permutation(permutation, d, "permutation")
    transforms.append("shuffle")
  if flip_mask is not None:
    mask = np.asarray(flip_mask)
    if mask.shape != (d,):
      raise ValueError(f"flip_mask must have shape ({d},), got {mask.shape}")
    transforms.append("flip")
  return BlockwiseKey(perm=jnp.asarray(perm), flip_mask=jnp.asarray(mask.astype(bool)),
                      ffx_table=jnp.zeros((d, 0), jnp.uint16), geometry=geometry,
                      transforms=tuple(transforms))


def _lookup(table: jax.Array, image: jax.Array, g: _core.KeyGeometry) -> jax.Array:
  """Value v at block position i -> table[i, v], for every value of the image."""
  blocks = _core.blockify(image, block_size=g.block_size, layout=g.layout)
  codes = table[jnp.arange(table.shape[0]), blocks]
  return _core.unblockify(codes, image_shape=image.shape, block_size=g.block_size, layout=g.layout)


def _transform(cipher_key: BlockwiseKey) -> _core.BlockTransform:
  return _core.BlockTransform(value_perm=cipher_key.perm,
                              xor=cipher_key.flip_mask.astype(jnp.uint8) * 255)


def _encrypt_one(cipher_key: BlockwiseKey, image: jax.Array) -> jax.Array:
  out = _core.transform_image(cipher_key, image, transform=_transform)
  if "ffx" in cipher_key.transforms:
    out = _lookup(cipher_key.ffx_table, out, cipher_key.geometry)
  return out


def _decrypt_one(cipher_key: BlockwiseKey, image: jax.Array) -> jax.Array:
  if "ffx" in cipher_key.transforms:
    table = cipher_key.ffx_table
    d = table.shape[0]
    inverse = jnp.zeros((d, FFX_CODES), jnp.uint8).at[jnp.arange(d)[:, None], table].set(
        jnp.arange(256, dtype=jnp.uint8))  # codes outside the table decode to 0
    image = _lookup(inverse, image, cipher_key.geometry)
  return _core.transform_image(cipher_key, image, transform=_transform, inverse=True)


def cipher_dtype(*, transforms: Sequence[str] = ("shuffle",), **unused: Any) -> np.dtype:
  """dtype of the ciphertext: uint16 codes with "ffx", else uint8."""
  del unused
  return np.dtype(np.uint16 if "ffx" in _check_transforms(transforms) else np.uint8)


def encrypt(cipher_key: BlockwiseKey, images: ArrayLike) -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images; uint8 out (uint16 codes with "ffx")."""
  return _core.encrypt_with(SCHEME, cipher_key, images)


def decrypt(cipher_key: BlockwiseKey, images: ArrayLike) -> jax.Array:
  """Inverts `encrypt` exactly; returns uint8 images of the same shape."""
  return _core.decrypt_with(SCHEME, cipher_key, images,
                            dtype=cipher_dtype(transforms=cipher_key.transforms))


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4,
                           transforms: Sequence[str] = ("shuffle",), layout: str = "hwc") -> float:
  """Sum over the chosen transforms: log2(d!), log2(C(d, d/2)), d*log2(1000!/744!)."""
  del layout
  transforms = _check_transforms(transforms)
  d = block_size * block_size * image_shape[2]
  bits = 0.0
  if "shuffle" in transforms:
    bits += math.lgamma(d + 1) / math.log(2)
  if "flip" in transforms:
    bits += math.log2(math.comb(d, d // 2))
  if "ffx" in transforms:
    bits += d * (math.lgamma(FFX_CODES + 1) - math.lgamma(FFX_CODES - 256 + 1)) / math.log(2)
  return bits


SCHEME = _core.Scheme(
    name="blockwise", title="AprilPyone & Kiya, IEEE TIFS 2021", key_type=BlockwiseKey,
    generate_key=generate_key, encrypt=encrypt, decrypt=decrypt, encrypt_image=_encrypt_one,
    decrypt_image=_decrypt_one, nominal_key_space_bits=nominal_key_space_bits,
    options={"block_size": 4, "transforms": ("shuffle",), "layout": "hwc"}, kind="block",
    scrambles_blocks=False, native_adaptation="block", cipher_dtype=cipher_dtype)
