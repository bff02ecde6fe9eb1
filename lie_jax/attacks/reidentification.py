"""Re-identification: can the attacker tell whose scan a reconstruction is?

SSIM against the plain image says how much of an image an attack recovers, but
against a strong prior (on 28x28 chest X-rays the mean training image alone
scores SSIM 0.62) it hides what a hospital asks: given a reconstruction, can
the attacker pick the right patient out of a gallery of candidate images? This
module scores that as closed-set identification, the face-recognition protocol
(cumulative match characteristic, rank-k identification rate; Phillips et al.,
"The FERET evaluation methodology", IEEE TPAMI 22(10), 2000), applied to the
reconstructions of attacks on learnable image encryption (issue 18; the attacks
of Chang & Case 2020, Ito et al. and Chuman & Kiya that `lie_jax.attacks` runs).

For reconstruction i of M and a gallery of N >= M candidate plain images whose
true match is candidates[i], every candidate j gets a similarity s[i, j]; the
rank of the truth is

  rank[i] = 1 + #{j != i : s[i, j] >= s[i, i]},

so a tie with a wrong candidate counts against the attacker (pessimistic: a
reconstruction that cannot tell two candidates apart has not identified
either, and a constant or blank reconstruction, equally similar to all, ranks
last instead of first). The top-k identification rate is the share of
reconstructions with rank <= k; chance (a uniformly random guess) is k/N.

Similarities (higher is more similar)::

  ncc (default): normalised cross-correlation (Pearson's r over all pixels and
    channels). Invariant to a global gain and offset of either image, so an
    attack that recovers structure but not the intensity scale (feature
    reconstruction, an undertrained network) is not penalised for it; one
    matrix product for all pairs. A constant image has r = 0 with everything.
  psnr: 10 log10(data_range**2 / MSE): plain pixel agreement.
  ssim: the Gaussian-window SSIM of `lie_jax.attacks.metrics.ssim`, for every
    pair; needs images of at least 11x11 pixels and is the slowest.

Memory stays bounded for large galleries (N ~ 1000 at 28x28, N ~ 100 at
224x224): scores are computed in chunks of reconstructions (and, for SSIM, of
candidates) sized from `max_elements`. Cost on 2 CPU cores: ncc and psnr take
0.2 s for 1000 x 1000 pairs at 28x28 and 2-4 s for 100 x 100 at 224x224x3;
ssim about 37 s and 50 s (some 5 ms a pair at 224x224x3).

Example:
  >>> import numpy as np
  >>> from lie_jax.attacks import reidentification
  >>> x = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 1), dtype=np.uint8)
  >>> r = reidentification.identification_rates(x // 2 + 40, x)  # dimmed copies
  >>> r["top1"], r["chance_top1"], r["top5"], r["chance_top5"]
  (1.0, 0.05, 1.0, 0.25)
"""

from __future__ import annotations

import math

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lie_jax.attacks import metrics

SIMILARITIES = ("ncc", "psnr", "ssim")
DEFAULT_SIMILARITY = "ncc"
# Float64 elements of one score chunk (recovered chunk x candidates x pixels for SSIM).
DEFAULT_MAX_ELEMENTS = 1 << 25
# Scores within this relative distance of the truth's tie with it (float noise).
TIE_RTOL = 1e-9


def _as_batch(images: ArrayLike, name: str) -> np.ndarray:
  """[N, H, W] or [N, H, W, C] -> float64 [N, H, W, C] (values unchanged)."""
  x = np.asarray(images)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise ValueError(f"{name} must be [N, H, W] or [N, H, W, C], got shape {x.shape}")
  if x.shape[0] == 0:
    raise ValueError(f"{name} must hold at least one image, got shape {x.shape}")
  if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
    raise ValueError(f"{name} must be integer or float images, got dtype {x.dtype}")
  return x.astype(np.float64)


def _check_inputs(recovered: ArrayLike, candidates: ArrayLike,
                  similarity: str) -> tuple[np.ndarray, np.ndarray]:
  if similarity not in SIMILARITIES:
    raise ValueError(f"unknown similarity {similarity!r}; choose from {', '.join(SIMILARITIES)}")
  rec, cand = _as_batch(recovered, "recovered"), _as_batch(candidates, "candidates")
  if rec.shape[1:] != cand.shape[1:]:
    raise ValueError(f"recovered and candidate images differ in shape: {rec.shape[1:]} and "
                     f"{cand.shape[1:]}")
  if rec.shape[0] > cand.shape[0]:
    raise ValueError(f"{rec.shape[0]} reconstructions but only {cand.shape[0]} candidates: "
                     "reconstruction i's true image is candidates[i]")
  return rec, cand


def _chunks(n: int, size: int) -> list[slice]:
  size = max(1, size)
  return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _progress(items: list[Any], progress: bool, desc: str) -> Any:
  if not progress:
    return items
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(items, desc=desc, unit="chunk")


def _ncc_scores(rec: np.ndarray, cand: np.ndarray, chunk: int, progress: bool) -> np.ndarray:
  """Pearson correlation of every (recovered, candidate) pair: [M, N] float64.

  From raw sums, r = (a.b - sa sb / D) / sqrt((a.a - sa^2 / D)(b.b - sb^2 / D)),
  whose dot products are exact in float64 for integer-valued images, so
  duplicate candidates score bitwise alike. An image whose sum of squared
  deviations is below 1e-12 of its sum of squares counts as constant: r = 0.
  """
  c = cand.reshape(cand.shape[0], -1)
  d = c.shape[1]
  c_sum, c_sq = c.sum(axis=1), np.einsum("nd,nd->n", c, c)
  c_dev = c_sq - c_sum * c_sum / d
  c_dev = np.where(c_dev > 1e-12 * c_sq, c_dev, 0.0)
  out = np.empty((rec.shape[0], cand.shape[0]))
  for sl in _progress(_chunks(rec.shape[0], chunk), progress, "re-identification (ncc)"):
    r = rec[sl].reshape(sl.stop - sl.start, -1)
    r_sum, r_sq = r.sum(axis=1), np.einsum("nd,nd->n", r, r)
    r_dev = r_sq - r_sum * r_sum / d
    r_dev = np.where(r_dev > 1e-12 * r_sq, r_dev, 0.0)
    cov = r @ c.T - r_sum[:, None] * c_sum[None, :] / d
    denom = np.sqrt(r_dev[:, None] * c_dev[None, :])
    out[sl] = np.clip(cov / np.where(denom > 0, denom, 1.0), -1.0, 1.0) * (denom > 0)
  return out


def _psnr_scores(rec: np.ndarray, cand: np.ndarray, chunk: int, data_range: float,
                 progress: bool) -> np.ndarray:
  """PSNR of every pair, [M, N] float64 (inf where equal).

  The squared distance is expanded as |a|^2 + |b|^2 - 2 a.b in float64, which
  is exact for integer-valued images (every partial sum stays below 2**53),
  so equal images give MSE 0 and duplicates tie exactly.
  """
  c = cand.reshape(cand.shape[0], -1)
  c_sq = np.einsum("nd,nd->n", c, c)
  d = c.shape[1]
  out = np.empty((rec.shape[0], cand.shape[0]))
  for sl in _progress(_chunks(rec.shape[0], chunk), progress, "re-identification (psnr)"):
    r = rec[sl].reshape(sl.stop - sl.start, -1)
    sq = np.einsum("nd,nd->n", r, r)[:, None] + c_sq[None, :] - 2.0 * (r @ c.T)
    mse = np.maximum(sq, 0.0) / d
    with np.errstate(divide="ignore"):
      out[sl] = 10.0 * np.log10(data_range ** 2 / mse)
  return out


def _blur_matrix(size: int) -> np.ndarray:
  """[size - 2r, size] float32: row p holds the Gaussian taps of `metrics.ssim` at p..p+2r."""
  taps = metrics.gaussian_window()
  out = np.zeros((size - taps.shape[0] + 1, size), np.float32)
  for p in range(out.shape[0]):
    out[p, p:p + taps.shape[0]] = taps
  return out


def _blur_valid(x: jax.Array, gh: jax.Array, gw: jax.Array) -> jax.Array:
  """'Valid' separable Gaussian filter over the H, W axes of [..., H, W, C], as two
  matrix products (far faster on CPU than a convolution over many small images)."""
  y = jnp.einsum("ph,...hwc->...pwc", gh, x, precision="highest")
  return jnp.einsum("qw,...pwc->...pqc", gw, y, precision="highest")


@jax.jit
def _moments(x: jax.Array, gh: jax.Array, gw: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Local means and variances of [N, H, W, C] images on a 0..1 scale."""
  mu = _blur_valid(x, gh, gw)
  return mu, _blur_valid(x * x, gh, gw) - mu * mu


@jax.jit
def _pair_ssim(a: jax.Array, b: jax.Array, mom_a: tuple[jax.Array, jax.Array],
               mom_b: tuple[jax.Array, jax.Array], gh: jax.Array, gw: jax.Array) -> jax.Array:
  """SSIM of every pair of a [r, H, W, C] and b [c, H, W, C] (0..1 scale): [r, c]."""
  (mu_a, var_a), (mu_b, var_b) = mom_a, mom_b
  mu_a, var_a, mu_b, var_b = mu_a[:, None], var_a[:, None], mu_b[None], var_b[None]
  cov = _blur_valid(a[:, None] * b[None], gh, gw) - mu_a * mu_b
  c1, c2 = metrics.K1 ** 2, metrics.K2 ** 2
  smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
      (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
  return smap.mean(axis=(2, 3, 4))


def _padded(x: jax.Array, sl: slice, size: int) -> jax.Array:
  """x[sl], padded by repeating its first row to `size` rows (one compiled shape)."""
  part = x[sl]
  if part.shape[0] == size:
    return part
  return jnp.concatenate([part, jnp.repeat(part[:1], size - part.shape[0], axis=0)])


def _ssim_scores(rec: np.ndarray, cand: np.ndarray, max_elements: int, data_range: float,
                 progress: bool) -> np.ndarray:
  """SSIM of every pair, [M, N] float64: `metrics.ssim`'s formula, with each image's
  local means and variances computed once and only the cross term per pair."""
  window = 2 * int(metrics.TRUNCATE * metrics.SIGMA + 0.5) + 1
  if min(rec.shape[1:3]) < window:
    raise ValueError(f"SSIM needs images of at least {window}x{window} pixels (the Gaussian "
                     f"window), got {rec.shape[1]}x{rec.shape[2]}")
  m, n = rec.shape[0], cand.shape[0]
  gh, gw = jnp.asarray(_blur_matrix(rec.shape[1])), jnp.asarray(_blur_matrix(rec.shape[2]))
  a = jnp.asarray(rec / data_range, jnp.float32)
  b = jnp.asarray(cand / data_range, jnp.float32)
  mom_a, mom_b = _moments(a, gh, gw), _moments(b, gh, gw)
  # A block of r x c pairs holds about 4 float32 copies of r * c images.
  pairs = max(1, max_elements // (2 * int(np.prod(rec.shape[1:]))))
  c = min(n, pairs)
  r = min(m, max(1, pairs // c))
  out = np.empty((m, n))
  blocks = [(i, j) for i in _chunks(m, r) for j in _chunks(n, c)]
  for i, j in _progress(blocks, progress, "re-identification (ssim)"):
    s = _pair_ssim(_padded(a, i, r), _padded(b, j, c),
                   tuple(_padded(t, i, r) for t in mom_a),
                   tuple(_padded(t, j, c) for t in mom_b), gh, gw)
    out[i, j] = np.asarray(s, np.float64)[:i.stop - i.start, :j.stop - j.start]
  return out


def similarity_matrix(recovered: ArrayLike, candidates: ArrayLike, *,
                      similarity: str = DEFAULT_SIMILARITY, data_range: float = 255.0,
                      max_elements: int = DEFAULT_MAX_ELEMENTS,
                      progress: bool = False) -> np.ndarray:
  """Similarity of every reconstruction to every candidate.

  Args:
    recovered: [M, H, W] or [M, H, W, C] reconstructions (uint8 or float on the
      0..data_range scale).
    candidates: [N, H, W(, C)] plain images, N >= M.
    similarity: "ncc" (default), "psnr" or "ssim" (see the module docstring).
    data_range: the value range (255 for uint8 images); used by psnr and ssim.
    max_elements: bound on the float64 elements of one chunk of work.
    progress: show a progress bar over the chunks.

  Returns:
    float64 [M, N], higher is more similar (psnr: +inf for equal images).

  Raises:
    ValueError: unknown similarity, bad ranks or shapes, or M > N.
  """
  rec, cand = _check_inputs(recovered, candidates, similarity)
  if max_elements < 1:
    raise ValueError(f"max_elements must be positive, got {max_elements}")
  # A chunk of c reconstructions holds c x D pixels and c x N scores.
  chunk = max_elements // (int(np.prod(rec.shape[1:])) + cand.shape[0])
  if similarity == "ncc":
    return _ncc_scores(rec, cand, chunk, progress)
  if similarity == "psnr":
    return _psnr_scores(rec, cand, chunk, data_range, progress)
  return _ssim_scores(rec, cand, max_elements, data_range, progress)


def true_ranks(scores: ArrayLike, *, rtol: float = TIE_RTOL) -> np.ndarray:
  """Pessimistic rank of each row's true candidate (column i of row i) among all columns.

  rank[i] = 1 + #{j != i : scores[i, j] >= scores[i, i] - tol}: ties with
  wrong candidates count against the truth, where scores within
  `tol = rtol * |scores[i, i]| + 1e-12` of the truth's (floating-point noise)
  count as ties. NaN scores count as -inf.

  Args:
    scores: [M, N] similarities, M <= N, higher is more similar.
    rtol: relative tie tolerance (0 for exact comparison).

  Returns:
    int64 [M], each in 1..N.

  Raises:
    ValueError: scores is not a 2-D array with M <= N.
  """
  s = np.asarray(scores, np.float64)
  if s.ndim != 2 or s.shape[0] > s.shape[1] or s.shape[0] == 0:
    raise ValueError(f"scores must be [M, N] with 1 <= M <= N, got shape {s.shape}")
  s = np.where(np.isnan(s), -np.inf, s)
  m = s.shape[0]
  truth = s[np.arange(m), np.arange(m)]
  with np.errstate(invalid="ignore"):
    bar = np.where(np.isfinite(truth), truth - (rtol * np.abs(truth) + 1e-12), truth)
  return (s >= bar[:, None]).sum(axis=1).astype(np.int64)  # counts the truth itself once


def rates_from_ranks(ranks: ArrayLike, num_candidates: int,
                     ks: Sequence[int] = (1, 5)) -> dict[str, float]:
  """Top-k identification rates and chance levels from true-candidate ranks.

  Returns:
    {"top{k}": share of ranks <= k, "chance_top{k}": min(k / N, 1)} for each k.
  """
  r = np.asarray(ranks)
  out = {}
  for k in ks:
    out[f"top{k}"] = float(np.mean(r <= k))
    out[f"chance_top{k}"] = float(min(k / num_candidates, 1.0))
  return out


def chance_p_value(hits: int, trials: int, chance: float) -> float:
  """P(at least `hits` successes in `trials` guesses that each succeed with `chance`).

  The exact binomial upper tail: how likely a blind guesser identifies as many
  victims as the attack did. A top-1 rate a few points above chance on a few
  victims is noise; a small p-value is not.
  """
  if not 0 <= hits <= trials:
    raise ValueError(f"hits must be in [0, trials={trials}], got {hits}")
  if not 0.0 <= chance <= 1.0:
    raise ValueError(f"chance must be a probability, got {chance}")
  if chance in (0.0, 1.0):
    return float(hits == 0 or chance == 1.0)

  def log_term(i: int) -> float:  # log of C(trials, i) chance^i (1 - chance)^(trials - i)
    return (math.lgamma(trials + 1) - math.lgamma(i + 1) - math.lgamma(trials - i + 1)
            + i * math.log(chance) + (trials - i) * math.log1p(-chance))

  # In log space: C(trials, i) overflows a float for a few thousand victims.
  return float(min(1.0, sum(math.exp(log_term(i)) for i in range(hits, trials + 1))))


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
  ks = tuple(ks)
  if not ks or any(isinstance(k, bool) or int(k) != k or k < 1 for k in ks):
    raise ValueError(f"ks must be positive integers, got {ks}")
  return ks


def identification_rates(recovered: ArrayLike, candidates: ArrayLike, *,
                         ks: Sequence[int] = (1, 5),
                         similarity: str = DEFAULT_SIMILARITY, data_range: float = 255.0,
                         max_elements: int = DEFAULT_MAX_ELEMENTS,
                         progress: bool = False) -> dict[str, Any]:
  """Closed-set re-identification of reconstructions among candidate plain images.

  Reconstruction i's true image is candidates[i]; candidates[M:] are
  distractors. Ties are counted pessimistically: a wrong candidate exactly as
  similar as the true one (within a relative 1e-9, float noise) pushes the
  truth down one rank, so a hit at top-k means at most k - 1 candidates are at
  least as similar as the truth.

  Args:
    recovered: [M, H, W] or [M, H, W, C] attack outputs (uint8 or float on the
      0..data_range scale).
    candidates: [N, H, W(, C)] plain images, N >= M.
    ks: the k of the top-k rates (positive integers).
    similarity: "ncc" (default: normalised cross-correlation, robust to global
      intensity changes), "psnr" or "ssim".
    data_range: the value range (255 for uint8 images).
    max_elements: bound on the float64 elements of one chunk of work.
    progress: show a progress bar over the chunks.

  Returns:
    A dict: "top{k}" and "chance_top{k}" (k / N) for each k, "p_top1" (the
    chance of a blind guesser identifying at least as many, `chance_p_value`;
    present when 1 is in ks), "ranks" (int64 [M], 1 = identified),
    "mean_rank", "median_rank", "num_recovered" (M), "num_candidates" (N)
    and "similarity".

  Raises:
    ValueError: unknown similarity, non-positive k, bad shapes, or M > N.
  """
  ks = _check_ks(ks)
  scores = similarity_matrix(recovered, candidates, similarity=similarity,
                             data_range=data_range, max_elements=max_elements,
                             progress=progress)
  return {**rates_from_scores(scores, ks=ks), "similarity": similarity}


def rates_from_scores(scores: ArrayLike, *, ks: Sequence[int] = (1, 5)) -> dict[str, Any]:
  """`identification_rates` from a precomputed [M, N] score matrix (row i's truth is column
  i, higher is more similar), for attacks that rank candidates by their own score (e.g.
  `lie_jax.attacks.linkage`): the same keys but "similarity"."""
  ks = _check_ks(ks)
  ranks = true_ranks(scores)
  m, n = np.shape(scores)
  extra = ({"p_top1": chance_p_value(int((ranks <= 1).sum()), m, 1.0 / n)}
           if 1 in ks else {})
  return {**rates_from_ranks(ranks, n, [int(k) for k in ks]), **extra, "ranks": ranks,
          "mean_rank": float(ranks.mean()), "median_rank": float(np.median(ranks)),
          "num_recovered": m, "num_candidates": n}
