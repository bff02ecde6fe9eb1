"""Block-wise encryption for ViT: Kiya et al., EUSIPCO 2022 and "Image and model
transformation with secret key for vision transformer" (2022).

The block size is the ViT patch size P. Pixel shuffling: one permutation of
the d = P*P*C values of a block, shared by every block; block scrambling: a
permutation of the block positions. Convention (gathers): output block j is
input block `block_perm[j]`, and its value i is value `pixel_perm[i]` of that
block, in the key's block vector layout ("hwc", or the channel-major "chw" of
published ViT code).

A ViT trained on plain images gives the same outputs on encrypted images once
its patch embedding rows are permuted by `pixel_perm` and its position
embeddings by `block_perm` (see `lie_jax.models`).

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import vit
  >>> k = vit.generate_key(jax.random.key(0), image_shape=(32, 32, 3), block_size=8)
  >>> x = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  >>> bool((vit.decrypt(k, vit.encrypt(k, x)) == x).all())
  True
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lie_jax.ciphers import _apply
from lie_jax.ciphers import _blocks
from lie_jax.ciphers._keytree import cipher_key, static_field


@cipher_key
class ViTKey:
  """ViT block cipher key.

  Attributes:
    pixel_perm: [d] int32, value permutation shared by all blocks (in `geometry.layout` order).
    block_perm: [nb] int32, block scrambling.
    geometry: patch size, channels, layout and the image shape the key was made for.
  """

  pixel_perm: jax.Array
  block_perm: jax.Array
  geometry: _apply.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 4,
                 layout: str = "hwc") -> ViTKey:
  """Draws a key for images of `image_shape` with patch size `block_size`."""
  geometry = _apply.make_geometry(image_shape, block_size=block_size, layout=layout)
  h, w, c = geometry.cipher_shape(geometry.image_shape)
  nb = (h // block_size) * (w // block_size)
  k_pix, k_block = jax.random.split(key)
  return ViTKey(pixel_perm=_blocks.random_permutations(k_pix, None, block_size * block_size * c),
                block_perm=_blocks.random_permutations(k_block, None, nb), geometry=geometry)


def key_from_permutations(pixel_perm: Any, block_perm: Any, *, block_size: int,
                          layout: str = "hwc",
                          image_shape: tuple[int, int, int] | None = None) -> ViTKey:
  """Imports a published key given as two permutations.

  Args:
    pixel_perm: permutation of 0..d-1, d = P*P*C, in `layout` order.
    block_perm: permutation of 0..nb-1 over row-major block positions.
    block_size: patch size P.
    layout: "hwc" or "chw" (channel-major, as in published ViT code).
    image_shape: (H, W, C); default: a square image inferred from the lengths.
  """
  block_size = _blocks.check_block_size(block_size)
  pixel_perm, block_perm = np.asarray(pixel_perm), np.asarray(block_perm)
  if image_shape is None:
    c, rem = divmod(pixel_perm.shape[-1], block_size * block_size)
    side = math.isqrt(block_perm.shape[-1])
    if rem or side * side != block_perm.shape[-1]:
      raise ValueError("cannot infer a square image from the permutation lengths "
                       f"({pixel_perm.shape[-1]}, {block_perm.shape[-1]}); pass image_shape")
    image_shape = (side * block_size, side * block_size, c)
  geometry = _apply.make_geometry(image_shape, block_size=block_size, layout=layout)
  h, w, c = geometry.cipher_shape(geometry.image_shape)
  pixel_perm = _blocks.check_permutation(pixel_perm, block_size * block_size * c, "pixel_perm")
  block_perm = _blocks.check_permutation(block_perm, (h // block_size) * (w // block_size),
                                         "block_perm")
  return ViTKey(pixel_perm=jnp.asarray(pixel_perm), block_perm=jnp.asarray(block_perm),
                geometry=geometry)


def _transform(cipher_key: ViTKey) -> _blocks.BlockTransform:
  return _blocks.BlockTransform(block_perm=cipher_key.block_perm, value_perm=cipher_key.pixel_perm)


_cipher = _apply.block_cipher(_transform)
_encrypt = jax.jit(_cipher.encrypt_shared)
_decrypt = jax.jit(_cipher.decrypt_shared)


def encrypt(cipher_key: ViTKey, images: Any, *, padding: str = "none") -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images (same dtype and shape)."""
  _apply.expect_key(cipher_key, ViTKey, "vit.encrypt")
  return _apply.encrypt_with(_encrypt, cipher_key, images, padding=padding)


def decrypt(cipher_key: ViTKey, images: Any) -> jax.Array:
  """Inverts `encrypt` exactly (crops any edge padding)."""
  _apply.expect_key(cipher_key, ViTKey, "vit.decrypt")
  return _apply.decrypt_with(_decrypt, cipher_key, images)


encrypt_per_image, decrypt_per_image = _apply.per_image_api(
    generate_key, _cipher.encrypt_keys, _cipher.decrypt_keys, scheme="vit")


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4,
                           layout: str = "hwc") -> float:
  """log2(d!) + log2(nb!)."""
  del layout
  h, w, c = _blocks.padded_shape(tuple(image_shape), block_size)
  nb = (h // block_size) * (w // block_size)
  return (math.lgamma(block_size * block_size * c + 1) + math.lgamma(nb + 1)) / math.log(2)
