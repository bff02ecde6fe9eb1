"""EtC: encryption-then-compression block scrambling (Kurihara, Kiya et al.).

Per image key, applied in this order::

  1. block scrambling: output block j is input block `block_perm[j]`
     (row-major block order);
  2. rotation of every block by `rotation[j]` * 90 degrees counter-clockwise
     (`np.rot90`), then flip: 0 none, 1 horizontal (`np.fliplr`),
     2 vertical (`np.flipud`);
  3. negative-positive of the whole block (x -> 255 - x) where `negate[j]`;
  4. colour shuffle: output channel c is channel `COLOR_PERMUTATIONS[color[j]][c]`
     (the 6 permutations of (0, 1, 2) in lexicographic order; C = 1 skips it).

Every transform is indexed by the output block position j. The colour shuffle
gathers into a new array (in-place swaps through views duplicate a channel).

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

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
from lie_jax.ciphers._keytree import cipher_key, static_field

COLOR_PERMUTATIONS = _core.COLOR_PERMUTATIONS


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
  geometry: _core.KeyGeometry = static_field()


@functools.lru_cache(maxsize=32)
def within_block_permutations(block_size: int, channels: int) -> np.ndarray:
  """[4, 3, 6, d] int32: source index in an "hwc" block for each (rotation, flip, colour)."""
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
  geometry = _core.make_geometry(image_shape, block_size=block_size)
  nb = _core.num_blocks(geometry.image_shape, block_size)
  k_perm, k_rot, k_flip, k_neg, k_col = jax.random.split(key, 5)
  colors = 6 if geometry.channels == 3 else 1
  return EtCKey(block_perm=jax.random.permutation(k_perm, nb).astype(jnp.int32),
                rotation=jax.random.randint(k_rot, (nb,), 0, 4, jnp.int32),
                flip=jax.random.randint(k_flip, (nb,), 0, 3, jnp.int32),
                negate=jax.random.bernoulli(k_neg, 0.5, (nb,)),
                color=jax.random.randint(k_col, (nb,), 0, colors, jnp.int32), geometry=geometry)


def _transform(cipher_key: EtCKey) -> _core.BlockTransform:
  g = cipher_key.geometry
  table = jnp.asarray(within_block_permutations(g.block_size, g.channels))
  perm = table[cipher_key.rotation, cipher_key.flip, cipher_key.color]
  return _core.BlockTransform(block_perm=cipher_key.block_perm, value_perm=perm,
                              xor=cipher_key.negate[:, None].astype(jnp.uint8) * 255)


_encrypt_one = functools.partial(_core.transform_image, transform=_transform)
_decrypt_one = functools.partial(_encrypt_one, inverse=True)


def encrypt(cipher_key: EtCKey, images: ArrayLike) -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images with EtC (same dtype and shape)."""
  return _core.encrypt_with(SCHEME, cipher_key, images)


def decrypt(cipher_key: EtCKey, images: ArrayLike) -> jax.Array:
  """Inverts `encrypt` exactly."""
  return _core.decrypt_with(SCHEME, cipher_key, images)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4) -> float:
  """log2(nb!) + nb * (log2 8 distinct rotations/flips + 1 NP bit + log2 6 colour orders).

  The 4 x 3 rotation/flip choices give only the 8 symmetries of a square.
  """
  nb = _core.num_blocks(tuple(image_shape), block_size)
  per_block = 3 + 1 + (math.log2(6) if image_shape[2] == 3 else 0.0)
  return math.lgamma(nb + 1) / math.log(2) + nb * per_block


SCHEME = _core.Scheme(
    name="etc", title="Kurihara, Kiya et al. (EtC)", key_type=EtCKey, generate_key=generate_key,
    encrypt=encrypt, decrypt=decrypt, encrypt_image=_encrypt_one, decrypt_image=_decrypt_one,
    nominal_key_space_bits=nominal_key_space_bits, options={"block_size": 4}, kind="block",
    scrambles_blocks=True, native_adaptation="block")
