"""Classifiers (Flax NNX) that train on encrypted images.

A model is an adaptation layer matched to the cipher (or none) followed by
a backbone; `build_model` composes them by name::

  backbone:   "resnet18", "small_resnet", "densenet121", "vgg16", "vit", "xception"
  adaptation: "none", "block" (LE, EtC, blockwise), "ele", "pixel" (PE,
              huang2022), "morph" (MoLe; the model takes morphed vectors)

A ViT trained on plain images serves vit-encrypted images after
`keyed_vit(model, cipher_key)`, without retraining. Add `auxiliary_loss(model)`
(the ELE permutation penalties; 0 for other models) to the training loss.

Models are built in training mode; call `model.eval()` for inference.

Usage (not run as a doctest: building a model compiles one initializer per
parameter shape, too slow for the doctest suite)::

  model = models.build_model(backbone="small_resnet", adaptation="block", num_classes=10,
                             image_shape=(28, 28, 1), block_size=4, rngs=nnx.Rngs(0))
  logits = model(encrypted_images.astype(jnp.float32) / 255)  # [N, 10]
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  loss = loss + models.auxiliary_loss(model)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from flax import nnx

from lie_jax.ciphers import morph
from lie_jax.models.adaptation import AdaptedClassifier
from lie_jax.models.adaptation import AugmentedConv
from lie_jax.models.adaptation import apply_augmented_conv
from lie_jax.models.adaptation import augmented_conv
from lie_jax.models.adaptation import BlockAdaptation
from lie_jax.models.adaptation import ELEAdaptation
from lie_jax.models.adaptation import FrozenWeight
from lie_jax.models.adaptation import MorphAdaptation
from lie_jax.models.adaptation import PixelAdaptation
from lie_jax.models.adaptation import auxiliary_loss
from lie_jax.models.adaptation import depth_to_space
from lie_jax.models.adaptation import keyed_vit
from lie_jax.models.adaptation import space_to_depth
from lie_jax.models.backbones import DenseNet121
from lie_jax.models.backbones import ResNet
from lie_jax.models.backbones import ResNet18
from lie_jax.models.backbones import SmallResNet
from lie_jax.models.backbones import VGG16
from lie_jax.models.backbones import ViT
from lie_jax.models.backbones import Xception
from lie_jax.models.backbones import check_block_size

BACKBONES = {
    "resnet18": ResNet18,
    "small_resnet": SmallResNet,
    "densenet121": DenseNet121,
    "vgg16": VGG16,
    "vit": ViT,
    "xception": Xception,
}
ADAPTATIONS = ("none", "block", "ele", "pixel", "morph")
# Set by build_model itself, not an option (the ViT's grid follows the adaptation's output).
_BUILT_IN = ("self", "in_channels", "num_classes", "rngs", "image_size")


def option_defaults(backbone: str) -> dict[str, Any]:
  """{option: default} of a backbone's keyword options (what `config.model.options` may set).

  Example:
    >>> from lie_jax import models
    >>> models.option_defaults("resnet18")
    {'imagenet_stem': False, 'dropout_rate': 0.0}
  """
  if backbone not in BACKBONES:
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
  params = inspect.signature(BACKBONES[backbone].__init__).parameters.values()
  return {p.name: p.default for p in params if p.name not in _BUILT_IN}


def set_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
  """The options a config sets: `config.model.options` declares every backbone's options as
  None placeholders; the ones left None keep the backbone's default."""
  if hasattr(options, "to_dict"):  # an ml_collections.ConfigDict
    options = options.to_dict()
  return {k: v for k, v in dict(options or {}).items() if v is not None}
# Output channels of the adaptation layers when adaptation_options do not say.
DEFAULT_CHANNELS = {"block": 32, "pixel": 32, "morph": 16}


def _check_image_shape(image_shape: Any) -> tuple[int, int, int]:
  try:
    shape = tuple(int(s) for s in image_shape)
  except TypeError:
    raise ValueError(f"image_shape must be (H, W, C), got {image_shape!r}") from None
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(f"image_shape must be (H, W, C) of positive ints, got {image_shape!r}")
  return shape


def build_model(*, backbone: str, adaptation: str, num_classes: int,
                image_shape: tuple[int, int, int], block_size: int = 4,
                cipher_key: morph.MorphKey | None = None, rngs: nnx.Rngs,
                adaptation_options: dict[str, Any] | None = None,
                **backbone_options) -> AdaptedClassifier:
  """Builds an adaptation layer + backbone classifier.

  Args:
    backbone: a name in BACKBONES.
    adaptation: a name in ADAPTATIONS.
    num_classes: number of logits.
    image_shape: (H, W, C) of the (plain and encrypted) images.
    block_size: the cipher's block size B, used by "block" and "ele" (B
      must divide H and W) and as the ViT's default patch size.
    cipher_key: the `lie_jax.ciphers.morph.MorphKey` for adaptation="morph"
      (required there, and rejected elsewhere).
    rngs: parameter (and dropout) randomness.
    adaptation_options: keyword options of the adaptation layer
      (out_channels of "block"/"pixel", default 32; features,
      permutation_init, penalty_weight of "ele"; out_channels, kernel_size,
      strides, padding of "morph", default 16 channels).
    **backbone_options: keyword options of the backbone class (e.g.
      imagenet_stem, dropout_rate; for "vit": patch_size (default
      block_size), dim, depth, num_heads, pool).

  Returns:
    An `AdaptedClassifier` (training mode) mapping [N, H, W, C] float32
    images in [0, 1] (for "morph": [N, n] float32 morphed vectors from
    `morph.encrypt(cipher_key, images)`) to logits [N, num_classes].
  """
  if backbone not in BACKBONES:
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
  accepted = option_defaults(backbone)
  unknown = sorted(set(backbone_options) - set(accepted))
  if unknown:
    raise ValueError(f"model option(s) {unknown} do not apply to the {backbone} backbone; its "
                     f"options: {sorted(accepted)}")
  if adaptation not in ADAPTATIONS:
    raise ValueError(f"unknown adaptation {adaptation!r}; choose one of {list(ADAPTATIONS)}")
  h, w, c = _check_image_shape(image_shape)
  options = dict(adaptation_options or {})
  if adaptation == "morph":
    if cipher_key is None:
      raise ValueError("adaptation='morph' needs cipher_key, the MorphKey the images are "
                       "morphed with")
    if not isinstance(cipher_key, morph.MorphKey):
      raise TypeError(f"adaptation='morph' needs a lie_jax.ciphers.morph.MorphKey, got "
                      f"{type(cipher_key).__name__}")
    if tuple(cipher_key.geometry.image_shape) != (h, w, c):
      raise ValueError(f"the MorphKey was made for {list(cipher_key.geometry.image_shape)} "
                       f"images, image_shape is {[h, w, c]}")
  elif cipher_key is not None:
    raise ValueError(f"cipher_key is only used by adaptation='morph', got adaptation="
                     f"{adaptation!r}")

  if adaptation == "none":
    layer, features, input_shape = None, (h, w, c), (h, w, c)
  elif adaptation == "block":
    block_size = check_block_size(block_size, (h, w), "block_size")
    out = options.pop("out_channels", DEFAULT_CHANNELS["block"])
    layer = BlockAdaptation(in_channels=c, block_size=block_size, out_channels=out, rngs=rngs,
                            **options)
    features, input_shape = (h, w, out), (h, w, c)
  elif adaptation == "ele":
    block_size = check_block_size(block_size, (h, w), "block_size")
    options.pop("out_channels", None)  # ELE keeps the image's channels
    layer = ELEAdaptation(in_channels=c, block_size=block_size, image_size=(h, w), rngs=rngs,
                          **options)
    features = (h, w, layer.kernel.shape[-1] // (block_size * block_size))
    input_shape = (h, w, c)
  elif adaptation == "pixel":
    out = options.pop("out_channels", DEFAULT_CHANNELS["pixel"])
    layer = PixelAdaptation(in_channels=c, out_channels=out, rngs=rngs, **options)
    features, input_shape = (h, w, out), (h, w, c)
  else:
    out = options.pop("out_channels", DEFAULT_CHANNELS["morph"])
    layer = MorphAdaptation.from_cipher_key(cipher_key, out_channels=out, rngs=rngs, **options)
    features, input_shape = layer.output_shape, (layer.vector_size,)

  if backbone == "vit":
    patch_size = backbone_options.pop("patch_size", block_size)
    check_block_size(patch_size, features[:2], "the ViT patch_size")
    backbone_options.update(image_size=features[:2], patch_size=patch_size)
  net = BACKBONES[backbone](in_channels=features[2], num_classes=num_classes, rngs=rngs,
                            **backbone_options)
  return AdaptedClassifier(adaptation=layer, backbone=net, input_shape=input_shape)


__all__ = [
    "ADAPTATIONS", "BACKBONES", "AdaptedClassifier", "AugmentedConv", "BlockAdaptation",
    "DenseNet121", "apply_augmented_conv", "augmented_conv",
    "ELEAdaptation", "FrozenWeight", "MorphAdaptation", "PixelAdaptation", "ResNet",
    "ResNet18", "SmallResNet", "VGG16", "ViT", "Xception", "auxiliary_loss", "build_model",
    "depth_to_space", "keyed_vit", "option_defaults", "set_options", "space_to_depth",
]
