"""Block-wise encryption for ViT: Kiya et al., EUSIPCO 2022 and "Image and model
transformation with secret key for vision transformer" (2022).

The block size is the ViT patch size P. Pixel shuffling: one permutation of the d = P*P*C
values of a block, shared by every block (pixel_shuffling=False: none; block scrambling
alone, the baseline of every block scheme); block scrambling: a permutation of the block
positions. Convention (gathers): output block j is input block `block_perm[j]`, and its
value i is value `pixel_perm[i]` of that block, in the key's block vector layout ("hwc", or
the channel-major "chw" of published ViT code).

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

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
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
  geometry: _core.KeyGeometry = static_field()


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], block_size: int = 4,
                 layout: str = "hwc", pixel_shuffling: bool = True) -> ViTKey:
  """A key for `image_shape`, patch size `block_size`; pixel_shuffling=False: scrambling alone."""
  if not isinstance(pixel_shuffling, bool):
    raise ValueError(f"pixel_shuffling must be True or False, got {pixel_shuffling!r}")
  geometry = _core.make_geometry(image_shape, block_size=block_size, layout=layout)
  nb, d = _core.num_blocks(geometry.image_shape, block_size), block_size ** 2 * geometry.channels
  k_pix, k_block = jax.random.split(key)
  pixel_perm = jax.random.permutation(k_pix, d) if pixel_shuffling else jnp.arange(d)
  return ViTKey(pixel_perm=pixel_perm.astype(jnp.int32), geometry=geometry,
                block_perm=jax.random.permutation(k_block, nb).astype(jnp.int32))


def key_from_permutations(pixel_perm: ArrayLike, block_perm: ArrayLike, *, block_size: int,
                          layout: str = "hwc",
                          image_shape: tuple[int, int, int] | None = None) -> ViTKey:
  """Imports a published key: pixel_perm [d] (d = P*P*C, in `layout` order), block_perm [nb].

  layout "chw" is the channel-major order of published ViT code; image_shape
  defaults to the square image the lengths imply.
  """
  block_size = _core.check_block_size(block_size)
  pixel_perm, block_perm = np.asarray(pixel_perm), np.asarray(block_perm)
  if image_shape is None:
    c, rem = divmod(pixel_perm.shape[-1], block_size * block_size)
    side = math.isqrt(block_perm.shape[-1])
    if rem or side * side != block_perm.shape[-1]:
      raise ValueError("cannot infer a square image from the permutation lengths "
                       f"({pixel_perm.shape[-1]}, {block_perm.shape[-1]}); pass image_shape")
    image_shape = (side * block_size, side * block_size, c)
  geometry = _core.make_geometry(image_shape, block_size=block_size, layout=layout)
  pixel_perm = _core.check_permutation(pixel_perm, block_size * block_size * geometry.channels,
                                       "pixel_perm")
  block_perm = _core.check_permutation(
      block_perm, _core.num_blocks(geometry.image_shape, block_size), "block_perm")
  return ViTKey(pixel_perm=jnp.asarray(pixel_perm), block_perm=jnp.asarray(block_perm),
                geometry=geometry)


def _transform(cipher_key: ViTKey) -> _core.BlockTransform:
  return _core.BlockTransform(block_perm=cipher_key.block_perm, value_perm=cipher_key.pixel_perm)


_encrypt_one = functools.partial(_core.transform_image, transform=_transform)
_decrypt_one = functools.partial(_encrypt_one, inverse=True)


def encrypt(cipher_key: ViTKey, images: ArrayLike) -> jax.Array:
  """Encrypts [H, W, C] or [N, H, W, C] uint8 images (same dtype and shape)."""
  return _core.encrypt_with(SCHEME, cipher_key, images)


def decrypt(cipher_key: ViTKey, images: ArrayLike) -> jax.Array:
  """Inverts `encrypt` exactly."""
  return _core.decrypt_with(SCHEME, cipher_key, images)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], block_size: int = 4,
                           layout: str = "hwc", pixel_shuffling: bool = True) -> float:
  """log2(d!) + log2(nb!) (log2(nb!) without pixel shuffling)."""
  del layout
  nb, d = _core.num_blocks(tuple(image_shape), block_size), block_size ** 2 * image_shape[2]
  return ((math.lgamma(d + 1) if pixel_shuffling else 0.0) + math.lgamma(nb + 1)) / math.log(2)


SCHEME = _core.Scheme(
    name="vit", title="Kiya et al., EUSIPCO 2022", key_type=ViTKey, generate_key=generate_key,
    encrypt=encrypt, decrypt=decrypt, encrypt_image=_encrypt_one, decrypt_image=_decrypt_one,
    nominal_key_space_bits=nominal_key_space_bits,
    options={"block_size": 4, "layout": "hwc", "pixel_shuffling": True},
    kind="block", scrambles_blocks=True, native_adaptation="none")
