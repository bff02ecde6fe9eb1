"""Image classifiers (Flax NNX) that the adaptation layers feed.

Every backbone is built as `Class(*, in_channels, num_classes, rngs, ...)` and
maps x: [N, H, W, C] float32 (images scaled to [0, 1], or the feature maps of
an adaptation layer) to logits [N, num_classes] float32.

Models are constructed in training mode (BatchNorm normalises with batch
statistics and updates its running averages; Dropout is active); call
`model.eval()` for inference and `model.train()` to switch back.

Sizes: the CNNs are written for 28-64 px inputs like MedMNIST's (3x3 stem
with stride 1, no max-pool); `imagenet_stem=True` gives the 224 px stem
(7x7 stride 2 convolution, 3x3 stride 2 max-pool). Their pools round up
("ceil mode"), so every backbone also runs at 28x28, where 5 halvings would
otherwise reach zero.

  ResNet18:     11.2M parameters (3 channels, 10 classes).
  SmallResNet:  0.08M, for CPU runs and tests.
  DenseNet121:  7.0M.
  VGG16:        14.7M (with BatchNorm, global average pooling head).
  Xception:     20.8M (Keras' published count, + the head).
  ViT:          0.14M at the small defaults (dim 64, depth 4, 4 heads, patch 4).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def batch_norm(features: int, *, rngs: nnx.Rngs) -> nnx.BatchNorm:
  """BatchNorm with running statistics that keep up with short runs.

  Flax's default momentum 0.99 averages over ~100 steps; a PneumoniaMNIST
  epoch is ~70 steps, and with stale statistics evaluation-mode predictions
  collapse to one class early in training (seen as val accuracy stuck at the
  majority share while the AUC is high). 0.9, as in the Flax ImageNet example.
  """
  return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


def check_input(x: jax.typing.ArrayLike, in_channels: int, name: str) -> jax.Array:
  """Checks that x is a float [N, H, W, in_channels] batch (shapes only: safe under jit)."""
  x = jnp.asarray(x)
  if x.ndim != 4 or x.shape[-1] != in_channels:
    raise ValueError(f"{name} expects [N, H, W, {in_channels}] inputs, got shape {tuple(x.shape)}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{name} expects floating point inputs (images scaled to [0, 1]), got "
                    f"{x.dtype}; convert uint8 images with x.astype(jnp.float32) / 255")
  return x


def check_block_size(block_size: Any, image_size: tuple[int, int] | None, what: str) -> int:
  """Checks that a block (or patch) size is a positive int dividing image_size (H, W)."""
  is_int = isinstance(block_size, (int, np.integer)) and not isinstance(block_size, bool)
  if not is_int or block_size < 1:
    raise ValueError(f"{what} must be a positive int, got {block_size!r}")
  if image_size is not None and (image_size[0] % block_size or image_size[1] % block_size):
    raise ValueError(f"{what}={block_size} does not divide the image size "
                     f"{image_size[0]}x{image_size[1]}")
  return int(block_size)


def _pool(x: jax.Array, kind: str, window: int, stride: int) -> jax.Array:
  """Max or average pooling that rounds the output size up (pads only where needed)."""
  pads = []
  for size in x.shape[1:3]:
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    pads.append((total // 2, total - total // 2))
  if kind == "max":
    return nnx.max_pool(x, (window, window), (stride, stride), pads)
  return nnx.avg_pool(x, (window, window), (stride, stride), pads, count_include_pad=False)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *,
          rngs: nnx.Rngs) -> nnx.Conv:
  # No bias: every convolution of the CNNs below feeds a BatchNorm.
  return nnx.Conv(in_channels, out_channels, (kernel_size, kernel_size), (stride, stride),
                  padding="SAME", use_bias=False,
                  kernel_init=nnx.initializers.variance_scaling(2.0, "fan_out", "normal"),
                  rngs=rngs)


class _Stem(nnx.Module):
  """conv -> BN -> ReLU (3x3 stride 1), or the 224 px stem (7x7 stride 2, then 3x3/2 max-pool)."""

  def __init__(self, in_channels: int, out_channels: int, *, imagenet_stem: bool,
               rngs: nnx.Rngs):
    self.imagenet_stem = imagenet_stem
    if imagenet_stem:
      self.conv = _conv(in_channels, out_channels, 7, 2, rngs=rngs)
    else:
      self.conv = _conv(in_channels, out_channels, 3, 1, rngs=rngs)
    self.bn = batch_norm(out_channels, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.bn(self.conv(x)))
    if self.imagenet_stem:
      x = _pool(x, "max", 3, 2)
    return x


class _Head(nnx.Module):
  """Global average pooling -> Dropout -> Linear: [N, H, W, C] -> [N, num_classes]."""

  def __init__(self, in_features: int, num_classes: int, *, dropout_rate: float,
               rngs: nnx.Rngs):
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
    self.linear = nnx.Linear(in_features, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.linear(self.dropout(x.mean(axis=(1, 2))))


class BasicBlock(nnx.Module):
  """ResNet basic block: two 3x3 conv-BN pairs and a (projected) shortcut, then ReLU."""

  def __init__(self, in_channels: int, out_channels: int, stride: int, *, rngs: nnx.Rngs):
    self.conv1 = _conv(in_channels, out_channels, 3, stride, rngs=rngs)
    self.bn1 = batch_norm(out_channels, rngs=rngs)
    self.conv2 = _conv(out_channels, out_channels, 3, 1, rngs=rngs)
    self.bn2 = batch_norm(out_channels, rngs=rngs)
    projected = stride != 1 or in_channels != out_channels
    self.shortcut = nnx.Sequential(_conv(in_channels, out_channels, 1, stride, rngs=rngs),
                                   batch_norm(out_channels, rngs=rngs)) if projected else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return nnx.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nnx.Module):
  """A ResNet of basic blocks: stem -> stages (the first keeps the resolution, the
  others halve it) -> global average pooling -> Linear.

  Args:
    in_channels: C of the inputs [N, H, W, C] float32.
    num_classes: number of logits.
    stage_sizes: blocks per stage.
    widths: channels per stage (the stem has widths[0]).
    imagenet_stem: 7x7/2 conv and 3x3/2 max-pool stem for 224 px inputs,
      instead of one 3x3 stride-1 conv.
    dropout_rate: dropout before the final Linear.
    rngs: parameter (and dropout) randomness.
  """

  def __init__(self, *, in_channels: int, num_classes: int, stage_sizes: Sequence[int],
               widths: Sequence[int], imagenet_stem: bool = False, dropout_rate: float = 0.0,
               rngs: nnx.Rngs):
    if len(stage_sizes) != len(widths) or not stage_sizes:
      raise ValueError(f"stage_sizes and widths must be non-empty and of equal length, got "
                       f"{tuple(stage_sizes)} and {tuple(widths)}")
    self.in_channels = in_channels
    self.stem = _Stem(in_channels, widths[0], imagenet_stem=imagenet_stem, rngs=rngs)
    blocks = []
    channels = widths[0]
    for stage, (size, width) in enumerate(zip(stage_sizes, widths)):
      for i in range(size):
        stride = 2 if stage > 0 and i == 0 else 1
        blocks.append(BasicBlock(channels, width, stride, rngs=rngs))
        channels = width
    self.blocks = nnx.List(blocks)
    self.head = _Head(channels, num_classes, dropout_rate=dropout_rate, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 -> logits [N, num_classes] float32."""
    x = self.stem(check_input(x, self.in_channels, type(self).__name__))
    for block in self.blocks:
      x = block(x)
    return self.head(x)


class ResNet18(ResNet):
  """ResNet-18 (stages of 2 basic blocks, widths 64-512), MedMNIST-style for
  28-64 px inputs (3x3 stem, no max-pool); `imagenet_stem=True` for 224 px."""

  def __init__(self, *, in_channels: int, num_classes: int, imagenet_stem: bool = False,
               dropout_rate: float = 0.0, rngs: nnx.Rngs):
    super().__init__(in_channels=in_channels, num_classes=num_classes, stage_sizes=(2, 2, 2, 2),
                     widths=(64, 128, 256, 512), imagenet_stem=imagenet_stem,
                     dropout_rate=dropout_rate, rngs=rngs)


class SmallResNet(ResNet):
  """A small ResNet for CPU runs and tests: one basic block per stage, widths (16, 32, 64)."""

  def __init__(self, *, in_channels: int, num_classes: int,
               widths: Sequence[int] = (16, 32, 64), stage_sizes: Sequence[int] | None = None,
               imagenet_stem: bool = False, dropout_rate: float = 0.0, rngs: nnx.Rngs):
    super().__init__(in_channels=in_channels, num_classes=num_classes,
                     stage_sizes=(1,) * len(widths) if stage_sizes is None else stage_sizes,
                     widths=widths, imagenet_stem=imagenet_stem, dropout_rate=dropout_rate,
                     rngs=rngs)


class _DenseLayer(nnx.Module):
  """BN-ReLU-1x1 conv (bn_size * growth) - BN-ReLU-3x3 conv (growth); output concatenated."""

  def __init__(self, in_channels: int, growth_rate: int, bn_size: int, *, rngs: nnx.Rngs):
    self.bn1 = batch_norm(in_channels, rngs=rngs)
    self.conv1 = _conv(in_channels, bn_size * growth_rate, 1, rngs=rngs)
    self.bn2 = batch_norm(bn_size * growth_rate, rngs=rngs)
    self.conv2 = _conv(bn_size * growth_rate, growth_rate, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.conv1(nnx.relu(self.bn1(x)))
    y = self.conv2(nnx.relu(self.bn2(y)))
    return jnp.concatenate([x, y], axis=-1)


class _Transition(nnx.Module):
  """BN-ReLU-1x1 conv (compress channels) - 2x2 average pool (rounding up)."""

  def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
    self.bn = batch_norm(in_channels, rngs=rngs)
    self.conv = _conv(in_channels, out_channels, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return _pool(self.conv(nnx.relu(self.bn(x))), "avg", 2, 2)


class DenseNet121(nnx.Module):
  """DenseNet-121 (Huang et al. 2017): dense blocks of (6, 12, 24, 16) layers,
  growth rate 32, bottleneck 4, compression 0.5.

  The small-input stem is one 3x3 stride-1 conv (2 * growth_rate channels),
  so the three transitions take 28 px to 4 px (pools round up);
  `imagenet_stem=True` restores the 224 px stem.

  Args:
    in_channels, num_classes, imagenet_stem, dropout_rate, rngs: as `ResNet`.
    growth_rate: channels each dense layer adds.
    block_sizes: layers per dense block.
    bn_size: bottleneck width factor.
    compression: channel factor of the transitions.
  """

  def __init__(self, *, in_channels: int, num_classes: int, growth_rate: int = 32,
               block_sizes: Sequence[int] = (6, 12, 24, 16), bn_size: int = 4,
               compression: float = 0.5, imagenet_stem: bool = False, dropout_rate: float = 0.0,
               rngs: nnx.Rngs):
    self.in_channels = in_channels
    channels = 2 * growth_rate
    self.stem = _Stem(in_channels, channels, imagenet_stem=imagenet_stem, rngs=rngs)
    layers = []
    for i, size in enumerate(block_sizes):
      for _ in range(size):
        layers.append(_DenseLayer(channels, growth_rate, bn_size, rngs=rngs))
        channels += growth_rate
      if i < len(block_sizes) - 1:
        out = int(channels * compression)
        layers.append(_Transition(channels, out, rngs=rngs))
        channels = out
    self.layers = nnx.List(layers)
    self.final_bn = batch_norm(channels, rngs=rngs)
    self.head = _Head(channels, num_classes, dropout_rate=dropout_rate, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 -> logits [N, num_classes] float32."""
    x = self.stem(check_input(x, self.in_channels, "DenseNet121"))
    for layer in self.layers:
      x = layer(x)
    return self.head(nnx.relu(self.final_bn(x)))


# VGG-16 configuration "D": channels of the 3x3 convs, "M" a 2x2 max-pool.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nnx.Module):
  """VGG-16 with BatchNorm after every conv and a global-average-pooling head
  (Dropout -> Linear) instead of the 4096-wide fully connected layers.

  The five 2x2 max-pools round up, so 28 px inputs end at 1 px
  (28-14-7-4-2-1) and 32 px ones at 1 px as in CIFAR VGG.

  Args: as `ResNet` (no stem option: VGG has none).
  """

  def __init__(self, *, in_channels: int, num_classes: int, dropout_rate: float = 0.0,
               rngs: nnx.Rngs):
    self.in_channels = in_channels
    layers = []
    channels = in_channels
    for item in _VGG16:
      if item == "M":
        continue
      layers.append(nnx.Sequential(_conv(channels, item, 3, rngs=rngs),
                                   batch_norm(item, rngs=rngs)))
      channels = item
    self.layers = nnx.List(layers)
    self.head = _Head(channels, num_classes, dropout_rate=dropout_rate, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 -> logits [N, num_classes] float32."""
    x = check_input(x, self.in_channels, "VGG16")
    layers = iter(self.layers)
    for item in _VGG16:
      x = _pool(x, "max", 2, 2) if item == "M" else nnx.relu(next(layers)(x))
    return self.head(x)


class _SeparableConv(nnx.Module):
  """Depthwise 3x3 conv (one filter per channel) then pointwise 1x1 conv, no bias, then BN:
  Keras' SeparableConv2D + BatchNormalization, the unit of Xception."""

  def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
    init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
    self.depthwise = nnx.Conv(in_channels, in_channels, (3, 3), padding="SAME", use_bias=False,
                              feature_group_count=in_channels, kernel_init=init, rngs=rngs)
    self.pointwise = nnx.Conv(in_channels, out_channels, (1, 1), use_bias=False,
                              kernel_init=init, rngs=rngs)
    self.bn = batch_norm(out_channels, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.bn(self.pointwise(self.depthwise(x)))


class _XceptionBlock(nnx.Module):
  """[ReLU -> SepConv -> BN] x len(widths), then a 3x3/2 max-pool with a 1x1/2 conv + BN
  shortcut (`downsample`), or an identity shortcut (middle flow). `relu_first=False` skips the
  first ReLU (the first entry block follows a ReLU already)."""

  def __init__(self, in_channels: int, widths: Sequence[int], *, downsample: bool,
               relu_first: bool = True, rngs: nnx.Rngs):
    convs, channels = [], in_channels
    for width in widths:
      convs.append(_SeparableConv(channels, width, rngs=rngs))
      channels = width
    self.convs = nnx.List(convs)
    self.relu_first = relu_first
    self.downsample = downsample
    self.shortcut = nnx.Sequential(_conv(in_channels, channels, 1, 2, rngs=rngs),
                                   batch_norm(channels, rngs=rngs)) if downsample else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = x
    for i, conv in enumerate(self.convs):
      y = conv(nnx.relu(y) if (i or self.relu_first) else y)
    if self.downsample:
      return _pool(y, "max", 3, 2) + self.shortcut(x)
    return y + x


class Xception(nnx.Module):
  """Xception (Chollet 2017), as Keras' `applications.Xception`: entry flow (two convs,
  three down-sampling blocks of 128, 256, 728 channels), middle flow (8 residual blocks of
  three 728-channel separable convs), exit flow (a 728/1024 down-sampling block, separable
  convs of 1536 and 2048 channels), global average pooling, Linear. 20.8M trainable
  parameters without the head, the published count.

  Its first conv has stride 2 and the four blocks halve the size again (pools round up):
  299 px -> 10 px, 224 px -> 7 px, 28 px -> 1 px. `imagenet_stem=False` (the default, as for
  the other CNNs here) gives the first conv stride 1 for 28-64 px inputs.

  Args:
    in_channels, num_classes, dropout_rate, rngs: as `ResNet`.
    imagenet_stem: stride 2 in the first conv (the published network).
    middle_blocks: residual blocks of the middle flow (8 published).
  """

  def __init__(self, *, in_channels: int, num_classes: int, imagenet_stem: bool = False,
               middle_blocks: int = 8, dropout_rate: float = 0.0, rngs: nnx.Rngs):
    self.in_channels = in_channels
    self.stem = nnx.Sequential(_conv(in_channels, 32, 3, 2 if imagenet_stem else 1, rngs=rngs),
                               batch_norm(32, rngs=rngs), nnx.relu,
                               _conv(32, 64, 3, 1, rngs=rngs), batch_norm(64, rngs=rngs),
                               nnx.relu)
    blocks = [_XceptionBlock(64, (128, 128), downsample=True, relu_first=False, rngs=rngs),
              _XceptionBlock(128, (256, 256), downsample=True, rngs=rngs),
              _XceptionBlock(256, (728, 728), downsample=True, rngs=rngs)]
    blocks += [_XceptionBlock(728, (728, 728, 728), downsample=False, rngs=rngs)
               for _ in range(middle_blocks)]
    blocks.append(_XceptionBlock(728, (728, 1024), downsample=True, rngs=rngs))
    self.blocks = nnx.List(blocks)
    self.exit1 = _SeparableConv(1024, 1536, rngs=rngs)
    self.exit2 = _SeparableConv(1536, 2048, rngs=rngs)
    self.head = _Head(2048, num_classes, dropout_rate=dropout_rate, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 -> logits [N, num_classes] float32."""
    x = self.stem(check_input(x, self.in_channels, "Xception"))
    for block in self.blocks:
      x = block(x)
    x = nnx.relu(self.exit2(nnx.relu(self.exit1(x))))
    return self.head(x)


class _EncoderBlock(nnx.Module):
  """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

  def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout_rate: float, *,
               rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(num_heads, dim, dropout_rate=dropout_rate,
                                            deterministic=False, decode=False, rngs=rngs)
    self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
    self.mlp_in = nnx.Linear(dim, mlp_dim, rngs=rngs)
    self.mlp_out = nnx.Linear(mlp_dim, dim, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.dropout(self.attention(self.norm1(x)))
    y = self.mlp_out(self.dropout(nnx.gelu(self.mlp_in(self.norm2(x)))))
    return x + self.dropout(y)


class ViT(nnx.Module):
  """Vision transformer: patch embedding (conv, kernel = stride = patch_size),
  learnable position embeddings, pre-norm transformer blocks, final LayerNorm,
  class-token or mean pooling, Linear head.

  The class token carries no position embedding (it is itself learnable), so
  the model is exactly equivariant to a permutation of the patch tokens
  together with their position embeddings: what `keyed_vit` relies on.

  Args:
    in_channels: C of the inputs [N, H, W, C] float32.
    num_classes: number of logits.
    image_size: (H, W) (or one int for square images) the position
      embeddings are made for; patch_size must divide both.
    patch_size: P.
    dim: token width.
    depth: number of transformer blocks.
    num_heads: attention heads (must divide dim).
    mlp_dim: hidden width of the MLPs (default 2 * dim).
    pool: "cls" (class token) or "mean" (mean of the patch tokens).
    dropout_rate: dropout on attention weights, residual branches and head.
    rngs: parameter (and dropout) randomness.

  Attributes:
    patch_embed: the nnx.Conv, kernel [P, P, C, dim].
    position_embedding: nnx.Param [1, (H/P)*(W/P), dim], patches in row-major order.
    grid: (H/P, W/P).
  """

  def __init__(self, *, in_channels: int, num_classes: int, image_size: int | Sequence[int],
               patch_size: int = 4, dim: int = 64, depth: int = 4, num_heads: int = 4,
               mlp_dim: int | None = None, pool: str = "cls", dropout_rate: float = 0.0,
               rngs: nnx.Rngs):
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    patch_size = check_block_size(patch_size, (h, w), "ViT patch_size")
    if pool not in ("cls", "mean"):
      raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
    if dim % num_heads:
      raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
    self.in_channels = in_channels
    self.image_size = (h, w)
    self.patch_size = patch_size
    self.grid = (h // patch_size, w // patch_size)
    self.pool = pool
    self.patch_embed = nnx.Conv(in_channels, dim, (patch_size, patch_size),
                                (patch_size, patch_size), padding="VALID", rngs=rngs)
    num_patches = self.grid[0] * self.grid[1]
    self.position_embedding = nnx.Param(
        0.02 * jax.random.normal(rngs.params(), (1, num_patches, dim), jnp.float32))
    self.cls_token = nnx.Param(jnp.zeros((1, 1, dim), jnp.float32)) if pool == "cls" else None
    self.blocks = nnx.List([_EncoderBlock(dim, num_heads, mlp_dim or 2 * dim, dropout_rate,
                                          rngs=rngs) for _ in range(depth)])
    self.norm = nnx.LayerNorm(dim, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
    self.head = nnx.Linear(dim, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[N, H, W, in_channels] float32 (H, W = image_size) -> logits [N, num_classes] float32."""
    x = check_input(x, self.in_channels, "ViT")
    if tuple(x.shape[1:3]) != self.image_size:
      raise ValueError(f"this ViT was built for {self.image_size[0]}x{self.image_size[1]} inputs "
                       f"(image_size), got {x.shape[1]}x{x.shape[2]}")
    tokens = self.patch_embed(x)
    n, gh, gw, dim = tokens.shape
    tokens = tokens.reshape(n, gh * gw, dim) + self.position_embedding[...]
    if self.cls_token is not None:
      cls = jnp.broadcast_to(self.cls_token[...], (n, 1, dim))
      tokens = jnp.concatenate([cls, tokens], axis=1)
    for block in self.blocks:
      tokens = block(tokens)
    tokens = self.norm(tokens)
    pooled = tokens[:, 0] if self.cls_token is not None else tokens.mean(axis=1)
    return self.head(self.dropout(pooled))
