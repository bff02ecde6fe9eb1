"""How every cipher is applied to images: checks, padding, batching, jit, per-image keys.

A scheme module writes its transforms for one image `[H, W, C]` and hands
them to `batched` (one key for the whole batch) or `per_image` (image i gets
the key generated from `fold_in(key, indices[i])`). Both accept `[H, W, C]` or
`[N, H, W, C]`; the per-image path generates its keys inside the same jitted,
vmapped computation, so there is no Python loop over images.

Checks happen on shapes and dtypes only, never on values, so they also work
on tracers inside a caller's `jax.jit` / `jax.vmap`, and error messages can
never contain key material.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lie_jax.ciphers import _blocks


@dataclasses.dataclass(frozen=True)
class KeyGeometry:
  """The static structure a cipher key was made for.

  Attributes:
    block_size: side B of the square blocks (1 for pixel-wise schemes).
    channels: C of the images the key accepts.
    layout: order of values inside a block vector ("hwc" or "chw").
    image_shape: the [H, W, C] shape the key was made for (before any edge
      padding), or None when the key fits every H, W (e.g. imported LE keys).
  """

  block_size: int
  channels: int
  layout: str = "hwc"
  image_shape: tuple[int, int, int] | None = None

  def cipher_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The [H, W, C] the cipher works on for images of `image_shape` (padded)."""
    return _blocks.padded_shape(tuple(image_shape), self.block_size)


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
  block_size = _blocks.check_block_size(block_size)
  _blocks.check_layout(layout)
  if block_size > min(shape[:2]):
    raise ValueError(f"block_size={block_size} is larger than the image ({shape[0]}x{shape[1]})")
  return KeyGeometry(block_size=block_size, channels=shape[2], layout=layout,
                     image_shape=shape if fixed_shape else None)


def check_images(images: Any, *, dtype: Any = np.uint8, name: str = "images") -> Any:
  """Rank (3 or 4) and dtype check; returns an array-like with .shape/.dtype."""
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


def fit_images(geometry: KeyGeometry, images: Any, *, padding: str, decrypting: bool,
               dtype: Any = np.uint8) -> Any:
  """Checks images against the key's geometry and edge-pads them if asked.

  Encryption takes images of the key's shape (edge-padded when
  padding="edge"); decryption takes the padded shape the cipher produced.
  """
  images = check_images(images, dtype=dtype)
  if padding not in _blocks.PADDINGS:
    raise ValueError(f"padding must be one of {_blocks.PADDINGS}, got {padding!r}")
  shape = tuple(images.shape[-3:])
  b = geometry.block_size
  if shape[2] != geometry.channels:
    raise ValueError(f"this key was made for C={geometry.channels} images, got C={shape[2]} "
                     f"(shape {tuple(images.shape)})")
  if geometry.image_shape is not None:
    expected = geometry.image_shape
    if decrypting:
      expected = geometry.cipher_shape(expected)
    if shape != expected:
      raise ValueError(f"this key was made for {list(expected)} images, got {list(shape)}")
  if shape[0] % b or shape[1] % b:
    if padding == "none" or decrypting:
      ph, pw, _ = geometry.cipher_shape(shape)
      raise ValueError(
          f"image size {shape[0]}x{shape[1]} is not divisible by block_size={b}: crop or "
          f"resize the images, or encrypt with padding='edge' (edge-replicates to {ph}x{pw})")
    images = _blocks.pad_to_blocks(jnp.asarray(images), block_size=b)
  return images


def crop_to_key(geometry: KeyGeometry, images: jax.Array) -> jax.Array:
  """Removes edge padding after decryption when the key knows the original shape."""
  if geometry.image_shape is None:
    return images
  h, w, _ = geometry.image_shape
  return images[..., :h, :w, :]


def batched(fn_one: Callable[[Any, jax.Array], jax.Array]) -> Callable[[Any, jax.Array], jax.Array]:
  """jit of fn_one(cipher_key, image) that also takes a batch, vmapped with one shared key."""

  def run(cipher_key, images):
    if images.ndim == 3:
      return fn_one(cipher_key, images)
    return jax.vmap(fn_one, in_axes=(None, 0))(cipher_key, images)

  run.__name__ = fn_one.__name__
  return jax.jit(run)


class BlockCipher(NamedTuple):
  """A block scheme's transforms, built by `block_cipher` from its key -> transform map.

  encrypt_shared / decrypt_shared: (cipher_key, images [H, W, C] or
    [N, H, W, C]) -> images, one key for all images.
  encrypt_keys / decrypt_keys: (cipher keys with a leading N axis,
    images [N, H, W, C]) -> images, one key per image.
  """

  encrypt_shared: Callable
  decrypt_shared: Callable
  encrypt_keys: Callable
  decrypt_keys: Callable


def block_cipher(transform: Callable[[Any], _blocks.BlockTransform], *, nibbles: bool = False,
                 shared_blocks_max_bytes: int = 0) -> BlockCipher:
  """Builds the four transforms of a scheme from `transform(cipher_key)`.

  With one key per image, each output byte is gathered through an index
  broadcast from each image's small arrays (`_blocks.transform_blocks`;
  nibble schemes gather inside blockified images).
  With one key, the transform is unrolled into flat maps built once per key
  (one gather per output byte, two for nibble schemes;
  `_blocks.transform_flat`), except for batches of at most
  `shared_blocks_max_bytes` (0: none), which run through the per-image
  executor with the one transform broadcast to every image. For LE, whose
  flat maps cost five map loads per byte, its three passes over the batch
  (blockify, gather, unblockify) win on batches up to about 25 MB on this
  2-core machine (32 MB L3) and lose above (flat vs blocks: 28x28x1 x 10k,
  7.8 MB, 8.8 vs 5.6 ms; 64x64x3 x 2k, 25 MB, 28 vs 21 ms; 32x32x3 x 10k,
  31 MB, 39 vs 52 ms); LE sets 16 MiB, a margin for smaller caches.
  """

  def statics(cipher_key):
    g = cipher_key.geometry
    return dict(block_size=g.block_size, layout=g.layout, nibbles=nibbles)

  def inverse(cipher_key):
    return _blocks.invert_transform(transform(cipher_key))

  def shared(make):
    def run(cipher_key, images):
      t = make(cipher_key)
      if not 0 < images.size * images.dtype.itemsize <= shared_blocks_max_bytes:
        return _blocks.transform_flat(images, t, **statics(cipher_key))
      batch = images if images.ndim == 4 else images[None]
      n = batch.shape[0]
      same = jax.tree.map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), t)
      out = _blocks.transform_blocks(batch, lambda x: x, same, **statics(cipher_key))
      return out if images.ndim == 4 else out[0]

    return run

  def keyed(make):
    return lambda keys, images: _blocks.transform_blocks(images, make, keys, **statics(keys))

  return BlockCipher(encrypt_shared=shared(transform), decrypt_shared=shared(inverse),
                     encrypt_keys=keyed(transform), decrypt_keys=keyed(inverse))


def per_image_keys(generate_key: Callable[..., Any], key: jax.Array, indices: jax.Array, *,
                   image_shape: tuple[int, int, int], **options: Any) -> Any:
  """The cipher keys of a batch, stacked: key i is generate_key(fold_in(key, indices[i]))."""
  return jax.vmap(lambda index: generate_key(jax.random.fold_in(key, index),
                                             image_shape=image_shape, **options))(indices)


def per_image(generate_key: Callable[..., Any], apply_keys: Callable[[Any, jax.Array], jax.Array],
              option_names: tuple[str, ...]) -> Callable[..., jax.Array]:
  """jit of a batch transform where image i uses generate_key(fold_in(key, indices[i])).

  Returns fn(key, images [N, H, W, C], indices [N], image_shape, **options).
  """

  def run(key, images, indices, image_shape, **options):
    return apply_keys(per_image_keys(generate_key, key, indices, image_shape=image_shape,
                                     **options), images)

  return jax.jit(run, static_argnames=("image_shape",) + tuple(option_names))


def image_indices(images: Any, indices: Any | None) -> jax.Array:
  """Per-image key indices: [N] ints (default 0..N-1)."""
  if images.ndim != 4:
    raise ValueError(f"per-image keys need a batch [N, H, W, C], got shape {tuple(images.shape)}")
  n = images.shape[0]
  if indices is None:
    return jnp.arange(n, dtype=jnp.uint32)
  indices = jnp.asarray(indices)
  if indices.shape != (n,):
    raise ValueError(f"indices must have shape ({n},), got {tuple(indices.shape)}")
  if not jnp.issubdtype(indices.dtype, jnp.integer):
    raise TypeError(f"indices must be integers, got {indices.dtype}")
  return indices.astype(jnp.uint32)


def per_image_api(generate_key: Callable[..., Any], encrypt_keys: Callable,
                  decrypt_keys: Callable | None, *, scheme: str,
                  cipher_dtype: Callable[..., Any] = lambda **options: np.uint8
                  ) -> tuple[Callable, Callable | None]:
  """Builds a scheme's `encrypt_per_image` / `decrypt_per_image` from its batched-key transforms.

  The options are `generate_key`'s keyword-only parameters (except
  `image_shape`, taken from the images), with the same defaults.
  """
  import inspect

  params = inspect.signature(generate_key).parameters
  option_names = tuple(p for p in params if p not in ("key", "image_shape"))
  defaults = {p: params[p].default for p in option_names}
  run_encrypt = per_image(generate_key, encrypt_keys, option_names)
  run_decrypt = per_image(generate_key, decrypt_keys, option_names) if decrypt_keys else None

  def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(option_names)
    if unknown:
      raise TypeError(f"{scheme}: unknown option(s) {sorted(unknown)}; expected {list(option_names)}")
    # Options are static jit arguments: make sequences hashable.
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return {**defaults, **options}

  @functools.lru_cache(maxsize=256)
  def _cached_geometry(image_shape, options):
    abstract = jax.eval_shape(
        lambda: generate_key(jax.random.key(0), image_shape=image_shape, **dict(options)))
    return abstract.geometry

  def _geometry(image_shape, options):
    # Tracing generate_key costs milliseconds: once per shape and options.
    return _cached_geometry(image_shape, tuple(sorted(options.items())))

  def encrypt_per_image(key, images, *, indices=None, padding="none", **options):
    options = _options(options)
    images = check_images(images)
    index = image_indices(images, indices)
    image_shape = tuple(int(s) for s in images.shape[1:])
    images = fit_images(_geometry(image_shape, options), images, padding=padding,
                        decrypting=False)
    return run_encrypt(key, images, index, image_shape, **options)

  def decrypt_per_image(key, images, *, indices=None, image_shape=None, **options):
    options = _options(options)
    dtype = cipher_dtype(**options)
    images = check_images(images, dtype=dtype)
    index = image_indices(images, indices)
    image_shape = tuple(int(s) for s in (image_shape or images.shape[1:]))
    geometry = _geometry(image_shape, options)
    images = fit_images(geometry, images, padding="none", decrypting=True, dtype=dtype)
    return crop_to_key(geometry, run_decrypt(key, images, index, image_shape, **options))

  encrypt_per_image.__doc__ = f"""Encrypts a batch with {scheme}, image i under its own key.

  Image i's cipher key is `generate_key(jax.random.fold_in(key, indices[i]),
  image_shape=images.shape[1:], **options)` ("no key management": the keys
  need never be stored; the same key and indices regenerate them). All keys
  are generated and applied inside one jitted, vmapped computation.

  Args:
    key: JAX PRNG key (e.g. from `lie_jax.keys.derive_prng_key`).
    images: [N, H, W, C] uint8.
    indices: [N] ints identifying the images (default 0..N-1), e.g. the
      examples' indices in their dataset, so that any subset can be decrypted.
    padding: "none" (default) or "edge" (pad H, W up to the block size).
    **options: `generate_key` options ({', '.join(option_names) or 'none'}).

  Returns:
    The encrypted batch, same dtype; same shape unless edge-padded.
  """
  encrypt_per_image.__name__ = "encrypt_per_image"
  if decrypt_keys is None:
    return encrypt_per_image, None
  decrypt_per_image.__doc__ = f"""Inverse of `{scheme}.encrypt_per_image` (same key, indices, options).

  Args:
    key: the JAX PRNG key used to encrypt.
    images: [N, H, W, C] encrypted batch.
    indices: the same [N] indices used to encrypt (default 0..N-1).
    image_shape: the [H, W, C] of the original images if they were edge-padded
      (the result is cropped back to it); default: the shape of `images`.
    **options: the `generate_key` options used to encrypt.

  Returns:
    [N, H, W, C] uint8 plain images.
  """
  decrypt_per_image.__name__ = "decrypt_per_image"
  return encrypt_per_image, decrypt_per_image


def expect_key(cipher_key: Any, key_type: type, scheme: str) -> None:
  if not isinstance(cipher_key, key_type):
    got = type(cipher_key).__name__
    hint = " (a JAX PRNG key: make a cipher key with generate_key first)" if hasattr(
        cipher_key, "dtype") else ""
    raise TypeError(f"{scheme} needs a {key_type.__name__}, got {got}{hint}")


def encrypt_with(run: Callable, cipher_key: Any, images: Any, *, padding: str = "none") -> jax.Array:
  """Checks/pads images against the key, then runs a `batched` transform."""
  images = fit_images(cipher_key.geometry, images, padding=padding, decrypting=False)
  return run(cipher_key, images)


def decrypt_with(run: Callable, cipher_key: Any, images: Any, *, dtype: Any = np.uint8) -> jax.Array:
  """Checks cipher images against the key, runs the inverse, crops any padding."""
  images = fit_images(cipher_key.geometry, images, padding="none", decrypting=True, dtype=dtype)
  return crop_to_key(cipher_key.geometry, run(cipher_key, images))
