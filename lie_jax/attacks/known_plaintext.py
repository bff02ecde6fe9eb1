"""Known-plaintext linear attack on morph (MoLe / MpLe): solve for the matrix, invert it.

Morph sends y = (x / 255) . M with M block-diagonal: `copies` copies of one
m x m core on the diagonal (copies = 1: M is a dense n x n matrix). Every
image therefore gives `copies` independent linear equations row-vector pairs
(x_slice, y_slice) with y_slice = x_slice . core, and with at least m
linearly independent slices the core is determined: stack the slices of the
known (plain, morphed) pairs as A [R, m] and B [R, m] and solve A . core = B
by least squares (float64, numpy). Inverting the recovered core decrypts any
other morphed vector byte for byte (round, clip). Pairs needed: ceil(m /
copies) images, i.e. n / copies^2; 784-pixel images with copies = 1 take 784
pairs, with copies = 4 only 49.

With fewer independent slices than m (too few pairs, or pairs that are
linearly dependent) the core is not determined; `recover_matrix` then raises
ValueError rather than returning a guess.

Numbers: on PneumoniaMNIST X-rays (1000 train images: condition number about
7e4) the largest decryption error is about 0.003 grey levels before rounding,
far under the 0.5 that rounding absorbs, although the ciphertexts are float32.
"""

from __future__ import annotations

import math

import numpy as np
from jax.typing import ArrayLike


class TooFewKnownPlaintexts(ValueError):
  """The attack needs more (plain, morphed) pairs than it was given."""


def _slices(vectors: np.ndarray, copies: int) -> np.ndarray:
  return vectors.reshape(-1, vectors.shape[-1] // copies)


def _plain_vectors(images: np.ndarray, n: int) -> np.ndarray:
  flat = np.asarray(images).reshape(len(images), -1).astype(np.float64) / 255.0
  if flat.shape[1] > n:
    raise ValueError(f"images of {flat.shape[1]} values do not fit morphed vectors of {n}")
  return np.pad(flat, ((0, 0), (0, n - flat.shape[1])))  # morph zero-pads to n


def pairs_needed(image_shape: tuple[int, int, int], *, copies: int = 1) -> int:
  """Known pairs that determine the core (in general position): ceil(m / copies), m = n / copies.

  Each pair gives `copies` slices of length m, and the core needs m independent ones.
  """
  n = -(-math.prod(image_shape) // copies) * copies
  return math.ceil((n // copies) / copies)


def recover_matrix(plain: ArrayLike, morphed: ArrayLike, *, copies: int = 1) -> np.ndarray:
  """Recovers morph's core from known (plain, morphed) pairs by least squares.

  Args:
    plain: [N, H, W, C] uint8 known plain images.
    morphed: [N, n] their morphed vectors (n = H*W*C padded to a multiple of copies).
    copies: the number of core copies on M's diagonal (a public parameter, like a block size).

  Returns:
    The [m, m] float64 core (m = n / copies); M = kron(I_copies, core).

  Raises:
    ValueError: mismatched shapes, or fewer than m linearly independent slices
      (too few or degenerate pairs): the core is then not determined.
  """
  morphed = np.asarray(morphed, np.float64)
  if morphed.ndim != 2 or len(morphed) != len(plain) or morphed.shape[1] % copies:
    raise ValueError(f"need [N, n] morphed vectors (n a multiple of copies={copies}) for "
                     f"{len(plain)} plain images, got shape {morphed.shape}")
  n = morphed.shape[1]
  m = n // copies
  a = _slices(_plain_vectors(plain, n), copies)
  b = _slices(morphed, copies)
  if len(a) < m:
    raise TooFewKnownPlaintexts(
        f"too few known plaintexts: {len(plain)} pairs give {len(a)} slices of length {m}; the "
        f"core needs at least {m} (>= {math.ceil(m / copies)} pairs with copies={copies})")
  core, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
  if rank < m:
    raise ValueError(f"degenerate known plaintexts: their {len(a)} slices span only {rank} of "
                     f"{m} dimensions; the core is not determined")
  return core


def decrypt(core: np.ndarray, vectors: ArrayLike, *,
            image_shape: tuple[int, int, int]) -> np.ndarray:
  """Inverts morph with a recovered core: [N, n] vectors -> [N, H, W, C] uint8."""
  vectors = np.asarray(vectors, np.float64)
  copies = vectors.shape[-1] // core.shape[0]
  x = np.linalg.solve(core.T, _slices(vectors, copies).T).T  # x . core = y
  x = x.reshape(len(vectors), -1)[:, :math.prod(image_shape)]
  return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8).reshape(-1, *image_shape)


def attack(known_plain: ArrayLike, known_morphed: ArrayLike, victims: ArrayLike, *,
           image_shape: tuple[int, int, int], copies: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Recovers the core from known pairs and decrypts the victims' morphed vectors.

  Returns:
    (recovered [N, H, W, C] uint8 victim images, recovered [m, m] float64 core).
  """
  core = recover_matrix(known_plain, known_morphed, copies=copies)
  return decrypt(core, victims, image_shape=image_shape), core


def cipher_view(vectors: ArrayLike, image_shape: tuple[int, int, int]) -> np.ndarray:
  """Shows morphed float vectors as images, for figures and the cipher SSIM floor.

  The first H*W*C values of each vector (the zero padding's share of the
  vector is dropped), reshaped to the image shape and min-max rescaled per
  image to 0..255: the usual way to display a float array as an image.
  """
  v = np.asarray(vectors, np.float64).reshape(len(vectors), -1)[:, :math.prod(image_shape)]
  lo, hi = v.min(1, keepdims=True), v.max(1, keepdims=True)
  v = (v - lo) / np.where(hi > lo, hi - lo, 1.0)
  return np.round(v * 255.0).astype(np.uint8).reshape(-1, *image_shape)
