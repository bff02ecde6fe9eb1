"""Ciphertext-only feature-reconstruction (FR) attacks on PE (Chang & Case 2020).

PE maps every value x to x or 255 - x and shuffles every pixel's colour
components, under a key that may be fresh for every image. Neither step
moves a pixel, so the image's structure survives up to those per-pixel
choices:

  basic:    fold every value above 127 (v -> 255 - v). Each value then lies
            in 0..127 whichever way it was flipped: a recognisable, contrast-
            folded image.
  advanced: decode pixels in raster order; for every pixel pick, among its
            candidate decodings (the 6 channel orders x 2**C flip patterns,
            only the 2 flips for grayscale), the one closest (L1) to the
            mean of its already-decoded left and upper neighbours. The first
            pixel takes its folded value. Runs as a `jax.lax.scan` over rows
            with an inner scan over columns, vmapped over the batch.

Both apply unchanged to huang2022 (PE followed by a block filter); how well
they do there is measured by the security suite.

Example:
  >>> import numpy as np
  >>> from lie_jax.attacks import feature_reconstruction as fr
  >>> x = np.full((1, 4, 4, 1), 200, np.uint8)
  >>> int(fr.basic(x).max())
  55
  >>> bool((fr.advanced(255 - x) == 200).all() or (fr.advanced(255 - x) == 55).all())
  True
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lie_jax import ciphers


def _check(images: ArrayLike) -> tuple[jax.Array, bool]:
  images = jnp.asarray(images)
  if images.ndim not in (3, 4) or images.dtype != jnp.uint8 or images.shape[-1] not in (1, 3):
    raise ValueError("FR attacks take uint8 [H, W, C] or [N, H, W, C] images with C = 1 or 3, "
                     f"got {images.dtype} {images.shape}")
  single = images.ndim == 3
  return (images[None] if single else images), single


@jax.jit
def _fold(images: jax.Array) -> jax.Array:
  return jnp.where(images > 127, 255 - images, images)


def basic(images: ArrayLike) -> jax.Array:
  """Basic FR attack: v -> 255 - v for every value above 127.

  Args:
    images: PE (or huang2022) ciphertexts, uint8 [H, W, C] or [N, H, W, C].

  Returns:
    The folded images, uint8, same shape (values 0..127).
  """
  batch, single = _check(images)
  out = _fold(batch)
  return out[0] if single else out


def candidates(channels: int) -> tuple[np.ndarray, np.ndarray]:
  """Every decoding of one pixel: (orders [K, C] int, flips [K, C] bool).

  Decoding k of a cipher pixel y is `where(flips[k], 255 - y, y)[orders[k]]`:
  K = 6 * 8 = 48 for C = 3 (channel orders x flip patterns), 2 for C = 1.
  """
  orders = ciphers.COLOR_PERMUTATIONS if channels == 3 else np.zeros((1, 1), np.int32)
  flips = np.array(list(itertools.product((False, True), repeat=channels)))
  k_o, k_f = np.meshgrid(np.arange(len(orders)), np.arange(len(flips)), indexing="ij")
  return orders[k_o.reshape(-1)], flips[k_f.reshape(-1)]


def _predictions(l1, l2, u1, u2, ul, ur, at):
  """Predictions of a pixel from decoded neighbours, and whether each is available.

  l1, l2: the two pixels to the left; u1, u2: the two above; ul, ur: above
  left and above right ([C] each). `at` = (i >= 1, i >= 2, j >= 1, j >= 2,
  j + 1 < W) as floats. Planar and linear extrapolations follow smooth
  intensity through 127.5, where a plain nearest-neighbour rule would stay
  folded (v and 255 - v are equally far from 127.5).
  """
  i1, i2, j1, j2, jr = at
  preds = jnp.stack([l1 + u1 - ul, 2.0 * l1 - l2, 2.0 * u1 - u2, ur + l1 - u1])
  avail = jnp.stack([i1 * j1, j2, i2, i1 * j1 * jr])
  # With no two-pixel context (second row or column) use the single neighbour.
  near = jnp.where(j1 > 0, l1, u1)
  none = (avail.sum() == 0) * jnp.maximum(i1, j1)
  preds = jnp.concatenate([preds, near[None]])
  avail = jnp.concatenate([avail, none[None]])
  return preds, avail


def _decode_one(image: jax.Array, orders: jax.Array, flips: jax.Array) -> jax.Array:
  """[H, W, C] uint8 -> [H, W, C] float32 decoded in raster order from its neighbours."""
  x = image.astype(jnp.float32)
  flipped = jnp.where(flips[None, None], 255.0 - x[:, :, None, :], x[:, :, None, :])
  cands = jnp.take_along_axis(flipped, jnp.broadcast_to(orders, flipped.shape), axis=-1)
  folded = jnp.where(x > 127, 255.0 - x, x)  # [H, W, C]: the first pixel's decoding
  h, w, c = x.shape
  cols = jnp.arange(w)
  col_flags = ((cols >= 1), (cols >= 2), (cols + 1 < w))
  col_flags = tuple(f.astype(jnp.float32) for f in col_flags)

  def row_step(above, row):
    cand_row, fold_row, i1, i2 = row
    u1, u2 = above
    ul = jnp.roll(u1, 1, axis=0)
    ur = jnp.roll(u1, -1, axis=0)

    def col_step(left, col):
      l1, l2 = left
      cand, fold, up1, up2, upl, upr, j1, j2, jr = col
      preds, avail = _predictions(l1, l2, up1, up2, upl, upr, (i1, i2, j1, j2, jr))
      reference = (avail[:, None] * preds).sum(0) / jnp.maximum(avail.sum(), 1.0)
      cost = jnp.abs(cand - reference[None]).sum(-1)  # [K]
      value = jnp.where(avail.sum() > 0, cand[jnp.argmin(cost)], fold)
      return (value, l1), value

    start = (jnp.zeros((c,)), jnp.zeros((c,)))
    _, decoded = jax.lax.scan(col_step, start,
                              (cand_row, fold_row, u1, u2, ul, ur, *col_flags))
    return (decoded, u1), decoded

  rows = jnp.arange(h)
  row_flags = ((rows >= 1).astype(jnp.float32), (rows >= 2).astype(jnp.float32))
  zeros = jnp.zeros((w, c))
  _, out = jax.lax.scan(row_step, (zeros, zeros), (cands, folded, *row_flags))
  return out


@jax.jit
def _advanced(images: jax.Array, orders: jax.Array, flips: jax.Array,
              mean_hint: jax.Array) -> jax.Array:
  decoded = jax.vmap(_decode_one, in_axes=(0, None, None))(images, orders, flips)
  mean = decoded.mean(axis=(1, 2, 3), keepdims=True)
  negate = jnp.abs(255.0 - mean - mean_hint) < jnp.abs(mean - mean_hint)
  decoded = jnp.where(negate, 255.0 - decoded, decoded)
  return jnp.clip(jnp.round(decoded), 0, 255).astype(jnp.uint8)


def advanced(images: ArrayLike, *, mean_hint: float | None = None) -> jax.Array:
  """Advanced FR attack: per pixel, the decoding closest to the prediction from its neighbours.

  Args:
    images: PE (or huang2022) ciphertexts, uint8 [H, W, C] or [N, H, W, C].
    mean_hint: optional mean intensity (0..255) of the kind of image attacked
      (e.g. of public images of the same domain). The decoding is only
      defined up to a global negative (it starts from the first pixel's
      fold); with a hint, each image is negated where that brings its mean
      closer to the hint. None keeps the decoding as it is.

  Returns:
    Decoded images, uint8, same shape.
  """
  batch, single = _check(images)
  orders, flips = candidates(batch.shape[-1])
  hint = jnp.float32(jnp.nan if mean_hint is None else mean_hint)
  out = _advanced(batch, jnp.asarray(orders), jnp.asarray(flips), hint)
  return out[0] if single else out
