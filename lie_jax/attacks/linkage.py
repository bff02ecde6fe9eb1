"""Linkage: which known scan is this ciphertext? Key-invariant features and exact likelihoods.

Re-identification asks whether an attacker who holds candidate plain images (a public
dataset, an earlier study, the hospital's own leaked archive) can tell which of them a
ciphertext encrypts. The strongest attacker for that question needs no reconstruction at
all: whatever key was drawn, a ciphertext keeps what the key cannot change, and a candidate
whose kept part differs cannot be the plaintext. This module is that attacker, ciphertext
only, for every key mode (one shared key or a fresh key per image: the key is never
recovered, so per-image keys do not help).

Key-invariant features, f(encrypt(k, x)) == f(x) for every key k (exact identities, tested
against every scheme's encryption)::

  le:        per block (fixed position), the histogram of folded nibbles min(v, 15 - v) over
             the block's 2d nibbles: the key permutes nibbles and flips some (v -> 15 - v).
  ele:       the same histograms, as a multiset over blocks (block scrambling).
  etc:       per block, its sorted values or those of its negative (255 - x), whichever is
             smaller lexicographically (rotation, flip and colour order only move values
             inside the block; negative-positive maps the whole block), as a multiset
             over blocks.
  vit:       per block its sorted values (one pixel shuffle for all blocks), as a multiset.
  blockwise: per block (fixed position) its sorted values ("shuffle"), folded min(v, 255 - v)
             where "flip" is on; "ffx" is not covered (its codes are not bytes).
  pe:        per pixel (fixed position) its folded values min(v, 255 - v), sorted over the
             channels (negative-positive per value, colour order per pixel).
  morph:     the Euclidean norm of each of the `copies` chunks of the vector x / 255 (its
             core is orthogonal, so x . M keeps every chunk's norm); float, so equal up to
             float32 rounding rather than exactly.

A multiset is canonicalised by sorting its rows lexicographically; the score of candidate
j for ciphertext i is minus the L1 distance between their canonical features (0: the
candidate is in the ciphertext's orbit, which for images with distinct content means it
is the plaintext).

Huang 2022 (`huang2022`) discards information, so no feature is exact; its likelihood is.
A per-image key draws every value's negation and every pixel's colour order uniformly, so
each block's output value (per channel) is the block statistic of B*B independent draws,
pixel p's draw uniform over {v, 255 - v} (grayscale) or over {v_c, 255 - v_c : c} (colour,
the channel's marginal). The score of candidate j is the log-likelihood of the ciphertext's
block values under that model, sum over blocks and channels of log(P_j(o) + LOG_FLOOR):
exact for grayscale (channels are independent), a composite likelihood for colour (the
three channels of a pixel share one colour order). The distribution is enumerated where a
block has at most MAX_ENUMERATION draw combinations (2x2 blocks: 16 in grayscale, 1296 in
colour), exact from the draws' CDFs for "max" and "min", exact by convolution of the draws
for "mean" (up to MAX_CONVOLUTION work: 28x28 images in blocks up to 7x7), and otherwise (the
median of larger blocks, the mean of large images in large blocks) estimated from MC_SAMPLES
sampled keys per block, smoothed with a normal of the same moments: an approximation, so
scores there are a lower bound of the attack.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax import ciphers
  >>> from lie_jax.attacks import linkage
  >>> x = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
  >>> c = ciphers.SCHEMES["etc"].encrypt_per_image(jax.random.key(1), x, block_size=4)
  >>> s = linkage.scores(c, x, scheme="etc", options={"block_size": 4})
  >>> bool((s.argmax(axis=1) == np.arange(8)).all())
  True
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
from jax.typing import ArrayLike

from lie_jax import ciphers

INVARIANT_SCHEMES = ("le", "ele", "etc", "pe", "vit", "blockwise")
LIKELIHOOD_SCHEMES = ("huang2022",)
NORM_SCHEMES = ("morph",)
SCHEMES = INVARIANT_SCHEMES + LIKELIHOOD_SCHEMES + NORM_SCHEMES
# Draw combinations of one block enumerated exactly (beyond: CDFs or a normal approximation).
MAX_ENUMERATION = 4096
# Draws per block sampled where enumeration is too large (median, mean), and the weight
# (in samples) of the normal approximation mixed into the sampled histogram.
MC_SAMPLES = 4096
MC_PRIOR = 1.0
# Added to every probability before the log: a candidate that cannot have produced a block
# loses about 41 nats for it instead of minus infinity (one odd block does not veto).
LOG_FLOOR = 1e-18
# Float64 elements of one chunk of pairwise work.
MAX_ELEMENTS = 1 << 25
# Work (shifted adds) allowed for the exact distribution of a block mean by convolution.
MAX_CONVOLUTION = 1 << 27


def _images(x: ArrayLike, name: str) -> np.ndarray:
  a = np.asarray(x)
  if a.ndim != 4 or a.dtype != np.uint8 or len(a) == 0:
    raise ValueError(f"{name} must be a non-empty uint8 [N, H, W, C] batch, got {a.dtype} "
                     f"{a.shape}")
  if a.shape[-1] not in (1, 3):
    raise ValueError(f"{name} must have 1 or 3 channels, got {a.shape[-1]}")
  return a


def _positive(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
  return int(value)


def _options(scheme: str, options: Mapping[str, Any] | None,
             image_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
  """The scheme's options with defaults, checked as its cipher checks them: for image schemes
  by drawing a throwaway key for `image_shape` (the cipher's own errors; once per setting), for
  morph by hand (a dense key at 224 px would be gigabytes)."""
  if scheme not in SCHEMES:
    raise ValueError(f"linkage covers {list(SCHEMES)}, not {scheme!r}")
  record = ciphers.get_scheme(scheme)
  opts = record.check_options(dict(options or {}))
  if scheme == "blockwise" and "ffx" in opts["transforms"]:
    raise ValueError("linkage on blockwise covers the 'shuffle' and 'flip' transforms, not "
                     "'ffx' (its uint16 codes are not bytes)")
  if scheme == "morph":
    _positive("copies", opts["copies"])
  elif image_shape is not None:
    token = (scheme, repr(sorted(opts.items())), tuple(image_shape))
    if token not in _KEY_CHECKED:  # once per setting: callers in training loops repeat it
      import jax  # pylint: disable=g-import-not-at-top
      record.generate_key(jax.random.key(0), image_shape=tuple(image_shape), **opts)
      if len(_KEY_CHECKED) >= 256:
        _KEY_CHECKED.clear()
      _KEY_CHECKED.add(token)
  return opts


# Settings (scheme, options, image shape) whose throwaway key was drawn without an error.
_KEY_CHECKED: set[tuple[str, str, tuple[int, ...]]] = set()


def _blocks(x: np.ndarray, block_size: int) -> np.ndarray:
  h, w = x.shape[1:3]
  if h % block_size or w % block_size:
    raise ValueError(f"block size {block_size} does not divide the {h}x{w} images")
  return np.asarray(ciphers.blockify(x, block_size=block_size))  # [N, nb, d]


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
  """[N, nb, d] -> the same rows of each image in lexicographic order (a canonical multiset)."""
  out = np.empty_like(rows)
  for i, r in enumerate(rows):
    out[i] = r[np.lexsort(r.T[::-1])]
  return out


def _lexmin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Row-wise the lexicographically smaller of a and b ([..., d] each)."""
  diff = a != b
  first = diff.argmax(axis=-1)
  a_first = np.take_along_axis(a, first[..., None], -1)[..., 0]
  b_first = np.take_along_axis(b, first[..., None], -1)[..., 0]
  take_b = diff.any(axis=-1) & (b_first < a_first)
  return np.where(take_b[..., None], b, a)


def invariants(images: ArrayLike, *, scheme: str,
               options: Mapping[str, Any] | None = None) -> np.ndarray:
  """Key-invariant features of images (plain or encrypted), [N, F] int16.

  f(encrypt(k, x)) == f(x) for every key of `scheme` (see the module docstring), so a
  ciphertext's features equal its plaintext's exactly.

  Raises:
    ValueError: a scheme not in INVARIANT_SCHEMES, bad options or images.
  """
  x = _images(images, "images")
  if scheme not in INVARIANT_SCHEMES:
    raise ValueError(f"key-invariant features cover {list(INVARIANT_SCHEMES)}, not {scheme!r}"
                     f"{' (its likelihood: linkage.scores)' if scheme in SCHEMES else ''}")
  opts = _options(scheme, options, x.shape[1:])
  n = len(x)
  if scheme == "pe":
    v = x.astype(np.int16)
    return np.sort(np.minimum(v, 255 - v), axis=-1).reshape(n, -1)
  blocks = _blocks(x, opts["block_size"]).astype(np.int16)
  if scheme in ("le", "ele"):
    nibbles = np.concatenate([blocks & 15, blocks >> 4], axis=-1)
    folded = np.minimum(nibbles, 15 - nibbles)
    feats = (folded[..., None] == np.arange(8)).sum(axis=-2).astype(np.int16)  # [N, nb, 8]
    return (_sorted_rows(feats) if scheme == "ele" else feats).reshape(n, -1)
  if scheme == "blockwise":
    if "flip" in opts["transforms"]:
      blocks = np.minimum(blocks, 255 - blocks)
    if "shuffle" in opts["transforms"]:
      blocks = np.sort(blocks, axis=-1)
    return blocks.reshape(n, -1)
  values = np.sort(blocks, axis=-1)
  if scheme == "etc":
    values = _lexmin(values, 255 - values[..., ::-1])
  return _sorted_rows(values).reshape(n, -1)


def chunk_norms(x: ArrayLike, *, copies: int = 1) -> np.ndarray:
  """Morph's invariant: float64 [N, copies], the norm of each chunk of the morphed vector.

  x: [N, n] float morphed vectors (`morph.encrypt`), or [N, H, W, C] uint8 plain images
  (flattened, scaled by 1/255 and zero-padded to a multiple of `copies`, as morph does).
  """
  a = np.asarray(x)
  if a.ndim == 4 and a.dtype == np.uint8:
    v = a.reshape(len(a), -1).astype(np.float64) / 255.0
    v = np.pad(v, ((0, 0), (0, -v.shape[1] % copies)))
  elif a.ndim == 2 and np.issubdtype(a.dtype, np.floating):
    v = a.astype(np.float64)
  else:
    raise ValueError(f"morph linkage takes [N, n] float vectors or [N, H, W, C] uint8 images, "
                     f"got {a.dtype} {a.shape}")
  if len(v) == 0 or v.shape[1] % copies:
    raise ValueError(f"cannot cut {v.shape} into {copies} chunks per row")
  return np.linalg.norm(v.reshape(len(v), copies, -1), axis=-1)


def _l1_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """-(L1 distance) of every pair of rows of a [M, F] and b [N, F], float64 [M, N]."""
  out = np.empty((len(a), len(b)))
  features = max(1, a.shape[1])
  cols = max(1, min(len(b), MAX_ELEMENTS // features))
  rows = max(1, MAX_ELEMENTS // (features * cols))
  kind = np.float64 if np.issubdtype(b.dtype, np.floating) else np.int32
  for j in range(0, len(b), cols):
    bj = b[j:j + cols].astype(kind)
    for i in range(0, len(a), rows):
      part = a[i:i + rows].astype(kind)
      out[i:i + rows, j:j + cols] = -np.abs(part[:, None, :] - bj[None]).sum(axis=-1)
  return out


def _statistic(draws: np.ndarray, statistic: str) -> np.ndarray:
  """The Huang 2022 block statistic over the last axis of integer draws (its rounding)."""
  count = draws.shape[-1]
  if statistic == "max":
    return draws.max(axis=-1)
  if statistic == "min":
    return draws.min(axis=-1)
  if statistic == "mean":
    return (2 * draws.sum(axis=-1) + count) // (2 * count)
  ordered = np.sort(draws, axis=-1)
  return (ordered[..., (count - 1) // 2] + ordered[..., count // 2] + 1) // 2


def _choices(image: np.ndarray, block_size: int) -> np.ndarray:
  """The values each pixel's draw takes, uniformly: [nb, B*B, s] (s = 2 grey, 6 colour)."""
  v = image.astype(np.int64)
  per_pixel = np.concatenate([v, 255 - v], axis=-1)  # [H, W, 2C]
  return _blocks(per_pixel[None].astype(np.uint8), block_size)[0].reshape(
      -1, block_size * block_size, per_pixel.shape[-1]).astype(np.int64)


def outcome_table(image: ArrayLike, *, block_size: int, statistic: str = "median"
                  ) -> np.ndarray:
  """P(block output value = o) for one plain image under a random Huang 2022 key.

  Args:
    image: [H, W, C] uint8 plain image (C = 1 or 3), B dividing H and W.
    block_size, statistic: the cipher's filter.

  Returns:
    float64 [nb, 256], one distribution per block (blocks in row-major order; for colour
    images every channel's marginal, which is the same for the three channels).
  """
  x = _images(np.asarray(image)[None], "image")[0]
  block_size = _positive("block_size", block_size)
  if statistic not in ciphers.huang2022.STATISTICS:
    raise ValueError(f"statistic must be one of {ciphers.huang2022.STATISTICS}, got "
                     f"{statistic!r}")
  choices = _choices(x, block_size)  # [nb, P, s]
  nb, p, s = choices.shape
  table = np.zeros((nb, 256))
  if s ** p <= MAX_ENUMERATION:
    combos = np.array(list(itertools.product(range(s), repeat=p)))  # [K, P]
    draws = choices[:, np.arange(p)[None, :], combos]  # [nb, K, P]
    stat = _statistic(draws, statistic)  # [nb, K]
    np.add.at(table, (np.repeat(np.arange(nb), stat.shape[1]), stat.ravel()), 1.0)
    return table / stat.shape[1]
  if statistic in ("max", "min"):
    grid = np.arange(256)
    sign = 1 if statistic == "max" else -1
    # P(draw_p <= t) (max) or P(draw_p >= t) (min), independent draws.
    cdf = ((sign * choices[..., None] <= sign * grid).mean(axis=2)).prod(axis=1)  # [nb, 256]
    if statistic == "max":
      return np.diff(cdf, prepend=0.0, axis=-1)
    return -np.diff(cdf, append=0.0, axis=-1)
  if statistic == "mean" and p * s * nb * (255 * p + 1) <= MAX_CONVOLUTION:
    # Exact: the distribution of the block's sum, one pixel's draw at a time.
    sums = np.zeros((nb, 255 * p + 1))
    sums[:, 0] = 1.0
    rows = np.arange(nb)
    for k in range(p):
      step = np.zeros_like(sums)
      for j in range(s):
        shift = choices[:, k, j]
        for r in rows:  # each block shifts by its own value
          step[r, shift[r]:] += sums[r, :sums.shape[1] - shift[r]]
      sums = step / s
    out_value = (2 * np.arange(sums.shape[1]) + p) // (2 * p)
    np.add.at(table.T, out_value, sums.T)
    return table
  # Sampled: MC_SAMPLES draws per block (fixed seed), in chunks of blocks, mixed with a normal
  # of the statistic-of-means moments so that values no sample hit keep some probability.
  rng = np.random.default_rng(0)
  chunk = max(1, MAX_ELEMENTS // (MC_SAMPLES * p))
  for start in range(0, nb, chunk):
    part = choices[start:start + chunk]
    picks = rng.integers(0, s, (len(part), MC_SAMPLES, p), dtype=np.uint8)
    draws = np.take_along_axis(part[:, None], picks[..., None].astype(np.intp), axis=-1)[..., 0]
    stat = _statistic(draws, statistic)  # [chunk, MC_SAMPLES]
    np.add.at(table, (np.repeat(np.arange(start, start + len(part)), MC_SAMPLES), stat.ravel()),
              1.0)
  mean = choices.mean(axis=(1, 2))
  var = choices.var(axis=2).sum(axis=1) / p ** 2 + 1.0 / 12.0  # + rounding
  grid = np.arange(256)
  dens = np.exp(-0.5 * (grid[None] - mean[:, None]) ** 2 / var[:, None])
  dens /= dens.sum(axis=1, keepdims=True)
  return (table + MC_PRIOR * dens) / (MC_SAMPLES + MC_PRIOR)


def _observed(ciphertexts: np.ndarray, block_size: int) -> np.ndarray:
  """Each block's output value per channel, [M, nb, C] (the top-left value of the block)."""
  return ciphertexts[:, ::block_size, ::block_size, :].reshape(len(ciphertexts), -1,
                                                               ciphertexts.shape[-1])


def _likelihood_scores(ciphertexts: np.ndarray, candidates: np.ndarray,
                       opts: dict[str, Any], progress: bool) -> np.ndarray:
  b = opts["block_size"]
  obs = _observed(ciphertexts, b).astype(np.int64)  # [M, nb, C]
  rows = np.arange(obs.shape[1])[None, :, None]
  out = np.empty((len(ciphertexts), len(candidates)))
  items = range(len(candidates))
  if progress:
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    items = tqdm(items, desc="linkage (likelihood)", unit="candidate")
  for j in items:
    log_table = np.log(outcome_table(candidates[j], block_size=b,
                                     statistic=opts["statistic"]) + LOG_FLOOR)
    out[:, j] = log_table[rows, obs].sum(axis=(1, 2))
  return out


def scores(ciphertexts: ArrayLike, candidates: ArrayLike, *, scheme: str,
           options: Mapping[str, Any] | None = None, progress: bool = False) -> np.ndarray:
  """How well each candidate plain image explains each ciphertext: float64 [M, N], higher
  is more likely (invariant schemes: minus the L1 distance of the key-invariant features,
  0 for the plaintext; morph: minus the L1 distance of the chunk norms; huang2022: the
  log-likelihood).

  Args:
    ciphertexts: [M, H, W, C] uint8 ciphertexts of `scheme` (any key, any key mode; morph:
      its [M, n] float vectors).
    candidates: [N, H, W, C] uint8 plain images.
    scheme: a name in SCHEMES; options: its `generate_key` options (block size, ...).
    progress: a progress bar over the candidates (likelihood).

  Raises:
    ValueError: an unknown scheme or option, or images of different shapes.
  """
  if scheme in NORM_SCHEMES:
    opts = _options(scheme, options)
    p = _images(candidates, "candidates")
    copies = opts["copies"]
    n = -(-int(np.prod(p.shape[1:])) // copies) * copies
    c = np.asarray(ciphertexts)
    if c.ndim != 2 or c.shape[1] != n:
      raise ValueError(f"morph ciphertexts of {p.shape[1:]} images with copies={copies} are "
                       f"[M, {n}] vectors, got shape {c.shape}")
    return _l1_scores(chunk_norms(c, copies=copies), chunk_norms(p, copies=copies))
  c, p = _images(ciphertexts, "ciphertexts"), _images(candidates, "candidates")
  if c.shape[1:] != p.shape[1:]:
    raise ValueError(f"ciphertexts and candidates differ in shape: {c.shape[1:]} and "
                     f"{p.shape[1:]}")
  opts = _options(scheme, options, p.shape[1:])
  if scheme in LIKELIHOOD_SCHEMES:
    _blocks(p[:1], opts["block_size"])  # a clear error when B does not divide H, W
    return _likelihood_scores(c, p, opts, progress)
  return _l1_scores(invariants(c, scheme=scheme, options=opts),
                    invariants(p, scheme=scheme, options=opts))


def attack(ciphertexts: ArrayLike, candidates: ArrayLike, *, scheme: str,
           options: Mapping[str, Any] | None = None, progress: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
  """(the attacker's answer: for each ciphertext the most likely candidate image, [M, H, W,
  C] uint8; the score matrix of `scores`)."""
  s = scores(ciphertexts, candidates, scheme=scheme, options=options, progress=progress)
  return np.asarray(candidates)[s.argmax(axis=1)], s
