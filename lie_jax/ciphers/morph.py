"""MoLe / MpLe: morphed learning (Shen, Liu, Chen, Li, arXiv 1809.09968), as used
by Onesimu & Karthikeyan, "An efficient privacy-preserving deep learning scheme
for medical image analysis", J. Inf. Technol. Management 12 (2021).

The data owner flattens an image to a row vector x (values scaled to [0, 1],
zero-padded to a multiple of `copies`, length n) and sends x . M, where M is
a secret invertible n x n matrix, block-diagonal with `copies` copies of one
random m x m core (m = n / copies; copies=1 gives a dense M). Our cores are
Haar-random orthogonal matrices: invertible and perfectly conditioned, so
morph/unmorph round trips are exact after rounding to uint8.

The owner also turns the model's first convolution (as a dense matrix C,
n x output size) into the augmented convolution C_ac = M^-1 . C, computed in
float64, with the output channels permuted by a secret permutation; the
server runs (x . M) . C_ac = the first layer's output on x, channels permuted,
then the rest of the network. `augmented_conv` builds C_ac; the property
`apply_augmented_conv(aug, encrypt(k, x)) == conv(x)[..., perm]` is tested.

There are no per-image keys for this scheme: the server's augmented layer is
built from the one key, so every image must be morphed with it.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import morph
  >>> k = morph.generate_key(jax.random.key(0), image_shape=(8, 8, 1), copies=4)
  >>> v = morph.encrypt(k, np.full((8, 8, 1), 7, np.uint8))
  >>> v.shape, v.dtype
  ((64,), dtype('float32'))
  >>> int(morph.decrypt(k, v)[0, 0, 0])
  7
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lie_jax.ciphers import _apply
from lie_jax.ciphers._keytree import cipher_key, static_field


@cipher_key
class MorphKey:
  """Morphing key.

  Attributes:
    core: [m, m] float32 orthogonal core of the block-diagonal morphing matrix.
    channel_key: [2] uint32, seeds the secret output-channel permutation.
    geometry: channels and image shape (block size 1).
    copies: number of core copies on M's diagonal.
  """

  core: jax.Array
  channel_key: jax.Array
  geometry: _apply.KeyGeometry = static_field()
  copies: int = static_field(default=1)

  @property
  def vector_size(self) -> int:
    """n: length of the morphed vectors (H*W*C padded to a multiple of copies)."""
    return self.copies * self.core.shape[-1]


def _vector_size(image_shape: tuple[int, int, int], copies: int) -> int:
  return -(-math.prod(image_shape) // copies) * copies


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], copies: int = 1
                 ) -> MorphKey:
  """Draws a morphing key for images of `image_shape` (H, W, C).

  Args:
    key: JAX PRNG key.
    image_shape: (H, W, C).
    copies: kappa, the number of copies of the core on the diagonal of M;
      larger is cheaper (core size n / kappa) and mixes less.
  """
  geometry = _apply.make_geometry(image_shape, block_size=1)
  if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
    raise ValueError(f"copies must be a positive int, got {copies!r}")
  m = _vector_size(geometry.image_shape, copies) // copies
  k_core, k_chan = jax.random.split(key)
  q, r = jnp.linalg.qr(jax.random.normal(k_core, (m, m), jnp.float32))
  core = q * jnp.sign(jnp.diagonal(r))[None, :]  # sign fix makes Q Haar-distributed
  return MorphKey(core=core, channel_key=jax.random.key_data(k_chan).reshape(-1)[:2]
                  .astype(jnp.uint32), geometry=geometry, copies=int(copies))


def _morph_one(cipher_key: MorphKey, image: jax.Array) -> jax.Array:
  n = cipher_key.vector_size
  x = image.reshape(-1).astype(jnp.float32) / 255.0
  x = jnp.pad(x, (0, n - x.shape[0]))
  y = jnp.matmul(x.reshape(cipher_key.copies, -1), cipher_key.core,
                 precision=jax.lax.Precision.HIGHEST)
  return y.reshape(n)


def _unmorph_one(cipher_key: MorphKey, vector: jax.Array) -> jax.Array:
  shape = cipher_key.geometry.image_shape
  x = jnp.matmul(vector.reshape(cipher_key.copies, -1), cipher_key.core.T,
                 precision=jax.lax.Precision.HIGHEST).reshape(-1)[:math.prod(shape)]
  return jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.uint8).reshape(shape)


_encrypt = _apply.batched(_morph_one)


@jax.jit
def _decrypt(cipher_key: MorphKey, vectors: jax.Array) -> jax.Array:
  if vectors.ndim == 1:
    return _unmorph_one(cipher_key, vectors)
  return jax.vmap(_unmorph_one, in_axes=(None, 0))(cipher_key, vectors)


def encrypt(cipher_key: MorphKey, images: Any) -> jax.Array:
  """Morphs images: [H, W, C] or [N, H, W, C] uint8 -> [n] or [N, n] float32 (x/255 . M)."""
  _apply.expect_key(cipher_key, MorphKey, "morph.encrypt")
  return _apply.encrypt_with(_encrypt, cipher_key, images)


def decrypt(cipher_key: MorphKey, vectors: Any) -> jax.Array:
  """Inverts `encrypt`: [n] or [N, n] float32 -> [H, W, C] or [N, H, W, C] uint8."""
  _apply.expect_key(cipher_key, MorphKey, "morph.decrypt")
  if not hasattr(vectors, "shape"):
    vectors = np.asarray(vectors)
  n = cipher_key.vector_size
  if vectors.ndim not in (1, 2) or vectors.shape[-1] != n:
    raise ValueError(f"morphed vectors must be [{n}] or [N, {n}], got shape {tuple(vectors.shape)}")
  if not jnp.issubdtype(vectors.dtype, jnp.floating):
    raise TypeError(f"morphed vectors must be floating point, got {vectors.dtype}")
  return _decrypt(cipher_key, jnp.asarray(vectors, jnp.float32))


def channel_permutation(cipher_key: MorphKey, num_channels: int) -> jax.Array:
  """The secret [num_channels] permutation of the augmented layer's output channels."""
  key = jax.random.wrap_key_data(cipher_key.channel_key, impl="threefry2x32")
  return jax.random.permutation(jax.random.fold_in(key, num_channels), num_channels)


class AugmentedConv(NamedTuple):
  """The server's frozen first layer: outputs = vectors @ matrix, reshaped to output_shape."""

  matrix: np.ndarray  # [n, H' * W' * C'] float32
  output_shape: tuple[int, int, int]


def augmented_conv(cipher_key: MorphKey, kernel: Any, *, strides: tuple[int, int] = (1, 1),
                   padding: str = "SAME") -> AugmentedConv:
  """Builds the augmented convolution C_ac = M^-1 . C (float64), channels permuted.

  An owner-side, one-off computation on the host (not jitted). Memory:
  n x (H' * W' * C') floats.

  Args:
    cipher_key: the `MorphKey` the images were morphed with.
    kernel: [kh, kw, C, C'] first-layer convolution kernel (HWIO, no bias).
    strides: convolution strides.
    padding: "SAME" or "VALID".

  Returns:
    `AugmentedConv` such that `apply_augmented_conv(aug, encrypt(k, x))`
    equals `conv(x / 255)[..., channel_permutation(k, C')]`.
  """
  _apply.expect_key(cipher_key, MorphKey, "morph.augmented_conv")
  kernel = np.asarray(kernel, np.float32)
  h, w, c = cipher_key.geometry.image_shape
  if kernel.ndim != 4 or kernel.shape[2] != c:
    raise ValueError(f"kernel must be [kh, kw, {c}, C_out] (HWIO), got shape {kernel.shape}")
  n_in = h * w * c
  basis = jnp.eye(n_in, dtype=jnp.float32).reshape(n_in, h, w, c)
  # Each output of a basis image is one kernel weight times 1: exact in float32.
  dense = jax.lax.conv_general_dilated(basis, jnp.asarray(kernel), strides, padding,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       precision=jax.lax.Precision.HIGHEST)
  out_shape = tuple(int(s) for s in dense.shape[1:])
  perm = np.asarray(channel_permutation(cipher_key, out_shape[-1]))
  dense = np.asarray(dense, np.float64)[..., perm].reshape(n_in, -1)
  n = cipher_key.vector_size
  dense = np.pad(dense, ((0, n - n_in), (0, 0)))  # padded inputs are zero
  core_inv = np.linalg.inv(np.asarray(cipher_key.core, np.float64))
  matrix = (core_inv @ dense.reshape(cipher_key.copies, -1, dense.shape[-1]))
  return AugmentedConv(matrix=matrix.reshape(n, -1).astype(np.float32), output_shape=out_shape)


def apply_augmented_conv(aug: AugmentedConv, vectors: jax.Array) -> jax.Array:
  """Server side: [N, n] morphed vectors -> [N, H', W', C'] first-layer outputs."""
  out = jnp.matmul(vectors, jnp.asarray(aug.matrix), precision=jax.lax.Precision.HIGHEST)
  return out.reshape(*vectors.shape[:-1], *aug.output_shape)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], copies: int = 1) -> float:
  """Infinite: the core is continuous (the PRNG key bounds what can be reached)."""
  del image_shape, copies
  return math.inf
