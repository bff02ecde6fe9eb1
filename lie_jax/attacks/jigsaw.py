"""Ciphertext-only jigsaw solver for block-scrambled images, with per-piece transforms.

The ciphertext's blocks are the pieces and the grid (H/B x W/B) is known. Each
piece may also have been rotated, flipped, negated (x -> 255 - x) and had its
colour channels shuffled, as EtC does (Kurihara, Kiya et al.); the solver
chooses every slot's piece AND its variant, following the jigsaw attacks on
EtC images of Chuman, Kurihara and Kiya (ICASSP 2017; IEICE Trans. Inf. &
Syst. 2019) and the solvers they build on:

1. Variants. `transforms` names the per-piece transforms to undo; their
   closure is a group of variants (dihedral part x polarity x colour order),
   at most 8 x 2 x 6 = 96 per piece.
2. Compatibility. The prediction-based dissimilarity of Pomeranz et al.
   (CVPR 2011): each piece's boundary row is extrapolated linearly from the
   other's two boundary rows (`2 * last - second_last`, both ways) and the
   squared errors are summed. For every raw piece i, direction (right, down,
   left, up) and every other piece j in every variant the cost is computed at
   once (one matrix product per direction, values centred on 127.5 so that
   negation is a sign change). Negation is linear, so a negated piece matches
   a negated neighbour exactly as the plain pair does: polarity is decided
   relatively, piece against neighbour, by scoring both polarities of the
   neighbour (as Chuman & Kiya's extended solver treats negated pieces); only
   the global polarity stays open.
3. Placement. Gallagher's tree-based reassembly (CVPR 2012, "Jigsaw puzzles
   with pieces of unknown orientation"): candidate matches (the best few per
   piece side) are taken in order of confidence (a match's cost over the best
   cost of any other piece on that side: mutual best buddies come first) and
   merged Kruskal-style, those that close a 2x2 loop of best matches first
   (the smallest of Son et al.'s loop constraints, ECCV 2014); each merge
   moves and transforms a whole cluster into the other's frame and is refused
   on an overlap or when the union no longer fits the known grid. Uniform
   pieces (background) take no part: they say nothing about where they go.
   Clusters that refused each other but on whose
   relation two or more best matches agree (and no other relation as many)
   are then joined, the smaller one's conflicting pieces released (trim), and
   the merging repeated. The largest cluster is anchored in the grid (the
   offset of least total cost; ties, as content amid uniform background
   makes, go to the most centred content), the other clusters are placed
   whole where they fit best, and the remaining slots are filled greedily,
   the slot with most placed neighbours first ("trim and fill"). A correct
   but shifted layout is thus placed as a whole.
4. The global symmetry. Edge costs cannot tell the whole image from its
   rotations, mirror images, negative or colour reorderings within the
   variant group. The solver picks the global transform that best matches a
   `reference` image when one is given (e.g. the mean training image the
   attacker knows); otherwise by priors of medical images: the darker border
   (fundus, CT and MR backgrounds are black), channel means in the order
   R >= G >= B (fundus photos, H&E slides) and, for orientation, the most
   pieces left as they came.

Scores: `placement_accuracy` is the share of slots whose recovered block
equals the plain block there (absolute position and variant; identical blocks,
such as uniform background, are interchangeable). `neighbour_comparison` is
the share of plain adjacent pairs (right and below) that are adjacent in the
same relation in the recovered image (Cho et al. 2010; Gallagher 2012),
compared by block content so identical blocks count once each; with
`up_to=transforms` it is the best over the global symmetries of those
transforms, as the literature scores puzzles of unknown orientation.
Son et al.'s larger (hierarchical) loops and the genetic solvers are not implemented.

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

import dataclasses
import functools
import itertools
from typing import Sequence

import numpy as np
from jax.typing import ArrayLike

from lie_jax.ciphers import blockify
from lie_jax.ciphers import unblockify

TRANSFORMS = ("shuffle", "rotate", "flip", "negate", "color")
# What each shared-key or per-image block scheme does to a block, in these terms.
SCHEME_TRANSFORMS = {
    "etc": ("shuffle", "rotate", "flip", "negate", "color"),
    "vit": ("shuffle",),
}
DIRECTIONS = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])  # right, down, left, up (dy, dx)
_COLOR_ORDERS = tuple(itertools.permutations(range(3)))
_MGC_REG = 4.0  # gradient variance added (grey levels^2), as dummy gradients do
_EPS = 1.0  # cost floor (pixel^2 units) in the confidence ratio
_KEEP = 0.5  # share of a cluster that must land on free slots to be placed whole
FLAT = 1.0  # pieces with a smaller standard deviation (grey levels) are background
_TIE = 0.01  # fill costs this close (relative) count as a tie


# ------------------------------------------------------------------ variants


def dihedral(a: np.ndarray, d: int) -> np.ndarray:
  """Dihedral element d = 4 * mirror + quarter_turns on axes (-3, -2) of [..., H, W, C].

  A block [B, B, C], a stack of blocks or a whole image [H, W, C] alike (mirror first: the
  columns reversed, then d % 4 quarter turns counter-clockwise).
  """
  if d >= 4:
    a = np.flip(a, axis=-2)
  return np.rot90(a, d % 4, axes=(-3, -2))


@functools.lru_cache(maxsize=8)
def _dihedral_tables() -> tuple[np.ndarray, np.ndarray]:
  """(compose [8, 8] with compose[a, b] = a after b, action [8, 2, 2] on (dy, dx) offsets)."""
  ids = np.arange(9).reshape(3, 3, 1)
  images = [dihedral(ids, d)[..., 0] for d in range(8)]
  compose = np.empty((8, 8), np.int64)
  for a, b in itertools.product(range(8), range(8)):
    ab = dihedral(dihedral(ids, b), a)[..., 0]
    compose[a, b] = next(d for d in range(8) if (images[d] == ab).all())
  action = np.empty((8, 2, 2), np.int64)
  for d in range(8):
    for col, (dy, dx) in enumerate(((1, 0), (0, 1))):
      where = np.argwhere(images[d] == (1 + dy) * 3 + (1 + dx))[0]
      action[d, :, col] = where - 1
  return compose, action


def _check_transforms(transforms: Sequence[str]) -> tuple[str, ...]:
  if isinstance(transforms, str):
    transforms = (transforms,)
  unknown = [t for t in transforms if t not in TRANSFORMS]
  if unknown:
    raise ValueError(f"unknown jigsaw transforms {unknown}; choose from {TRANSFORMS}")
  return tuple(t for t in TRANSFORMS if t in transforms)


@dataclasses.dataclass(frozen=True)
class Variants:
  """The group of piece variants generated by some transforms.

  Attributes:
    dihedral, negate, color: [V] the dihedral element (see `dihedral`),
      polarity and colour order (index into itertools.permutations(range(3)))
      of every variant; variant 0 is the identity.
    compose: [V, V] index of variant a applied after variant b.
    inverse: [V] inverse variant.
  """

  dihedral: np.ndarray
  negate: np.ndarray
  color: np.ndarray
  compose: np.ndarray
  inverse: np.ndarray

  def __len__(self) -> int:
    return len(self.dihedral)


@functools.lru_cache(maxsize=32)
def variants(transforms: tuple[str, ...], channels: int) -> Variants:
  """The closure of `transforms` on [B, B, channels] pieces (colour only for 3 channels)."""
  transforms = _check_transforms(transforms)
  compose_d, _ = _dihedral_tables()
  gens = ([1] if "rotate" in transforms else []) + ([4, 6] if "flip" in transforms else [])
  dih = {0}
  while True:
    more = {int(compose_d[g, d]) for g in gens for d in dih} - dih
    if not more:
      break
    dih |= more
  dih = sorted(dih)
  pols = (0, 1) if "negate" in transforms else (0,)
  cols = range(6) if "color" in transforms and channels == 3 else (0,)
  table = np.array(list(itertools.product(dih, pols, cols)), np.int64)
  index = {tuple(t): i for i, t in enumerate(table.tolist())}
  perm_index = {p: i for i, p in enumerate(_COLOR_ORDERS)}
  n = len(table)
  compose = np.empty((n, n), np.int64)
  for (a, (da, pa, ca)), (b, (db, pb, cb)) in itertools.product(enumerate(table), repeat=2):
    # x[..., pb][..., pa] == x[..., pb[pa]]
    c = perm_index[tuple(np.asarray(_COLOR_ORDERS[cb])[list(_COLOR_ORDERS[ca])])]
    compose[a, b] = index[(int(compose_d[da, db]), pa ^ pb, c)]
  inverse = np.argmax(compose == 0, axis=1)
  return Variants(table[:, 0], table[:, 1], table[:, 2], compose, inverse)


def apply_variant(blocks: np.ndarray, group: Variants, v: int) -> np.ndarray:
  """Variant v of [..., B, B, C] blocks (uint8: negation is 255 - x; float: -x, centred)."""
  out = dihedral(blocks, int(group.dihedral[v]))
  if group.negate[v]:
    out = 255 - out if out.dtype == np.uint8 else -out
  if group.color[v]:
    out = out[..., list(_COLOR_ORDERS[group.color[v]])]
  return out


# ------------------------------------------------------------------ costs


def _pieces(image: np.ndarray, block_size: int) -> np.ndarray:
  """[H, W, C] -> [nb, B, B, C] pieces in row-major block order (input dtype)."""
  c = image.shape[-1]
  b = block_size
  return np.asarray(blockify(image, block_size=b)).reshape(-1, b, b, c)


def dissimilarities(pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Prediction-based edge dissimilarities of every ordered pair of pieces (no variants).

  Args:
    pieces: [nb, B, B, C] float, B >= 2.

  Returns:
    (right, below): [nb, nb] float64; right[i, j] is the cost of piece j
    placed right of piece i, below[i, j] of j placed below i; inf on the diagonal.
  """
  costs = variant_dissimilarities(np.asarray(pieces, np.float64), variants((), 1))
  return costs[0, :, :, 0], costs[1, :, :, 0]


def _side(pieces: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray]:
  """(boundary, next) rows of every piece on side `direction`, flattened to [n, B * C]."""
  n = len(pieces)
  if direction == 0:
    outer, inner = pieces[:, :, -1], pieces[:, :, -2]
  elif direction == 1:
    outer, inner = pieces[:, -1], pieces[:, -2]
  elif direction == 2:
    outer, inner = pieces[:, :, 0], pieces[:, :, 1]
  else:
    outer, inner = pieces[:, 0], pieces[:, 1]
  return outer.reshape(n, -1), inner.reshape(n, -1)


def _prediction(o_i, in_i, o_j, in_j) -> np.ndarray:
  """[n, m] prediction dissimilarity (Pomeranz et al.) of boundary rows [n | m, L]."""
  left = np.concatenate([2 * o_i - in_i, o_i], 1)
  right = np.concatenate([o_j, 2 * o_j - in_j], 1)
  return ((left ** 2).sum(1)[:, None] + (right ** 2).sum(1)[None] - 2 * left @ right.T)


def _mahalanobis(o_i, in_i, o_j, channels: int, reg: float) -> np.ndarray:
  """[n, m] sum over rows of the boundary gradient o_j - o_i under i's gradient model."""
  n, length = o_i.shape
  b = length // channels
  grads = (o_i - in_i).reshape(n, b, channels)
  mu = grads.mean(1)  # [n, C]
  centred = grads - mu[:, None]
  cov = np.einsum("nrc,nrd->ncd", centred, centred) / b + reg * np.eye(channels)
  w = np.linalg.inv(cov)  # [n, C, C]
  t = o_i.reshape(n, b, channels) + mu[:, None]  # predicted neighbour boundary
  oj = o_j.reshape(len(o_j), b, channels)
  q_j = np.einsum("mrc,mrd->mcd", oj, oj).reshape(len(o_j), -1)
  term1 = w.reshape(n, -1) @ q_j.T
  u = np.einsum("ncd,nrd->nrc", w, t).reshape(n, -1)
  term2 = u @ o_j.T
  term3 = np.einsum("nrc,nrc->n", u.reshape(n, b, channels), t)
  return term1 - 2 * term2 + term3[:, None]


def variant_dissimilarities(pieces: np.ndarray, group: Variants, *,
                            measure: str = "prediction") -> np.ndarray:
  """Cost of every piece in every variant next to every raw piece, in 4 directions.

  Args:
    pieces: [nb, B, B, C] float pieces (any offset: values are centred here).
    group: the variants (see `variants`).
    measure: "prediction" (Pomeranz et al. 2011: linear extrapolation of each
      boundary row from the other piece, squared error both ways) or "mgc"
      (Gallagher 2012: Mahalanobis distance of the gradient across the
      boundary under each piece's own gradient distribution, both ways).

  Returns:
    [4, nb, nb, V] float64: [d, i, j, v] is the dissimilarity of piece j in
    variant v placed at offset DIRECTIONS[d] from raw piece i; inf where j == i.
  """
  if pieces.ndim != 4 or pieces.shape[1] < 2 or pieces.shape[1] != pieces.shape[2]:
    raise ValueError(f"pieces must be [n, B, B, C] with square B >= 2, got {pieces.shape}")
  if measure not in ("prediction", "mgc"):
    raise ValueError(f"measure must be 'prediction' or 'mgc', got {measure!r}")
  p = np.asarray(pieces, np.float64) - 127.5
  n, c = len(p), p.shape[-1]
  moved = np.stack([apply_variant(p, group, v) for v in range(len(group))], 1)  # [n, V, ...]
  moved = moved.reshape(n * len(group), *p.shape[1:])
  costs = np.empty((4, n, n, len(group)))
  for d in range(4):
    o_i, in_i = _side(p, d)
    o_j, in_j = _side(moved, (d + 2) % 4)
    if measure == "prediction":
      cost = _prediction(o_i, in_i, o_j, in_j)
    else:
      cost = _mahalanobis(o_i, in_i, o_j, c, _MGC_REG) + _mahalanobis(o_j, in_j, o_i, c,
                                                                      _MGC_REG).T
    costs[d] = np.maximum(cost, 0).reshape(n, n, len(group))
  idx = np.arange(n)
  costs[:, idx, idx] = np.inf
  return costs


# ------------------------------------------------------------------ placement


@dataclasses.dataclass(frozen=True)
class Arrangement:
  """Which cipher piece, in which variant, sits in every slot of the grid.

  Attributes:
    piece: [rows, cols] int, the cipher block index (row-major) in each slot.
    variant: [rows, cols] int, index into `group` applied to that piece.
    group: the variant group.
  """

  piece: np.ndarray
  variant: np.ndarray
  group: Variants


class _Clusters:
  """Kruskal-style clusters of pieces with positions and variants in a cluster frame."""

  def __init__(self, n: int, group: Variants, grid: tuple[int, int], turns: bool):
    self.group = group
    self.grid = grid
    self.turns = turns  # quarter turns of a cluster allowed when fitting the grid
    self.pos = np.zeros((n, 2), np.int64)
    self.var = np.zeros(n, np.int64)
    self.cid = np.arange(n)
    self.members = {i: [i] for i in range(n)}
    self.occupied = {i: {(0, 0): i} for i in range(n)}
    self.next_id = n
    self.action = _dihedral_tables()[1]

  def _fits(self, cells: Sequence[tuple[int, int]]) -> bool:
    ys, xs = zip(*cells)
    h, w = max(ys) - min(ys) + 1, max(xs) - min(xs) + 1
    gh, gw = self.grid
    return (h <= gh and w <= gw) or (self.turns and h <= gw and w <= gh)

  def merge(self, direction: int, i: int, j: int, v: int) -> bool:
    """Puts j (variant v relative to i) at DIRECTIONS[direction] from i; False if refused
    (same cluster, an overlap, or too big for the grid)."""
    ci, cj = self.cid[i], self.cid[j]
    if ci == cj:
      return False
    g = self.group
    gi = self.var[i]
    target = self.pos[i] + self.action[g.dihedral[gi]] @ DIRECTIONS[direction]
    h = g.compose[g.compose[gi, v], g.inverse[self.var[j]]]
    rot = self.action[g.dihedral[h]]
    moved = {k: tuple(target + rot @ (self.pos[k] - self.pos[j])) for k in self.members[cj]}
    occ = self.occupied[ci]
    if any(cell in occ for cell in moved.values()):
      return False
    if not self._fits(list(occ) + list(moved.values())):
      return False
    for k, cell in moved.items():
      self.pos[k] = cell
      self.var[k] = g.compose[h, self.var[k]]
      self.cid[k] = ci
      occ[cell] = k
    self.members[ci] += self.members.pop(cj)
    del self.occupied[cj]
    return True

  def relation(self, direction: int, i: int, j: int, v: int) -> tuple[int, ...]:
    """(cluster a, cluster b, h, ty, tx): b's frame mapped into a's by variant h and shift t."""
    g = self.group
    gi = self.var[i]
    target = self.pos[i] + self.action[g.dihedral[gi]] @ DIRECTIONS[direction]
    h = g.compose[g.compose[gi, v], g.inverse[self.var[j]]]
    t = target - self.action[g.dihedral[h]] @ self.pos[j]
    a, b = int(self.cid[i]), int(self.cid[j])
    if a > b:  # one key per pair of clusters: invert the relation
      h = g.inverse[h]
      t = -self.action[g.dihedral[h]] @ t
      a, b = b, a
    return a, b, int(h), int(t[0]), int(t[1])

  def _release(self, k: int) -> None:
    """Makes piece k a cluster of its own (its old cluster's records are rebuilt by callers)."""
    self.cid[k] = self.next_id
    self.pos[k] = 0
    self.var[k] = 0
    self.members[self.next_id] = [k]
    self.occupied[self.next_id] = {(0, 0): k}
    self.next_id += 1

  def force(self, a: int, b: int, h: int, shift: tuple[int, int]) -> None:
    """Merges cluster b into a by (h, shift): b's pieces on a's cells and outside the best
    grid-sized window of the union are released as single pieces (trim)."""
    g = self.group
    if len(self.members[b]) > len(self.members[a]):  # the larger cluster keeps its pieces
      h = int(g.inverse[h])
      shift = tuple(-self.action[g.dihedral[h]] @ np.asarray(shift))
      a, b = b, a
    rot = self.action[g.dihedral[h]]
    occ = dict(self.occupied.pop(a))
    released = []
    for k in self.members.pop(b):
      cell = tuple(rot @ self.pos[k] + shift)
      if cell in occ:
        released.append(k)
        continue
      self.pos[k] = cell
      self.var[k] = g.compose[h, self.var[k]]
      occ[cell] = k
    del self.occupied[b]
    cells = np.array(list(occ))
    lo = cells.min(0)
    keep = _best_window(cells - lo, self.grid, self.turns)
    members = []
    new_occ = {}
    for (cell, k), kept in zip(occ.items(), keep):
      if kept:
        members.append(k)
        new_occ[cell] = k
        self.cid[k] = a
      else:
        released.append(k)
    self.members[a] = members
    self.occupied[a] = new_occ
    for k in released:
      self._release(k)


def _best_window(cells: np.ndarray, grid: tuple[int, int], turns: bool) -> np.ndarray:
  """[m] bool: the cells inside the grid-sized window (either way round with turns) that
  holds most of them."""
  occupancy = np.zeros(cells.max(0) + 1, np.int64)
  occupancy[cells[:, 0], cells[:, 1]] = 1
  best, best_count = None, -1
  shapes = {grid, grid[::-1]} if turns else {grid}
  for gh, gw in shapes:
    for y in range(max(1, occupancy.shape[0] - gh + 1)):
      for x in range(max(1, occupancy.shape[1] - gw + 1)):
        count = occupancy[y:y + gh, x:x + gw].sum()
        if count > best_count:
          best, best_count = (y, x, gh, gw), count
  y, x, gh, gw = best
  return ((cells[:, 0] >= y) & (cells[:, 0] < y + gh) & (cells[:, 1] >= x)
          & (cells[:, 1] < x + gw))


def _vote_merges(clusters: _Clusters, cands: Sequence[tuple], min_votes: int) -> None:
  """Joins clusters (of 2+ pieces) where `min_votes` distinct best matches agree on one
  relation and no other relation of the pair has as many, trimming conflicts; the largest
  such vote first, until none is left."""
  for _ in range(len(clusters.pos)):
    votes: dict[tuple[int, ...], tuple[set, float]] = {}
    for ratio, cost, d, i, j, v in cands:
      ci, cj = clusters.cid[i], clusters.cid[j]
      if (ratio > 1 or ci == cj or len(clusters.members[ci]) < 2
          or len(clusters.members[cj]) < 2):
        continue
      pairs, total = votes.get(key := clusters.relation(d, i, j, v), (set(), 0.0))
      pairs.add((min(i, j), max(i, j)))
      votes[key] = (pairs, total - cost)
    by_pair: dict[tuple[int, int], list[tuple[int, float, tuple[int, ...]]]] = {}
    for key, (pairs, total) in votes.items():
      by_pair.setdefault(key[:2], []).append((len(pairs), total, key))
    best = None
    for options in by_pair.values():
      options.sort(reverse=True)
      unique = len(options) == 1 or options[0][0] > options[1][0]
      if options[0][0] >= min_votes and unique and (best is None or options[0][:2] > best[:2]):
        best = options[0]
    if best is None:
      return
    a, b, h, ty, tx = best[2]
    clusters.force(a, b, h, (ty, tx))


def _candidates(costs: np.ndarray, k: int) -> list[tuple[float, float, int, int, int, int]]:
  """(confidence ratio, cost, direction, i, j, variant) for the k best j per (direction, i)."""
  best_v = costs.argmin(-1)  # [4, n, n]
  d_min = np.take_along_axis(costs, best_v[..., None], -1)[..., 0]
  k = min(k, d_min.shape[2] - 1)
  order = np.argsort(d_min, axis=2, kind="stable")[..., : max(k, 2)]
  first = np.take_along_axis(d_min, order[..., :1], 2)[..., 0]
  second = np.take_along_axis(d_min, order[..., 1:2], 2)[..., 0]
  out = []
  for d, i in itertools.product(range(4), range(costs.shape[1])):
    for rank, j in enumerate(order[d, i, :k]):
      c = d_min[d, i, j]
      other = second[d, i] if rank == 0 else first[d, i]
      out.append(((c + _EPS) / (other + _EPS), c, d, i, int(j), int(best_v[d, i, j])))
  out.sort()
  return out


def _reverse(group: Variants, d: int, i: int, j: int, v: int) -> tuple[int, int, int, int]:
  """The same match seen from j: (direction, j, i, variant of i relative to raw j)."""
  inv = int(group.inverse[v])
  off = _dihedral_tables()[1][group.dihedral[inv]] @ -DIRECTIONS[d]
  return int(np.flatnonzero((DIRECTIONS == off).all(1))[0]), j, i, inv


def _loop_matches(cands: Sequence[tuple], group: Variants) -> set[tuple[int, int, int, int]]:
  """Matches (d, i, j, v) on a closed 2x2 loop of best matches (Son et al.'s loop
  constraint at its smallest): the best match right of i and the best below i have best
  matches below and right that are one piece in one variant. Both directions of each
  match are in the set."""
  action = _dihedral_tables()[1]
  best = {}
  for ratio, _, d, i, j, v in cands:
    if ratio <= 1:
      best.setdefault((d, i), (j, v))

  def step(i: int, vi: int, offset: tuple[int, int]) -> tuple[int, int] | None:
    """The best match at `offset` of piece i shown in variant vi: (piece, its variant)."""
    local = action[group.dihedral[group.inverse[vi]]] @ np.array(offset)
    d = int(np.flatnonzero((DIRECTIONS == local).all(1))[0])
    if (d, i) not in best:
      return None
    j, v = best[(d, i)]
    return j, int(group.compose[vi, v])

  loops = set()
  for i in {i for _, i in best}:
    right, down = step(i, 0, (0, 1)), step(i, 0, (1, 0))
    if right is None or down is None:
      continue
    corner_a, corner_b = step(*right, (1, 0)), step(*down, (0, 1))
    if corner_a is None or corner_a != corner_b or corner_a[0] in (i, right[0], down[0]):
      continue
    k, vk = corner_a
    for (a, va), (b, vb), off in (((i, 0), right, (0, 1)), ((i, 0), down, (1, 0)),
                                  (right, (k, vk), (1, 0)), (down, (k, vk), (0, 1))):
      # The match a -> b, in a's raw frame.
      inv = group.inverse[va]
      local = action[group.dihedral[inv]] @ np.array(off)
      d = int(np.flatnonzero((DIRECTIONS == local).all(1))[0])
      match = (d, a, b, int(group.compose[inv, vb]))
      loops.add(match)
      loops.add(_reverse(group, *match))
  return loops


def _neighbour_costs(costs: np.ndarray, group: Variants, piece: int, var: int,
                     offset: np.ndarray) -> np.ndarray:
  """[n, V] cost of every piece/variant at `offset` from `piece` shown in variant `var`."""
  action = _dihedral_tables()[1]
  inv = group.inverse[var]
  local = action[group.dihedral[inv]] @ offset
  d = int(np.flatnonzero((DIRECTIONS == local).all(1))[0])
  return costs[d, piece][:, group.compose[inv]]


def _fill(costs: np.ndarray, group: Variants, grid: tuple[int, int],
          piece: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
  """Fills the -1 slots of `piece` greedily, most placed neighbours first; returns the cost."""
  piece, var = piece.copy(), var.copy()
  gh, gw = grid
  used = np.zeros(costs.shape[1], bool)
  used[piece[piece >= 0]] = True
  total = 0.0
  while (piece < 0).any():
    best_slot, best_count = None, -1
    for y, x in np.argwhere(piece < 0):
      count = sum(0 <= y + dy < gh and 0 <= x + dx < gw and piece[y + dy, x + dx] >= 0
                  for dy, dx in DIRECTIONS)
      if count > best_count:
        best_slot, best_count = (y, x), count
    y, x = best_slot
    cost = np.zeros((costs.shape[1], len(group)))
    for dy, dx in DIRECTIONS:
      ny, nx = y + dy, x + dx
      if 0 <= ny < gh and 0 <= nx < gw and piece[ny, nx] >= 0:
        cost += _neighbour_costs(costs, group, piece[ny, nx], var[ny, nx], np.array([-dy, -dx]))
    cost[used] = np.inf
    j, v = np.unravel_index(np.argmin(cost), cost.shape)
    total += 0.0 if best_count == 0 else float(cost[j, v])
    piece[y, x], var[y, x] = j, v
    used[j] = True
  return piece, var, total


def _slot_costs(costs: np.ndarray, group: Variants, piece: np.ndarray,
                var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """[slots, n, V] cost of every piece/variant in every empty slot against its placed
  neighbours, and [slots] how many placed neighbours each slot has."""
  gh, gw = piece.shape
  e = np.zeros((gh * gw, costs.shape[1], len(group)))
  count = np.zeros(gh * gw, np.int64)
  for y, x in np.argwhere(piece < 0):
    for dy, dx in DIRECTIONS:
      ny, nx = y + dy, x + dx
      if 0 <= ny < gh and 0 <= nx < gw and piece[ny, nx] >= 0:
        e[y * gw + x] += _neighbour_costs(costs, group, piece[ny, nx], var[ny, nx],
                                          np.array([-dy, -dx]))
        count[y * gw + x] += 1
  return e, count


def _place_clusters(clusters: _Clusters, costs: np.ndarray, piece: np.ndarray,
                    var: np.ndarray, skip: int) -> float:
  """Puts every other cluster of 2+ pieces (largest first) as a whole where its pieces fit
  the placed ones best (least mean cost per new adjacency, any variant of the group, no
  overlap); returns the cost added. `piece` and `var` are filled in place."""
  g = clusters.group
  gh, gw = piece.shape
  action = _dihedral_tables()[1]
  added = 0.0
  others = sorted((c for c in clusters.members if c != skip and len(clusters.members[c]) > 1),
                  key=lambda c: -len(clusters.members[c]))
  for c in others:
    members = np.array(clusters.members[c])
    e, count = _slot_costs(costs, g, piece, var)
    free = (piece < 0).ravel()
    best = None
    for h in range(len(g)):
      if g.dihedral[h] % 2 and gh != gw:
        continue
      cells = clusters.pos[members] @ action[g.dihedral[h]].T
      cells -= cells.min(0)
      span = cells.max(0)
      if span[0] >= gh or span[1] >= gw:
        continue
      ty, tx = np.mgrid[0:gh - span[0], 0:gw - span[1]]
      slots = ((cells[None, :, 0] + ty.reshape(-1, 1)) * gw
               + cells[None, :, 1] + tx.reshape(-1, 1))  # [T, m]
      fits = free[slots]  # [T, m]: pieces on free slots (the others stay for the fill)
      links = (count[slots] * fits).sum(1)
      ok = (fits.mean(1) >= _KEEP) & (links > 0)
      if not ok.any():
        continue
      u = g.compose[h][clusters.var[members]]
      total = (e[slots, members[None], u[None]] * fits).sum(1)
      mean = np.where(ok, total / np.maximum(links, 1), np.inf)
      t = int(np.argmin(mean))
      if best is None or mean[t] < best[0]:
        best = (float(mean[t]), float(total[t]), slots[t], u, fits[t])
    if best is None:
      continue
    _, total, slots, u, fits = best
    piece.ravel()[slots[fits]] = members[fits]
    var.ravel()[slots[fits]] = u[fits]
    added += total
  return added


def _anchor_and_fill(clusters: _Clusters, costs: np.ndarray, weights: np.ndarray,
                     max_offsets: int) -> tuple[np.ndarray, np.ndarray]:
  """Anchors the largest cluster in the grid at the best of its feasible offsets and fills.

  Offsets whose fill costs tie within _TIE are told apart by the centre of mass of
  `weights` ([n] per piece, its contrast): the most centred wins.
  """
  g = clusters.group
  gh, gw = clusters.grid
  big = max(clusters.members, key=lambda c: len(clusters.members[c]))
  members = clusters.members[big]
  turns = [0] + ([1] if clusters.turns and gh != gw else [])
  action = _dihedral_tables()[1]
  options = []
  for t in turns:
    # Turn the cluster by t quarter turns if the group allows it.
    h = next((v for v in range(len(g)) if g.dihedral[v] == t and not g.negate[v]
              and not g.color[v]), None) if t else 0
    if h is None:
      continue
    cells = np.array([action[g.dihedral[h]] @ clusters.pos[k] for k in members])
    lo, hi = cells.min(0), cells.max(0)
    for oy in range(gh - (hi[0] - lo[0])):
      for ox in range(gw - (hi[1] - lo[1])):
        options.append((h, cells - lo + (oy, ox)))
  if not options:
    raise RuntimeError("the largest cluster does not fit the grid")  # guarded by _fits
  if len(members) == 1:  # nothing assembled (e.g. a uniform image): one anchor will do
    options = options[len(options) // 2:len(options) // 2 + 1]
  if len(options) > max_offsets:
    options = [options[i] for i in np.linspace(0, len(options) - 1, max_offsets).astype(int)]
  results = []
  for h, cells in options:
    piece = -np.ones((gh, gw), np.int64)
    var = np.zeros((gh, gw), np.int64)
    for k, (y, x) in zip(members, cells):
      piece[y, x] = k
      var[y, x] = g.compose[h, clusters.var[k]]
    added = _place_clusters(clusters, costs, piece, var, skip=big)
    filled = _fill(costs, g, (gh, gw), piece, var)
    results.append((filled[0], filled[1], filled[2] + added))
  # Offsets the edges cannot tell apart (content amid uniform background): the most centred.
  least = min(r[2] for r in results)
  close = [r for r in results if r[2] <= least * (1 + _TIE) + _EPS]
  centre = (np.array([gh, gw]) - 1) / 2
  yx = np.argwhere(np.ones((gh, gw), bool))

  def off_centre(result):
    w = weights[result[0]].ravel() + 1e-9
    return float(np.abs((w[:, None] * yx).sum(0) / w.sum() - centre).sum())

  best = min(close, key=off_centre)
  return best[0], best[1]


def arrangement_cost(costs: np.ndarray, arrangement: Arrangement) -> float:
  """Sum of the dissimilarities of all adjacent slots of an arrangement (lower is better)."""
  total = 0.0
  piece, var, g = arrangement.piece, arrangement.variant, arrangement.group
  gh, gw = piece.shape
  for y, x in itertools.product(range(gh), range(gw)):
    for dy, dx in DIRECTIONS[:2]:
      if y + dy < gh and x + dx < gw:
        row = _neighbour_costs(costs, g, piece[y, x], var[y, x], np.array([dy, dx]))
        total += float(row[piece[y + dy, x + dx], var[y + dy, x + dx]])
  return total


def _global_options(group: Variants, grid: tuple[int, int]) -> list[int]:
  """Variants that map the grid onto itself (no quarter turn of a non-square grid)."""
  square = grid[0] == grid[1]
  return [v for v in range(len(group)) if square or group.dihedral[v] % 2 == 0]


def _transform_arrangement(arr: Arrangement, h: int) -> Arrangement:
  """The arrangement of the whole image transformed by variant h."""
  g = arr.group
  d = int(g.dihedral[h])
  piece = dihedral(arr.piece[..., None], d)[..., 0]
  var = g.compose[h][dihedral(arr.variant[..., None], d)[..., 0]]
  return Arrangement(piece=np.ascontiguousarray(piece), variant=var, group=g)


def render(image: np.ndarray, arrangement: Arrangement, *, block_size: int) -> np.ndarray:
  """The [H, W, C] image that `arrangement` makes of the cipher image's blocks."""
  blocks = _pieces(np.asarray(image), block_size)
  g = arrangement.group
  out = np.stack([apply_variant(blocks[p], g, int(v)) for p, v in
                  zip(arrangement.piece.reshape(-1), arrangement.variant.reshape(-1))])
  return np.asarray(unblockify(out.reshape(len(out), -1), image_shape=image.shape,
                               block_size=block_size))


def _prior_score(image: np.ndarray, arr: Arrangement, block_size: int,
                 reference: np.ndarray | None) -> tuple[float, ...]:
  """Higher is more plausible: match to the reference, else medical-image priors in turn."""
  x = render(image, arr, block_size=block_size).astype(np.float64)
  if reference is not None:
    return (-float(((x - reference) ** 2).mean()),)
  b = block_size
  border = np.concatenate([x[:b].ravel(), x[-b:].ravel(), x[:, :b].ravel(), x[:, -b:].ravel()])
  dark = -round(float(border.mean()), 6)  # polarity: the darker border
  order = 0.0
  if x.shape[-1] == 3:  # colour order: channel means R >= G >= B
    order = round(float(x.reshape(-1, 3).mean(0) @ np.array([2.0, 1.0, 0.0])), 6)
  kept = float((arr.group.dihedral[arr.variant] == 0).mean())  # orientation: most kept
  return dark, order, kept


def reassemble(image: ArrayLike, *, block_size: int, transforms: Sequence[str] = ("shuffle",),
               reference: ArrayLike | None = None, candidates: int = 3,
               max_offsets: int = 64, measure: str = "prediction") -> Arrangement:
  """Solves one scrambled image: the piece and variant of every slot.

  Args:
    image: [H, W, C] scrambled image (uint8; B divides H and W).
    block_size: B.
    transforms: per-piece transforms to undo, a subset of TRANSFORMS ("shuffle"
      alone: pieces only moved).
    reference: optional [H, W, C] image of the kind expected (e.g. the mean
      training image) that fixes the global orientation, polarity and colour order.
    candidates: matches per piece side fed to the tree-based assembly.
    max_offsets: most anchor offsets of the largest cluster tried in the fill.
    measure: the edge dissimilarity, "mgc" or "prediction" (see `variant_dissimilarities`).

  Returns:
    The `Arrangement`.
  """
  image = np.asarray(image)
  if image.ndim != 3:
    raise ValueError(f"image must be [H, W, C], got shape {image.shape}")
  h, w, c = image.shape
  if h % block_size or w % block_size:
    raise ValueError(f"image size {h}x{w} is not divisible by block_size={block_size}")
  if block_size < 2:
    raise ValueError("the jigsaw solver needs blocks of at least 2x2 pixels")
  grid = (h // block_size, w // block_size)
  group = variants(_check_transforms(transforms), c)
  pieces = _pieces(image, block_size)
  n = len(pieces)
  if n == 1:
    arr = Arrangement(np.zeros(grid, np.int64), np.zeros(grid, np.int64), group)
  else:
    costs = variant_dissimilarities(pieces.astype(np.float64), group, measure=measure)
    turns = bool((group.dihedral % 2 == 1).any())
    weights = pieces.reshape(n, -1).astype(np.float64).std(1)
    clusters = _Clusters(n, group, grid, turns)
    # Uniform pieces (background) say nothing about where they go: the fill places them.
    flat = weights < FLAT
    cands = [c for c in _candidates(costs, candidates) if not (flat[c[3]] or flat[c[4]])]
    # Tree-based merging in order of confidence, then clusters that conflict on their own
    # matches but that two or more best matches agree on are joined with trimming; repeated
    # while it changes anything.
    loops = _loop_matches(cands, group)
    for c in cands:  # first the matches that closed loops confirm
      if c[2:] in loops:
        clusters.merge(*c[2:])
    for _ in range(4):
      before = len(clusters.members)
      for _, _, d, i, j, v in cands:
        clusters.merge(d, i, j, v)
      _vote_merges(clusters, cands, min_votes=2)
      if len(clusters.members) in (1, before):
        break
    piece, var = _anchor_and_fill(clusters, costs, weights, max_offsets)
    arr = Arrangement(piece, var, group)
  ref = None if reference is None else np.asarray(reference, np.float64)
  if ref is not None and ref.shape != image.shape:
    raise ValueError(f"reference must have the image's shape {image.shape}, got {ref.shape}")
  options = [_transform_arrangement(arr, v) for v in _global_options(group, grid)]
  return max(options, key=lambda o: _prior_score(image, o, block_size, ref))


def solve(images: ArrayLike, *, block_size: int, transforms: Sequence[str] = ("shuffle",),
          reference: ArrayLike | None = None, return_arrangements: bool = False,
          progress: bool = False) -> np.ndarray | tuple[np.ndarray, list[Arrangement]]:
  """Reassembles block-scrambled images (see `reassemble`).

  Args:
    images: [H, W, C] or [N, H, W, C] uint8 scrambled images (B divides H, W).
    block_size: B.
    transforms: per-piece transforms to undo (SCHEME_TRANSFORMS[scheme] for a scheme).
    reference: optional [H, W, C] image fixing the global symmetry (see `reassemble`).
    return_arrangements: also return every image's `Arrangement`.
    progress: show a progress bar.

  Returns:
    The reassembled images, same dtype and shape; with `return_arrangements`,
    (images, list of arrangements).
  """
  images = np.asarray(images)
  if images.ndim not in (3, 4):
    raise ValueError(f"images must be [H, W, C] or [N, H, W, C], got shape {images.shape}")
  single = images.ndim == 3
  batch = images[None] if single else images
  loop = range(len(batch))
  if progress:
    from tqdm.auto import tqdm
    loop = tqdm(loop, desc="jigsaw")
  out = np.empty_like(batch)
  arrangements = []
  for i in loop:
    arr = reassemble(batch[i], block_size=block_size, transforms=transforms, reference=reference)
    out[i] = render(batch[i], arr, block_size=block_size)
    arrangements.append(arr)
  result = out[0] if single else out
  return (result, arrangements) if return_arrangements else result


def scramble(image: ArrayLike, *, block_size: int, transforms: Sequence[str] = ("shuffle",),
             seed: int = 0) -> tuple[np.ndarray, Arrangement]:
  """A planted puzzle: the image's blocks moved and each in a random variant of `transforms`.

  Args:
    image: [H, W, C] uint8.
    block_size: B.
    transforms: subset of TRANSFORMS ("shuffle": move the blocks).
    seed: numpy seed.

  Returns:
    (scrambled image, the arrangement that solves it exactly: `render(scrambled,
    arrangement)` is `image`).
  """
  image = np.asarray(image)
  transforms = _check_transforms(transforms)
  h, w, c = image.shape
  if h % block_size or w % block_size:
    raise ValueError(f"image size {h}x{w} is not divisible by block_size={block_size}")
  group = variants(transforms, c)
  rng = np.random.default_rng(seed)
  blocks = _pieces(image, block_size)
  n = len(blocks)
  src = rng.permutation(n) if "shuffle" in transforms else np.arange(n)
  var = rng.integers(0, len(group), n)
  out = np.stack([apply_variant(blocks[s], group, int(v)) for s, v in zip(src, var)])
  scrambled = np.asarray(unblockify(out.reshape(n, -1), image_shape=image.shape,
                                    block_size=block_size))
  piece = np.empty(n, np.int64)
  piece[src] = np.arange(n)
  inverse = np.empty(n, np.int64)
  inverse[src] = group.inverse[var]
  grid = (h // block_size, w // block_size)
  return scrambled, Arrangement(piece.reshape(grid), inverse.reshape(grid), group)


# ------------------------------------------------------------------ scores


def placement_accuracy(recovered: ArrayLike, plain: ArrayLike, *, block_size: int,
                       up_to: Sequence[str] = ()) -> np.ndarray:
  """Share of block positions whose recovered block equals the plain block there.

  Args:
    recovered: [H, W, C] or [N, H, W, C] images.
    plain: the plain images, same shape.
    block_size: B.
    up_to: transforms whose global symmetries are forgiven (see
      `neighbour_comparison`); () scores absolute positions and variants.

  Returns:
    float64 [] or [N] in [0, 1].
  """
  recovered, plain = _check_pair(recovered, plain, block_size)
  group = variants(_check_transforms(up_to), recovered.shape[-1])
  options = _global_options(group, (recovered.shape[-3] // block_size,
                                    recovered.shape[-2] // block_size))
  pb = np.asarray(blockify(plain, block_size=block_size))
  return np.max([(np.asarray(blockify(apply_variant(recovered, group, v),
                                      block_size=block_size)) == pb).all(-1).mean(-1)
                 for v in options], axis=0)


def _check_pair(recovered: ArrayLike, plain: ArrayLike,
                block_size: int) -> tuple[np.ndarray, np.ndarray]:
  recovered, plain = np.asarray(recovered), np.asarray(plain)
  if recovered.shape != plain.shape or recovered.ndim not in (3, 4):
    raise ValueError(f"need two [H, W, C] or [N, H, W, C] batches of one shape, got "
                     f"{recovered.shape} and {plain.shape}")
  h, w = recovered.shape[-3:-1]
  if h % block_size or w % block_size:
    raise ValueError(f"image size {h}x{w} is not divisible by block_size={block_size}")
  return recovered, plain


def _adjacent_pairs(image: np.ndarray, block_size: int) -> list[dict[tuple[bytes, bytes], int]]:
  """Counts of (block, block) contents adjacent right and below in one [H, W, C] image."""
  b = block_size
  h, w, _ = image.shape
  grid = [[image[y:y + b, x:x + b].tobytes() for x in range(0, w, b)] for y in range(0, h, b)]
  counts: list[dict[tuple[bytes, bytes], int]] = [{}, {}]
  for y, row in enumerate(grid):
    for x, cell in enumerate(row):
      for rel, (ny, nx) in enumerate(((y, x + 1), (y + 1, x))):
        if ny < len(grid) and nx < len(row):
          key = (cell, grid[ny][nx])
          counts[rel][key] = counts[rel].get(key, 0) + 1
  return counts


def _neighbour_one(recovered: np.ndarray, plain: np.ndarray, block_size: int) -> float:
  want = _adjacent_pairs(plain, block_size)
  got = _adjacent_pairs(recovered, block_size)
  total = sum(sum(c.values()) for c in want)
  hit = sum(min(n, got[rel].get(key, 0)) for rel in range(2) for key, n in want[rel].items())
  return hit / total if total else 1.0


def neighbour_comparison(recovered: ArrayLike, plain: ArrayLike, *, block_size: int,
                         up_to: Sequence[str] = ()) -> np.ndarray:
  """Share of plain adjacent block pairs that are adjacent the same way in `recovered`.

  A pair is a block and its right (or lower) neighbour in the plain image; it
  counts when the recovered image has the same two blocks (by content, so
  identical blocks are interchangeable, each pair at most as often as in the
  plain image) in the same relation.

  Args:
    recovered: [H, W, C] or [N, H, W, C] images.
    plain: the plain images, same shape.
    block_size: B.
    up_to: transforms (see TRANSFORMS) whose global symmetries are forgiven:
      the score is the best over the whole recovered image transformed by any
      variant of their group that keeps the grid (the image's rotation,
      mirror image, negative, colour order). () scores strictly.

  Returns:
    float64 [] or [N] in [0, 1].
  """
  recovered, plain = _check_pair(recovered, plain, block_size)
  single = recovered.ndim == 3
  rec = recovered[None] if single else recovered
  pla = plain[None] if single else plain
  _, h, w, c = rec.shape
  group = variants(_check_transforms(up_to), c)
  options = _global_options(group, (h // block_size, w // block_size))
  out = np.array([max(_neighbour_one(apply_variant(r, group, v), p, block_size)
                      for v in options) for r, p in zip(rec, pla)])
  return out[0] if single else out


def scores(recovered: ArrayLike, plain: ArrayLike, *, block_size: int,
           transforms: Sequence[str] = ("shuffle",)) -> dict[str, float]:
  """Mean placement and neighbour comparison over a batch, strict and up to the global
  symmetry of `transforms` (keys ending in "_global"), for reports."""
  return {
      "placement_accuracy": float(np.mean(placement_accuracy(recovered, plain,
                                                             block_size=block_size))),
      "placement_accuracy_global": float(np.mean(placement_accuracy(
          recovered, plain, block_size=block_size, up_to=transforms))),
      "neighbour_comparison": float(np.mean(neighbour_comparison(recovered, plain,
                                                                 block_size=block_size))),
      "neighbour_comparison_global": float(np.mean(neighbour_comparison(
          recovered, plain, block_size=block_size, up_to=transforms))),
  }
