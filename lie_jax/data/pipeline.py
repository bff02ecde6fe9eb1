"""Deterministic, resumable batches through grain, and augmentation valid for ciphers.

Training order. Epoch e visits the N examples of a split in the order
`np.random.default_rng([seed, 0, e]).permutation(N)`, cut into
`steps_per_epoch(N, batch_size)` batches; the last incomplete batch is dropped
(a different remainder each epoch). Batch s of a run is batch
s % steps_per_epoch of epoch s // steps_per_epoch: a pure function of
(seed, s), computed directly, so `train_batches(..., start_step=s)` resumes
exactly where an uninterrupted run would be, without replaying earlier steps.
`train_batch_indices` gives the example indices of any step.

grain. The batches are a `grain.MapDataset` over the run's step numbers
(`MapDataset.range(start_step, ...)`), each step mapped to its batch by one
indexing of the split's images: a vectorised numpy gather for in-memory
splits, a read (and decode) of just those images for lazy ones
(`lie_jax.data.lazy`); `to_iter_dataset` prefetches a few batches, in order,
in background threads.

Several hosts. With `shard_index=i, shard_count=n` (a training process passes
`jax.process_index()` and `jax.process_count()`) each call returns only part i
of every global batch: examples [i * B / n, (i + 1) * B / n) of it, the part
that process's devices hold. Only those images are read, so each process
reads 1/n of the data; the n parts together are the unsharded batch.

Augmentation and ciphers. `augment(rng, images) -> images` runs on the
gathered uint8 [B, H, W, C] batch with `rng = np.random.default_rng([seed, 1, s])`,
so it too is a pure function of (seed, step). Which images it may see depends
on the cipher:

  * Pixel-wise ciphers (PE) transform each pixel
    in place with that pixel's key. A flip or integer shift only moves whole
    pixels, so augmenting a ciphertext equals encrypting the augmented plain
    image under the key moved the same way (at the edges, edge padding repeats
    the edge pixels' key). With a fresh random key per image, PE's defining
    mode, that is just another random key: augmenting PE ciphertexts is valid.
  * Block ciphers (LE, ELE, EtC, ViT, blockwise, huang2022, ...) shuffle
    and transform pixels inside and across blocks. A shift by other than a
    multiple of the block size straddles block boundaries and a flip reverses
    pixels inside every block; no key reproduces either. Augment block-cipher
    data before encryption (the data owner does it on plain images, then
    encrypts), or not at all: never pass `augment` for a split that holds
    block ciphertexts.

Example:
  >>> import numpy as np
  >>> from lie_jax import data
  >>> ds = data.as_array_dataset(np.zeros((10, 8, 8), np.uint8), np.arange(10) % 2)
  >>> batches = data.train_batches(ds, batch_size=4, seed=0)
  >>> batch = next(batches)
  >>> batch["image"].shape, batch["label"].dtype, batch["index"].dtype
  ((4, 8, 8, 1), dtype('int32'), dtype('int32'))
  >>> data.steps_per_epoch(10, 4)
  2
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from lie_jax.data.sources import ArrayDataset
from lie_jax.data.sources import _check_array_dataset

Augment = Callable[[np.random.Generator, np.ndarray], np.ndarray]

# The first entropy word after the seed separates the two random streams.
_ORDER_STREAM, _AUGMENT_STREAM = 0, 1
# In-order prefetch of a few batches; grain's defaults (16 threads, 500
# elements) would hold hundreds of batches in memory.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


def _nonnegative_int(value: Any, name: str) -> int:
  try:
    value = operator.index(value)
  except TypeError:
    raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
  if value < 0:
    raise ValueError(f"{name} must be >= 0, got {value}")
  return value


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches in one epoch: num_examples // batch_size (the remainder is dropped).

  Raises:
    ValueError: batch_size < 1, or larger than num_examples (no full batch).
  """
  num_examples = _nonnegative_int(num_examples, "num_examples")
  batch_size = _nonnegative_int(batch_size, "batch_size")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if batch_size > num_examples:
    raise ValueError(f"batch_size {batch_size} is larger than the {num_examples} examples: "
                     "no full training batch")
  return num_examples // batch_size


def epoch_order(num_examples: int, *, seed: int, epoch: int) -> np.ndarray:
  """The order in which training epoch `epoch` visits the examples.

  Returns:
    [num_examples] int64, `np.random.default_rng([seed, 0, epoch]).permutation(num_examples)`.
  """
  seed = _nonnegative_int(seed, "seed")
  epoch = _nonnegative_int(epoch, "epoch")
  return np.random.default_rng([seed, _ORDER_STREAM, epoch]).permutation(num_examples)


def train_batch_indices(num_examples: int, *, batch_size: int, seed: int,
                        step: int) -> np.ndarray:
  """Indices (into the split) of the examples in training batch `step`.

  Returns:
    [batch_size] int32: slots [b * batch_size, (b + 1) * batch_size) of
    `epoch_order(num_examples, seed=seed, epoch=step // spe)`, b = step % spe,
    spe = steps_per_epoch(num_examples, batch_size).
  """
  per_epoch = steps_per_epoch(num_examples, batch_size)
  epoch, slot = divmod(_nonnegative_int(step, "step"), per_epoch)
  order = epoch_order(num_examples, seed=seed, epoch=epoch)
  return order[slot * batch_size:(slot + 1) * batch_size].astype(np.int32)


class _TrainBatch:
  """Step number -> training batch (the map function of the grain dataset)."""

  def __init__(self, dataset: ArrayDataset, batch_size: int, seed: int,
               augment: Augment | None, part: slice = slice(None)):
    self._dataset = dataset
    self._part = part
    self._batch_size = batch_size
    self._seed = seed
    self._augment = augment
    self._per_epoch = steps_per_epoch(len(dataset.labels), batch_size)
    self._cached_order: tuple[int, np.ndarray] | None = None  # (epoch, order)

  def _order(self, epoch: int) -> np.ndarray:
    cached = self._cached_order  # one read: prefetch threads may replace it meanwhile
    if cached is None or cached[0] != epoch:
      cached = (epoch, epoch_order(len(self._dataset.labels), seed=self._seed, epoch=epoch))
      self._cached_order = cached
    return cached[1]

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    epoch, slot = divmod(step, self._per_epoch)
    index = self._order(epoch)[slot * self._batch_size:(slot + 1) * self._batch_size]
    index = index[self._part]
    images = self._dataset.images[index]
    if self._augment is not None:
      rng = np.random.default_rng([self._seed, _AUGMENT_STREAM, step])
      augmented = self._augment(rng, images)
      if (not isinstance(augmented, np.ndarray) or augmented.shape != images.shape
          or augmented.dtype != images.dtype):
        raise ValueError(f"augment must return a {images.dtype} array of shape {images.shape}, "
                         f"got {getattr(augmented, 'dtype', type(augmented).__name__)} "
                         f"{getattr(augmented, 'shape', '')}")
      images = augmented
    return {"image": images, "label": self._dataset.labels[index],
            "index": index.astype(np.int32)}


def _shard_part(batch_size: int, shard_index: Any, shard_count: Any) -> slice:
  """The slice of a global batch that shard `shard_index` of `shard_count` holds."""
  shard_count = _nonnegative_int(shard_count, "shard_count")
  shard_index = _nonnegative_int(shard_index, "shard_index")
  if shard_count < 1 or shard_index >= shard_count:
    raise ValueError(f"shard_index must be in [0, shard_count), got {shard_index} of "
                     f"{shard_count}")
  if batch_size % shard_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by the {shard_count} shards "
                     "(processes)")
  part = batch_size // shard_count
  return slice(shard_index * part, (shard_index + 1) * part)


def train_batches(dataset: ArrayDataset, *, batch_size: int, seed: int, start_step: int = 0,
                  augment: Augment | None = None, shard_index: int = 0,
                  shard_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Endless training batches in a deterministic, resumable order.

  Batch s (counting from 0 over the whole run, across epochs) depends only on
  (dataset, batch_size, seed, s); see the module docstring for the exact order.

  Args:
    dataset: the training split (images [N, H, W, C] uint8, labels [N] int32).
    batch_size: examples per batch, at most N.
    seed: non-negative int; fixes every epoch's order and the augmentation.
    start_step: the first step to produce: a run resumed at step s passes s and
      sees the batches an uninterrupted run would (no replay of earlier steps).
    augment: None, or `augment(rng, images) -> images` on uint8 [B, H, W, C]
      (same shape and dtype), e.g. `random_flip_and_shift`; rng is a
      `np.random.Generator` seeded by (seed, step). See the module docstring
      for which ciphertexts it may be applied to.
    shard_index, shard_count: return only part shard_index of shard_count of
      every global batch (B / shard_count examples, see the module docstring);
      the default is the whole batch.

  Returns:
    An endless iterator of dicts, for step start_step, start_step + 1, ...
    (B = batch_size / shard_count): "image" [B, H, W, C] uint8, "label" [B] int32 and
    "index" [B] int32, the examples' indices in `dataset` (e.g. for per-image cipher keys:
    `encrypt_per_image(key, images, indices=...)`).

  Raises:
    TypeError, ValueError: malformed dataset, batch_size, seed or start_step.
  """
  _check_array_dataset(dataset, where="train_batches: dataset")
  seed = _nonnegative_int(seed, "seed")
  start_step = _nonnegative_int(start_step, "start_step")
  if augment is not None and not callable(augment):
    raise TypeError(f"augment must be None or a callable (rng, images) -> images, got "
                    f"{type(augment).__name__}")
  part = _shard_part(batch_size, shard_index, shard_count)
  batch_at = _TrainBatch(dataset, batch_size, seed, augment, part)
  steps = grain.MapDataset.range(start_step, sys.maxsize)
  return iter(steps.map(batch_at).to_iter_dataset(_READ_OPTIONS))


def eval_batches(dataset: ArrayDataset, *, batch_size: int, shard_index: int = 0,
                 shard_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Every example once, in order, in batches of a fixed shape.

  The last batch is padded to `batch_size` by repeating the last example, with
  "mask" False on the padding, so a jitted eval step sees one shape.

  Args:
    dataset: the split (images [N, H, W, C] uint8, labels [N] int32).
    batch_size: examples per batch (>= 1; may exceed N).
    shard_index, shard_count: only part shard_index of every batch, as in
      `train_batches` (the parts of all shards together are the batch).

  Returns:
    An iterator over ceil(N / batch_size) dicts (B = batch_size / shard_count):
      "image": [B, H, W, C] uint8, "label": [B] int32,
      "index": [B] int32 (padding repeats index N - 1),
      "mask": [B] bool, True for real examples.
  """
  _check_array_dataset(dataset, where="eval_batches: dataset")
  batch_size = _nonnegative_int(batch_size, "batch_size")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  num_examples = len(dataset.labels)
  if num_examples == 0:
    raise ValueError("eval_batches: dataset is empty")
  part = _shard_part(batch_size, shard_index, shard_count)

  def batch_at(batch: int) -> dict[str, np.ndarray]:
    position = batch * batch_size + np.arange(batch_size)[part]
    index = np.minimum(position, num_examples - 1).astype(np.int32)
    return {"image": dataset.images[index], "label": dataset.labels[index], "index": index,
            "mask": position < num_examples}

  batches = grain.MapDataset.range(math.ceil(num_examples / batch_size)).map(batch_at)
  return iter(batches.to_iter_dataset(_READ_OPTIONS))


def random_flip_and_shift(rng: np.random.Generator, images: np.ndarray, *, max_shift: int = 2,
                          flip: bool = True) -> np.ndarray:
  """Random horizontal flip and integer shift with edge padding, per image.

  Each image is independently mirrored left-right with probability 1/2 (if
  `flip`) and shifted by (dy, dx), each uniform in [-max_shift, max_shift];
  pixels shifted in from outside repeat the nearest edge pixel. Only whole
  pixels move, so it commutes with pixel-wise ciphers (PE) but not with block
  ciphers (see the module docstring). One vectorised gather for the batch.
  Note that a left-right flip of a chest X-ray moves the heart to the other
  side; pass flip=False where laterality matters.

  Args:
    rng: the source of randomness (`train_batches` passes one seeded by (seed, step)).
    images: [B, H, W, C], any dtype.
    max_shift: largest shift in pixels (>= 0).
    flip: whether to flip.

  Returns:
    [B, H, W, C], same dtype as `images`.

  Example:
    >>> import numpy as np
    >>> from lie_jax import data
    >>> x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    >>> y = data.random_flip_and_shift(np.random.default_rng(0), x, max_shift=1)
    >>> y.shape, y.dtype
    ((1, 4, 4, 1), dtype('uint8'))
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
  max_shift = _nonnegative_int(max_shift, "max_shift")
  b = images.shape[0]
  dy, dx = rng.integers(-max_shift, max_shift + 1, size=(2, b))
  mirrored = rng.random(b) < 0.5 if flip else np.zeros(b, bool)
  return flip_and_shift(images, dy, dx, mirrored)


def flip_and_shift(images, dy, dx, mirrored):
  """Image i mirrored left-right where mirrored[i], then shifted by (dy[i], dx[i]) with edge
  padding: one gather, NumPy in and out, or JAX (jit-able; one gather per image, mapped over
  the batch so that a batch-sharded input stays sharded) for JAX arrays."""
  xp = jnp if isinstance(images, jax.Array) else np
  b, h, w = images.shape[:3]
  rows = xp.clip(xp.arange(h)[None, :] - dy[:, None], 0, h - 1)  # [B, H] source row
  cols = xp.clip(xp.arange(w)[None, :] - dx[:, None], 0, w - 1)  # [B, W] source column
  cols = xp.where(mirrored[:, None], w - 1 - cols, cols)
  if xp is jnp:
    return jax.vmap(lambda image, r, c: image[r[:, None], c[None, :]])(images, rows, cols)
  return images[xp.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_flip_and_shift_jax(key: jax.Array, images: jax.Array, *, max_shift: int = 2,
                              flip: bool = True) -> jax.Array:
  """`random_flip_and_shift` in JAX, jit-able: what the server applies to ciphertexts inside
  the train step (`config.data.augment_ciphertexts`), after encryption.

  Valid only where it commutes with the cipher: pixel-wise schemes with a fresh key per image
  (PE), see the module docstring; the trainer refuses it for every other scheme.

  Args:
    key: a JAX PRNG key (the trainer folds the step into the run's seed).
    images: [B, H, W, C], any dtype (the trainer passes the float model inputs).
    max_shift: largest shift in pixels (>= 0).
    flip: whether to flip.

  Returns:
    [B, H, W, C], same dtype as `images`.
  """
  if images.ndim != 4:
    raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
  max_shift = _nonnegative_int(max_shift, "max_shift")
  k_shift, k_flip = jax.random.split(key)
  b = images.shape[0]
  dy, dx = jax.random.randint(k_shift, (2, b), -max_shift, max_shift + 1)
  mirrored = (jax.random.bernoulli(k_flip, 0.5, (b,)) if flip else jnp.zeros(b, bool))
  return flip_and_shift(jnp.asarray(images), dy, dx, mirrored)
