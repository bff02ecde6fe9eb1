"""Image similarity scores: SSIM and PSNR in JAX, batched.

`ssim` is the Gaussian-window SSIM of Wang et al. (2004), as computed by
scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`: an 11-tap Gaussian window
(truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03, the mean of the SSIM map over
the pixels whose window lies inside the image, averaged over channels.
`psnr` is 10 log10(data_range**2 / MSE) per image, over all pixels and
channels (inf for identical images).

Both accept one image [H, W, C] or a batch [N, H, W, C] (uint8 or float, on
the same 0..data_range scale) and return one float32 score per image.

Example:
  >>> import numpy as np
  >>> from lie_jax.attacks import metrics
  >>> x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1), dtype=np.uint8)
  >>> [round(float(s), 4) for s in metrics.ssim(x, x)]
  [1.0, 1.0]
  >>> float(metrics.psnr(x[0], 255 - x[0])) < 10
  True
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

K1 = 0.01
K2 = 0.03
SIGMA = 1.5
TRUNCATE = 3.5


def _check_pair(a: ArrayLike, b: ArrayLike) -> tuple[jax.Array, jax.Array, bool]:
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.shape != b.shape:
    raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
  if a.ndim not in (3, 4):
    raise ValueError(f"images must be [H, W, C] or [N, H, W, C], got shape {a.shape}")
  single = a.ndim == 3
  if single:
    a, b = a[None], b[None]
  return a.astype(jnp.float32), b.astype(jnp.float32), single


@functools.lru_cache(maxsize=8)
def gaussian_window(sigma: float = SIGMA, truncate: float = TRUNCATE) -> np.ndarray:
  """The normalised 1-D Gaussian taps of `scipy.ndimage.gaussian_filter` (float32 [2r+1])."""
  radius = int(truncate * sigma + 0.5)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  taps = np.exp(-0.5 * (x / sigma) ** 2)
  return (taps / taps.sum()).astype(np.float32)


def _blur_valid(x: jax.Array, taps: jax.Array) -> jax.Array:
  """Separable 'valid' Gaussian filter of [N, H, W, C] -> [N, H-2r, W-2r, C].

  The valid region is exactly the map scikit-image keeps after cropping r
  pixels from every side, so no border convention is needed.
  """
  n, h, w, c = x.shape
  k = taps.shape[0]
  y = x.transpose(0, 3, 1, 2).reshape(n * c, 1, h, w)
  dn = ("NCHW", "OIHW", "NCHW")
  y = jax.lax.conv_general_dilated(y, taps.reshape(1, 1, k, 1), (1, 1), "VALID",
                                   dimension_numbers=dn, precision="highest")
  y = jax.lax.conv_general_dilated(y, taps.reshape(1, 1, 1, k), (1, 1), "VALID",
                                   dimension_numbers=dn, precision="highest")
  return y.reshape(n, c, h - k + 1, w - k + 1).transpose(0, 2, 3, 1)


@functools.partial(jax.jit, static_argnames=("sigma",))
def _ssim(a: jax.Array, b: jax.Array, data_range: jax.Array, sigma: float) -> jax.Array:
  taps = jnp.asarray(gaussian_window(sigma))
  # Scaling to [0, 1] keeps the variances (E[x^2] - E[x]^2) accurate in float32.
  a, b = a / data_range, b / data_range
  mu_a, mu_b = _blur_valid(a, taps), _blur_valid(b, taps)
  var_a = _blur_valid(a * a, taps) - mu_a * mu_a
  var_b = _blur_valid(b * b, taps) - mu_b * mu_b
  cov = _blur_valid(a * b, taps) - mu_a * mu_b
  c1, c2 = K1 ** 2, K2 ** 2
  smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
      (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
  return smap.mean(axis=(1, 2, 3))


def ssim(a: ArrayLike, b: ArrayLike, *, data_range: float = 255.0,
         sigma: float = SIGMA) -> jax.Array:
  """Structural similarity of image pairs (Gaussian window, population covariance).

  Args:
    a: [H, W, C] or [N, H, W, C] images, uint8 or float on a 0..data_range scale.
    b: images of the same shape.
    data_range: the value range (255 for uint8 images).
    sigma: standard deviation of the Gaussian window (1.5: an 11-tap window).

  Returns:
    float32 [] for one pair, [N] for a batch: the mean SSIM over the
    interior pixels and the channels (1.0 for identical images).

  Raises:
    ValueError: shapes differ, wrong rank, or H or W smaller than the window.
  """
  a, b, single = _check_pair(a, b)
  window = 2 * int(TRUNCATE * sigma + 0.5) + 1
  if min(a.shape[1:3]) < window:
    raise ValueError(f"SSIM needs images of at least {window}x{window} pixels (the Gaussian "
                     f"window), got {a.shape[1]}x{a.shape[2]}")
  out = _ssim(a, b, jnp.float32(data_range), float(sigma))
  return out[0] if single else out


@jax.jit
def _psnr(a: jax.Array, b: jax.Array, data_range: jax.Array) -> jax.Array:
  mse = jnp.mean((a - b) ** 2, axis=(1, 2, 3))
  return 10.0 * jnp.log10(data_range ** 2 / mse)


def psnr(a: ArrayLike, b: ArrayLike, *, data_range: float = 255.0) -> jax.Array:
  """Peak signal-to-noise ratio of image pairs, in dB.

  Args:
    a: [H, W, C] or [N, H, W, C] images, uint8 or float on a 0..data_range scale.
    b: images of the same shape.
    data_range: the value range (255 for uint8 images).

  Returns:
    float32 [] or [N]: 10 log10(data_range**2 / MSE); inf where the images are equal.
  """
  a, b, single = _check_pair(a, b)
  out = _psnr(a, b, jnp.float32(data_range))
  return out[0] if single else out
