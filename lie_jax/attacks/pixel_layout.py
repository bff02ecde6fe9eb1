"""Ciphertext-only attack on a pixel shuffle shared by the blocks of an image, then the jigsaw.

The ViT cipher (Kiya et al., `lie_jax.ciphers.vit`) moves every block and
shuffles the values inside each block with ONE permutation for all blocks of
the image. A fresh key per image hides the key between images but not within
one: the nb = HW/B^2 blocks of one ciphertext are nb samples of the same
shuffle. In natural images, values that sit next to each other in a block
differ little, in every block; so the mean squared difference of two cipher
positions over the image's blocks (a variogram) is small exactly when their
plain positions are close. This attack reads the block layout off one
ciphertext and then solves the remaining block scrambling as a jigsaw:

1. Distances: D[i, j] = mean over the textured blocks of (z_i - z_j)^2, for
   the d = B*B*C positions of a block, z the block's values standardised.
2. Embedding (Isomap, Tenenbaum et al. 2000): the graph joining each position
   to its k nearest by D (edge length sqrt(D)), shortest paths, classical MDS
   to two dimensions: close to the B x B grid, turned and stretched. Several
   k are tried (NEIGHBOURS) and steps 3's layouts compared by their cost.
3. Snapping: for several turns of the embedding, an optimal assignment of the
   positions to the grid's slots (Hungarian) alternated with an
   affine fit of the embedding to its slots; the cheapest is kept. Then
   pairwise swaps that lower the cost, the sum of D over neighbouring grid
   cells; the layout of least cost over the k tried wins.
4. Channels (RGB): values of one channel at neighbouring pixels are closer
   than values of two channels, so the nearest-neighbour graph falls apart
   into one part per channel (split by mean value when it does not), ordered
   brightest first (R >= G >= B: the jigsaw solver's colour prior for fundus
   photos and H&E slides). Two layouts are made: each channel's grid as in
   2-3, turned onto the first channel's so that the values of one pixel meet;
   and the pixels paired across channels first (optimal assignment) and laid
   out once with the evidence of all channels. The one of lower cost (layout
   costs plus D within each pixel) is kept. A grayscale scan stored as colour
   (equal channels: positions come in identical triples) is laid out by pixel.
5. The layout is found up to the block's dihedral symmetry, the same for all
   blocks: the unshuffled blocks are then the plain blocks turned by one
   common transform, which is a block-scrambled copy of the plain image
   turned as a whole. `lie_jax.attacks.jigsaw.solve` (transforms ("shuffle",))
   places them; a `reference` image (e.g. the attacker's mean image of the
   modality) picks the global orientation.

No key, no other image and no training: each ciphertext is attacked on its
own, so per-image keys do not help. It needs enough blocks for the statistics
(224 x 224 in 16 x 16 blocks: 196 samples of 256 positions recover the layout
exactly on every grayscale scan tried, `benchmarks/jigsaw.py`; RGB on 25 of 43
tiles: it fails where the channels cannot be told apart or the tile is mostly
noisy background); on 28 x 28 images in 4 x 4 blocks the jigsaw step fails for
lack of pieces, as every jigsaw does there, while 7 x 7 blocks (16 pieces)
already rebuild many X-rays exactly.

Example:
  >>> import numpy as np
  >>> from lie_jax.attacks import pixel_layout
  >>> yy, xx = np.mgrid[0:32, 0:32]
  >>> image = (120 + 60 * np.sin(yy / 5.0) * np.cos(xx / 7.0)).astype(np.uint8)[..., None]
  >>> rng = np.random.default_rng(0)
  >>> perm = rng.permutation(16)  # cipher value i is plain value perm[i] of its block
  >>> from lie_jax.ciphers import blockify, unblockify
  >>> cipher = unblockify(blockify(image, block_size=4)[:, perm], image_shape=image.shape,
  ...                     block_size=4)
  >>> order = pixel_layout.recover_layout(cipher, block_size=4)
  >>> float(pixel_layout.layout_adjacency(order, perm, block_size=4, channels=1))
  1.0
"""

from __future__ import annotations

import functools

import numpy as np
from jax.typing import ArrayLike
from scipy import optimize
from scipy import sparse
from scipy.sparse import csgraph

from lie_jax.attacks import jigsaw
from lie_jax.ciphers import blockify
from lie_jax.ciphers import unblockify

# Schemes whose blocks share one value permutation per image, with block scrambling.
SCHEMES = ("vit",)
# Isomap graph degrees tried (the 4 grid neighbours, and up to the 4 diagonal ones); the
# layout with the lowest sum of D over neighbouring grid cells is kept.
NEIGHBOURS = (4, 6, 8)
CHANNEL_NEIGHBOURS = 8  # graph degree that splits RGB positions into channels
TURNS = 24  # turns of the embedding tried in snapping (0 .. 90 degrees)
FIT_ROUNDS = 6  # assignment / affine-fit alternations per turn
SWAP_PASSES = 4  # pairwise-swap refinement passes
FLAT = jigsaw.FLAT  # blocks with a smaller standard deviation (grey levels) are background
# What the layout is found up to (the block's dihedral symmetry, hence the whole image's):
# the transforms to score reconstructions with (`jigsaw.scores`).
SYMMETRY = ("shuffle", "rotate", "flip")


def _check(image: ArrayLike, block_size: int) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"image must be [H, W, C] with C = 1 or 3, got shape {image.shape}")
  h, w, _ = image.shape
  if block_size < 2 or h % block_size or w % block_size:
    raise ValueError(f"block_size must be >= 2 and divide the image ({h}x{w}), got "
                     f"{block_size}")
  if (h // block_size) * (w // block_size) < 2:
    raise ValueError("the image has a single block: there are no statistics to read")
  return image


def position_distances(image: ArrayLike, *, block_size: int) -> np.ndarray:
  """D [d, d]: mean over the image's textured blocks of (z_i - z_j)^2, z a block's values
  standardised (its mean subtracted, divided by its standard deviation).

  Standardising keeps a few high-contrast blocks (a vessel, the edge of the field of view)
  from outweighing the rest; blocks with a standard deviation under FLAT (background) carry
  no layout and are left out (all of them when no block is textured).
  """
  x = blockify(_check(image, block_size).astype(np.float64), block_size=block_size)
  x = x - x.mean(1, keepdims=True)
  spread = x.std(1)
  textured = spread >= FLAT
  if textured.any():
    x = x[textured] / spread[textured, None]
  sq = (x ** 2).mean(0)
  d = sq[:, None] + sq[None, :] - 2.0 * (x.T @ x) / len(x)
  return np.maximum(d, 0.0)


def _nearest(dist: np.ndarray, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
  """(rows, cols) of the graph joining every position to its `neighbours` nearest by D."""
  d = len(dist)
  k = min(neighbours, d - 1)
  nn = np.argpartition(dist + np.diag(np.full(d, np.inf)), k - 1, axis=1)[:, :k]
  return np.repeat(np.arange(d), k), nn.ravel()


def _embed(dist: np.ndarray, neighbours: int) -> np.ndarray:
  """Isomap: kNN graph with edge lengths sqrt(D), geodesic distances, classical MDS -> [d, 2]."""
  d = len(dist)
  rows, cols = _nearest(dist, neighbours)
  # A zero distance (equal values in every block) still joins the two positions.
  lengths = np.sqrt(dist[rows, cols]) + 1e-6
  graph = sparse.coo_matrix((lengths, (rows, cols)), shape=(d, d)).tocsr()
  geo = csgraph.shortest_path(graph, directed=False)
  if not np.isfinite(geo).all():  # disconnected parts (flat regions): put them far apart
    geo[~np.isfinite(geo)] = 2.0 * geo[np.isfinite(geo)].max()
  centre = np.eye(d) - 1.0 / d
  gram = -0.5 * centre @ (geo ** 2) @ centre
  w, v = np.linalg.eigh(gram)
  return v[:, -2:] * np.sqrt(np.maximum(w[-2:], 0.0))


def _snap(points: np.ndarray, block_size: int) -> np.ndarray:
  """Grid slot of every embedded position: [d] cell index (row-major), one position each."""
  gy, gx = np.mgrid[0:block_size, 0:block_size]
  grid = np.stack([gy.ravel(), gx.ravel()], 1).astype(np.float64)
  best = (np.inf, None)
  for theta in np.linspace(0.0, np.pi / 2, TURNS, endpoint=False):
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    z = points @ turn
    lo, hi = np.percentile(z, 1, axis=0), np.percentile(z, 99, axis=0)
    z = (z - lo) / np.maximum(hi - lo, 1e-12) * (block_size - 1)
    design = np.c_[z, np.ones(len(z))]
    for _ in range(FIT_ROUNDS):
      cost = ((z[:, None, :] - grid[None]) ** 2).sum(-1)
      _, slot = optimize.linear_sum_assignment(cost)
      fit, *_ = np.linalg.lstsq(design, grid[slot], rcond=None)
      z = design @ fit
    total = float(cost[np.arange(len(z)), slot].sum())
    if total < best[0]:
      best = (total, slot)
  return best[1]


@functools.lru_cache(maxsize=8)
def _grid_neighbours(block_size: int) -> tuple[np.ndarray, ...]:
  """The 4-neighbour cells of every cell of the B x B grid (row-major), computed once."""
  out = []
  for cell in range(block_size * block_size):
    r, q = divmod(cell, block_size)
    out.append(np.array([(r + dr) * block_size + q + dq
                         for dr, dq in ((0, 1), (1, 0), (0, -1), (-1, 0))
                         if 0 <= r + dr < block_size and 0 <= q + dq < block_size]))
  return tuple(out)


def _refine(order: np.ndarray, dist: np.ndarray, block_size: int) -> np.ndarray:
  """Pairwise swaps of grid cells' positions that lower sum of D over grid neighbours."""
  order = order.copy()  # order[cell] = cipher position there
  nbrs = _grid_neighbours(block_size)
  n = len(order)

  def cost(cell: int, pos: int) -> float:
    return float(dist[pos, order[nbrs[cell]]].sum())

  for _ in range(SWAP_PASSES):
    changed = False
    for a in range(n):
      for b in range(a + 1, n):
        pa, pb = order[a], order[b]
        before = cost(a, pa) + cost(b, pb)
        order[a], order[b] = pb, pa
        after = cost(a, pb) + cost(b, pa)  # a's and b's own pair counts the same both ways
        if after < before - 1e-9:
          changed = True
        else:
          order[a], order[b] = pa, pb
    if not changed:
      break
  return order


def _channel_groups(image: np.ndarray, dist: np.ndarray, block_size: int,
                    neighbours: int) -> list[np.ndarray]:
  """RGB: the cipher positions of each channel, brightest channel first.

  Values of one channel at neighbouring pixels are closer than values of two
  channels, so the nearest-neighbour graph falls apart into one component per
  channel; when it does not, the positions are split by their mean value.
  """
  d, c = len(dist), image.shape[-1]
  rows, cols = _nearest(dist, neighbours)
  graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(d, d))
  count, label = csgraph.connected_components(graph, directed=False)
  means = blockify(image.astype(np.float64), block_size=block_size).mean(0)
  if count == c and (np.bincount(label) == d // c).all():
    groups = [np.flatnonzero(label == g) for g in range(c)]
  else:
    by_mean = np.argsort(-means)
    groups = [by_mean[g * (d // c):(g + 1) * (d // c)] for g in range(c)]
  return sorted(groups, key=lambda g: -means[g].mean())


def _dihedral_slots(block_size: int) -> list[np.ndarray]:
  """The 8 symmetries of the B x B grid as slot permutations."""
  slots = np.arange(block_size * block_size).reshape(block_size, block_size)
  return [jigsaw.dihedral(slots[..., None], k)[..., 0].ravel() for k in range(8)]


def layout_cost(order: np.ndarray, dist: np.ndarray, block_size: int) -> float:
  """Sum of D over the neighbouring cells of a one-channel layout (each pair once)."""
  return float(sum(dist[order[cell], order[nbrs[nbrs > cell]]].sum()
                   for cell, nbrs in enumerate(_grid_neighbours(block_size))))


def _gray_layout(dist: np.ndarray, block_size: int, neighbours: tuple[int, ...],
                 refine: bool) -> np.ndarray:
  best = (np.inf, None)
  for k in neighbours:
    cell = _snap(_embed(dist, k), block_size)
    order = np.empty(len(cell), np.int64)
    order[cell] = np.arange(len(cell))
    if refine:
      order = _refine(order, dist, block_size)
    cost = layout_cost(order, dist, block_size)
    if cost < best[0]:
      best = (cost, order)
  return best[1]


def recover_layout(image: ArrayLike, *, block_size: int,
                   neighbours: tuple[int, ...] = NEIGHBOURS, refine: bool = True) -> np.ndarray:
  """The plain slot of every cipher position, up to the block's dihedral symmetry.

  Args:
    image: [H, W, C] ciphertext (uint8; C = 1 or 3) whose blocks share one value
      permutation, in "hwc" order within the block.
    block_size: B.
    neighbours: Isomap graph degrees to try.
    refine: run the pairwise-swap refinement.

  Returns:
    order [d] int: `order[s]` is the cipher position (index into the block's
    B*B*C values, "hwc") that goes to plain slot s; unshuffle a block with
    `block[order]`. RGB: of two layouts, each channel's grid found on its own
    and turned onto the first (brightest) channel's, or the pixels paired
    across channels first and laid out once, the one of lower cost.
  """
  image = _check(image, block_size)
  neighbours = tuple(neighbours)
  if not neighbours or any(int(k) != k or k < 1 for k in neighbours):
    raise ValueError(f"neighbours must be positive integers, got {neighbours!r}")
  channels = image.shape[-1]
  dist = position_distances(image, block_size=block_size)
  if channels == 1:
    return _gray_layout(dist, block_size, neighbours, refine)
  equal = _equal_channels(image, block_size)
  if equal is not None:  # which copy is which channel does not matter
    return _pixel_layout(dist, equal, block_size, neighbours, refine)
  groups = _channel_groups(image, dist, block_size, CHANNEL_NEIGHBOURS)
  candidates = [_per_channel_layout(dist, groups, block_size, neighbours, refine),
                _pixel_layout(dist, _pair_pixels(dist, groups), block_size, neighbours,
                              refine)]
  return min(candidates, key=lambda order: _rgb_cost(order, dist, block_size, channels))


def _rgb_cost(order: np.ndarray, dist: np.ndarray, block_size: int, channels: int) -> float:
  """Each channel's layout cost plus D between the values given to one pixel."""
  within = sum(layout_cost(order[c::channels], dist, block_size) for c in range(channels))
  pixel = sum(float(dist[order[0::channels], order[c::channels]].sum())
              for c in range(1, channels))
  return within + pixel


def _per_channel_layout(dist: np.ndarray, groups: list[np.ndarray], block_size: int,
                        neighbours: tuple[int, ...], refine: bool) -> np.ndarray:
  """Each channel's grid on its own, turned so that its values meet the first channel's."""
  grids = [g[_gray_layout(dist[np.ix_(g, g)], block_size, neighbours, refine)]
           for g in groups]
  channels = len(groups)
  order = np.empty(len(dist), np.int64)
  order[0::channels] = grids[0]
  for c in range(1, channels):
    order[c::channels] = min((grids[c][s] for s in _dihedral_slots(block_size)),
                             key=lambda g: float(dist[grids[0], g].sum()))
  return order


def _pair_pixels(dist: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
  """[d / C, C]: each first-channel position with the closest position of every other channel
  (optimal assignment): the cipher positions of one pixel, when the pairing succeeds."""
  pixels = [groups[0]]
  for g in groups[1:]:
    _, col = optimize.linear_sum_assignment(dist[np.ix_(groups[0], g)])
    pixels.append(g[col])
  return np.stack(pixels, 1)


def _pixel_layout(dist: np.ndarray, pixels: np.ndarray, block_size: int,
                  neighbours: tuple[int, ...], refine: bool) -> np.ndarray:
  """One grid for the pixels ([d / C, C] cipher positions each), with the evidence of all
  channels summed. Better where one channel alone is too noisy; worse where the pairing
  fails."""
  joint = sum(dist[np.ix_(pixels[:, c], pixels[:, c])] for c in range(pixels.shape[1]))
  return pixels[_gray_layout(joint, block_size, neighbours, refine)].reshape(-1)


def _equal_channels(image: np.ndarray, block_size: int) -> np.ndarray | None:
  """[d / C, C] positions of each pixel when every pixel's channels are equal in every block
  (a grayscale scan stored as colour), else None."""
  columns = blockify(image, block_size=block_size).T
  _, inverse, counts = np.unique(columns, axis=0, return_inverse=True, return_counts=True)
  c = image.shape[-1]
  if len(counts) != len(columns) // c or not (counts == c).all():
    return None
  return np.argsort(inverse.reshape(-1), kind="stable").reshape(-1, c)


def unshuffle(image: ArrayLike, order: ArrayLike, *, block_size: int) -> np.ndarray:
  """Every block of `image` re-ordered by `order` (from `recover_layout`)."""
  image = np.asarray(image)
  blocks = blockify(image, block_size=block_size)[:, np.asarray(order)]
  return np.asarray(unblockify(blocks, image_shape=image.shape, block_size=block_size))


def layout_adjacency(order: ArrayLike, perm: ArrayLike, *, block_size: int,
                     channels: int) -> float:
  """Share of the recovered grid's neighbouring cells whose plain pixels are neighbours.

  `perm` is the true value permutation (cipher value i is plain value perm[i] of its block,
  "hwc"). 1.0 means the layout is right up to the block's symmetry.
  """
  order, perm = np.asarray(order), np.asarray(perm)
  plain_pixel = perm[order].reshape(block_size * block_size, channels)[:, 0] // channels
  rows, cols = np.divmod(plain_pixel, block_size)
  good = total = 0
  for cell, nbrs in enumerate(_grid_neighbours(block_size)):
    for other in nbrs[nbrs > cell]:
      total += 1
      good += int(abs(rows[cell] - rows[other]) + abs(cols[cell] - cols[other]) == 1)
  return good / total


def attack(images: ArrayLike, *, block_size: int, reference: ArrayLike | None = None,
           return_layouts: bool = False,
           progress: bool = False) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
  """Recovers block-scrambled, pixel-shuffled images (the ViT cipher), each on its own.

  Args:
    images: [H, W, C] or [N, H, W, C] uint8 ciphertexts.
    block_size: B.
    reference: optional [H, W, C] image of the kind expected, fixing the global orientation.
    return_layouts: also return every image's `recover_layout` order.
    progress: show a progress bar.

  Returns:
    The reconstructions, same shape and dtype: the plain images up to one dihedral
    symmetry of the whole image (when the layout and the jigsaw succeed); with
    `return_layouts`, (reconstructions, list of orders).
  """
  images = np.asarray(images)
  single = images.ndim == 3
  batch = images[None] if single else images
  if batch.ndim != 4:
    raise ValueError(f"images must be [H, W, C] or [N, H, W, C], got shape {images.shape}")
  loop = range(len(batch))
  if progress:
    from tqdm.auto import tqdm
    loop = tqdm(loop, desc="pixel layout + jigsaw")
  ref = None if reference is None else np.asarray(reference, np.float64)
  out = np.empty_like(batch)
  layouts = []
  for i in loop:
    layouts.append(recover_layout(batch[i], block_size=block_size))
    blocks = unshuffle(batch[i], layouts[-1], block_size=block_size)
    solved = jigsaw.solve(blocks, block_size=block_size, transforms=("shuffle",))
    if ref is not None:  # the global symmetry closest to the reference
      options = [np.ascontiguousarray(jigsaw.dihedral(solved, k)) for k in range(8)]
      solved = min(options, key=lambda o: float(((o - ref) ** 2).mean()))
    out[i] = solved
  result = out[0] if single else out
  return (result, layouts) if return_layouts else result
