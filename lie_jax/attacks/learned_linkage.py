"""Learned linkage: which known scan is this ciphertext, when the attacker's copy is not the
very file that was encrypted?

`lie_jax.attacks.linkage` compares what the key cannot change exactly (its L1 distance is 0
for the plaintext), which is the strongest test against the exact file but brittle against
another copy: a scan moved by a pixel, re-exposed or acquired again no longer has the same
invariants. This attacker learns a metric on the same key-invariant features instead. From
its own images (a public dataset, never the victims) it draws pairs (an image, a copy as it
expects its copies to differ: `copy_fn`) and trains a set encoder so that the two embed close
and other images far (a symmetric InfoNCE loss over the batch). It then ranks the candidates
for each ciphertext by the cosine similarity of their embeddings.

The features are `linkage.invariants` cut into rows: per block (per pixel for PE) of the
image, as an unordered set where the key scrambles the blocks (ELE, EtC, ViT) and with the
block's position appended where it does not (LE, block-wise, PE). The encoder is a DeepSets
network (a shared MLP per row, mean and max over the rows, a linear map, unit norm), so a
ciphertext embeds exactly as its plaintext does, whatever the key (tested): training needs no
encryption at all, and per-image keys change nothing.

Example:
  >>> import numpy as np
  >>> from lie_jax.attacks import learned_linkage
  >>> public = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
  >>> noisy = lambda x, seed: np.clip(x + np.random.default_rng(seed).integers(
  ...     -2, 3, x.shape), 0, 255).astype(np.uint8)
  >>> model = learned_linkage.train(public, scheme="etc", options={"block_size": 4},
  ...                               copy_fn=noisy, steps=5, batch_size=16)
  >>> learned_linkage.scores(public[:3], public[:5], model).shape
  (3, 5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike

from lie_jax import ciphers
from lie_jax.attacks import linkage

SCHEMES = linkage.INVARIANT_SCHEMES
# Schemes whose invariants keep each block (pixel) at its position: the row's place is a feature.
POSITIONAL = ("le", "blockwise", "pe")
WIDTH = 128
EMBEDDING = 64


def _options(scheme: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
  """The scheme's options with its defaults (checked in full by `linkage.invariants`)."""
  if scheme not in SCHEMES:
    raise ValueError(f"learned linkage covers {list(SCHEMES)}, not {scheme!r}")
  return ciphers.get_scheme(scheme).check_options(dict(options or {}))


def _rows(scheme: str, options: Mapping[str, Any], shape: tuple[int, ...]) -> int:
  """How many rows (blocks, or pixels for PE) one image's invariants hold."""
  h, w = shape[:2]
  if scheme == "pe":
    return h * w
  b = options["block_size"]
  return (h // b) * (w // b)


def feature_sets(images: ArrayLike, *, scheme: str,
                 options: Mapping[str, Any] | None = None) -> np.ndarray:
  """float32 [N, R, D]: each image's key-invariant features as R rows of D values in [0, 1]
  (blocks, or pixels for PE), the row's position (y, x in [0, 1]) appended for the schemes in
  POSITIONAL. Equal for a ciphertext and its plaintext, for every key.

  Raises:
    ValueError: a scheme not in SCHEMES, bad options or images (`linkage.invariants`).
  """
  x = np.asarray(images)
  opts = _options(scheme, options)
  inv = linkage.invariants(x, scheme=scheme, options=opts).astype(np.float32)
  rows = _rows(scheme, opts, x.shape[1:])
  feats = inv.reshape(len(x), rows, -1)
  if scheme in ("le", "ele"):  # nibble-value counts over a block's 2 * B * B * C nibbles
    feats = feats / (2 * opts["block_size"] ** 2 * x.shape[-1])
  else:
    feats = feats / 255.0
  if scheme in POSITIONAL:
    h, w = x.shape[1:3]
    step = 1 if scheme == "pe" else opts["block_size"]
    gy, gx = np.meshgrid(np.linspace(0, 1, h // step), np.linspace(0, 1, w // step),
                         indexing="ij")
    where = np.broadcast_to(np.stack([gy, gx], -1).reshape(1, rows, 2), (len(x), rows, 2))
    feats = np.concatenate([feats, where.astype(np.float32)], axis=-1)
  return np.ascontiguousarray(feats, dtype=np.float32)


class SetEncoder(nnx.Module):
  """DeepSets: a shared two-layer MLP per row, mean and max over rows, a linear map to
  `embedding` dimensions, unit norm. [N, R, D] -> [N, embedding]."""

  def __init__(self, features: int, *, width: int = WIDTH, embedding: int = EMBEDDING,
               rngs: nnx.Rngs):
    self.row1 = nnx.Linear(features, width, rngs=rngs)
    self.row2 = nnx.Linear(width, width, rngs=rngs)
    self.out = nnx.Linear(2 * width, embedding, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = nnx.relu(self.row2(nnx.relu(self.row1(x))))
    z = self.out(jnp.concatenate([h.mean(axis=1), h.max(axis=1)], axis=-1))
    return z / (jnp.linalg.norm(z, axis=-1, keepdims=True) + 1e-8)


@dataclasses.dataclass
class LearnedLinkage:
  """A trained attacker: its encoder, the scheme and options it was trained for, and the
  training history (loss per logged step)."""
  encoder: SetEncoder
  scheme: str
  options: dict[str, Any]
  history: dict[str, list[float]]


def _info_nce(encoder: SetEncoder, a: jax.Array, b: jax.Array, temperature: float) -> jax.Array:
  """Symmetric InfoNCE: row i of a must pick row i of b among the batch, and back."""
  logits = encoder(a) @ encoder(b).T / temperature
  labels = jnp.arange(len(a))
  return 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean())


def train(public_images: ArrayLike, *, scheme: str, copy_fn: Callable[[np.ndarray, int],
                                                                      np.ndarray],
          options: Mapping[str, Any] | None = None, steps: int = 2000, batch_size: int = 128,
          learning_rate: float = 1e-3, temperature: float = 0.1, seed: int = 0,
          copies_per_image: int | None = None, progress: bool = False) -> LearnedLinkage:
  """Trains the attacker on its own images.

  Args:
    public_images: [N, H, W, C] uint8 images the attacker holds (never the victims), N >= 2.
    scheme: a name in SCHEMES; options: its options (block size, ...).
    copy_fn: (images [n, H, W, C] uint8, seed) -> the copies the attacker expects to hold of
      them (same shape): how a second copy of a scan differs from the encrypted one.
    steps, batch_size, learning_rate, temperature, seed: the training (Adam, InfoNCE).
    copies_per_image: None draws fresh copies of every batch (copy_fn at every step); k
      draws k copies of every image once, before training, and samples among them (far
      cheaper where copy_fn is slow, as at 224 px; for few images, a fixed pool).
    progress: a progress bar.

  Raises:
    ValueError: a scheme not in SCHEMES, fewer than 2 images, steps < 1, or a copy_fn
      that changes the images' shape or dtype.
  """
  x = np.asarray(public_images)
  if x.ndim != 4 or x.dtype != np.uint8 or len(x) < 2:
    raise ValueError(f"public_images must be [N >= 2, H, W, C] uint8, got {x.dtype} {x.shape}")
  if steps < 1 or batch_size < 2:
    raise ValueError(f"steps >= 1 and batch_size >= 2, got {steps} and {batch_size}")
  opts = _options(scheme, options)
  dims = feature_sets(x[:1], scheme=scheme, options=opts).shape[-1]
  encoder = SetEncoder(dims, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(encoder, optax.adam(learning_rate), wrt=nnx.Param)

  @nnx.jit
  def step(encoder, optimizer, a, b):
    loss, grads = nnx.value_and_grad(_info_nce)(encoder, a, b, temperature)
    optimizer.update(encoder, grads)
    return loss

  rng = np.random.default_rng(seed)
  batch = min(batch_size, len(x))

  def copies(images: np.ndarray) -> np.ndarray:
    copied = np.asarray(copy_fn(images, int(rng.integers(2**31))))
    if copied.shape != images.shape or copied.dtype != np.uint8:
      raise ValueError(f"copy_fn returned {copied.dtype} {copied.shape} for uint8 "
                       f"{images.shape}: it must keep the shape and dtype")
    return copied

  if copies_per_image is not None:
    if copies_per_image < 1:
      raise ValueError(f"copies_per_image must be None or >= 1, got {copies_per_image}")
    anchors = feature_sets(x, scheme=scheme, options=opts)
    pool = np.stack([feature_sets(copies(x), scheme=scheme, options=opts)
                     for _ in range(copies_per_image)], axis=1)  # [N, k, R, D]
  history: dict[str, list[float]] = {"step": [], "loss": []}
  bar = range(steps)
  if progress:
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(bar, desc=f"learned linkage ({scheme})")
  for i in bar:
    chosen = rng.choice(len(x), batch, replace=False)
    if copies_per_image is None:
      a = feature_sets(x[chosen], scheme=scheme, options=opts)
      b = feature_sets(copies(x[chosen]), scheme=scheme, options=opts)
    else:
      a, b = anchors[chosen], pool[chosen, rng.integers(copies_per_image, size=batch)]
    loss = step(encoder, optimizer, a, b)
    if i % 50 == 0 or i == steps - 1:
      history["step"].append(i)
      history["loss"].append(float(loss))
  return LearnedLinkage(encoder, scheme, opts, history)


@nnx.jit
def _forward(encoder: SetEncoder, features: jax.Array) -> jax.Array:
  return encoder(features)


def embed(images: ArrayLike, model: LearnedLinkage, *, batch_size: int = 256) -> np.ndarray:
  """float32 [N, EMBEDDING] unit embeddings of plain images or ciphertexts of model.scheme."""
  x = np.asarray(images)
  return np.concatenate([
      np.asarray(_forward(model.encoder, feature_sets(x[i:i + batch_size], scheme=model.scheme,
                                                     options=model.options)))
      for i in range(0, len(x), batch_size)]) if len(x) else np.zeros((0, EMBEDDING), np.float32)


def scores(ciphertexts: ArrayLike, candidates: ArrayLike, model: LearnedLinkage) -> np.ndarray:
  """float64 [M, N]: the cosine similarity of each ciphertext's and each candidate's
  embeddings (higher: more likely the same scan)."""
  c, p = np.asarray(ciphertexts), np.asarray(candidates)
  if c.shape[1:] != p.shape[1:]:
    raise ValueError(f"ciphertexts and candidates differ in shape: {c.shape[1:]} and "
                     f"{p.shape[1:]}")
  return embed(c, model).astype(np.float64) @ embed(p, model).astype(np.float64).T
