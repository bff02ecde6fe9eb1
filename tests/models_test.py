"""Classifiers on encrypted images: shapes, modes, exact keyed ViT and MoLe layers,
the ELE permutation penalty, block order, and one training step.

Cost notes (CPU): every distinct parameter shape costs one XLA compile of its
initializer, and threefry's is slow (about 1 s here), so models are built
with "rbg" keys; backbone shapes are checked abstractly (`nnx.eval_shape`:
no compilation, no FLOPs) in eval mode (train-mode BatchNorm updates make
tracing quadratic in model depth with jax 0.10.2 + flax 0.12.8).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lie_jax import models
from lie_jax.ciphers import blockify
from lie_jax.ciphers import morph
from lie_jax.ciphers import vit
from tests.cipher_cases import random_images

SHAPES = [(28, 28, 1), (32, 32, 3)]
# Parameter counts (at C=3, 10 classes) must stay near the standard models'.
PARAMS = {
    "resnet18": (11.0e6, 11.3e6),
    "small_resnet": (5e4, 2e5),
    "densenet121": (6.8e6, 7.1e6),
    "vgg16": (14.6e6, 14.8e6),
    "vit": (1e5, 5e5),
    "xception": (20.8e6, 20.9e6),
}


def make_rngs(seed=0):
  return nnx.Rngs(jax.random.key(seed, impl="rbg"))


forward = nnx.jit(lambda model, x: model(x))


def param_count(model):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.fixture(scope="module")
def adapted_models():
  """small_resnet + every adaptation on 16x16x1 images (morph: its key and model)."""
  key = morph.generate_key(jax.random.key(0), image_shape=(16, 16, 1), copies=4)
  built = {}
  for adaptation in models.ADAPTATIONS:
    built[adaptation] = models.build_model(
        backbone="small_resnet", adaptation=adaptation, num_classes=10, image_shape=(16, 16, 1),
        block_size=4, cipher_key=key if adaptation == "morph" else None, rngs=make_rngs(1))
  return built, key


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", sorted(models.BACKBONES))
def test_backbone_output_shapes(name, shape):
  cls = models.BACKBONES[name]
  options = {"image_size": shape[:2]} if name == "vit" else {}
  model = nnx.eval_shape(lambda: cls(in_channels=shape[2], num_classes=10, rngs=make_rngs(),
                                     **options))
  model.eval()
  out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2,) + shape, jnp.float32))
  assert out.shape == (2, 10) and out.dtype == jnp.float32
  if shape[2] == 3:
    low, high = PARAMS[name]
    assert low <= param_count(model) <= high


@pytest.mark.parametrize("cls,options,shape", [
    (models.ResNet18, {"imagenet_stem": True}, (224, 224, 3)),
    (models.Xception, {"imagenet_stem": True}, (256, 256, 3)),
    (models.ViT, {"image_size": (32, 32), "patch_size": 8, "pool": "mean"}, (32, 32, 3)),
])
def test_backbone_options_output_shapes(cls, options, shape):
  model = nnx.eval_shape(lambda: cls(in_channels=shape[2], num_classes=5, rngs=make_rngs(),
                                     **options))
  model.eval()
  out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((1,) + shape, jnp.float32))
  assert out.shape == (1, 5)


def test_xception_has_the_published_parameter_counts():
  """Keras' applications.Xception (ImageNet head, 1000 classes): 22,910,480 parameters, of
  which 22,855,952 trainable (BatchNorm moving statistics are the rest)."""
  model = nnx.eval_shape(lambda: models.Xception(in_channels=3, num_classes=1000,
                                                 imagenet_stem=True, rngs=make_rngs()))
  stats = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
  assert param_count(model) == 22_855_952
  assert param_count(model) + stats == 22_910_480
  model.eval()
  out = nnx.eval_shape(lambda m, x: m(x), model,
                       jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32))
  assert out.shape == (1, 1000)


@pytest.mark.parametrize("adaptation", models.ADAPTATIONS)
def test_every_adaptation_with_small_resnet(adapted_models, adaptation):
  built, key = adapted_models
  model = built[adaptation]
  x = random_images((2, 16, 16, 1), seed=3)
  inputs = morph.encrypt(key, x) if adaptation == "morph" else jnp.asarray(x, jnp.float32) / 255
  logits = forward(model, inputs)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()
  if model.adaptation is not None:
    features = nnx.eval_shape(lambda m, v: m(v), model.adaptation, inputs)
    expected = {"block": 32, "ele": 256 // 16, "pixel": 32, "morph": 16}[adaptation]
    assert features.shape == (2, 16, 16, expected)


def test_inputs_are_checked(adapted_models):
  built, _ = adapted_models
  with pytest.raises(TypeError, match="floating point"):
    built["block"](np.zeros((2, 16, 16, 1), np.uint8))
  with pytest.raises(ValueError, match=r"\[N, 16, 16, 1\]"):
    built["block"](jnp.zeros((2, 32, 32, 1)))
  with pytest.raises(ValueError, match=r"\[N, 256\]"):
    built["morph"](jnp.zeros((2, 16, 16, 1)))


def test_train_and_eval_modes_switch_batchnorm(adapted_models):
  model = nnx.clone(adapted_models[0]["none"])
  x = jnp.asarray(random_images((2, 16, 16, 1), seed=5), jnp.float32) / 255
  x_other = x.at[1:].set(1.0 - x[1:])  # same first image, different batch
  bn = model.backbone.stem.bn
  mean0 = np.asarray(bn.mean[...])

  model.train()
  assert not bn.use_running_average
  train_a, train_b = forward(model, x), forward(model, x_other)
  # Batch statistics: an image's logits depend on the rest of its batch;
  # the running averages move.
  assert np.abs(np.asarray(train_a[0] - train_b[0])).max() > 1e-3
  mean1 = np.asarray(bn.mean[...])
  assert np.abs(mean1 - mean0).max() > 1e-4

  model.eval()
  assert bn.use_running_average
  eval_a, eval_b = forward(model, x), forward(model, x_other)
  np.testing.assert_allclose(eval_a[0], eval_b[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(bn.mean[...]), mean1)
  assert np.abs(np.asarray(eval_a - train_a)).max() > 1e-3


def test_train_and_eval_modes_switch_dropout():
  vit_model = nnx.eval_shape(lambda: models.ViT(in_channels=1, num_classes=2, image_size=8,
                                                dropout_rate=0.1, rngs=make_rngs()))
  flags = lambda: [m.deterministic for _, m in nnx.iter_modules(vit_model)
                   if isinstance(m, (nnx.Dropout, nnx.MultiHeadAttention))]
  assert len(flags()) == 9 and not any(flags())  # built in training mode (4 blocks x 2 + head)
  vit_model.eval()
  assert all(flags())
  vit_model.train()
  assert not any(flags())


@pytest.fixture(scope="module")
def vit_model():
  return models.ViT(in_channels=3, num_classes=7, image_size=(16, 16), patch_size=4, dim=32,
                    depth=2, num_heads=4, rngs=make_rngs(7))


@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_keyed_vit_is_exact_on_encrypted_images(vit_model, layout):
  model = vit_model
  key = vit.generate_key(jax.random.key(11), image_shape=(16, 16, 3), block_size=4, layout=layout)
  x = random_images((3, 16, 16, 3), seed=2)
  encrypted = jnp.asarray(vit.encrypt(key, x), jnp.float32) / 255
  plain = jnp.asarray(x, jnp.float32) / 255
  kernel_before = np.asarray(model.patch_embed.kernel[...])

  keyed = models.keyed_vit(model, key)
  expected = np.asarray(forward(model, plain))
  np.testing.assert_allclose(np.asarray(forward(keyed, encrypted)), expected, rtol=1e-4,
                             atol=1e-4)
  # Without the key transform the model sees scrambled inputs.
  assert np.abs(np.asarray(forward(model, encrypted)) - expected).max() > 1e-2
  np.testing.assert_array_equal(np.asarray(model.patch_embed.kernel[...]), kernel_before)


def test_keyed_vit_of_a_built_model_and_errors(vit_model):
  model = vit_model
  rng = np.random.default_rng(0)
  key_for = lambda shape, b: vit.key_from_permutations(
      rng.permutation(b * b * shape[2]), rng.permutation((shape[0] // b) * (shape[1] // b)),
      block_size=b, image_shape=shape)
  key = key_for((16, 16, 3), 4)
  built = models.AdaptedClassifier(adaptation=None, backbone=model, input_shape=(16, 16, 3))
  keyed = models.keyed_vit(built, key)
  assert isinstance(keyed, models.AdaptedClassifier) and keyed.backbone is not model
  np.testing.assert_array_equal(np.asarray(keyed.backbone.position_embedding[...]),
                                np.asarray(models.keyed_vit(model, key).position_embedding[...]))
  assert built.backbone is model
  with pytest.raises(ValueError, match="patch size"):
    models.keyed_vit(model, key_for((16, 16, 3), 2))
  with pytest.raises(ValueError, match="grid"):
    models.keyed_vit(model, key_for((32, 16, 3), 4))
  with pytest.raises(ValueError, match="C=1"):
    models.keyed_vit(model, key_for((16, 16, 1), 4))
  with pytest.raises(TypeError, match="ViTKey"):
    models.keyed_vit(model, {"pixel_perm": np.arange(48), "block_perm": np.arange(16)})
  with pytest.raises(TypeError, match="needs a lie_jax.models.ViT"):
    models.keyed_vit(model.head, key_for((16, 16, 3), 4))


def test_morph_adaptation_equals_permuted_plain_conv(adapted_models):
  key = adapted_models[1]
  shape = key.geometry.image_shape
  layer = models.MorphAdaptation.from_cipher_key(key, out_channels=8, rngs=make_rngs(9))
  # The same seed reproduces the kernel from_cipher_key drew (it is not kept in the layer).
  kernel = models.MorphAdaptation.draw_kernel(in_channels=shape[2], out_channels=8,
                                              kernel_size=3, rngs=make_rngs(9))
  x = random_images((3,) + shape, seed=6)
  out = np.asarray(layer(morph.encrypt(key, x)))
  plain = np.asarray(jax.lax.conv_general_dilated(
      jnp.asarray(x, jnp.float32) / 255, kernel, (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST))
  perm = np.asarray(morph.channel_permutation(key, 8))
  assert (perm != np.arange(8)).any()
  assert out.shape == (3,) + shape[:2] + (8,)
  np.testing.assert_allclose(out, plain[..., perm], rtol=1e-4, atol=1e-4)
  assert np.abs(out - plain).max() > 1e-2  # the channel permutation matters


def test_morph_matrix_is_frozen(adapted_models):
  model = adapted_models[0]["morph"]
  params = nnx.to_flat_state(nnx.state(model, nnx.Param))
  assert not any("matrix" in map(str, path) for path, _ in params)
  frozen = nnx.to_flat_state(nnx.state(model, models.FrozenWeight))
  assert [tuple(map(str, path)) for path, _ in frozen] == [("adaptation", "matrices")]
  # 4 copies of a 64-entry core: each chunk is 4 image rows, reaching 6 output rows.
  assert frozen[0][1].shape == (4, 64, 6 * 16 * 16)


penalty = nnx.jit(lambda layer: layer.penalty())


def test_ele_penalty_is_zero_exactly_for_permutations(adapted_models):
  model = nnx.clone(adapted_models[0]["ele"])
  layer = model.adaptation
  nb = 16
  total = lambda: float(sum(penalty(layer).values()))
  assert set(layer.penalty()) == {"row_sum", "column_sum", "non_negativity", "l1_minus_l2"}
  assert total() < 1e-5  # identity initialisation

  perm = np.random.default_rng(0).permutation(nb)
  layer.permutation[...] = jnp.eye(nb)[perm]
  assert all(float(v) < 1e-5 for v in penalty(layer).values())

  layer.permutation[...] = jnp.full((nb, nb), 1.0 / nb)  # doubly stochastic, not a permutation
  terms = penalty(layer)
  assert float(terms["row_sum"]) < 1e-5 and float(terms["l1_minus_l2"]) > 1.0
  layer.permutation[...] = 0.5 * jnp.eye(nb)[perm]
  assert float(penalty(layer)["row_sum"]) > 1.0
  signed = jnp.eye(nb)[perm] * jnp.where(jnp.arange(nb) % 2, -1.0, 1.0)[:, None]
  layer.permutation[...] = signed
  assert float(penalty(layer)["non_negativity"]) > 1.0

  np.testing.assert_allclose(float(models.auxiliary_loss(model)),
                             layer.penalty_weight * total(), rtol=1e-5)
  assert float(models.auxiliary_loss(adapted_models[0]["block"])) == 0.0


def test_ele_adaptation_layout(adapted_models):
  # With P a permutation matrix, output block j holds the sub-network outputs of
  # position perm[j], pixel-shuffled: feature (r*B + c)*C + ch at pixel (r, c) of the
  # block, channel ch (B = 4, 256 features -> C = 16).
  layer = nnx.clone(adapted_models[0]["ele"].adaptation)
  layer.eval()
  perm = np.random.default_rng(1).permutation(16)
  layer.permutation[...] = jnp.eye(16)[perm]
  x = jnp.asarray(random_images((2, 16, 16, 1), seed=8), jnp.float32) / 255
  out = np.asarray(forward(layer, x))  # [2, 16, 16, 16]
  blocks = blockify(x, block_size=4)
  h = jnp.einsum("nbd,bdf->nbf", blocks, layer.kernel[...]) + layer.bias[...]
  bn = layer.bn
  h = (h - bn.mean[...]) / jnp.sqrt(bn.var[...] + bn.epsilon) * bn.scale[...] + bn.bias[...]
  h = np.asarray(nnx.leaky_relu(h, layer.negative_slope))
  for j in range(16):
    r, c = 4 * (j // 4), 4 * (j % 4)
    np.testing.assert_allclose(out[:, r:r + 4, c:c + 4, :].reshape(2, 256), h[:, perm[j]],
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("block_size,features", [(2, 256), (4, 256), (7, 294), (14, 392)])
def test_ele_features_default_to_the_papers_256_rounded_to_whole_pixels(block_size, features):
  from lie_jax.models.adaptation import ELEAdaptation

  layer = ELEAdaptation(in_channels=1, block_size=block_size, image_size=(28, 28),
                        rngs=nnx.Rngs(0))
  assert layer.kernel.shape[-1] == features and features % block_size ** 2 == 0
  out = forward(layer, jnp.zeros((1, 28, 28, 1)))
  assert out.shape == (1, 28, 28, features // block_size ** 2)
  with pytest.raises(ValueError, match="divisible by block_size"):
    ELEAdaptation(in_channels=1, block_size=7, image_size=(28, 28), features=256,
                  rngs=nnx.Rngs(0))


def test_depth_to_space_inverts_blockify():
  # Hand-made: one 2x2 image with 2 channels, values 10 * row + 5 * col + channel.
  x = np.array([[[0, 1], [5, 6]], [[10, 11], [15, 16]]], np.float32)[None]
  depth = np.asarray(models.space_to_depth(jnp.asarray(x), 2))
  np.testing.assert_array_equal(depth.reshape(-1), [0, 1, 5, 6, 10, 11, 15, 16])
  np.testing.assert_array_equal(np.asarray(models.depth_to_space(jnp.asarray(depth), 2)), x)

  x = np.arange(2 * 8 * 12 * 3, dtype=np.float32).reshape(2, 8, 12, 3)
  blocks = blockify(x, block_size=4, layout="hwc")  # [2, 6, 48], row-major blocks
  grid = jnp.asarray(blocks).reshape(2, 2, 3, 48)
  np.testing.assert_array_equal(np.asarray(models.depth_to_space(grid, 4)), x)
  np.testing.assert_array_equal(np.asarray(models.space_to_depth(jnp.asarray(x), 4)),
                                np.asarray(grid))
  # The stride-B conv of BlockAdaptation reads blocks in the same order: with the
  # kernel eye(d) reshaped to [B, B, C, d] it computes space_to_depth.
  conv = jax.lax.conv_general_dilated(jnp.asarray(x), jnp.eye(48).reshape(4, 4, 3, 48), (4, 4),
                                      "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST)
  np.testing.assert_array_equal(np.asarray(conv), np.asarray(grid))


def test_one_sgd_step_lowers_the_loss():
  model = models.build_model(backbone="small_resnet", adaptation="block", num_classes=10,
                             image_shape=(16, 16, 1), block_size=4, rngs=make_rngs(1))
  optimizer = nnx.Optimizer(model, optax.sgd(0.01), wrt=nnx.Param)
  x = jnp.asarray(random_images((8, 16, 16, 1), seed=4), jnp.float32) / 255
  labels = jnp.arange(8) % 10

  @nnx.jit
  def train_step(model, optimizer, x, labels):
    def loss_fn(model):
      logits = model(x)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss + models.auxiliary_loss(model), logits

    (loss, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return loss

  kernel_before = np.asarray(model.adaptation.block_conv.kernel[...])
  loss_before = float(train_step(model, optimizer, x, labels))
  loss_after = float(train_step(model, optimizer, x, labels))  # computed before its own update
  assert np.isfinite(loss_before) and loss_after < loss_before
  assert np.abs(np.asarray(model.adaptation.block_conv.kernel[...]) - kernel_before).max() > 0


def test_build_model_errors(adapted_models):
  common = dict(num_classes=10, image_shape=(28, 28, 1), rngs=make_rngs())
  with pytest.raises(ValueError, match="unknown backbone"):
    models.build_model(backbone="resnet50", adaptation="none", **common)
  with pytest.raises(ValueError, match="unknown adaptation"):
    models.build_model(backbone="small_resnet", adaptation="etc", **common)
  with pytest.raises(ValueError, match="does not divide"):
    models.build_model(backbone="small_resnet", adaptation="block", block_size=3, **common)
  with pytest.raises(ValueError, match="does not divide"):
    models.build_model(backbone="small_resnet", adaptation="ele", block_size=8, **common)
  with pytest.raises(ValueError, match="patch_size"):
    models.build_model(backbone="vit", adaptation="none", block_size=3, **common)
  with pytest.raises(ValueError, match="needs cipher_key"):
    models.build_model(backbone="small_resnet", adaptation="morph", **common)
  key = adapted_models[1]  # made for 16x16x1 images
  with pytest.raises(ValueError, match="only used by adaptation='morph'"):
    models.build_model(backbone="small_resnet", adaptation="block", cipher_key=key, **common)
  with pytest.raises(ValueError, match="made for"):
    models.build_model(backbone="small_resnet", adaptation="morph", cipher_key=key, **common)
  with pytest.raises(ValueError, match="image_shape"):
    models.build_model(backbone="small_resnet", adaptation="none", num_classes=10,
                       image_shape=(28, 28), rngs=make_rngs())


def test_every_backbone_option_is_declared_in_the_config_and_settable_from_the_command_line():
  from absl import flags
  from ml_collections import config_flags

  from lie_jax.configs import default
  declared = default.get_config().model.options
  for name in models.BACKBONES:
    for option, value in models.option_defaults(name).items():
      assert option in declared, f"{name}.{option} is not declared in config.model.options"
      assert declared[option] is None  # unset: the backbone's default
  from lie_jax import train
  argv = train.resolve_config_argv([
      "train.py", "--config=default", "--config.model.backbone=resnet18",
      "--config.model.options.imagenet_stem=True", "--config.model.options.dropout_rate=0.25"])
  flag_values = flags.FlagValues()  # as lie_jax.train defines it, on this argv
  config_flags.DEFINE_config_file("config", None, flag_values=flag_values, lock_config=True,
                                  sys_argv=argv)
  flag_values(argv)
  options = models.set_options(flag_values.config.model.options)
  assert options == {"imagenet_stem": True, "dropout_rate": 0.25}
  model = nnx.eval_shape(lambda: models.build_model(
      backbone="resnet18", adaptation="none", num_classes=2, image_shape=(224, 224, 3),
      rngs=make_rngs(), **options))
  assert model.backbone.stem.imagenet_stem and model.backbone.head.dropout.rate == 0.25
  with pytest.raises(ValueError, match=r"\['patch_size'\] do not apply to the resnet18 backbone"):
    models.build_model(backbone="resnet18", adaptation="none", num_classes=2,
                       image_shape=(28, 28, 1), rngs=make_rngs(), patch_size=4)


@pytest.mark.parametrize("block,channels,features,bias", [(1, 3, 5, True), (1, 1, 3, False),
                                                          (2, 3, 12, True), (4, 1, 16, True)])
def test_dense_conv_equals_the_convolution(block, channels, features, bias):
  """A tiling convolution as a matrix product: checked against lax's convolution itself."""
  from lie_jax.models.adaptation import dense_conv
  conv = nnx.Conv(channels, features, (block, block), (block, block), padding="VALID",
                  use_bias=bias, rngs=nnx.Rngs(0))
  if bias:
    conv.bias[...] = jnp.arange(features, dtype=jnp.float32) / 7
  x = jnp.asarray(np.random.default_rng(1).random((2, 8, 12, channels)), jnp.float32)
  expected = jax.lax.conv_general_dilated(
      x, conv.kernel[...], (block, block), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=jax.lax.Precision.HIGHEST) + (conv.bias[...] if bias else 0)
  np.testing.assert_allclose(dense_conv(conv, x), expected, rtol=1e-5, atol=1e-5)


def test_dense_conv_refuses_a_convolution_that_does_not_tile():
  from lie_jax.models.adaptation import dense_conv
  x = jnp.zeros((1, 8, 8, 1))
  for conv in (nnx.Conv(1, 2, (3, 3), rngs=nnx.Rngs(0)),
               nnx.Conv(1, 2, (2, 2), (1, 1), padding="VALID", rngs=nnx.Rngs(0)),
               nnx.Conv(1, 2, (2, 2), (2, 2), padding="SAME", rngs=nnx.Rngs(0))):
    with pytest.raises(ValueError, match="tiles the image"):
      dense_conv(conv, x)


@pytest.mark.parametrize("adaptation", ["block", "pixel"])
def test_adaptation_layers_compute_their_convolutions(adaptation):
  """The block and pixel layers equal their definition written with flax's convolutions."""
  from lie_jax.models import adaptation as lib
  x = jnp.asarray(np.random.default_rng(2).random((2, 8, 8, 3)), jnp.float32)
  if adaptation == "block":
    m = lib.BlockAdaptation(in_channels=3, block_size=4, out_channels=2, rngs=nnx.Rngs(0))
    m.eval()  # running statistics: the same for both calls, and not updated by either
    y = nnx.relu(m.mix_conv(m.bn1(nnx.relu(m.block_conv(m.bn0(x))))))
    expected = lib.depth_to_space(m.out_conv(m.bn2(y)), 4)
  else:
    m = lib.PixelAdaptation(in_channels=3, out_channels=4, rngs=nnx.Rngs(0))
    m.eval()
    expected = m.conv2(nnx.relu(m.bn(m.conv1(x))))
  np.testing.assert_allclose(m(x), expected, rtol=1e-4, atol=1e-5)


def test_dense_conv_refuses_grouped_dilated_or_masked_convolutions():
  from lie_jax.models.adaptation import dense_conv
  x = jnp.zeros((1, 8, 8, 2))
  for conv in (nnx.Conv(2, 2, (2, 2), (2, 2), padding="VALID", feature_group_count=2,
                        rngs=nnx.Rngs(0)),
               nnx.Conv(2, 2, (2, 2), (2, 2), padding="VALID", kernel_dilation=2,
                        rngs=nnx.Rngs(0)),
               nnx.Conv(2, 2, (1, 1), padding=((1, 1), (1, 1)), rngs=nnx.Rngs(0)),
               nnx.Conv(2, 2, (1, 1), mask=jnp.ones((1, 1, 2, 2)), rngs=nnx.Rngs(0))):
    with pytest.raises(ValueError, match="tiles the image"):
      dense_conv(conv, x)
