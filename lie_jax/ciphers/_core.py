"""What every cipher shares: block geometry, the one executor, checks, batching, records.

Every block scheme is a block transform of block vectors (`blockify`),
out[j, i] = in[block_perm[j], value_perm[j, i]] ^ xor[j, i]: a scheme only
says how its key defines the transform, and `apply_transform` (one image)
does the rest. Batches are `jax.vmap`s of the one-image function, as in
dm-pix; per-image keys are a vmap of (derive key -> generate -> encrypt).
Checks look at shapes and dtypes only, never at values, so they work on
tracers and error messages can never contain key material.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import types
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

LAYOUTS = ("hwc", "chw")
# The 6 orders of 3 colour channels, lexicographic (itertools order); 0 is the identity.
COLOR_PERMUTATIONS = np.array(list(itertools.permutations(range(3))), dtype=np.int32)
COLOR_PERMUTATIONS.setflags(write=False)


def check_layout(layout: str) -> str:
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
  return layout


def check_block_size(block_size: Any) -> int:
  if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
    raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
  if block_size < 1:
    raise ValueError(f"block_size must be >= 1, got {block_size}")
  return int(block_size)


def num_blocks(image_shape: tuple[int, int, int], block_size: int) -> int:
  """Blocks in an image of `image_shape` (H and W divisible by block_size)."""
  return (image_shape[0] // block_size) * (image_shape[1] // block_size)


@dataclasses.dataclass(frozen=True)
class KeyGeometry:
  """The static structure of a key: block size B (1 for pixel schemes), channels C,
  block vector layout, and the (H, W, C) it was made for (None when it fits
  every H, W divisible by B)."""

  block_size: int
  channels: int
  layout: str = "hwc"
  image_shape: tuple[int, int, int] | None = None


def make_geometry(image_shape: Any, *, block_size: int, layout: str = "hwc",
                  fixed_shape: bool = True) -> KeyGeometry:
  """Validated geometry for `generate_key(..., image_shape=...)`."""
  shape = tuple(int(s) for s in image_shape)
  if len(shape) != 3:
    raise ValueError(f"image_shape must be (H, W, C), got {tuple(image_shape)}")
  if shape[2] not in (1, 3):
    raise ValueError(f"image_shape must have C = 1 or 3 channels, got C={shape[2]}")
  if min(shape[:2]) < 1:
    raise ValueError(f"image_shape must have H, W >= 1, got {shape}")
  block_size = check_block_size(block_size)
  check_layout(layout)
  if block_size > min(shape[:2]):
    raise ValueError(f"block_size={block_size} is larger than the image ({shape[0]}x{shape[1]})")
  if fixed_shape and (shape[0] % block_size or shape[1] % block_size):
    raise ValueError(_not_divisible(shape, block_size))
  return KeyGeometry(block_size=block_size, channels=shape[2], layout=layout,
                     image_shape=shape if fixed_shape else None)


def _not_divisible(shape: tuple[int, ...], b: int) -> str:
  return (f"image size {shape[0]}x{shape[1]} is not divisible by block_size={b}: crop or resize "
          f"the images, or edge-pad them with lie_jax.ciphers.pad_to_blocks")


def block_view(images: Any, block_size: int) -> Any:
  """[..., H, W, C] -> [..., H/B, B, W/B, B, C] (a reshape; B must divide H and W)."""
  *lead, h, w, c = images.shape
  b = block_size
  if h % b or w % b:
    raise ValueError(_not_divisible((h, w), b))
  return images.reshape(*lead, h // b, b, w // b, b, c)


def blockify(images: Any, *, block_size: int, layout: str = "hwc") -> Any:
  """Splits [..., H, W, C] images (jax or numpy; B divides H, W) into flattened blocks.

  Returns [..., (H/B)*(W/B), B*B*C], blocks in row-major order; `layout` orders
  the d = B*B*C values of a block: (row, column, channel) "hwc" or "chw".
  """
  check_layout(layout)
  *lead, h, w, c = images.shape
  k = len(lead)
  inner = (k + 1, k + 3, k + 4) if layout == "hwc" else (k + 4, k + 1, k + 3)
  x = block_view(images, block_size).transpose(*range(k), k, k + 2, *inner)
  return x.reshape(*lead, (h // block_size) * (w // block_size), block_size * block_size * c)


def unblockify(blocks: Any, *, image_shape: tuple[int, int, int], block_size: int,
               layout: str = "hwc") -> Any:
  """Inverse of `blockify`: [..., nb, B*B*C] blocks -> [..., H, W, C] images."""
  check_layout(layout)
  *lead, _, _ = blocks.shape
  h, w, c = image_shape
  b, k = block_size, len(lead)
  if layout == "hwc":
    x = blocks.reshape(*lead, h // b, w // b, b, b, c)
    x = x.transpose(*range(k), k, k + 2, k + 1, k + 3, k + 4)
  else:
    x = blocks.reshape(*lead, h // b, w // b, c, b, b)
    x = x.transpose(*range(k), k, k + 3, k + 1, k + 4, k + 2)
  return x.reshape(*lead, h, w, c)


def block_positions(image_shape: tuple[int, int, int], block_size: int,
                    layout: str = "hwc") -> np.ndarray:
  """[nb, d] int32: the flat position in the [H, W, C] image of every block value."""
  ids = np.arange(int(np.prod(image_shape)), dtype=np.int32).reshape(image_shape)
  return blockify(ids, block_size=block_size, layout=layout)


def pad_to_blocks(images: Any, *, block_size: int) -> jax.Array:
  """Edge-pads [..., H, W, C] images at the bottom and right up to multiples of block_size."""
  *lead, h, w, _ = images.shape
  pad = [(0, 0)] * len(lead) + [(0, -h % block_size), (0, -w % block_size), (0, 0)]
  return jnp.pad(images, pad, mode="edge")


class BlockTransform(NamedTuple):
  """out[j, i] = in[block_perm[j], value_perm[j, i]] ^ xor[j, i] over block vectors.

  block_perm: [nb]; value_perm: [e] (shared by all blocks) or [nb, e]; xor: uint8,
  broadcastable to [nb, e] (e.g. [e], [nb, 1]). None means identity (no XOR).
  """

  block_perm: jax.Array | None = None
  value_perm: jax.Array | None = None
  xor: jax.Array | None = None


def apply_transform(t: BlockTransform, image: ArrayLike, *, block_size: int,
                    layout: str = "hwc", nibbles: bool = False,
                    inverse: bool = False) -> jax.Array:
  """Applies a block transform (or, with `inverse`, undoes it) to one [H, W, C] uint8 image.

  With `nibbles` the transform acts on the 2d nibbles of a block (its d low
  nibbles in block order, then its d high nibbles: LE's convention). The
  inverse scatters every value back to where encryption gathered it from.
  """
  image = jnp.asarray(image)
  blocks = blockify(image, block_size=block_size, layout=layout)
  values = jnp.concatenate([blocks & 15, blocks >> 4], axis=-1) if nibbles else blocks
  nb, e = values.shape
  xor = jnp.uint8(0) if t.xor is None else t.xor.astype(values.dtype)
  block_perm = jnp.arange(nb) if t.block_perm is None else t.block_perm
  value_perm = jnp.arange(e) if t.value_perm is None else t.value_perm
  if not inverse:
    values = values[block_perm]
    if value_perm.ndim == 1:
      values = values[:, value_perm]
    else:
      values = jnp.take_along_axis(values, value_perm, axis=1)
    out = values ^ xor
  else:
    rows = jnp.broadcast_to(block_perm[:, None], (nb, e))
    cols = jnp.broadcast_to(value_perm, (nb, e))
    out = jnp.zeros_like(values).at[rows, cols].set(values ^ xor, unique_indices=True)
  if nibbles:
    d = e // 2
    out = out[:, :d] | (out[:, d:] << 4)
  return unblockify(out, image_shape=image.shape, block_size=block_size, layout=layout)


def transform_image(cipher_key: Any, image: jax.Array, *,
                    transform: Callable[[Any], BlockTransform], nibbles: bool = False,
                    inverse: bool = False) -> jax.Array:
  """`apply_transform(transform(cipher_key), image)` with the key's block size and layout."""
  g = cipher_key.geometry
  return apply_transform(transform(cipher_key), image, block_size=g.block_size, layout=g.layout,
                         nibbles=nibbles, inverse=inverse)


def random_permutations(key: jax.Array, count: int, size: int) -> jax.Array:
  """[count, size] int32 independent uniform permutations of 0..size-1."""
  perm = lambda k: jax.random.permutation(k, size).astype(jnp.int32)
  return jax.vmap(perm)(jax.random.split(key, count))


def check_permutation(perm: Any, size: int, name: str) -> np.ndarray:
  """Validates an imported permutation (host array) of 0..size-1 along its last axis."""
  arr = np.asarray(perm)
  if arr.ndim < 1 or arr.shape[-1] != size:
    raise ValueError(f"{name} must have length {size} (last axis), got shape {arr.shape}")
  if not np.issubdtype(arr.dtype, np.integer):
    raise TypeError(f"{name} must hold integers, got {arr.dtype}")
  if not (np.sort(arr, axis=-1) == np.arange(size)).all():
    raise ValueError(f"{name} is not a permutation of 0..{size - 1}")
  return arr.astype(np.int32)


def check_images(images: Any, *, dtype: Any = np.uint8, name: str = "images") -> Any:
  """Rank (3 or 4), dtype and channel check; returns an array-like with .shape/.dtype."""
  if not hasattr(images, "shape") or not hasattr(images, "dtype"):
    images = np.asarray(images)
  if images.ndim not in (3, 4):
    raise ValueError(
        f"{name} must be [H, W, C] or [N, H, W, C], got rank {images.ndim} "
        f"(shape {tuple(images.shape)}); add a trailing channel axis to grayscale images")
  if images.dtype != np.dtype(dtype):
    raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {images.dtype}")
  if images.shape[-1] not in (1, 3):
    raise ValueError(f"{name} must have C = 1 or 3 channels, got shape {tuple(images.shape)}")
  return images


def fit_images(geometry: KeyGeometry, images: Any, *, dtype: Any = np.uint8) -> Any:
  """Checks images (or ciphertexts) against a key's geometry: channels, shape, block size."""
  images = check_images(images, dtype=dtype)
  shape = tuple(images.shape[-3:])
  if shape[2] != geometry.channels:
    raise ValueError(f"this key was made for C={geometry.channels} images, got C={shape[2]} "
                     f"(shape {tuple(images.shape)})")
  if geometry.image_shape is not None and shape != geometry.image_shape:
    raise ValueError(f"this key was made for {list(geometry.image_shape)} images, "
                     f"got {list(shape)}")
  if shape[0] % geometry.block_size or shape[1] % geometry.block_size:
    raise ValueError(_not_divisible(shape, geometry.block_size))
  return images


def expect_key(cipher_key: Any, key_type: type, where: str) -> None:
  """A clear TypeError when `cipher_key` is not a `key_type` (e.g. a raw PRNG key)."""
  if not isinstance(cipher_key, key_type):
    hint = (" (a JAX PRNG key: make a cipher key with generate_key first)"
            if hasattr(cipher_key, "dtype") else "")
    raise TypeError(f"{where} needs a {key_type.__name__}, got {type(cipher_key).__name__}{hint}")


def batched(fn_one: Callable[[Any, jax.Array], jax.Array]) -> Callable[[Any, jax.Array], jax.Array]:
  """jit of fn_one(cipher_key, image [H, W, C]) that also maps over a batch [N, H, W, C]."""
  return jax.jit(lambda cipher_key, images: fn_one(cipher_key, images) if images.ndim == 3
                 else jax.vmap(fn_one, in_axes=(None, 0))(cipher_key, images))


def encrypt_with(scheme: "Scheme", cipher_key: Any, images: Any) -> jax.Array:
  """A scheme's `encrypt`: checks the key and the images, runs it jitted."""
  expect_key(cipher_key, scheme.key_type, f"{scheme.name}.encrypt")
  images = fit_images(cipher_key.geometry, images)
  return scheme.jitted_encrypt(cipher_key, jnp.asarray(images))


def decrypt_with(scheme: "Scheme", cipher_key: Any, images: Any, *,
                 dtype: Any = np.uint8) -> jax.Array:
  """A scheme's `decrypt`: checks the key and the ciphertexts, runs it jitted."""
  expect_key(cipher_key, scheme.key_type, f"{scheme.name}.decrypt")
  images = fit_images(cipher_key.geometry, images, dtype=dtype)
  return scheme.jitted_decrypt(cipher_key, jnp.asarray(images))


def image_indices(images: Any, indices: Any | None) -> jax.Array:
  """Per-image key indices: [N] uint32 (default 0..N-1)."""
  if images.ndim != 4:
    raise ValueError(f"per-image keys need a batch [N, H, W, C], got shape {tuple(images.shape)}")
  n = images.shape[0]
  if indices is None:
    return jnp.arange(n, dtype=jnp.uint32)
  if not hasattr(indices, "dtype"):
    indices = np.asarray(indices)
  if tuple(indices.shape) != (n,):
    raise ValueError(f"indices must have shape ({n},), got {tuple(indices.shape)}")
  if not jnp.issubdtype(indices.dtype, jnp.integer):
    raise TypeError(f"indices must be integers, got {indices.dtype}")
  if not isinstance(indices, jax.core.Tracer) and n:  # a uint32 cast would wrap: 2**32 -> 0
    low, high = int(np.min(indices)), int(np.max(indices))
    if low < 0 or high >= 2**32:
      raise ValueError(f"indices must be in [0, 2**32), got {low if low < 0 else high}")
  return jnp.asarray(indices).astype(jnp.uint32)


@functools.partial(jax.jit, static_argnames=("generate_key", "apply", "image_shape", "options"))
def _run_per_image(key, images, indices, *, generate_key, apply, image_shape, options):
  def one(index, image):
    cipher_key = generate_key(jax.random.fold_in(key, index), image_shape=image_shape,
                              **dict(options))
    return apply(cipher_key, image)

  return jax.vmap(one)(indices, images)


def per_image(generate_key: Callable, apply: Callable, key: jax.Array, images: Any, *,
              indices: Any | None, options: Mapping[str, Any], dtype: Any = np.uint8) -> jax.Array:
  """Checks, then runs apply(generate_key(fold_in(key, indices[i])), images[i]) for every i.

  generate_key validates the images' shape against the options as it traces.
  """
  images = check_images(images, dtype=dtype)
  index = image_indices(images, indices)
  # Options are static jit arguments: sequences become tuples.
  options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
  return _run_per_image(key, jnp.asarray(images), index, generate_key=generate_key, apply=apply,
                        image_shape=tuple(int(s) for s in images.shape[1:]), options=options)


@dataclasses.dataclass(frozen=True)
class Scheme:
  """Everything the rest of lie_jax needs to know about a scheme, declared in its module.

  Attributes:
    name: the scheme's name (`lie_jax.ciphers.SCHEMES` key, config `cipher.name`).
    title: the publication it implements, in a few words.
    key_type: the class of its cipher keys.
    generate_key: `(key, *, image_shape, **options) -> cipher key`.
    encrypt: `(cipher_key, images, ...) -> ciphertexts`.
    decrypt: its inverse, or None for lossy schemes.
    encrypt_image / decrypt_image: the same for one [H, W, C] image (what vmap maps).
    nominal_key_space_bits: `(*, image_shape, **options) -> bits`.
    options: `generate_key`'s options and their defaults.
    kind: "block", "pixel" (per-pixel) or "linear" (a matrix on the flat image).
    scrambles_blocks: the key permutes block positions (what jigsaw solvers attack).
    native_adaptation: the adaptation layer (`lie_jax.models`) made for it.
    per_image_keys: whether `encrypt_per_image` applies (not where a server-side
      layer depends on the key, as morph's).
    storable: its ciphertexts are images that an encrypted dataset can hold.
    plain_inputs_claim: its paper claims a model trained on its ciphertexts also
      classifies plain images (the trainer measures it).
    cipher_dtype: `(**options) -> dtype` of the ciphertexts.
  """

  name: str
  title: str
  key_type: type
  generate_key: Callable[..., Any]
  encrypt: Callable[..., jax.Array]
  decrypt: Callable[..., jax.Array] | None
  encrypt_image: Callable[[Any, jax.Array], jax.Array]
  decrypt_image: Callable[[Any, jax.Array], jax.Array] | None
  nominal_key_space_bits: Callable[..., float]
  options: Mapping[str, Any]
  kind: str
  scrambles_blocks: bool
  native_adaptation: str
  per_image_keys: bool = True
  storable: bool = True
  plain_inputs_claim: bool = False
  cipher_dtype: Callable[..., np.dtype] = lambda **options: np.dtype(np.uint8)

  def __post_init__(self):
    object.__setattr__(self, "options", types.MappingProxyType(dict(self.options)))
    # encrypt_image / decrypt_image jitted, mapped over batches (one key for all images).
    object.__setattr__(self, "jitted_encrypt", batched(self.encrypt_image))
    if self.decrypt_image is not None:
      object.__setattr__(self, "jitted_decrypt", batched(self.decrypt_image))

  @property
  def invertible(self) -> bool:
    return self.decrypt is not None

  def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` with the defaults filled in; ValueError naming any unknown option."""
    unknown = sorted(set(options) - set(self.options))
    if unknown:
      raise ValueError(f"scheme {self.name!r} has no option(s) {unknown}; "
                       f"it takes {list(self.options) or 'none'}")
    return {**self.options, **options}

  def encrypt_per_image(self, key: jax.Array, images: Any, *, indices: Any | None = None,
                        **options: Any) -> jax.Array:
    """Encrypts a batch, image i under its own key ("no key management").

    Image i's cipher key is `generate_key(jax.random.fold_in(key, indices[i]),
    image_shape=images.shape[1:], **options)`: the keys need never be stored,
    the same key and indices regenerate them. Keys are drawn and applied in
    one jitted `jax.vmap`.

    Args:
      key: JAX PRNG key (e.g. from `lie_jax.keys.derive_prng_key`).
      images: [N, H, W, C] uint8.
      indices: [N] ints naming the images (default 0..N-1), e.g. their
        indices in the dataset, so that any subset can be decrypted.
      **options: `generate_key` options (see `options`).

    Returns:
      The [N, ...] ciphertexts.
    """
    if not self.per_image_keys:
      raise ValueError(f"scheme {self.name!r} has no per-image keys")
    return per_image(self.generate_key, self.encrypt_image, key, images, indices=indices,
                     options=self.check_options(options))

  def decrypt_per_image(self, key: jax.Array, images: Any, *, indices: Any | None = None,
                        **options: Any) -> jax.Array:
    """Inverts `encrypt_per_image` (same key, indices and options): [N, H, W, C] uint8."""
    if not (self.per_image_keys and self.invertible):
      raise ValueError(f"scheme {self.name!r} has no per-image decryption")
    options = self.check_options(options)
    return per_image(self.generate_key, self.decrypt_image, key, images, indices=indices,
                     options=options, dtype=self.cipher_dtype(**options))
