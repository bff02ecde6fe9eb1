"""Jigsaw-puzzle solver against block-position scrambling (greedy, edge compatibility).

The ciphertext's blocks are the pieces; the grid (H/B x W/B) is known. The
dissimilarity of piece j placed right of piece i is the squared error of
predicting each one's boundary column by linear extrapolation from the other
(`2 * last - second_last`, both ways), and likewise for j below i; the whole
[nb, nb] matrices are computed at once. The solver fills the grid in raster
order, each slot taking the unused piece that fits its left and upper
neighbours best, from every possible top-left piece in parallel (vectorised
over seeds), and keeps the arrangement of least total dissimilarity.

This works against schemes that only move blocks (block scrambling); any
per-block transform that changes a block's edges (ELE's per-block LE, the
ViT cipher's pixel shuffle, EtC's rotations, flips and negative-positive)
leaves the edge measure meaningless, which the security suite measures.

Scores: `placement_accuracy` is the share of block positions whose
recovered block equals the plain block there (identical blocks, such as
uniform background, are interchangeable), and SSIM.

Example:
  >>> import numpy as np
  >>> from lie_jax.attacks import jigsaw
  >>> yy, xx = np.mgrid[0:16, 0:16]
  >>> image = (8 * yy + 3 * xx).astype(np.uint8)[..., None]
  >>> blocks = jigsaw.blockify(image, block_size=4)
  >>> scrambled = jigsaw.unblockify(blocks[::-1], image_shape=image.shape, block_size=4)
  >>> solved = jigsaw.solve(scrambled, block_size=4)
  >>> float(jigsaw.placement_accuracy(solved, image, block_size=4))
  1.0
"""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike

from lie_jax.ciphers import blockify
from lie_jax.ciphers import unblockify


def _pieces(image: np.ndarray, block_size: int) -> np.ndarray:
  """[H, W, C] -> [nb, B, B, C] float64 pieces in row-major block order."""
  h, w, c = image.shape
  b = block_size
  return np.asarray(blockify(image, block_size=b), np.float64).reshape(-1, b, b, c)


def dissimilarities(pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Prediction-based edge dissimilarities of every ordered pair of pieces.

  Args:
    pieces: [nb, B, B, C] float, B >= 2.

  Returns:
    (right, below): [nb, nb] float64; right[i, j] is the cost of piece j
    placed right of piece i, below[i, j] of j placed below i; inf on the diagonal.
  """
  if pieces.shape[1] < 2:
    raise ValueError("the jigsaw solver needs blocks of at least 2x2 pixels")

  def cost(near_a, far_a, near_b, far_b):
    # Piece a's edge predicts piece b's and vice versa: [nb, k, C] edges.
    pred_b = 2 * near_a - far_a
    pred_a = 2 * near_b - far_b
    d = ((pred_b[:, None] - near_b[None]) ** 2).sum((2, 3))
    d += ((pred_a[None] - near_a[:, None]) ** 2).sum((2, 3))
    np.fill_diagonal(d, np.inf)
    return d

  right = cost(pieces[:, :, -1], pieces[:, :, -2], pieces[:, :, 0], pieces[:, :, 1])
  below = cost(pieces[:, -1], pieces[:, -2], pieces[:, 0], pieces[:, 1])
  return right, below


def arrange(right: np.ndarray, below: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
  """Greedy raster placement from every seed; returns the best [nb] piece order.

  Args:
    right, below: [nb, nb] dissimilarities (see `dissimilarities`).
    grid: (rows, columns) of blocks, rows * columns = nb.

  Returns:
    [nb] int: the piece placed at every slot (row-major).
  """
  gh, gw = grid
  nb = right.shape[0]
  seeds = np.arange(nb)
  placed = np.zeros((nb, nb), np.int64)
  placed[:, 0] = seeds
  used = np.zeros((nb, nb), bool)
  used[seeds, seeds] = True
  total = np.zeros(nb)
  for slot in range(1, gh * gw):
    r, c = divmod(slot, gw)
    cost = np.zeros((nb, nb))
    if c:
      cost += right[placed[:, slot - 1]]
    if r:
      cost += below[placed[:, slot - gw]]
    cost[used] = np.inf
    pick = cost.argmin(axis=1)
    total += cost[seeds, pick]
    placed[:, slot] = pick
    used[seeds, pick] = True
  return placed[total.argmin()]


def solve(images: ArrayLike, *, block_size: int) -> np.ndarray:
  """Reassembles block-scrambled images.

  Args:
    images: [H, W, C] or [N, H, W, C] uint8 scrambled images (B divides H, W).
    block_size: B.

  Returns:
    The reassembled images, uint8, same shape.
  """
  images = np.asarray(images)
  single = images.ndim == 3
  batch = images[None] if single else images
  _, h, w, c = batch.shape
  if h % block_size or w % block_size:
    raise ValueError(f"image size {h}x{w} is not divisible by block_size={block_size}")
  grid = (h // block_size, w // block_size)
  out = np.empty_like(batch)
  for i, image in enumerate(batch):
    right, below = dissimilarities(_pieces(image, block_size))
    order = arrange(right, below, grid)
    blocks = np.asarray(blockify(image, block_size=block_size))
    out[i] = np.asarray(unblockify(blocks[order], image_shape=(h, w, c),
                                   block_size=block_size))
  return out[0] if single else out


def placement_accuracy(recovered: ArrayLike, plain: ArrayLike, *, block_size: int) -> np.ndarray:
  """Share of block positions whose recovered block equals the plain block there.

  Args:
    recovered: [H, W, C] or [N, H, W, C] images.
    plain: the plain images, same shape.
    block_size: B.

  Returns:
    float64 [] or [N] in [0, 1].
  """
  rb = np.asarray(blockify(np.asarray(recovered), block_size=block_size))
  pb = np.asarray(blockify(np.asarray(plain), block_size=block_size))
  return (rb == pb).all(-1).mean(-1)
