"""The block machinery every cipher shares.

Every block scheme is a *block transform*: output block j is input block
`block_perm[j]` with its values rearranged by `value_perm[j]` and XORed with
`xor[j]` (a value permutation and mask may also be shared by all blocks).
Block scrambling, pixel shuffling, rotations, flips, colour shuffles,
negative-positive and LE's nibble permutation and flips are all of this form,
so a scheme only says how its key defines the transform, and two shared
executors apply it:

  transform_flat: one key for the whole batch. The transform is unrolled into
    flat maps over the image (for every output byte, the input byte(s) it is
    read from and its XOR mask), built once per key, so encryption is one
    gather per output byte (two for nibbles), with no transposes on the data.
  transform_blocks: one key per image (a batch of transforms). One gather
    per output byte whose index is broadcast from each image's small arrays
    (block origins, value offsets), so no per-image map of the whole image
    is built or written; nibble transforms gather inside blockified images
    instead. Key arrays are computed apart (`separately`) so that XLA:CPU
    does not fuse the key draws into the gathers.

Decryption applies `invert_transform`. `blockify` / `unblockify` are the
reshape-transpose pair that defines block order. Per-block value
permutations picked from a fixed set (EtC's rotations, flips and colour
orders) are a `PermChoice`: small codes into a static table, cheap to batch
and to invert. Key draws: `random_words` (JAX's threefry words, unrolled on
CPU), `random_permutations` (one sort of packed random words, `sort_words`),
`random_flags`, `random_below`.

Block vector layouts:
  "hwc": (row, column, channel) order inside a block, "pixel-major" (default);
  "chw": (channel, row, column) order, used by published ViT code.
LE's nibble vectors (nibbles=True) hold the d low nibbles of a block, in
block order, then its d high nibbles.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

LAYOUTS = ("hwc", "chw")
# The 6 orders of 3 colour channels, lexicographic; index 0 is the identity.
COLOR_PERMUTATIONS = np.array(list(itertools.permutations(range(3))), dtype=np.int32)
PADDINGS = ("none", "edge")


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


def padded_shape(image_shape: tuple[int, int, int], block_size: int) -> tuple[int, int, int]:
  """The [H, W, C] shape after edge padding H and W up to multiples of the block size."""
  h, w, c = image_shape
  return (-(-h // block_size) * block_size, -(-w // block_size) * block_size, c)


def block_view(images: Any, block_size: int) -> Any:
  """[..., H, W, C] -> [..., H/B, B, W/B, B, C] (a reshape; B must divide H and W)."""
  *lead, h, w, c = images.shape
  b = block_size
  if h % b or w % b:
    raise ValueError(f"image size {h}x{w} is not divisible by block_size={b}")
  return images.reshape(*lead, h // b, b, w // b, b, c)


def blockify(images: Any, *, block_size: int, layout: str = "hwc") -> Any:
  """Splits images into flattened blocks.

  Args:
    images: [..., H, W, C] array (jax or numpy); B = block_size must divide H and W.
    block_size: side B of the square blocks.
    layout: order of the d = B*B*C values inside a block vector ("hwc" or "chw").

  Returns:
    [..., (H/B)*(W/B), B*B*C] array, blocks in row-major order of block rows.
  """
  check_layout(layout)
  *lead, h, w, c = images.shape
  b = block_size
  k = len(lead)
  x = block_view(images, b)
  inner = (k + 1, k + 3, k + 4) if layout == "hwc" else (k + 4, k + 1, k + 3)
  x = x.transpose(*range(k), k, k + 2, *inner)
  return x.reshape(*lead, (h // b) * (w // b), b * b * c)


def unblockify(blocks: Any, *, image_shape: tuple[int, int, int], block_size: int,
               layout: str = "hwc") -> Any:
  """Inverse of `blockify`: [..., nb, B*B*C] blocks -> [..., H, W, C] images."""
  check_layout(layout)
  *lead, _, _ = blocks.shape
  h, w, c = image_shape
  b = block_size
  k = len(lead)
  if layout == "hwc":
    x = blocks.reshape(*lead, h // b, w // b, b, b, c)
    x = x.transpose(*range(k), k, k + 2, k + 1, k + 3, k + 4)
  else:
    x = blocks.reshape(*lead, h // b, w // b, c, b, b)
    x = x.transpose(*range(k), k, k + 3, k + 1, k + 4, k + 2)
  return x.reshape(*lead, h, w, c)


@functools.lru_cache(maxsize=64)
def block_positions(image_shape: tuple[int, int, int], block_size: int,
                    layout: str = "hwc") -> np.ndarray:
  """[nb, d] int32: flat position (in the [H, W, C] image) of every block value."""
  n = int(np.prod(image_shape))
  ids = np.arange(n, dtype=np.int32).reshape(image_shape)
  pos = blockify(ids, block_size=block_size, layout=layout)
  pos.setflags(write=False)
  return pos


@functools.lru_cache(maxsize=64)
def nibble_positions(image_shape: tuple[int, int, int], block_size: int,
                     layout: str = "hwc") -> np.ndarray:
  """[nb, 2d] int32 positions in the nibble image (2n values: n low nibbles, then n high).

  Inside a block: the d low nibbles in block order, then the d high nibbles
  (the ICCE-TW 2018 LE convention).
  """
  pos = block_positions(image_shape, block_size, layout)
  n = int(np.prod(image_shape))
  out = np.concatenate([pos, pos + n], axis=1)
  out.setflags(write=False)
  return out


class _StaticTable:
  """A read-only int32 numpy table held in a pytree's structure (hashable by content)."""

  def __init__(self, table: Any):
    self.array = np.array(table, dtype=np.int32)
    self.array.setflags(write=False)
    self._key = (self.array.shape, self.array.tobytes())

  def __hash__(self) -> int:
    return hash(self._key)

  def __eq__(self, other: Any) -> bool:
    return isinstance(other, _StaticTable) and self._key == other._key


@jax.tree_util.register_pytree_node_class
class PermChoice:
  """Per-block value permutations chosen from a few fixed ones: perms[j] = table[codes[j]].

  The table is static (part of the pytree's structure), so a batch of keys
  carries only its small codes, and inverting costs nothing: the inverse
  picks the same codes from the table of inverse permutations.

  Attributes:
    codes: [nb] int codes (a leading batch axis under vmap).
    table: [K, e] int32 numpy array of permutations of 0..e-1.
  """

  def __init__(self, codes: jax.Array, table: Any):
    self.codes = codes
    self._table = table if isinstance(table, _StaticTable) else _StaticTable(table)

  @property
  def table(self) -> np.ndarray:
    return self._table.array

  def perms(self) -> jax.Array:
    """The [..., nb, e] permutations."""
    return jnp.asarray(self.table)[self.codes]

  def inverse(self) -> "PermChoice":
    return PermChoice(self.codes, _inverse_table(self._table))

  def reorder(self, index: jax.Array) -> "PermChoice":
    """The choices of blocks `index` (codes[..., index]), from the same table."""
    return PermChoice(self.codes[..., index], self._table)

  def tree_flatten(self):
    return (self.codes,), self._table

  @classmethod
  def tree_unflatten(cls, table, children):
    return cls(children[0], table)


@functools.lru_cache(maxsize=32)
def _inverse_table(table: _StaticTable) -> _StaticTable:
  return _StaticTable(np.argsort(table.array, axis=-1))


def value_perms(value_perm: "jax.Array | PermChoice") -> jax.Array:
  """A transform's value permutations as one array ([e], [nb, e], or batched)."""
  return value_perm.perms() if isinstance(value_perm, PermChoice) else value_perm


class BlockTransform(NamedTuple):
  """out[j, i] = in[block_perm[j], value_perm[j, i]] ^ xor[j, i] over block vectors.

  Attributes:
    block_perm: [nb] int permutation of block positions, or None (identity).
    value_perm: [e] (shared) or [nb, e] (per output block) permutations inside a
      block vector of e values (e = d, or 2d nibbles), a `PermChoice` (per
      block, from a fixed table), or None (identity).
    xor: uint8 mask broadcastable to [nb, e] (e.g. [e], [nb, 1]), or None.
  """

  block_perm: jax.Array | None = None
  value_perm: "jax.Array | PermChoice | None" = None
  xor: jax.Array | None = None


def invert_transform(t: BlockTransform) -> BlockTransform:
  """The inverse block transform (for one key; vmap it for a batch of keys).

  From y[j, i] = x[bp[j], vp[j, i]] ^ xor[j, i]: with j = bp^-1[b] and
  i = vp[j]^-1[k], x[b, k] = y[j, i] ^ xor[j, i].
  """
  inv_bp = None if t.block_perm is None else invert_permutations(t.block_perm)
  inv_vp, xor = None, t.xor
  per_block = False
  if t.value_perm is not None:
    if isinstance(t.value_perm, PermChoice):
      inv_vp, per_block = t.value_perm.inverse(), True
    else:
      inv_vp, per_block = invert_permutations(t.value_perm), t.value_perm.ndim == 2
    if xor is not None and xor.ndim and xor.shape[-1] > 1:  # constant over a block: no reorder
      perms = value_perms(inv_vp)
      shape = jnp.broadcast_shapes(perms.shape, xor.shape)
      xor = jnp.take_along_axis(jnp.broadcast_to(xor, shape), jnp.broadcast_to(perms, shape),
                                axis=-1)
  if inv_bp is not None:
    if per_block:
      inv_vp = inv_vp.reorder(inv_bp) if isinstance(inv_vp, PermChoice) else inv_vp[inv_bp]
    if xor is not None and xor.ndim == 2 and xor.shape[0] > 1:
      xor = xor[inv_bp]
  return BlockTransform(inv_bp, inv_vp, xor)


def _place(positions: np.ndarray, values: jax.Array) -> jax.Array:
  """Flat array with `values` (broadcast to positions' [nb, e]) at `positions`.

  A scatter, on purpose: XLA:CPU never fuses a scatter into its consumer, so
  a map built here is computed once per key instead of once per image value
  (optimization barriers are expanded away on CPU).
  """
  values = jnp.broadcast_to(values, positions.shape).reshape(-1)
  index = jnp.asarray(positions.reshape(-1))
  return jnp.zeros(values.shape, values.dtype).at[index].set(
      values, unique_indices=True, mode="promise_in_bounds")


def block_sources(positions: np.ndarray, t: BlockTransform) -> jax.Array:
  """[nb, e]: the input position every block value comes from (block order).

  Output block j, value i, comes from input block `block_perm[j]`, value
  `value_perm[j, i]`: out[positions[j, i]] = in[block_sources[j, i]].
  """
  src = jnp.asarray(positions)
  if t.block_perm is not None:
    src = src[t.block_perm]
  if t.value_perm is not None:
    src = jnp.take_along_axis(src, jnp.broadcast_to(value_perms(t.value_perm), src.shape), axis=1)
  return src


def _gather(flat: jax.Array, src: jax.Array) -> jax.Array:
  """flat[..., src] for [..., n] values and one [n] map (XLA:CPU's fastest gather form)."""
  index = jnp.broadcast_to(src, flat.shape[:-1] + src.shape)
  return jnp.take_along_axis(flat, index, axis=-1, mode="promise_in_bounds")


class FlatMaps(NamedTuple):
  """A block transform unrolled over the flat [H*W*C] image, for one key.

  Output byte p is ((in[low[p]] >> low_shift[p]) & 15) | ((in[high[p]] >>
  high_shift[p]) & 15) << 4 for nibble transforms, in[low[p]] otherwise;
  then XORed with xor[p].
  """

  low: jax.Array
  xor: jax.Array | None
  high: jax.Array | None = None
  low_shift: jax.Array | None = None
  high_shift: jax.Array | None = None


def flat_maps(t: BlockTransform, *, image_shape: tuple[int, int, int], block_size: int,
              layout: str = "hwc", nibbles: bool = False) -> FlatMaps:
  """The flat maps of one block transform (each value computed once, by a scatter)."""
  if not nibbles:
    positions = block_positions(image_shape, block_size, layout)
    xor = None if t.xor is None else _place(positions, t.xor.astype(jnp.uint8))
    return FlatMaps(low=_place(positions, block_sources(positions, t)), xor=xor)
  positions = nibble_positions(image_shape, block_size, layout)
  n = positions.size // 2
  src = block_sources(positions, t)
  from_high = src >= n
  byte = _place(positions, jnp.where(from_high, src - n, src)).reshape(2, n)
  shift = _place(positions, from_high.astype(jnp.uint8) * 4).reshape(2, n)
  xor = None
  if t.xor is not None:
    # A flip of output nibble q lands on bits 0-3 (q < n) or 4-7 (q >= n) of its byte.
    to_high = np.where(positions >= n, 4, 0).astype(np.uint8)
    xor = _place(positions, (jnp.broadcast_to(t.xor.astype(jnp.uint8), positions.shape) & 15)
                 << to_high).reshape(2, n)
    xor = xor[0] | xor[1]
  return FlatMaps(low=byte[0], high=byte[1], low_shift=shift[0], high_shift=shift[1], xor=xor)


def apply_flat_maps(images: jax.Array, maps: FlatMaps) -> jax.Array:
  """Applies one key's `FlatMaps` to [..., H, W, C] uint8 images (any leading axes)."""
  flat = images.reshape(*images.shape[:-3], math.prod(images.shape[-3:]))  # no -1: N may be 0
  if maps.high is None:
    out = _gather(flat, maps.low)
  else:
    low = (_gather(flat, maps.low) >> maps.low_shift) & 15
    high = (_gather(flat, maps.high) >> maps.high_shift) & 15
    out = low | (high << 4)
  if maps.xor is not None:
    out = out ^ maps.xor
  return out.reshape(images.shape)


def transform_flat(images: jax.Array, t: BlockTransform, *, block_size: int, layout: str = "hwc",
                   nibbles: bool = False) -> jax.Array:
  """Applies one block transform to [..., H, W, C] images (one key for all of them).

  One gather per output byte (two for nibble transforms) over each flat image,
  through maps built once per key; no transposes of the data.
  """
  maps = flat_maps(t, image_shape=images.shape[-3:], block_size=block_size, layout=layout,
                   nibbles=nibbles)
  return apply_flat_maps(images, maps)


def separately(fn: Callable[..., Any], *args: Any) -> Any:
  """`fn(*args)` compiled on its own, reading and writing buffers (XLA:CPU only).

  XLA:CPU fuses producers such as the blockify transposes into the gathers
  that read them, and then recomputes their index arithmetic (or a key's
  random draws) for every value gathered: 3-4x slower than gathering from a
  buffer. `lax.optimization_barrier` is expanded away before fusion on CPU.
  The branches of a conditional are compiled apart from the code around them,
  with their operands and results in buffers, so on CPU `fn` runs as the
  branch of one whose predicate `(x | 1) != 0` (x: the first element of the
  first array argument, as uint32) is always true but cannot be folded. Other
  backends, and arguments without arrays or with an empty first one, call
  `fn` directly. Under `jax.vmap` with a batched first argument the
  conditional becomes a select: the result is still `fn(*args)`, without the
  separate compilation.

  Args:
    fn: a function of arrays (pytrees allowed) returning a pytree of arrays.
    *args: its arguments; the first array leaf must be numeric.
  """
  leaves = jax.tree.leaves(args)
  if not leaves or leaves[0].size == 0:
    return fn(*args)

  def never(*operands):
    shapes = jax.eval_shape(fn, *operands)
    return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)

  def on_cpu(*operands):
    first = jax.tree.leaves(operands)[0].reshape(-1)[0].astype(jnp.uint32)
    return jax.lax.cond((first | 1) != 0, fn, never, *operands)

  return jax.lax.platform_dependent(*args, cpu=on_cpu, default=fn)


class _OutputView(NamedTuple):
  """The [N, H/B, B, W/B, B, C] view of a batch (a free reshape of [N, H, W, C]).

  Its axes (block row, row in block, block column, column in block, channel)
  give every output byte's block j and value i without division: per-block
  and per-value key arrays broadcast onto it.
  """

  rows: int  # H / B
  cols: int  # W / B
  block: int
  channels: int
  layout: str

  def of(self, a: jax.Array) -> jax.Array:
    """[N, P, Q] with P in {1, nb}, Q in {1, d} (block order) -> broadcastable to the view."""
    n, p, q = a.shape
    b, c = self.block, self.channels
    blocks = (self.rows, self.cols) if p > 1 else (1, 1)
    if self.layout == "hwc":
      values, order = (b, b, c), (0, 1, 3, 2, 4, 5)  # (N, by, bx, r, c, ch) -> view
    else:
      values, order = (c, b, b), (0, 1, 4, 2, 5, 3)  # (N, by, bx, ch, r, c) -> view
    return a.reshape(n, *blocks, *(values if q > 1 else (1, 1, 1))).transpose(order)


def _per_block_value(a: jax.Array) -> jax.Array:
  """A batched transform array ([N], [N, e], [N, nb, e], [N, nb, 1], ...) as [N, P, Q]."""
  if a.ndim == 1:
    return a[:, None, None]
  return a[:, None, :] if a.ndim == 2 else a


class _GatherPlan(NamedTuple):
  """Where every output byte of a batch of block transforms comes from, as [N, P, Q] arrays.

  Output byte (block j, value i) is in[origin[j] + offset[j, i]] ^ xor[j, i]
  (P: 1 or nb, Q: 1 or d, broadcast).
  """

  origin: jax.Array
  offset: jax.Array
  xor: jax.Array | None = None


def _gather_plan(t: BlockTransform, view: "_OutputView") -> _GatherPlan:
  """The plan of a batch of (byte) block transforms (leading axis N)."""
  b, c = view.block, view.channels
  positions = block_positions((view.rows * b, view.cols * b, c), b, view.layout)
  origin, offset = positions[:, 0], positions[0] - positions[0, 0]  # separable: origin + offset
  origin = (jnp.asarray(origin)[None, :, None] if t.block_perm is None
            else jnp.asarray(origin)[t.block_perm][:, :, None])
  if t.value_perm is None:
    offset = jnp.asarray(offset)[None, None]
  elif isinstance(t.value_perm, PermChoice):
    offset = jnp.asarray(offset[t.value_perm.table])[t.value_perm.codes]  # [N, nb, d]
  else:
    offset = jnp.asarray(offset)[_per_block_value(t.value_perm)]
  xor = None if t.xor is None else _per_block_value(t.xor.astype(jnp.uint8))
  return _GatherPlan(origin, offset, xor)


def _apply_plan(flat: jax.Array, plan: _GatherPlan, view: "_OutputView") -> jax.Array:
  """[N, H*W*C] images -> [N, H*W*C]: one gather per output byte, in output order."""
  view_shape = (flat.shape[0], view.rows, view.block, view.cols, view.block, view.channels)
  spread = lambda a: jnp.broadcast_to(view.of(a), view_shape).reshape(flat.shape)  # N may be 0
  out = jnp.take_along_axis(flat, spread(plan.origin) + spread(plan.offset), axis=1,
                            mode="promise_in_bounds")
  return out if plan.xor is None else out ^ spread(plan.xor)


def _gather_nibble_blocks(blocks: jax.Array, t: BlockTransform) -> jax.Array:
  """[N, nb, d] blocks -> [N, nb, d] transformed by a batch of nibble transforms."""
  _, _, d = blocks.shape
  if t.block_perm is not None:
    blocks = jnp.take_along_axis(blocks, t.block_perm[:, :, None], axis=1,
                                 mode="promise_in_bounds")
  vp = _per_block_value(value_perms(t.value_perm))
  gather = lambda index: jnp.take_along_axis(blocks, index, axis=2, mode="promise_in_bounds")
  byte = jnp.where(vp >= d, vp - d, vp)
  shift = jnp.where(vp >= d, 4, 0).astype(jnp.uint8)
  # One gather per nibble half: a single gather of all 2d nibbles is 2x slower.
  low = (gather(byte[..., :d]) >> shift[..., :d]) & 15
  high = (gather(byte[..., d:]) >> shift[..., d:]) & 15
  out = low | (high << 4)
  if t.xor is not None:
    xor = _per_block_value(t.xor.astype(jnp.uint8))
    xor = jnp.broadcast_to(xor, xor.shape[:-1] + (2 * d,))
    out = out ^ ((xor[..., :d] & 15) | ((xor[..., d:] & 15) << 4))
  return out


def _small_leaves(tree_fn: Callable[[Any], Any], keys: Any, small: Callable[[Any], bool]
                  ) -> list[Any]:
  """The `small` leaves of tree_fn(keys), computed on their own (`separately`); None for others."""
  return separately(lambda k: [a if small(a) else None for a in jax.tree.leaves(tree_fn(k))], keys)


def _merge_leaves(tree: Any, computed: list[Any]) -> Any:
  """`tree` with the leaves `_small_leaves` computed in their place.

  The other leaves (as large as the images) are computed where they are
  read, never written out.
  """
  leaves, treedef = jax.tree.flatten(tree)
  return treedef.unflatten([a if p is None else p for p, a in zip(computed, leaves)])


def transform_blocks(images: jax.Array, transform: Callable[[Any], BlockTransform], keys: Any, *,
                     block_size: int, layout: str = "hwc", nibbles: bool = False) -> jax.Array:
  """Applies a batch of block transforms, image i's from keys[i], to [N, H, W, C] images.

  Byte transforms: one gather per output byte over each flat image, its
  index origin[block] + offset[value] broadcast from small per-image arrays
  (`_GatherPlan`), so neither the images nor a per-image map is blockified
  or written out. The plan's arrays of at most one block or one value per
  image ([N, nb, 1], [N, 1, d]) are computed on their own (`separately`);
  per-block ones ([N, nb, d], as large as the images: EtC's table lookups)
  inside the gather. The gather itself is not run `separately`: XLA:CPU runs
  it 2x slower inside a conditional's branch (32x32x3 x 10k, per-image ViT
  keys: 53 vs 27 ms).

  Nibble transforms (LE, ELE): the images are blockified, gathered inside
  blocks (two gathers, one per nibble half, the block permutation folded in)
  and unblockified, each step compiled on its own: with two gathers and
  their shifts per byte, the flat gather's index arithmetic costs more than
  the transposes (LE, 10k images, 32x32x3: 7.8 vs 4.1 us per image; 28x28x1:
  2.3 vs 0.6). The transforms are computed on their own too, even ELE's
  per-block ones ([N, nb, 2d], 8x the images' bytes): computed inside the
  gathers, their nested lookups ran 3x slower (ELE, 10k images, 32x32x3,
  keys given: 63 vs 20 us per image).

  Args:
    images: [N, H, W, C] uint8.
    transform: one key -> its `BlockTransform` (vmapped here).
    keys: a pytree of arrays with a leading axis N (e.g. a `BlockTransform`
      with `transform` the identity).
  """
  n, h, w, c = images.shape
  make = jax.vmap(transform)
  if nibbles:
    blocks = separately(lambda x: blockify(x, block_size=block_size, layout=layout), images)
    out = separately(_gather_nibble_blocks, blocks, separately(make, keys))
    return unblockify(out, image_shape=(h, w, c), block_size=block_size, layout=layout)
  view = _OutputView(h // block_size, w // block_size, block_size, c, check_layout(layout))
  plan = lambda k: _gather_plan(make(k), view)
  small = _small_leaves(plan, keys, lambda a: min(a.shape[1:]) == 1)
  return _apply_plan(images.reshape(n, h * w * c), _merge_leaves(plan(keys), small),
                     view).reshape(images.shape)


def pad_to_blocks(images: jax.Array, *, block_size: int, mode: str = "edge") -> jax.Array:
  """Pads [..., H, W, C] images at the bottom/right up to multiples of block_size."""
  if mode != "edge":
    raise ValueError(f"padding mode must be 'edge', got {mode!r}")
  *lead, h, w, _ = images.shape
  ph, pw, _ = padded_shape(images.shape[-3:], block_size)
  if (ph, pw) == (h, w):
    return images
  pad = [(0, 0)] * len(lead) + [(0, ph - h), (0, pw - w), (0, 0)]
  return jnp.pad(images, pad, mode="edge")


# Random draws: JAX's threefry costs about as much per 32-bit word as a cipher
# costs per image byte on a CPU, so per-image keys draw as few words as they
# can. Each helper states its (negligible) deviation from uniform.
_PACKED_SORT_MAX = 128
_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_THREEFRY_PARITY = 0x1BD11BDA


def _threefry2x32(k1: jax.Array, k2: jax.Array, x0: jax.Array, x1: jax.Array):
  """Threefry-2x32 with 20 rounds (Salmon et al. 2011), unrolled, as JAX defines it."""
  ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(_THREEFRY_PARITY))
  x0, x1 = x0 + ks[0], x1 + ks[1]
  for i in range(5):
    for r in _THREEFRY_ROTATIONS[i % 2]:
      x0 = x0 + x1
      x1 = x0 ^ ((x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r)))
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
  return x0, x1


def _threefry_words(data: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """[*lead, *shape] words `jax.random.bits` draws from [*lead, 2] threefry key data."""
  expand = (Ellipsis,) + (None,) * len(shape)
  counts = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)  # < 2**32: high word 0
  a, b = _threefry2x32(data[..., 0][expand], data[..., 1][expand], jnp.zeros_like(counts), counts)
  return a ^ b


def _batch_as_leading_axes(fn: Callable[[jax.Array], jax.Array]
                           ) -> Callable[[jax.Array], jax.Array]:
  """fn (of one array, any leading axes) with a vmap rule that calls fn on the batched array.

  Under `jax.vmap` the batch becomes one more leading axis of a single call
  (batch axis 0), instead of vmap's rules for the primitives inside fn.
  """
  batched_fn = jax.custom_batching.custom_vmap(fn)

  @batched_fn.def_vmap
  def _rule(axis_size, in_batched, x):
    del axis_size
    (batched,) = in_batched
    return batched_fn(x), batched

  return batched_fn


def _apart_even_under_vmap(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
  """fn compiled on its own (`separately`); under jax.vmap, one call on the batched array.

  The batching rule keeps the conditional `separately` relies on from
  becoming a select.
  """
  return _batch_as_leading_axes(lambda x: separately(fn, x))


@functools.lru_cache(maxsize=None)
def _cpu_words(shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
  """_threefry_words(data, shape), compiled apart (`separately`) even under jax.vmap.

  Fused into their consumers, the rounds would run once per read of a word
  (random_flags reads each word 32 times): XLA:CPU gets the words from a
  buffer instead. Batched: data [B, ..., 2] -> [B, ..., *shape] in one call.
  """
  return _apart_even_under_vmap(lambda data: _threefry_words(data, shape))


def random_words(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Uniform uint32 words: equal to `jax.random.bits(key, shape, jnp.uint32)`.

  XLA:CPU runs JAX's threefry as a loop over the rounds, one pass over the
  array each (about 18 ns per word on 2 cores for per-image keys); for a
  threefry key (with jax_threefry_partitionable, JAX's default) the CPU path
  here computes the same words with the rounds unrolled into one element-wise
  loop (about 3 ns per word). Other keys and backends call `jax.random.bits`.
  """
  shape = tuple(int(s) for s in shape)
  size = math.prod(shape)
  if (size == 0 or size >= 1 << 32 or not jax.config.jax_threefry_partitionable
      or not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
      or str(jax.random.key_impl(key)) != "threefry2x32" or key.shape):
    return jax.random.bits(key, shape, jnp.uint32)
  return jax.lax.platform_dependent(
      key, cpu=lambda k: _cpu_words(shape)(jax.random.key_data(k)),
      default=lambda k: jax.random.bits(k, shape, jnp.uint32))


# XLA:CPU sorts one row at a time with a compiled comparator; a bitonic
# network over many short rows at once is 2-5x faster (measured on 2 cores:
# 10k rows of 96 words 20 ms -> 5.5 ms, of 64 words 14 -> 2.7 ms) while its
# rows fit in the cache. Past 2**21 values (rows padded to a power of two) a
# network over all rows streams through memory once per pass, so larger
# inputs are sorted in chunks of 128 rows, whose passes (19 for 128 wires)
# stay in a core's cache: 640k rows of 96 words (ELE's per-image keys, 10k
# RGB images) 0.98 s in chunks of 2**21 values -> 0.43 s; 490k rows of 32:
# 222 -> 137 ms; 160k rows of 16: 33 -> 9 ms (32 and 256 rows: no better).
# Below a few hundred rows both take microseconds, and the network's compile
# time (about 0.8 s for 128 rows) would dominate.
_NETWORK_CHUNK_VALUES = 1 << 21
_NETWORK_CHUNK_ROWS = 128
_NETWORK_MIN_ROWS = 256


def next_power_of_two(size: int) -> int:
  """The smallest power of two >= size (1 for size <= 1): a sorting network's width."""
  return 1 << max(size - 1, 0).bit_length()


def _bitonic_sort_rows(x: jax.Array) -> jax.Array:
  """Sorts [M, L] along axis 0 (M a power of two) with a bitonic network, L lanes at once.

  Each merge of two sorted halves of k rows first compares row i with its
  mirror k-1-i, so every comparator puts the minimum first (no selects); the
  half-cleaner stages that follow run two at a time (groups of 4 rows), which
  halves the passes over the data.
  """
  m = x.shape[0]
  k = 2
  while k <= m:
    halves = x.reshape(m // k, 2, k // 2, -1)
    a, b = halves[:, 0], halves[:, 1, ::-1]
    x = jnp.stack([jnp.minimum(a, b), jnp.maximum(a, b)[:, ::-1]], axis=1).reshape(x.shape)
    j = k // 4  # half-cleaners at distances j, j/2, ..., 1
    while j >= 2:
      q = x.reshape(m // (2 * j), 2, 2, j // 2, -1)  # row = g*2j + s*j + t*j/2 + r
      a, b, c, d = q[:, 0, 0], q[:, 0, 1], q[:, 1, 0], q[:, 1, 1]
      low_ac, high_ac = jnp.minimum(a, c), jnp.maximum(a, c)  # distance j
      low_bd, high_bd = jnp.minimum(b, d), jnp.maximum(b, d)
      low = jnp.stack([jnp.minimum(low_ac, low_bd), jnp.maximum(low_ac, low_bd)], axis=1)
      high = jnp.stack([jnp.minimum(high_ac, high_bd), jnp.maximum(high_ac, high_bd)], axis=1)
      x = jnp.stack([low, high], axis=1).reshape(x.shape)  # distance j/2 done too
      j //= 4
    if j == 1:
      pairs = x.reshape(m // 2, 2, -1)
      a, b = pairs[:, 0], pairs[:, 1]
      x = jnp.stack([jnp.minimum(a, b), jnp.maximum(a, b)], axis=1).reshape(x.shape)
    k *= 2
  return x


def _sort_lanes(rows: jax.Array) -> jax.Array:
  """Sorts [R, size] words along the last axis: the R rows are the network's lanes."""
  size = rows.shape[-1]
  padded = next_power_of_two(size)
  pad = jnp.full((padded - size, rows.shape[0]), jnp.iinfo(jnp.uint32).max, jnp.uint32)
  return _bitonic_sort_rows(jnp.concatenate([rows.T, pad], axis=0))[:size].T


def _network_sort(words: jax.Array) -> jax.Array:
  """Sorts uint32 words along the last axis, in chunks of rows that fit in the cache."""
  size = words.shape[-1]
  rows = words.reshape(-1, size)
  count = rows.shape[0]
  if count * next_power_of_two(size) <= _NETWORK_CHUNK_VALUES:
    return _sort_lanes(rows).reshape(words.shape)
  chunk = _NETWORK_CHUNK_ROWS
  chunks = -(-count // chunk)
  rows = jnp.pad(rows, ((0, chunks * chunk - count), (0, 0)))  # sorted, then dropped
  ordered = jax.lax.map(_sort_lanes, rows.reshape(chunks, chunk, size))
  return ordered.reshape(-1, size)[:count].reshape(words.shape)


@_batch_as_leading_axes
def sort_words(words: jax.Array) -> jax.Array:
  """`jnp.sort(words, axis=-1)` for uint32 words, fast for many short rows.

  Equal to `jnp.sort` on every input. On CPU, 256 or more rows go through a
  bitonic network with the rows as SIMD lanes (in chunks of rows that fit in
  the cache); under `jax.vmap` the batch joins the rows (a custom batching
  rule, so the lanes stay the minor axis). Other backends and other sizes use
  `jnp.sort`.
  """
  if words.dtype != jnp.uint32:
    raise TypeError(f"sort_words sorts uint32 words, got {words.dtype}")
  size = words.shape[-1]
  rows = math.prod(words.shape[:-1])
  if size <= 1 or rows < _NETWORK_MIN_ROWS:
    return jnp.sort(words, axis=-1)
  return jax.lax.platform_dependent(words, cpu=_network_sort,
                                    default=lambda w: jnp.sort(w, axis=-1))



def random_permutations(key: jax.Array, count: int | None, size: int) -> jax.Array:
  """[size] (count None) or [count, size] independent random permutations, int32.

  For size <= 128, one sort (`sort_words`) of random words whose low 7 bits
  hold the index (25 random bits per entry; two equal random parts,
  probability below size**2 / 2**26 <= 2.5e-4 per permutation, are ordered by
  index). Larger sizes use `jax.random.permutation`. Both draw one word per
  entry.
  """
  shape = (size,) if count is None else (count, size)
  if size > _PACKED_SORT_MAX:
    keys = jax.random.split(key, 1 if count is None else count)
    perms = jax.vmap(lambda k: jax.random.permutation(k, size))(keys).astype(jnp.int32)
    return perms.reshape(shape)
  index_mask = jnp.uint32(_PACKED_SORT_MAX - 1)
  words = random_words(key, shape)
  packed = (words & ~index_mask) | jnp.arange(size, dtype=jnp.uint32)
  return (sort_words(packed) & index_mask).astype(jnp.int32)


def invert_permutations(perms: jax.Array) -> jax.Array:
  """argsort(perms, axis=-1) for permutations (int32), by one `sort_words` for size <= 128."""
  size = perms.shape[-1]
  if size > _PACKED_SORT_MAX:
    return jnp.argsort(perms, axis=-1).astype(jnp.int32)
  # Sorting value * 128 + index by value leaves the indices in argsort order.
  packed = (perms.astype(jnp.uint32) << 7) | jnp.arange(size, dtype=jnp.uint32)
  return (sort_words(packed) & jnp.uint32(_PACKED_SORT_MAX - 1)).astype(jnp.int32)


def random_flags(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Independent fair coin flips (bool), one random bit each (bit j of word i is flag 32i + j).

  Unlike `random_below`'s digits, the flags stay fused into their consumer
  (a shift per flag): written to a buffer first, PE's per-image path on
  28x28x1 ran 1.4x slower.
  """
  size = math.prod(shape)
  words = random_words(key, (-(-size // 32),))
  return _word_digits(words, 2).reshape(-1)[:size].reshape(shape).astype(bool)


def scale_words(words: jax.Array, m: int) -> jax.Array:
  """floor(words * m / 2**32) for uint32 words and 1 <= m <= 2**16, in 32-bit arithmetic.

  With words = hi * 2**16 + lo: floor((hi * m + floor(lo * m / 2**16)) / 2**16),
  where no intermediate exceeds 2**32 - 1.
  """
  if not 1 <= m <= 1 << 16:
    raise ValueError(f"m must be in 1..65536, got {m}")
  m = jnp.uint32(m)
  hi, lo = words >> 16, words & 0xFFFF
  return (hi * m + ((lo * m) >> 16)) >> 16


def _digits_per_word(upper: int) -> int:
  """How many base-`upper` digits one 32-bit word yields (upper**k <= 2**16, or exact bits)."""
  if upper & (upper - 1) == 0:
    return 32 // max(upper.bit_length() - 1, 1)
  k = 1
  while upper ** (k + 1) <= 1 << 16:
    k += 1
  return k


def _word_digits(words: jax.Array, upper: int) -> jax.Array:
  """[..., nw] uint32 words -> [..., nw, k] uint8 digits in 0..upper-1 (see `random_below`)."""
  k = _digits_per_word(upper)
  if upper & (upper - 1) == 0:
    bits = upper.bit_length() - 1
    shifts = jnp.arange(k, dtype=jnp.uint32) * bits
    digits = (words[..., None] >> shifts) & jnp.uint32(upper - 1)
  else:
    # Digit j (least significant first) of v = floor(word * upper**k / 2**32)
    # is the leading base-`upper` digit of the fraction word / 2**32 after
    # k-1-j shifts: floor((word * upper**(k-1-j) mod 2**32) * upper / 2**32).
    # Multiplies only (vector integer division is slow on CPUs).
    shifts = jnp.asarray([upper ** (k - 1 - j) for j in range(k)], jnp.uint32)
    digits = scale_words(words[..., None] * shifts, upper)  # uint32 products wrap mod 2**32
  return digits.astype(jnp.uint8)


@functools.lru_cache(maxsize=None)
def _digit_expander(upper: int) -> Callable[[jax.Array], jax.Array]:
  """`_word_digits(words, upper)` compiled on its own (`separately`), even under jax.vmap.

  Fused into their consumer, the digits are computed in a loop over the
  key's shape, with a division and a strided read of the words per digit,
  that XLA:CPU does not vectorise: PE's 1024 colour digits took 3.5 us per
  key that way, 0.9 us written to a buffer first and then read in order.
  """
  return _apart_even_under_vmap(lambda words: _word_digits(words, upper))


def random_digits(key: jax.Array, shape: tuple[int, ...], upper: int) -> jax.Array:
  """`random_below(key, shape, upper)` as uint8 (2 <= upper <= 256): the same digits, uncast.

  k per random word (word i gives digits ki..ki+k-1).
  """
  if not 2 <= upper <= 256:
    raise ValueError(f"upper must be in 2..256, got {upper}")
  size = math.prod(shape)
  words = random_words(key, (-(-size // _digits_per_word(upper)),))
  return _digit_expander(upper)(words).reshape(-1)[:size].reshape(shape)


def random_below(key: jax.Array, shape: tuple[int, ...], upper: int) -> jax.Array:
  """Integers in 0..upper-1 (int32), several per random word (upper <= 256).

  A power of two takes its bits straight from the word. Otherwise one word
  gives k base-`upper` digits of v = floor(word * upper**k / 2**32), with
  upper**k <= 2**16: v is uniform on 0..upper**k - 1 up to a relative
  deviation of upper**k / 2**32 <= 2**-16, and so are its digits, which are
  independent. (PE draws one of 6 colour orders per pixel: 6 per word.)
  """
  if not 1 <= upper <= 256:
    raise ValueError(f"upper must be in 1..256, got {upper}")
  if upper == 1:
    return jnp.zeros(shape, jnp.int32)
  return random_digits(key, shape, upper).astype(jnp.int32)


def check_permutation(perm: Any, size: int, name: str) -> np.ndarray:
  """Validates an imported permutation (host array) of 0..size-1."""
  arr = np.asarray(perm)
  if arr.ndim < 1 or arr.shape[-1] != size:
    raise ValueError(f"{name} must have length {size} (last axis), got shape {arr.shape}")
  if not np.issubdtype(arr.dtype, np.integer):
    raise TypeError(f"{name} must hold integers, got {arr.dtype}")
  if not (np.sort(arr, axis=-1) == np.arange(size)).all():
    raise ValueError(f"{name} is not a permutation of 0..{size - 1}")
  return arr.astype(np.int32)
