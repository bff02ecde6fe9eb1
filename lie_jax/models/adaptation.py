"""Adaptation layers: the first layers of a classifier trained on encrypted images.

Each layer maps the cipher's output to feature maps a backbone
(`lie_jax.models.backbones`) takes; `AdaptedClassifier` chains the two.

  BlockAdaptation: Tanaka's network for block ciphers (LE, EtC, blockwise).
  ELEAdaptation:   Madono et al.'s per-block-position network with a learnable
                   pseudo-permutation of block positions (ELE).
  PixelAdaptation: pixel-wise 1x1 convolutions (PE, huang2022).
  MorphAdaptation: the frozen augmented first convolution of MoLe (morph).
  keyed_vit:       no layer: a ViT trained on plain images, transformed with
                   the key so that it classifies vit-encrypted images exactly.

Block order. `space_to_depth` / `depth_to_space` use the order of
`lie_jax.ciphers.blockify(layout="hwc")`: the value at (row r, column c,
channel ch) of a B x B block is channel (r * B + c) * C + ch of its depth
vector. A B x B stride-B convolution with kernel [B, B, C, F] reads a block
in the same order (its kernel flattened to [B*B*C, F] is a matrix on block
vectors), so `BlockAdaptation` and `ELEAdaptation` pixel-shuffle their
outputs back with the order they read their inputs in.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lie_jax.ciphers import blockify
from lie_jax.ciphers import morph
from lie_jax.ciphers import vit as vit_cipher
from lie_jax.models.backbones import ViT, batch_norm, check_block_size, check_input


def space_to_depth(x: jax.typing.ArrayLike, block_size: int) -> jax.Array:
  """[N, H, W, C] -> [N, H/B, W/B, B*B*C], each block's values in (row, column, channel) order.

  `space_to_depth(x, B).reshape(N, -1, B*B*C)` equals
  `lie_jax.ciphers.blockify(x, block_size=B, layout="hwc")`.

  Example:
    >>> import jax.numpy as jnp
    >>> from lie_jax.models import depth_to_space, space_to_depth
    >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)  # value = 4 * row + 2 * column + channel
    >>> space_to_depth(x, 2).reshape(-1).tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    >>> bool((depth_to_space(space_to_depth(x, 2), 2) == x).all())
    True
  """
  x = jnp.asarray(x)
  n, h, w, c = x.shape
  b = block_size
  if h % b or w % b:
    raise ValueError(f"image size {h}x{w} is not divisible by block_size={b}")
  return blockify(x, block_size=b).reshape(n, h // b, w // b, b * b * c)


def depth_to_space(x: jax.typing.ArrayLike, block_size: int) -> jax.Array:
  """Inverse of `space_to_depth` (pixel shuffle): [N, h, w, B*B*C] -> [N, h*B, w*B, C].

  Channel (r * B + c) * C + ch of position (i, j) goes to pixel (i*B + r, j*B + c),
  channel ch.
  """
  x = jnp.asarray(x)
  n, h, w, d = x.shape
  b = block_size
  if d % (b * b):
    raise ValueError(f"depth_to_space needs channels divisible by block_size**2 = {b * b}, "
                     f"got {d}")
  c = d // (b * b)
  x = x.reshape(n, h, w, b, b, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h * b, w * b, c)


def dense_conv(conv: nnx.Conv, x: jax.Array) -> jax.Array:
  """`conv(x)` for a convolution whose kernel tiles the image (kernel size == strides, VALID
  padding; 1x1 included), as one matrix product over `space_to_depth` blocks.

  The same numbers as the convolution, but a plain matrix product: with a handful of input
  channels at full resolution (an adaptation layer's input) a GPU's convolution kernels spend
  more time on layout than on arithmetic, and XLA fuses a small matrix product with the ops
  around it.
  """
  kh, kw, c, f = conv.kernel.shape
  strides = conv.strides or 1
  strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
  plain = (conv.feature_group_count == 1 and conv.mask is None
           and all((d or 1) in (1, (1, 1)) for d in (conv.kernel_dilation, conv.input_dilation)))
  unpadded = conv.padding == "VALID" or (kh == 1 and conv.padding == "SAME")
  if (kh, kw) != strides or kh != kw or not unpadded or not plain:
    raise ValueError(f"dense_conv needs a kernel that tiles the image, got kernel {(kh, kw)} "
                     f"strides {conv.strides} padding {conv.padding!r}")
  blocks = space_to_depth(x, kh) if kh > 1 else x
  y = jnp.dot(blocks, conv.kernel[...].reshape(kh * kw * c, f))
  return y if conv.bias is None else y + conv.bias[...]


class BlockAdaptation(nnx.Module):
  """Tanaka's adaptation network (ICCE-TW 2018) for block-wise encrypted images.

  BN -> conv BxB stride B (d = B*B*C filters) -> ReLU -> BN -> 1x1 conv (d)
  -> ReLU -> BN -> 1x1 conv (B*B*out_channels) -> `depth_to_space` by B.

  Args:
    in_channels: C of the inputs [N, H, W, C] float32 (B divides H and W).
    block_size: B, the cipher's block size.
    out_channels: channels of the full-resolution output.
    rngs: parameter randomness.

  Output: [N, H, W, out_channels] float32.
  """

  def __init__(self, *, in_channels: int, block_size: int, out_channels: int = 32,
               rngs: nnx.Rngs):
    b = check_block_size(block_size, None, "BlockAdaptation block_size")
    d = b * b * in_channels
    self.in_channels = in_channels
    self.block_size = b
    self.out_channels = out_channels
    self.bn0 = batch_norm(in_channels, rngs=rngs)
    self.block_conv = nnx.Conv(in_channels, d, (b, b), (b, b), padding="VALID", rngs=rngs)
    self.bn1 = batch_norm(d, rngs=rngs)
    self.mix_conv = nnx.Conv(d, d, (1, 1), rngs=rngs)
    self.bn2 = batch_norm(d, rngs=rngs)
    self.out_conv = nnx.Conv(d, b * b * out_channels, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 -> [N, H, W, out_channels] float32."""
    x = check_input(x, self.in_channels, "BlockAdaptation")
    check_block_size(self.block_size, x.shape[1:3], "BlockAdaptation block_size")
    y = nnx.relu(dense_conv(self.block_conv, self.bn0(x)))
    y = nnx.relu(dense_conv(self.mix_conv, self.bn1(y)))
    return depth_to_space(dense_conv(self.out_conv, self.bn2(y)), self.block_size)


PERMUTATION_INITS = ("identity", "uniform")
ELE_FEATURES = 256  # channels of every ELE sub-network in the paper (B = 4)


class ELEAdaptation(nnx.Module):
  """Madono et al.'s adaptation network (AAAI-20 PPAI) for ELE-encrypted images.

  For every block position b, its own sub-network: a BxB stride-B conv to
  `features` channels (per-position kernel [d, F] and bias [F]), computed for
  all positions at once as one einsum over blockified inputs; then BN (shared
  over positions) -> LeakyReLU. A learnable pseudo-permutation matrix P
  [nb, nb] mixes the positions: out[i] = sum_k P[i, k] h[k]; then
  `depth_to_space` by B gives F / (B*B) channels at full resolution.

  ELE's output block j is plain block block_perm[j] (under that block's own
  LE key), so the sub-network at position j always meets the same key, and P
  can learn the inverse scrambling (P[block_perm[j], j] = 1).

  P starts as the identity ("identity", a permutation, zero penalty) or as
  the doubly stochastic 1/nb + small noise ("uniform": no position preferred;
  the noise breaks ties). `penalty()` pushes it towards a permutation.

  Args:
    in_channels: C of the inputs [N, H, W, C] float32.
    block_size: B, the cipher's block size.
    image_size: (H, W) of the inputs; B must divide both.
    features: F, channels of every sub-network; B*B must divide it. None: the
      paper's 256 (B = 4), rounded up to a multiple of B*B (294 for B = 7).
    negative_slope: of the LeakyReLU (0.2 is our choice, not the paper's).
    permutation_init: "identity" or "uniform".
    penalty_weight: factor of this layer's penalties in `auxiliary_loss`
      (the paper only says "small"; 1e-2 is our choice).
    rngs: parameter randomness.

  Output: [N, H, W, F / (B*B)] float32.
  """

  def __init__(self, *, in_channels: int, block_size: int, image_size: tuple[int, int],
               features: int | None = None, negative_slope: float = 0.2,
               permutation_init: str = "identity", penalty_weight: float = 1e-2,
               rngs: nnx.Rngs):
    h, w = image_size
    b = check_block_size(block_size, (h, w), "ELEAdaptation block_size")
    if features is None:
      features = -(-ELE_FEATURES // (b * b)) * (b * b)
    if features % (b * b):
      raise ValueError(f"ELEAdaptation: features={features} must be divisible by "
                       f"block_size**2 = {b * b} (pixel shuffle)")
    if permutation_init not in PERMUTATION_INITS:
      raise ValueError(f"permutation_init must be one of {PERMUTATION_INITS}, got "
                       f"{permutation_init!r}")
    nb = (h // b) * (w // b)
    d = b * b * in_channels
    self.in_channels = in_channels
    self.block_size = b
    self.image_size = (h, w)
    self.negative_slope = negative_slope
    self.penalty_weight = penalty_weight
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", batch_axis=(0,))
    self.kernel = nnx.Param(init(rngs.params(), (nb, d, features), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((nb, features), jnp.float32))
    self.bn = batch_norm(features, rngs=rngs)
    if permutation_init == "identity":
      p = jnp.eye(nb, dtype=jnp.float32)
    else:
      noise = jax.random.uniform(rngs.params(), (nb, nb), jnp.float32, -1.0, 1.0)
      p = (1.0 + 1e-2 * noise) / nb
    self.permutation = nnx.Param(p)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 -> [N, H, W, features / B**2] float32."""
    x = check_input(x, self.in_channels, "ELEAdaptation")
    if tuple(x.shape[1:3]) != self.image_size:
      raise ValueError(f"this ELEAdaptation was built for {self.image_size[0]}x"
                       f"{self.image_size[1]} inputs, got {x.shape[1]}x{x.shape[2]}")
    b = self.block_size
    blocks = blockify(x, block_size=b, layout="hwc")  # [N, nb, d]
    y = jnp.einsum("nbd,bdf->nbf", blocks, self.kernel[...]) + self.bias[...]
    y = nnx.leaky_relu(self.bn(y), self.negative_slope)
    y = jnp.einsum("jk,nkf->njf", self.permutation[...], y)
    h, w = self.image_size
    return depth_to_space(y.reshape(x.shape[0], h // b, w // b, -1), b)

  def penalty(self) -> dict[str, jax.Array]:
    """The terms pushing P towards a permutation matrix (float32 scalars, unweighted).

    The paper adds "small penalties" without spelling them out; it cites
    AutoShuffleNet (Lyu et al., KDD 2020), whose exact penalty for learning
    permutations is the l1 - l2 difference of rows and columns. We use:

      row_sum:        sum_i (sum_k P[i, k] - 1)^2
      column_sum:     sum_k (sum_i P[i, k] - 1)^2
      non_negativity: sum_ik max(-P[i, k], 0)^2
      l1_minus_l2:    sum over rows and columns p of ||p||_1 - ||p||_2

    All are >= 0, and all are 0 exactly when P is a permutation matrix: a
    non-negative row summing to 1 has ||p||_1 = 1 >= ||p||_2, with equality
    only for a one-hot row; one-hot rows with column sums 1 form a permutation.
    """
    p = self.permutation[...]
    l2 = lambda axis: jnp.sqrt(jnp.sum(p * p, axis=axis) + 1e-12)  # 1e-12: finite grad at 0
    l1 = jnp.abs(p)
    return {
        "row_sum": jnp.sum((p.sum(axis=1) - 1.0) ** 2),
        "column_sum": jnp.sum((p.sum(axis=0) - 1.0) ** 2),
        "non_negativity": jnp.sum(jnp.maximum(-p, 0.0) ** 2),
        "l1_minus_l2": (jnp.sum(l1.sum(axis=1) - l2(1)) + jnp.sum(l1.sum(axis=0) - l2(0))),
    }


def auxiliary_loss(model: nnx.Module) -> jax.Array:
  """Sum over every `ELEAdaptation` in `model` of penalty_weight * sum(penalty terms).

  Add it to the classification loss. Returns float32 0.0 for models without
  an ELEAdaptation.
  """
  total = jnp.zeros((), jnp.float32)
  for _, module in nnx.iter_modules(model):
    if isinstance(module, ELEAdaptation):
      total = total + module.penalty_weight * sum(module.penalty().values())
  return total


class PixelAdaptation(nnx.Module):
  """Pixel-wise adaptation for pixel-based ciphers (PE, huang2022):
  1x1 conv (out_channels) -> BN -> ReLU -> 1x1 conv (out_channels).

  1x1 convolutions commute with any spatial rearrangement, so the layer keeps
  PE's property that augmentation (flips, shifts) can be done on encrypted
  images.

  Args:
    in_channels: C of the inputs [N, H, W, C] float32.
    out_channels: width of both convolutions and of the output.
    rngs: parameter randomness.

  Output: [N, H, W, out_channels] float32.
  """

  def __init__(self, *, in_channels: int, out_channels: int = 32, rngs: nnx.Rngs):
    self.in_channels = in_channels
    self.conv1 = nnx.Conv(in_channels, out_channels, (1, 1), use_bias=False, rngs=rngs)
    self.bn = batch_norm(out_channels, rngs=rngs)
    self.conv2 = nnx.Conv(out_channels, out_channels, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 -> [N, H, W, out_channels] float32."""
    x = check_input(x, self.in_channels, "PixelAdaptation")
    return dense_conv(self.conv2, nnx.relu(self.bn(dense_conv(self.conv1, x))))


class FrozenWeight(nnx.Variable):
  """A non-trainable array. Not an `nnx.Param`: `nnx.Optimizer(..., wrt=nnx.Param)`
  and `nnx.grad` (which differentiate nnx.Param) leave it alone."""


class AugmentedConv(NamedTuple):
  """The server's frozen first layer, one matrix per chunk of the morphed vector.

  The morph M is block-diagonal: chunk j (entries [j*m, (j+1)*m) of a vector, a run of
  consecutive pixels) is morphed by the core alone, and those pixels reach only a band of
  R output rows of a convolution. So C_ac = M^-1 . C is stored as `copies` matrices
  core^-1 . C_j, each [m, R * W' * C'], C_j being C restricted to chunk j's rows and its band
  of output rows: n * R * W' * C' floats instead of n * H' * W' * C' (with one copy, R = H').

  Attributes:
    matrices: [copies, m, R * W' * C'] float32.
    rows: [copies, R] int32: the output row of each of chunk j's R band rows (H' for a slot
      past the last row: dropped).
    output_shape: (H', W', C').
  """

  matrices: np.ndarray
  rows: np.ndarray
  output_shape: tuple[int, int, int]

  @property
  def nbytes(self) -> int:
    """Bytes of the frozen matrices (the layer's memory)."""
    return int(np.prod(self.matrices.shape)) * 4


def _conv_geometry(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
  """(output size, padding before, padding after) of a convolution along one axis."""
  if padding == "VALID":
    return (size - k) // s + 1, 0, 0
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return out, total // 2, total - total // 2


def augmented_conv(cipher_key: morph.MorphKey, kernel: jax.typing.ArrayLike, *,
                   strides: tuple[int, int] = (1, 1), padding: str = "SAME") -> AugmentedConv:
  """Builds the augmented convolution C_ac = M^-1 . C (float64), channels permuted, per chunk.

  An owner-side, one-off computation on the host (not jitted), chunk by chunk: chunk j's
  pixels are put one at a time into a crop of the rows its band of output rows reads, the
  crop is convolved, the outputs' channels are permuted and core^-1 (float64) applied.

  Memory of the result: n * R * W' * C' float32, where m = n / copies pixels span
  about ceil(m / (W * C)) + 1 image rows and reach R = that + kh - 1 (divided by the stride)
  output rows. Computing it holds one chunk at a time (m * R * W' * C' float64).

  Args:
    cipher_key: the `morph.MorphKey` the images were morphed with.
    kernel: [kh, kw, C, C'] first-layer convolution kernel (HWIO, no bias).
    strides: convolution strides.
    padding: "SAME" or "VALID".

  Returns:
    `AugmentedConv` such that `apply_augmented_conv(aug, morph.encrypt(k, x))`
    equals `conv(x / 255)[..., morph.channel_permutation(k, C')]`.
  """
  if not isinstance(cipher_key, morph.MorphKey):
    raise TypeError(f"augmented_conv needs a lie_jax.ciphers.morph.MorphKey, got "
                    f"{type(cipher_key).__name__}")
  if padding not in ("SAME", "VALID"):
    raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
  kernel = np.asarray(kernel, np.float32)
  h, w, c = cipher_key.geometry.image_shape
  if kernel.ndim != 4 or kernel.shape[2] != c:
    raise ValueError(f"kernel must be [kh, kw, {c}, C_out] (HWIO), got shape {kernel.shape}")
  kh, kw, _, c_out = kernel.shape
  (sh, sw) = strides
  h_out, pad_top, _ = _conv_geometry(h, kh, sh, padding)
  w_out, pad_left, pad_right = _conv_geometry(w, kw, sw, padding)
  copies, m = cipher_key.copies, cipher_key.vector_size // cipher_key.copies
  n_in, row = h * w * c, w * c
  # Each chunk's band of output rows: from the first output row its first pixel row reaches
  # (an output row o reads input rows o * sh - pad_top + [0, kh)).
  first = [min(j * m, n_in - 1) // row for j in range(copies)]
  last = [(min((j + 1) * m, n_in) - 1) // row for j in range(copies)]
  lo = [max(0, -(-(r + pad_top - kh + 1) // sh)) for r in first]
  hi = [min(h_out - 1, (r + pad_top) // sh) for r in last]
  band = max(1, max(b - a + 1 for a, b in zip(lo, hi)))
  crop = (band - 1) * sh + kh
  perm = np.asarray(morph.channel_permutation(cipher_key, c_out))
  core_inv = np.linalg.inv(np.asarray(cipher_key.core, np.float64))
  conv = jax.jit(lambda basis: jax.lax.conv_general_dilated(
      basis, jnp.asarray(kernel), strides, ((0, 0), (pad_left, pad_right)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST))
  matrices = np.empty((copies, m, band * w_out * c_out), np.float32)
  rows = np.empty((copies, band), np.int32)
  for j in range(copies):
    top = lo[j] * sh - pad_top  # image row of the crop's first row
    p = np.arange(j * m, min((j + 1) * m, n_in))
    r, col, ch = p // row - top, (p // c) % w, p % c
    inside = (r >= 0) & (r < crop)
    basis = np.zeros((m, crop, w, c), np.float32)
    basis[np.flatnonzero(inside), r[inside], col[inside], ch[inside]] = 1.0
    # Each output of a basis crop is one kernel weight times 1: exact in float32.
    dense = np.asarray(conv(basis), np.float64)[..., perm].reshape(m, -1)
    matrices[j] = core_inv @ dense
    slots = lo[j] + np.arange(band)
    rows[j] = np.where(slots < h_out, slots, h_out)
  return AugmentedConv(matrices=matrices, rows=rows, output_shape=(h_out, w_out, c_out))


def apply_augmented_conv(aug: AugmentedConv, vectors: jax.typing.ArrayLike) -> jax.Array:
  """Server side: [N, n] morphed vectors -> [N, H', W', C'] first-layer outputs.

  Each chunk's [m] slice times its matrix gives its band of output rows; the bands are
  added into place. Compute per image: n * R * W' * C' multiply-adds.
  """
  vectors = jnp.asarray(vectors)
  matrices = jnp.asarray(aug.matrices)
  copies, m, _ = matrices.shape
  h_out, w_out, c_out = aug.output_shape
  lead = vectors.shape[:-1]
  chunks = vectors.reshape(-1, copies, m)
  bands = jnp.einsum("bkm,kmf->bkf", chunks, matrices, precision=jax.lax.Precision.HIGHEST)
  bands = bands.reshape(chunks.shape[0], copies, -1, w_out, c_out)
  out = jnp.zeros((chunks.shape[0], h_out + 1, w_out, c_out), bands.dtype)
  out = out.at[:, jnp.asarray(aug.rows)].add(bands)
  return out[:, :h_out].reshape(*lead, h_out, w_out, c_out)


class MorphAdaptation(nnx.Module):
  """The MoLe augmented first layer: morphed vectors -> first-layer feature maps.

  Holds C_ac = M^-1 . C (see `augmented_conv`) as a
  `FrozenWeight`; on `morph.encrypt(k, x)` it outputs the first convolution
  of x / 255 with its output channels permuted by
  `morph.channel_permutation(k, C')`. It is linear (no bias, no activation):
  the backbone's stem follows.

  The plain kernel is not kept: with both C and C_ac the server could solve
  for M^-1. Use `from_cipher_key` on the data owner's side.

  Args:
    augmented: the `AugmentedConv` to serve.

  Attributes:
    matrices: FrozenWeight [copies, m, R * W' * C'] float32 (see `AugmentedConv`).
    rows: the output rows of each chunk's band (static).
    output_shape: (H', W', C').
    vector_size: n.
  """

  def __init__(self, augmented: AugmentedConv):
    matrices = jnp.asarray(augmented.matrices, jnp.float32)
    rows = np.asarray(augmented.rows, np.int32)
    h_out, w_out, c_out = (int(s) for s in augmented.output_shape)
    if (matrices.ndim != 3 or rows.shape != (matrices.shape[0], rows.shape[-1])
        or matrices.shape[2] != rows.shape[-1] * w_out * c_out):
      raise ValueError(f"augmented matrices must be [copies, m, R * W' * C'] with rows "
                       f"[copies, R], got {matrices.shape} and {rows.shape} for output_shape "
                       f"{tuple(augmented.output_shape)}")
    self.matrices = FrozenWeight(matrices)
    self.rows = tuple(tuple(r) for r in rows.tolist())  # static: where each band goes
    self.output_shape = (h_out, w_out, c_out)
    self.vector_size = int(matrices.shape[0] * matrices.shape[1])

  @staticmethod
  def draw_kernel(*, in_channels: int, out_channels: int, kernel_size: int = 3,
                  rngs: nnx.Rngs) -> jax.Array:
    """A random first-layer kernel [k, k, in_channels, out_channels] float32 (He normal).

    Draws from `rngs.params()`, so the same `nnx.Rngs` seed reproduces the
    kernel `from_cipher_key` draws.
    """
    shape = (kernel_size, kernel_size, in_channels, out_channels)
    return nnx.initializers.he_normal()(rngs.params(), shape, jnp.float32)

  @classmethod
  def from_cipher_key(cls, cipher_key: morph.MorphKey, *, out_channels: int,
                      kernel_size: int = 3, strides: tuple[int, int] = (1, 1),
                      padding: str = "SAME", kernel: Any = None,
                      rngs: nnx.Rngs | None = None) -> "MorphAdaptation":
    """Draws a first-layer kernel (or takes `kernel`) and builds its augmented layer.

    Owner-side and host-side: builds `augmented_conv`, one chunk at a time (memory of the
    result: n * R * W' * C' floats, see `AugmentedConv`).

    Args:
      cipher_key: the `morph.MorphKey` the images are morphed with.
      out_channels: C', channels of the first layer.
      kernel_size: k of the k x k convolution.
      strides, padding: of the convolution (as `augmented_conv`).
      kernel: [k, k, C, C'] kernel to use instead of drawing one.
      rngs: randomness of the drawn kernel (`draw_kernel`); needed if kernel is None.

    Returns:
      A `MorphAdaptation` taking [N, n] morphed vectors.
    """
    if not isinstance(cipher_key, morph.MorphKey):
      raise TypeError(f"cipher_key must be a lie_jax.ciphers.morph.MorphKey, got "
                      f"{type(cipher_key).__name__}")
    if kernel is None:
      if rngs is None:
        raise ValueError("MorphAdaptation.from_cipher_key needs rngs to draw the kernel "
                         "(or pass kernel=)")
      kernel = cls.draw_kernel(in_channels=cipher_key.geometry.channels,
                               out_channels=out_channels, kernel_size=kernel_size, rngs=rngs)
    elif np.shape(kernel)[-1] != out_channels:
      raise ValueError(f"kernel has {np.shape(kernel)[-1]} output channels, "
                       f"out_channels={out_channels}")
    return cls(augmented_conv(cipher_key, kernel, strides=strides, padding=padding))

  def __call__(self, vectors: jax.Array) -> jax.Array:
    """[N, n] float32 morphed vectors -> [N, H', W', C'] float32 feature maps."""
    vectors = jnp.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[-1] != self.vector_size:
      raise ValueError(f"MorphAdaptation expects [N, {self.vector_size}] morphed vectors, got "
                       f"shape {tuple(vectors.shape)}")
    if not jnp.issubdtype(vectors.dtype, jnp.floating):
      raise TypeError(f"morphed vectors must be floating point, got {vectors.dtype}")
    aug = AugmentedConv(matrices=jax.lax.stop_gradient(self.matrices[...]),
                        rows=np.asarray(self.rows), output_shape=self.output_shape)
    return apply_augmented_conv(aug, vectors)


class AdaptedClassifier(nnx.Module):
  """An adaptation layer (or none) followed by a backbone: what `build_model` returns.

  Args:
    adaptation: an adaptation module, or None.
    backbone: a backbone taking the adaptation's output.
    input_shape: the shape of one input: (H, W, C) for images, (n,) for
      morphed vectors.

  Call: `[N, *input_shape] float32 -> logits [N, num_classes] float32`.
  """

  def __init__(self, *, adaptation: nnx.Module | None, backbone: nnx.Module,
               input_shape: tuple[int, ...]):
    self.adaptation = adaptation
    self.backbone = backbone
    self.input_shape = tuple(int(s) for s in input_shape)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, *input_shape] float32 -> logits [N, num_classes] float32."""
    x = jnp.asarray(x)
    if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
      raise ValueError(f"this model takes [N, {', '.join(map(str, self.input_shape))}] inputs, "
                       f"got shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"this model takes floating point inputs (images scaled to [0, 1]), got "
                      f"{x.dtype}; convert uint8 images with x.astype(jnp.float32) / 255")
    if self.adaptation is not None:
      x = self.adaptation(x)
    return self.backbone(x)


def _patch_rows(kernel: jax.Array, layout: str) -> tuple[jax.Array, Any]:
  """[P, P, C, D] kernel -> ([d, D] rows in the key's block vector order, inverse)."""
  p, _, c, dim = kernel.shape
  if layout == "hwc":
    return kernel.reshape(-1, dim), lambda rows: rows.reshape(p, p, c, dim)
  rows = kernel.transpose(2, 0, 1, 3).reshape(-1, dim)
  return rows, lambda r: r.reshape(c, p, p, dim).transpose(1, 2, 0, 3)


def keyed_vit(model: ViT | AdaptedClassifier, cipher_key: vit_cipher.ViTKey
              ) -> ViT | AdaptedClassifier:
  """A copy of a ViT (trained on plain images) that classifies vit-encrypted images.

  With y = vit.encrypt(cipher_key, x), `keyed_vit(m, k)(y / 255)` equals
  `m(x / 255)` up to float rounding (Kiya et al. 2022). The cipher gathers:
  output block j is input block block_perm[j] with value i taken from its
  value pixel_perm[i] (block vector in the key's layout). So the patch
  embedding row for encrypted value i must be the plain row pixel_perm[i]
  (rows of the [P, P, C, D] kernel read in the key's layout), and the
  position embedding of token j must be the plain one of block_perm[j]; the
  encrypted tokens are then the plain tokens permuted, which the transformer
  (no position-dependent masks, class token without position embedding, mean
  or class-token pooling) does not see.

  Args:
    model: a `ViT`, or an `AdaptedClassifier` without adaptation around one.
    cipher_key: a `lie_jax.ciphers.vit.ViTKey` with block size = the patch
      size, for images whose block grid is the ViT's patch grid.

  Returns:
    A transformed copy of the same type; `model` is unchanged.
  """
  if isinstance(model, AdaptedClassifier):
    if model.adaptation is not None or not isinstance(model.backbone, ViT):
      raise ValueError("keyed_vit needs a ViT, or a model built with backbone='vit' and "
                       "adaptation='none'")
    out = nnx.clone(model)
    out.backbone = keyed_vit(model.backbone, cipher_key)
    return out
  if not isinstance(model, ViT):
    raise TypeError(f"keyed_vit needs a lie_jax.models.ViT, got {type(model).__name__}")
  if not isinstance(cipher_key, vit_cipher.ViTKey):
    raise TypeError(f"cipher_key must be a lie_jax.ciphers.vit.ViTKey, got "
                    f"{type(cipher_key).__name__}")
  geometry = cipher_key.geometry
  if geometry.block_size != model.patch_size:
    raise ValueError(f"the key's block size ({geometry.block_size}) must equal the ViT's patch "
                     f"size ({model.patch_size})")
  if geometry.channels != model.in_channels:
    raise ValueError(f"the key is for C={geometry.channels} images, the ViT takes "
                     f"C={model.in_channels}")
  h, w, _ = geometry.image_shape
  grid = (h // geometry.block_size, w // geometry.block_size)
  if grid != tuple(model.grid):
    raise ValueError(f"the key's block grid {grid[0]}x{grid[1]} (images {h}x{w}) differs from "
                     f"the ViT's patch grid {model.grid[0]}x{model.grid[1]}")
  out = nnx.clone(model)
  rows, unflatten = _patch_rows(out.patch_embed.kernel[...], geometry.layout)
  out.patch_embed.kernel[...] = unflatten(rows[jnp.asarray(cipher_key.pixel_perm)])
  pos = out.position_embedding[...]
  out.position_embedding[...] = pos[:, jnp.asarray(cipher_key.block_perm), :]
  return out
