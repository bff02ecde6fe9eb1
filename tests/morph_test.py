"""MoLe / MpLe morphing: the augmented first layer on morphed images equals the
channel-permuted plain convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lie_jax import models
from lie_jax.ciphers import morph
from tests.cipher_cases import random_images


@pytest.mark.parametrize("shape,copies,strides,padding", [
    ((28, 28, 1), 1, (1, 1), "SAME"),
    ((12, 12, 3), 4, (2, 2), "VALID"),
    ((10, 10, 3), 7, (1, 1), "SAME"),  # 300 values: padded to 301 = 7 * 43
    ((16, 16, 3), 32, (1, 1), "SAME"),  # chunks of half an image row
    ((15, 9, 1), 5, (2, 2), "SAME"),    # odd sizes: asymmetric SAME padding, stride 2
    ((64, 64, 3), 64, (1, 1), "SAME"),  # one row per chunk, at 64x64 (MoLe at scale)
])
def test_augmented_conv_equals_permuted_plain_conv(shape, copies, strides, padding):
  k = morph.generate_key(jax.random.key(0), image_shape=shape, copies=copies)
  kernel = np.random.default_rng(1).normal(size=(3, 3, shape[2], 8)).astype(np.float32)
  x = random_images((4,) + shape)
  aug = models.augmented_conv(k, kernel, strides=strides, padding=padding)
  server = np.asarray(models.apply_augmented_conv(aug, morph.encrypt(k, x)))
  # Independent oracle: direct convolution in float64 with NumPy loops.
  xf = x.astype(np.float64) / 255.0
  if padding == "SAME":  # TensorFlow's SAME: out = ceil(size / stride), the extra pad after
    out_h, out_w = -(-shape[0] // strides[0]), -(-shape[1] // strides[1])
    th = max((out_h - 1) * strides[0] + 3 - shape[0], 0)
    tw = max((out_w - 1) * strides[1] + 3 - shape[1], 0)
    xf = np.pad(xf, ((0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2), (0, 0)))
  else:
    out_h = (shape[0] - 3) // strides[0] + 1
    out_w = (shape[1] - 3) // strides[1] + 1
  plain = np.zeros((4, out_h, out_w, 8))
  for i in range(out_h):
    for j in range(out_w):
      patch = xf[:, i * strides[0]:i * strides[0] + 3, j * strides[1]:j * strides[1] + 3, :]
      plain[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, kernel)
  perm = np.asarray(morph.channel_permutation(k, 8))
  assert sorted(perm.tolist()) == list(range(8)) and (perm != np.arange(8)).any()
  np.testing.assert_allclose(server, plain[..., perm], rtol=1e-4, atol=1e-4)
  # Memory: copies x m x (R * W' * C'), R the band of output rows one chunk reaches; with one
  # copy, the dense n x (H' * W' * C').
  band = aug.matrices.shape[2] // (out_w * 8)
  assert aug.matrices.shape[:2] == (copies, k.vector_size // copies)
  assert aug.rows.shape == (copies, band)
  if copies == 1:
    assert band == out_h
  if shape == (64, 64, 3):  # one image row per chunk reaches 3 output rows of a 3x3 conv
    assert band == 3 and aug.nbytes == 64 * 64 * 3 * 3 * 64 * 8 * 4


def test_morphed_vectors_hide_the_image():
  k = morph.generate_key(jax.random.key(0), image_shape=(28, 28, 1))
  x = random_images((8, 28, 28, 1))
  y = np.asarray(morph.encrypt(k, x))
  flat = x.reshape(8, -1).astype(np.float64) / 255
  corr = [abs(np.corrcoef(flat[i], y[i])[0, 1]) for i in range(8)]
  assert max(corr) < 0.2


def test_core_is_orthogonal_and_round_trip_exact():
  k = morph.generate_key(jax.random.key(3), image_shape=(8, 8, 3), copies=3)
  core = np.asarray(k.core, np.float64)
  np.testing.assert_allclose(core @ core.T, np.eye(core.shape[0]), atol=1e-5)
  x = random_images((5, 8, 8, 3))
  np.testing.assert_array_equal(np.asarray(morph.decrypt(k, morph.encrypt(k, x))), x)


def test_bad_inputs():
  k = morph.generate_key(jax.random.key(0), image_shape=(8, 8, 1))
  with pytest.raises(ValueError, match=r"\[64\] or \[N, 64\]"):
    morph.decrypt(k, jnp.zeros((3, 65)))
  with pytest.raises(TypeError, match="floating point"):
    morph.decrypt(k, np.zeros((64,), np.int32))
  with pytest.raises(ValueError, match="kernel must be"):
    models.augmented_conv(k, np.zeros((3, 3, 3, 4)))
  with pytest.raises(ValueError, match="copies"):
    morph.generate_key(jax.random.key(0), image_shape=(8, 8, 1), copies=0)
