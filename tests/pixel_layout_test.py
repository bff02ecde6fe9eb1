"""Tests of the pixel-layout attack (lie_jax.attacks.pixel_layout): planted ViT keys on real
images must be found from one ciphertext, and the attack must fail where its premise fails."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from skimage import data as skdata
from skimage import transform

from lie_jax import ciphers
from lie_jax.attacks import jigsaw
from lie_jax.attacks import pixel_layout
from lie_jax.attacks import suite
from lie_jax.ciphers import blockify
from lie_jax.ciphers import unblockify

SIZE, B = 96, 8  # the layout: 144 blocks of 64 pixels
# The whole attack at the published setting: 196 blocks of 16 x 16 (the jigsaw needs pieces
# large enough to match; at 96 px in 8 x 8 blocks even plain block scrambling is half solved).
SIZE_224, B_224 = 224, 16


def _fundus(channels: int, crop: int = 0, size: int = SIZE) -> np.ndarray:
  """A real fundus photo (scikit-image), centre region, size x size, RGB or its luminance."""
  x = skdata.retina()[300 + crop:1100 + crop, 300:1100].astype(np.float64) / 255.0
  x = transform.resize(x, (size, size, 3), anti_aliasing=True)
  if channels == 1:
    x = x @ np.array([[0.299], [0.587], [0.114]])
  return np.round(255 * x).astype(np.uint8)


def _dihedral(block: np.ndarray, d: int) -> np.ndarray:
  return np.rot90(block[:, ::-1] if d >= 4 else block, d % 4, axes=(0, 1))


def _vit_cipher(image: np.ndarray, seed: int, block_size: int = B
                ) -> tuple[np.ndarray, np.ndarray]:
  key = ciphers.vit.generate_key(jax.random.key(seed), image_shape=image.shape,
                                 block_size=block_size)
  return np.asarray(ciphers.vit.encrypt(key, image)), np.asarray(key.pixel_perm)


def test_position_distances_match_a_loop():
  x = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)
  x[4:, 4:] = 7  # one flat block: left out
  got = pixel_layout.position_distances(x, block_size=4)
  blocks = [b for b in blockify(x.astype(np.float64), block_size=4) if b.std() >= 1]
  assert len(blocks) == 3
  z = [(b - b.mean()) / b.std() for b in blocks]
  want = np.array([[np.mean([(v[i] - v[j]) ** 2 for v in z]) for j in range(16)]
                   for i in range(16)])
  np.testing.assert_allclose(got, want, atol=1e-9)
  # A constant image: nothing to read, and no division by zero.
  flat = pixel_layout.position_distances(np.full((8, 8, 1), 9, np.uint8), block_size=4)
  np.testing.assert_array_equal(flat, 0.0)


def test_layout_adjacency_by_hand():
  # B = 2, gray: slots 0 1 / 2 3; adjacencies (0,1) (0,2) (1,3) (2,3).
  identity = np.arange(4)
  assert pixel_layout.layout_adjacency(np.arange(4), identity, block_size=2, channels=1) == 1.0
  # A mirror image keeps every adjacency (what the attack is scored up to).
  assert pixel_layout.layout_adjacency(np.array([1, 0, 3, 2]), identity, block_size=2,
                                       channels=1) == 1.0
  # Slots holding plain pixels 0 3 / 2 1: (0,3) no, (0,2) yes, (3,1) yes, (2,1) no.
  assert pixel_layout.layout_adjacency(np.array([0, 3, 2, 1]), identity, block_size=2,
                                       channels=1) == 0.5


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_vit_key_layout_is_found_from_one_ciphertext(channels, seed):
  image = _fundus(channels)
  cipher, perm = _vit_cipher(image, seed)
  order = pixel_layout.recover_layout(cipher, block_size=B)
  assert sorted(order) == list(range(B * B * channels))
  assert pixel_layout.layout_adjacency(order, perm, block_size=B, channels=channels) == 1.0
  # Up to one symmetry of the block, the same for all blocks, every block is a plain block:
  # and, RGB, its channels are in place (R >= G >= B on a fundus photo).
  unshuffled = pixel_layout.unshuffle(cipher, order, block_size=B)
  plain_blocks = {b.tobytes() for b in blockify(image, block_size=B)}
  pieces = blockify(unshuffled, block_size=B).reshape(-1, B, B, channels)
  found = [sum(np.ascontiguousarray(_dihedral(p, d)).reshape(-1).tobytes() in plain_blocks
               for p in pieces) for d in range(8)]
  assert max(found) == len(pieces)


def test_a_grayscale_scan_stored_as_colour_is_laid_out_by_pixel():
  gray = _fundus(1)
  image = np.repeat(gray, 3, axis=-1)  # equal channels: which copy is which cannot be told
  cipher, perm = _vit_cipher(image, 4)
  order = pixel_layout.recover_layout(cipher, block_size=B)
  assert sorted(order) == list(range(B * B * 3))
  assert pixel_layout.layout_adjacency(order, perm, block_size=B, channels=3) == 1.0
  # Every slot's three values are one pixel's.
  pixel_of = perm[order].reshape(-1, 3) // 3
  assert (pixel_of == pixel_of[:, :1]).all()


def test_the_attack_restores_the_image_up_to_its_symmetry_and_a_reference_orients_it():
  image = _fundus(1, size=SIZE_224)
  cipher, _ = _vit_cipher(image, 3, B_224)
  solved = pixel_layout.attack(cipher, block_size=B_224)
  scores = jigsaw.scores(solved, image, block_size=B_224, transforms=pixel_layout.SYMMETRY)
  assert scores["neighbour_comparison_global"] >= 0.9
  # A reference of the same kind (another region of the same photo) fixes the orientation.
  solved = pixel_layout.attack(cipher, block_size=B_224,
                               reference=_fundus(1, crop=40, size=SIZE_224))
  assert jigsaw.scores(solved, image, block_size=B_224)["neighbour_comparison"] >= 0.9


def test_no_shared_shuffle_no_layout():
  """The premise: blocks with a permutation of their own each (ELE-like) give nothing."""
  image = _fundus(1)
  rng = np.random.default_rng(0)
  blocks = blockify(image, block_size=B)
  perms = [rng.permutation(B * B) for _ in blocks]
  cipher = np.asarray(unblockify(np.stack([b[p] for b, p in zip(blocks, perms)]),
                                 image_shape=image.shape, block_size=B))
  order = pixel_layout.recover_layout(cipher, block_size=B)
  # Score against the first block's permutation: adjacency at chance level.
  assert pixel_layout.layout_adjacency(order, perms[0], block_size=B, channels=1) < 0.2


def test_the_suite_runs_it_for_the_vit_cipher_with_per_image_keys():
  images = np.stack([_fundus(1, crop=c, size=SIZE_224) for c in (-250, 0, 250)])
  r = suite.run_attack("jigsaw", "vit", images, key=jax.random.key(0), block_size=B_224,
                       per_image_keys=True, train_images=images[:1])
  assert r.details["transforms"] == list(pixel_layout.SYMMETRY)
  # Each image's blocks put back in place up to the image's symmetry (ciphertext only).
  assert r.details["neighbour_comparison_global"] >= 0.9
  assert r.details["placement_accuracy_global"] >= 0.9


@pytest.mark.parametrize("bad,match", [
    (np.zeros((8, 8), np.uint8), r"\[H, W, C\]"),
    (np.zeros((10, 8, 1), np.uint8), "divide"),
    (np.zeros((8, 8, 1), np.uint8), "single block"),
])
def test_bad_input_is_refused_in_one_line(bad, match):
  block = 8 if bad.shape[:2] == (8, 8) and bad.ndim == 3 else 4
  with pytest.raises(ValueError, match=match):
    pixel_layout.recover_layout(bad, block_size=block)


def test_applies_only_to_the_vit_cipher_schemes():
  assert set(pixel_layout.SCHEMES) <= set(ciphers.SCHEMES)
  for name in pixel_layout.SCHEMES:
    assert ciphers.SCHEMES[name].scrambles_blocks
