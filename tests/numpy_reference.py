"""Plain-NumPy reference implementations of the lie_jax ciphers.

Written independently of `lie_jax.ciphers`, from the scheme descriptions
(docs/SCHEMES.md and the module docstrings) only: every block scheme cuts the
images into block vectors by reshape/transpose ([N, nb, d]), works on those
vectors with fancy indexing, and puts the blocks back. They serve two purposes:
byte-exact oracles for `tests/reference_test.py`, and the NumPy baseline of the
benchmarks (vectorised over images and blocks; the only Python loops run over
the 6 colour permutations or the 12 rotation/flip choices).

Every function takes uint8 images [N, H, W, C] and key arrays as plain NumPy
arrays (read off a key with `np.asarray(key.perm)` and so on) and returns
NumPy arrays. "hwc" block vectors are in (row, column, channel) order, "chw"
in (channel, row, column) order; blocks are numbered row-major.
"""

import itertools

import numpy as np

# The 6 orders of (0, 1, 2), lexicographic: itertools.permutations order.
COLOR_PERMUTATIONS = np.array(list(itertools.permutations(range(3))), dtype=np.intp)

LAYOUTS = ("hwc", "chw")


def _check_images(images: np.ndarray, block_size: int) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"expected [N, H, W, C] images, got shape {images.shape}")
  _, h, w, _ = images.shape
  if h % block_size or w % block_size:
    raise ValueError(f"H, W = {h}, {w} not divisible by block size {block_size}")
  return images


# ---------------------------------------------------------------- blocks


def blockify(images: np.ndarray, block_size: int, layout: str = "hwc") -> np.ndarray:
  """[N, H, W, C] -> [N, nb, d] block vectors (row-major blocks, d = B*B*C)."""
  images = _check_images(images, block_size)
  n, h, w, c = images.shape
  b = block_size
  x = images.reshape(n, h // b, b, w // b, b, c)
  if layout == "hwc":
    x = x.transpose(0, 1, 3, 2, 4, 5)  # n, by, bx, row, col, ch
  elif layout == "chw":
    x = x.transpose(0, 1, 3, 5, 2, 4)  # n, by, bx, ch, row, col
  else:
    raise ValueError(f"unknown layout {layout!r}")
  return x.reshape(n, (h // b) * (w // b), b * b * c)


def unblockify(blocks: np.ndarray, image_shape, block_size: int,
               layout: str = "hwc") -> np.ndarray:
  """Inverse of `blockify`: [N, nb, d] -> [N, H, W, C]."""
  h, w, c = image_shape
  b = block_size
  n = blocks.shape[0]
  if layout == "hwc":
    x = blocks.reshape(n, h // b, w // b, b, b, c).transpose(0, 1, 3, 2, 4, 5)
  elif layout == "chw":
    x = blocks.reshape(n, h // b, w // b, c, b, b).transpose(0, 1, 4, 2, 5, 3)
  else:
    raise ValueError(f"unknown layout {layout!r}")
  return x.reshape(n, h, w, c)


def _blocks_5d(images: np.ndarray, block_size: int) -> np.ndarray:
  """[N, H, W, C] -> [N, nb, B, B, C] (spatial blocks, for rotations/flips)."""
  n, h, w, c = images.shape
  b = block_size
  return (images.reshape(n, h // b, b, w // b, b, c)
          .transpose(0, 1, 3, 2, 4, 5).reshape(n, -1, b, b, c))


def _unblocks_5d(blocks: np.ndarray, image_shape) -> np.ndarray:
  h, w, c = image_shape
  n, _, b, _, _ = blocks.shape
  return (blocks.reshape(n, h // b, w // b, b, b, c)
          .transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, c))


def _gather_per_block(v: np.ndarray, perms: np.ndarray) -> np.ndarray:
  """w[n, b, i] = v[n, b, perms[i]] (perms [k]) or v[n, b, perms[b, i]] (perms [nb, k])."""
  if perms.ndim == 1:
    return v[..., perms]
  idx = np.broadcast_to(perms[None], v.shape)
  return np.take_along_axis(v, idx, axis=-1)


# ---------------------------------------------------------------- LE / ELE


def _nibbles(blocks: np.ndarray) -> np.ndarray:
  """[.., d] uint8 -> [.., 2d]: d low nibbles, then d high nibbles."""
  return np.concatenate([blocks & 0x0F, blocks >> 4], axis=-1)


def _pack(nibbles: np.ndarray) -> np.ndarray:
  d = nibbles.shape[-1] // 2
  return ((nibbles[..., d:] << 4) | nibbles[..., :d]).astype(np.uint8)


def _le_blocks(blocks: np.ndarray, perms: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Flip at mask, gather by perms, flip at mask again; on nibbles of [N, nb, d] blocks."""
  v = _nibbles(blocks)
  v = np.where(mask, 15 - v, v)
  v = _gather_per_block(v, perms)
  v = np.where(mask, 15 - v, v)
  return _pack(v)


def _le_mask(perm: np.ndarray) -> np.ndarray:
  d = perm.shape[-1] // 2
  return perm > d  # strictly: perm == d is not flipped (ICCE-TW 2018)


def le_encrypt(images, perm, block_size: int, layout: str = "hwc") -> np.ndarray:
  """LE (Tanaka ICCE-TW 2018). images [N, H, W, C] uint8, perm [2d] -> uint8 same shape."""
  images = _check_images(images, block_size)
  perm = np.asarray(perm, dtype=np.intp)
  blocks = blockify(images, block_size, layout)
  out = _le_blocks(blocks, perm, _le_mask(perm))
  return unblockify(out, images.shape[1:], block_size, layout)


def le_decrypt(images, perm, block_size: int, layout: str = "hwc") -> np.ndarray:
  """Inverse of `le_encrypt`: argsort(perm) with the same flip mask."""
  images = _check_images(images, block_size)
  perm = np.asarray(perm, dtype=np.intp)
  blocks = blockify(images, block_size, layout)
  out = _le_blocks(blocks, np.argsort(perm), _le_mask(perm))
  return unblockify(out, images.shape[1:], block_size, layout)


def ele_encrypt(images, perms, block_perm, block_size: int, layout: str = "hwc") -> np.ndarray:
  """ELE. perms [nb, 2d] (LE perm of block b, in place), then out block j = block block_perm[j]."""
  images = _check_images(images, block_size)
  perms = np.asarray(perms, dtype=np.intp)
  block_perm = np.asarray(block_perm, dtype=np.intp)
  blocks = blockify(images, block_size, layout)
  enc = _le_blocks(blocks, perms, _le_mask(perms))
  return unblockify(enc[:, block_perm], images.shape[1:], block_size, layout)


def ele_decrypt(images, perms, block_perm, block_size: int, layout: str = "hwc") -> np.ndarray:
  """Inverse of `ele_encrypt`."""
  images = _check_images(images, block_size)
  perms = np.asarray(perms, dtype=np.intp)
  block_perm = np.asarray(block_perm, dtype=np.intp)
  blocks = blockify(images, block_size, layout)
  enc = blocks[:, np.argsort(block_perm)]  # enc[:, block_perm[j]] = blocks[:, j]
  inv = np.argsort(perms, axis=-1)
  dec = _le_blocks(enc, inv, _le_mask(perms))
  return unblockify(dec, images.shape[1:], block_size, layout)


# ---------------------------------------------------------------- EtC


def _take_colors(x: np.ndarray, orders: np.ndarray) -> np.ndarray:
  """out[..., c] = x[..., orders[..., c]]; orders broadcast against x's leading axes."""
  idx = np.broadcast_to(orders, x.shape)
  return np.take_along_axis(x, idx, axis=-1)


def _rotate_flip(blocks: np.ndarray, rotation: np.ndarray, flip: np.ndarray,
                 inverse: bool) -> np.ndarray:
  """Per block j: rot90 (CCW) by rotation[j], then flip (0 none, 1 lr, 2 ud); or the inverse."""
  out = np.empty_like(blocks)
  for r in range(4):
    for f in range(3):
      sel = (rotation == r) & (flip == f)
      if not sel.any():
        continue
      x = blocks[:, sel]  # [N, k, B, B, C]; axis 2 = rows, axis 3 = columns
      if not inverse:
        x = np.rot90(x, r, axes=(2, 3))
        if f == 1:
          x = x[:, :, :, ::-1]
        elif f == 2:
          x = x[:, :, ::-1]
      else:
        if f == 1:
          x = x[:, :, :, ::-1]
        elif f == 2:
          x = x[:, :, ::-1]
        x = np.rot90(x, -r, axes=(2, 3))
      out[:, sel] = x
  return out


def etc_encrypt(images, block_perm, rotation, flip, negate, color, block_size: int) -> np.ndarray:
  """EtC: scramble, rotate+flip, negative-positive, colour shuffle (all by output block j)."""
  images = _check_images(images, block_size)
  block_perm = np.asarray(block_perm, dtype=np.intp)
  rotation, flip = np.asarray(rotation), np.asarray(flip)
  negate, color = np.asarray(negate, dtype=bool), np.asarray(color, dtype=np.intp)
  x = _blocks_5d(images, block_size)[:, block_perm]
  x = _rotate_flip(x, rotation, flip, inverse=False)
  x = np.where(negate[None, :, None, None, None], 255 - x, x)
  if images.shape[-1] == 3:
    x = _take_colors(x, COLOR_PERMUTATIONS[color][None, :, None, None, :])
  return _unblocks_5d(x.astype(np.uint8), images.shape[1:])


def etc_decrypt(images, block_perm, rotation, flip, negate, color, block_size: int) -> np.ndarray:
  """Inverse of `etc_encrypt`."""
  images = _check_images(images, block_size)
  block_perm = np.asarray(block_perm, dtype=np.intp)
  rotation, flip = np.asarray(rotation), np.asarray(flip)
  negate, color = np.asarray(negate, dtype=bool), np.asarray(color, dtype=np.intp)
  x = _blocks_5d(images, block_size)
  if images.shape[-1] == 3:
    inverse_orders = np.argsort(COLOR_PERMUTATIONS[color], axis=-1)
    x = _take_colors(x, inverse_orders[None, :, None, None, :])
  x = np.where(negate[None, :, None, None, None], 255 - x, x)
  x = _rotate_flip(x, rotation, flip, inverse=True)
  x = x[:, np.argsort(block_perm)]
  return _unblocks_5d(x.astype(np.uint8), images.shape[1:])


# ---------------------------------------------------------------- PE


def pe_encrypt(images, negate, color) -> np.ndarray:
  """PE: x -> 255 - x where negate [H, W, C]; then out channel c = channel perms[color[p]][c]."""
  images = _check_images(images, 1)
  negate, color = np.asarray(negate, dtype=bool), np.asarray(color, dtype=np.intp)
  x = np.where(negate[None], 255 - images, images).astype(np.uint8)
  if images.shape[-1] == 3:
    x = _take_colors(x, COLOR_PERMUTATIONS[color][None])
  return x


def pe_decrypt(images, negate, color) -> np.ndarray:
  """Inverse of `pe_encrypt`."""
  images = _check_images(images, 1)
  negate, color = np.asarray(negate, dtype=bool), np.asarray(color, dtype=np.intp)
  x = images
  if images.shape[-1] == 3:
    x = _take_colors(x, np.argsort(COLOR_PERMUTATIONS[color], axis=-1)[None])
  return np.where(negate[None], 255 - x, x).astype(np.uint8)


# ---------------------------------------------------------------- ViT


def vit_encrypt(images, pixel_perm, block_perm, block_size: int, layout: str = "hwc") -> np.ndarray:
  """Out block j = block block_perm[j]; its value i = value pixel_perm[i] (in `layout` order)."""
  images = _check_images(images, block_size)
  pixel_perm = np.asarray(pixel_perm, dtype=np.intp)
  block_perm = np.asarray(block_perm, dtype=np.intp)
  blocks = blockify(images, block_size, layout)
  out = blocks[:, block_perm][:, :, pixel_perm]
  return unblockify(out, images.shape[1:], block_size, layout)


def vit_decrypt(images, pixel_perm, block_perm, block_size: int, layout: str = "hwc") -> np.ndarray:
  """Inverse of `vit_encrypt`."""
  images = _check_images(images, block_size)
  pixel_perm = np.asarray(pixel_perm, dtype=np.intp)
  block_perm = np.asarray(block_perm, dtype=np.intp)
  blocks = blockify(images, block_size, layout)
  out = blocks[:, np.argsort(block_perm)][:, :, np.argsort(pixel_perm)]
  return unblockify(out, images.shape[1:], block_size, layout)


# ---------------------------------------------------------------- block-wise (AprilPyone & Kiya)


def blockwise_encrypt(images, block_size: int, *, perm=None, flip_mask=None, ffx_table=None,
                      layout: str = "hwc") -> np.ndarray:
  """Shuffle (y[i] = x[perm[i]]), then flip (255 - y at flip_mask), then FFX table lookup.

  Any of perm / flip_mask / ffx_table may be None (transform not applied).
  Returns uint8, or uint16 codes when ffx_table ([d, 256]) is given.
  """
  images = _check_images(images, block_size)
  y = blockify(images, block_size, layout)
  if perm is not None:
    y = y[..., np.asarray(perm, dtype=np.intp)]
  if flip_mask is not None:
    y = np.where(np.asarray(flip_mask, dtype=bool), 255 - y, y).astype(np.uint8)
  if ffx_table is not None:
    table = np.asarray(ffx_table)
    y = table[np.arange(table.shape[0]), y]  # code of value y[.., i] at position i
  return unblockify(y, images.shape[1:], block_size, layout)


def blockwise_decrypt(images, block_size: int, *, perm=None, flip_mask=None, ffx_table=None,
                      layout: str = "hwc") -> np.ndarray:
  """Inverse of `blockwise_encrypt`; uint8 out."""
  images = np.asarray(images)
  images = _check_images(images, block_size)
  y = blockify(images, block_size, layout)
  if ffx_table is not None:
    table = np.asarray(ffx_table).astype(np.intp)
    d = table.shape[0]
    inverse = np.zeros((d, 1000), dtype=np.uint8)
    inverse[np.arange(d)[:, None], table] = np.arange(256, dtype=np.uint8)
    y = inverse[np.arange(d), y.astype(np.intp)]
  y = y.astype(np.uint8)
  if flip_mask is not None:
    y = np.where(np.asarray(flip_mask, dtype=bool), 255 - y, y).astype(np.uint8)
  if perm is not None:
    y = y[..., np.argsort(np.asarray(perm, dtype=np.intp))]
  return unblockify(y, images.shape[1:], block_size, layout)


# ---------------------------------------------------------------- Huang 2022 (reconstruction)


def block_filter(images, block_size: int, statistic: str = "median") -> np.ndarray:
  """Fills every B x B block, per channel, with one statistic of it (uint8 out).

  mean = floor(sum / count + 1/2); median = mean of the two middle values
  rounded half up (the middle value for odd counts).
  """
  images = _check_images(images, block_size)
  n, h, w, c = images.shape
  b = block_size
  x = (images.reshape(n, h // b, b, w // b, b, c)
       .transpose(0, 1, 3, 5, 2, 4).reshape(n, h // b, w // b, c, b * b).astype(np.int64))
  count = b * b
  if statistic == "median":
    s = np.sort(x, axis=-1)
    lo, hi = s[..., (count - 1) // 2], s[..., count // 2]
    stat = (lo + hi + 1) // 2
  elif statistic == "mean":
    stat = (2 * x.sum(axis=-1) + count) // (2 * count)
  elif statistic == "max":
    stat = x.max(axis=-1)
  elif statistic == "min":
    stat = x.min(axis=-1)
  else:
    raise ValueError(f"unknown statistic {statistic!r}")
  # stat: [n, by, bx, c] -> broadcast over each block's pixels.
  out = np.broadcast_to(stat[:, :, None, :, None, :], (n, h // b, b, w // b, b, c))
  return out.reshape(n, h, w, c).astype(np.uint8)


def huang2022_encrypt(images, negate, color, block_size: int,
                      statistic: str = "median") -> np.ndarray:
  """Huang 2022 reconstruction: PE (negate [H, W, C], color [H, W]) then `block_filter`."""
  return block_filter(pe_encrypt(images, negate, color), block_size, statistic)
