"""EtC: encryption-then-compression block scrambling (Kurihara, Kiya et al.).

Per image key, applied in this order:
  1. block scrambling: output block j is input block `block_perm[j]`
     (row-major block order);
  2. rotation of every block by `rotation[j]` * 90 degrees counter-clockwise
     (`np.rot90`), then flip: 0 none, 1 horizontal (`np.fliplr`),
     2 vertical (`np.flipud`);
  3. negative-positive of the whole block (x -> 255 - x) where `negate[j]`;
  4. colour shuffle: output channel c is channel `COLOR_PERMUTATIONS[color[j]][c]`
     (the 6 permutations of (0, 1, 2) in lexicographic order; C = 1 skips it).
Every transform is indexed by the output block position j. The colour
shuffle is a gather into a new array, never an in-place swap through
aliased views (the published pitfall that duplicates one channel).

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import etc
  >>> k = etc.generate_key(jax.random.key(0), image_shape=(32, 32, 3), block_size=4)
  >>> x = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  >>> bool((etc.decrypt(k, etc.encrypt(k, x)) == x).all())
  True
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lie_jax.ciphers import _apply
from lie_jax.ciphers import _blocks
from lie_jax.ciphers._keytree import cipher_key, static_field

COLOR_PERMUTATIONS = _blocks.COLOR_PERMUTATIONS


@cipher_key
class EtCKey:
  """EtC key (all arrays indexed by output block position, nb blocks).

  Attributes:
    block_perm: [nb] int32 block scrambling.
    rotation: [nb] int32 in 0..3 (quarter turns, counter-clockwise).
    flip: [nb] int32 in 0..2 (none, horizontal, vertical).
    negate: [nb] bool, negative-positive transform of the whole block.
    color: [nb] int32 in 0..5, index into COLOR_PERMUTATIONS (0 for C = 1).
    geometry: block size, channels and the image shape the key was made for.
  """

  block_perm: jax.Array
  rotation: jax.Array
  flip: jax.Array
  negate: jax.Array
  color: jax.Array
  geometry: _apply.KeyGeometry = static_field()


@functools.lru_cache(maxsize=32)
def _within_block_tables(block_size: int, channels: int) -> np.ndarray:
  """[4, 3, 6, d]: source index inside an hwc block for every (rotation, flip, colour)."""
  ids = np.arange(block_size * block_size * channels).reshape(block_size, block_size, channels)
  flips = (lambda a: a, np.fliplr, np.flipud)
  table = np.empty((4, 3, 6, ids.size), np.int32)
  for r, f, c in itertools.product(range(4), range(3), range(6)):
    block = flips[f](np.rot90(ids, r))
    if channels == 3:
      block = block[..., COLOR_PERMUTATIONS[c]]
    table[r, f, c] = block.reshape(-1)
  table.setflags(write=False)
  return table


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int],
                 block_size: int = 4) -> EtCKey:
  """Draws an EtC key for images of `image_shape` (H, W, C)."""
  geometry = _apply.make_geometry(image_shape, block_size=block_size)
  h, w, c = geometry.cipher_shape(geometry.image_shape)
  nb = (h // block_size) * (w // block_size)
  k_perm, k_rot, k_flip, k_neg, k_col = jax.random.split(key, 5)
  color = (_blocks.random_below(k_col, (nb,), 6) if c == 3 else jnp.zeros((nb,), jnp.int32))
  return EtCKey(block_perm=_blocks.random_permutations(k_perm, None, nb),
                rotation=_blocks.random_below(k_rot, (nb,), 4),
                flip=_blocks.random_below(k_flip, (nb,), 3),
                negate=_blocks.random_flags(k_neg, (nb,)),
                color=color, geometry=geometry)


def _transform(cipher_key: EtCKey) -> _blocks.BlockTransform:
  g = cipher_key.geometry
  table = _within_block_tables(g.block_size, g.channels)
  codes = (cipher_key.rotation * 3 + cipher_key.flip) * 6 + cipher_key.color
  return _blocks.BlockTransform(
      block_perm=cipher_key.block_perm,
      value_perm=_blocks.PermChoice(codes, table.reshape(-1, table.shape[-1])),
      xor=cipher_key.negate[:, None].astype(jnp.uint8) * 255)


_cipher = _apply.block_cipher(_transform)
_encrypt = jax.jit(_cipher.encrypt_shared)
_decrypt = jax.jit(_cipher.decrypt_shared)


def encrypt(cipher_key: EtCKey, images: Any, *, padding: str = "none") -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images with EtC (same dtype and shape)."""
  _apply.expect_key(cipher_key, EtCKey, "etc.encrypt")
  return _apply.encrypt_with(_encrypt, cipher_key, images, padding=padding)


def decrypt(cipher_key: EtCKey, images: Any) -> jax.Array:
  """Inverts `encrypt` exactly (crops any edge padding)."""
  _apply.expect_key(cipher_key, EtCKey, "etc.decrypt")
  return _apply.decrypt_with(_decrypt, cipher_key, images)


encrypt_per_image, decrypt_per_image = _apply.per_image_api(
    generate_key, _cipher.encrypt_keys, _cipher.decrypt_keys, scheme="etc")


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4) -> float:
  """log2(nb!) + nb * (log2 8 distinct rotations/flips + 1 NP bit + log2 6 colour orders).

  The 4 x 3 rotation/flip choices give only the 8 symmetries of a square.
  """
  h, w, c = _blocks.padded_shape(tuple(image_shape), block_size)
  nb = (h // block_size) * (w // block_size)
  per_block = 3 + 1 + (math.log2(6) if c == 3 else 0.0)
  return math.lgamma(nb + 1) / math.log(2) + nb * per_block
