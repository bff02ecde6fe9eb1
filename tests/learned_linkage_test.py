"""lie_jax.attacks.learned_linkage: its features are exact identities of every scheme's
encryption (so a ciphertext embeds as its plaintext, whatever the key), it refuses what it
does not cover, and it links planted copies that the exact-invariant attack cannot."""

import jax
import numpy as np
import pytest
from scipy import ndimage

from lie_jax import ciphers
from lie_jax.attacks import learned_linkage
from lie_jax.attacks import linkage
from lie_jax.attacks import reidentification
from tests.cipher_cases import random_images
from tests.linkage_test import OPTIONS


def _images(n, channels, size=16, seed=0):
  return random_images((n, size, size, channels), seed)


def _noisy(x, seed):
  noise = np.random.default_rng(seed).integers(-2, 3, x.shape)
  return np.clip(x.astype(np.int64) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scheme", learned_linkage.SCHEMES)
def test_a_ciphertext_has_its_plaintexts_features_for_every_key(scheme, channels):
  x = _images(5, channels)
  record = ciphers.get_scheme(scheme)
  plain = learned_linkage.feature_sets(x, scheme=scheme, options=OPTIONS[scheme])
  rows = 16 * 16 if scheme == "pe" else 16
  positional = 2 if scheme in learned_linkage.POSITIONAL else 0
  width = {"pe": channels, "le": 8, "ele": 8}.get(scheme, 16 * channels) + positional
  assert plain.shape == (5, rows, width) and plain.dtype == np.float32
  assert 0.0 <= plain.min() and plain.max() <= 1.0
  for seed in range(2):
    cipher = record.encrypt_per_image(jax.random.key(seed), x, **OPTIONS[scheme])
    assert not np.array_equal(np.asarray(cipher), x)
    np.testing.assert_array_equal(learned_linkage.feature_sets(
        np.asarray(cipher), scheme=scheme, options=OPTIONS[scheme]), plain)


def test_the_position_features_follow_the_block_grid():
  x = _images(1, 1, size=8)
  f = learned_linkage.feature_sets(x, scheme="blockwise", options={"block_size": 4})
  # Blocks in raster order: (0, 0), (0, 1), (1, 0), (1, 1) on a 2x2 grid.
  np.testing.assert_array_equal(f[0, :, -2:], [[0, 0], [0, 1], [1, 0], [1, 1]])
  pe = learned_linkage.feature_sets(x, scheme="pe")
  np.testing.assert_allclose(pe[0, 10, -2:], [1 / 7, 2 / 7])  # pixel (1, 2) of 8x8


def test_scores_are_the_same_for_a_ciphertext_and_its_plaintext():
  x = _images(40, 1)
  model = learned_linkage.train(x, scheme="etc", options={"block_size": 4}, copy_fn=_noisy,
                                steps=3, batch_size=8)
  cipher = ciphers.get_scheme("etc").encrypt_per_image(jax.random.key(3), x[:6], block_size=4)
  np.testing.assert_allclose(learned_linkage.scores(np.asarray(cipher), x, model),
                             learned_linkage.scores(x[:6], x, model), atol=1e-6)
  np.testing.assert_allclose(np.diag(learned_linkage.scores(x[:6], x[:6], model)), 1.0,
                             atol=1e-5)  # unit embeddings


def test_refusals():
  x = _images(8, 1)
  with pytest.raises(ValueError, match="learned linkage covers"):
    learned_linkage.feature_sets(x, scheme="huang2022")
  with pytest.raises(ValueError, match="must keep the shape and dtype"):
    learned_linkage.train(x, scheme="vit", options={"block_size": 4},
                          copy_fn=lambda a, s: a[:, :8], steps=1, batch_size=4)
  with pytest.raises(ValueError, match="uint8"):
    learned_linkage.train(x.astype(np.float32), scheme="vit", copy_fn=_noisy, steps=1)
  with pytest.raises(ValueError, match="steps >= 1"):
    learned_linkage.train(x, scheme="vit", options={"block_size": 4}, copy_fn=_noisy, steps=0)
  model = learned_linkage.train(x, scheme="vit", options={"block_size": 4}, copy_fn=_noisy,
                                steps=1, batch_size=4)
  with pytest.raises(ValueError, match="differ in shape"):
    learned_linkage.scores(x, _images(2, 1, size=8), model)


def _smooth(n, seed):
  """Images with structure at several scales (blurred noise), so that copies moved by a
  pixel keep most of their block contents."""
  noise = np.random.default_rng(seed).normal(size=(n, 16, 16))
  smooth = ndimage.gaussian_filter(noise, sigma=(0, 1.5, 1.5))
  smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
  return (smooth * 255).astype(np.uint8)[..., None]


def _moved(x, seed):
  """A copy moved by one pixel in a random direction, with noise of +-3 grey levels."""
  rng = np.random.default_rng(seed)
  out = np.empty_like(x)
  for i, image in enumerate(x):
    dy, dx = rng.integers(-1, 2, size=2)
    out[i] = np.roll(image, (dy, dx), axis=(0, 1))
  return np.clip(out.astype(np.int64) + rng.integers(-3, 4, x.shape), 0, 255).astype(np.uint8)


def test_it_links_moved_copies_the_exact_attack_cannot():
  """Planted: 64 victims never seen in training, their copies moved by a pixel and noisy. The
  exact invariants of EtC (per-block sorted values) no longer match; the learned metric does."""
  public, victims = _smooth(600, seed=1), _smooth(64, seed=2)
  copies = _moved(victims, seed=3)
  cipher = np.asarray(ciphers.get_scheme("etc").encrypt_per_image(
      jax.random.key(0), victims, block_size=4))
  exact = reidentification.true_ranks(linkage.scores(cipher, copies, scheme="etc",
                                                     options={"block_size": 4}))
  model = learned_linkage.train(public, scheme="etc", options={"block_size": 4},
                                copy_fn=_moved, steps=300, batch_size=64)
  learned = reidentification.true_ranks(learned_linkage.scores(cipher, copies, model))
  assert model.history["loss"][-1] < model.history["loss"][0]
  assert (learned == 1).mean() >= 0.5 > (exact == 1).mean() + 0.2, ((learned == 1).mean(),
                                                                   (exact == 1).mean())


def test_a_pool_of_copies_is_drawn_once_per_image():
  x = _images(12, 1)
  calls = []

  def counted(images, seed):
    calls.append(len(images))
    return _noisy(images, seed)

  model = learned_linkage.train(x, scheme="etc", options={"block_size": 4}, copy_fn=counted,
                                steps=4, batch_size=4, copies_per_image=3)
  assert calls == [12, 12, 12] and len(model.history["loss"]) == 2  # steps 0 and 3
  with pytest.raises(ValueError, match="copies_per_image"):
    learned_linkage.train(x, scheme="etc", options={"block_size": 4}, copy_fn=_noisy, steps=1,
                          copies_per_image=0)


def test_the_pool_pairs_every_image_with_its_own_copies():
  """With identity copies and the whole set as the batch, the first loss is the same for the
  pool and for fresh copies (InfoNCE over a full batch ignores its order), and it would differ
  if the pool paired an image with another image's copy."""
  x = _images(10, 1)
  identity = lambda images, seed: images.copy()
  losses = [learned_linkage.train(x, scheme="vit", options={"block_size": 4}, copy_fn=identity,
                                  steps=1, batch_size=10, copies_per_image=k).history["loss"][0]
            for k in (None, 3)]
  assert losses[0] == pytest.approx(losses[1], rel=1e-5)
  shuffled = lambda images, seed: images[::-1].copy()  # image i paired with image 9 - i
  wrong = learned_linkage.train(x, scheme="vit", options={"block_size": 4}, copy_fn=shuffled,
                                steps=1, batch_size=10).history["loss"][0]
  assert wrong != pytest.approx(losses[0], rel=1e-3)
