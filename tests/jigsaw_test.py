"""Tests of the jigsaw solver (lie_jax.attacks.jigsaw): planted puzzles and hand-computed scores."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from lie_jax import ciphers
from lie_jax.attacks import jigsaw

ALL = ("shuffle", "rotate", "flip", "negate", "color")


def _smooth(size: int, channels: int, seed: int) -> np.ndarray:
  """A smooth, asymmetric uint8 image: a few random low-frequency waves per channel."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  out = np.zeros((size, size, channels))
  for c in range(channels):
    for _ in range(3):
      fy, fx = rng.uniform(0.3, 1.5, 2)
      py, px = rng.uniform(0, 2 * np.pi, 2)
      out[..., c] += np.sin(2 * np.pi * fy * yy + py) * np.cos(2 * np.pi * fx * xx + px)
    out[..., c] += 3 * rng.uniform(-1, 1) * (yy - xx * rng.uniform(0.2, 1))  # no symmetry
  lo, hi = out.min(), out.max()
  return np.round(20 + 215 * (out - lo) / (hi - lo)).astype(np.uint8)


def _blocks_image(values: np.ndarray, block_size: int) -> np.ndarray:
  """[gh, gw] values -> an image of constant blocks with a tiny in-block ramp (distinct)."""
  ramp = np.arange(block_size * block_size).reshape(block_size, block_size)
  out = np.kron(values, np.ones((block_size, block_size), np.int64))
  out = out + np.tile(ramp, values.shape)
  return out.astype(np.uint8)[..., None]


# ------------------------------------------------------------------ variants


@pytest.mark.parametrize("transforms,channels,size", [
    (("shuffle",), 1, 1), (("flip",), 1, 4), (("rotate",), 1, 4), (("rotate", "flip"), 1, 8),
    (("rotate", "flip", "negate"), 1, 16), (ALL, 3, 96), (ALL, 1, 16)])
def test_variant_group_sizes(transforms, channels, size):
  assert len(jigsaw.variants(transforms, channels)) == size


def test_variant_composition_and_inverse_act_on_blocks():
  group = jigsaw.variants(ALL, 3)
  x = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
  rng = np.random.default_rng(1)
  for a, b in rng.integers(0, len(group), (40, 2)):
    twice = jigsaw.apply_variant(jigsaw.apply_variant(x, group, b), group, a)
    np.testing.assert_array_equal(twice, jigsaw.apply_variant(x, group, group.compose[a, b]))
    back = jigsaw.apply_variant(jigsaw.apply_variant(x, group, a), group, group.inverse[a])
    np.testing.assert_array_equal(back, x)


def test_scramble_is_undone_by_its_arrangement():
  x = _smooth(24, 3, 0)
  y, truth = jigsaw.scramble(x, block_size=4, transforms=ALL, seed=3)
  assert jigsaw.placement_accuracy(y, x, block_size=4) < 0.2
  np.testing.assert_array_equal(jigsaw.render(y, truth, block_size=4), x)


def test_etc_is_within_the_solver_group():
  """Every EtC block transform (rotation, flip, negation, colour) is a variant the solver
  tries: the true arrangement, from the key, renders the plain image."""
  x = _smooth(16, 3, 1)
  key = ciphers.etc.generate_key(jax.random.key(0), image_shape=x.shape, block_size=4)
  y = np.asarray(ciphers.etc.encrypt(key, x))
  group = jigsaw.variants(jigsaw.SCHEME_TRANSFORMS["etc"], 3)
  blocks = jigsaw.blockify(y, block_size=4).reshape(-1, 4, 4, 3)
  plain = jigsaw.blockify(x, block_size=4).reshape(-1, 4, 4, 3)
  perm = np.asarray(key.block_perm)
  for j in range(16):
    assert any((jigsaw.apply_variant(blocks[j], group, v) == plain[perm[j]]).all()
               for v in range(len(group)))


# ------------------------------------------------------------------ the solver


@pytest.mark.parametrize("channels,transforms,seed", [
    (1, ("shuffle",), 0), (1, ("shuffle", "rotate", "flip", "negate"), 1), (3, ALL, 2)])
def test_planted_puzzle_is_solved_exactly(channels, transforms, seed):
  x = _smooth(48, channels, seed)
  y, _ = jigsaw.scramble(x, block_size=8, transforms=transforms, seed=seed + 10)
  solved = jigsaw.solve(y, block_size=8, transforms=transforms, reference=x)
  assert jigsaw.placement_accuracy(solved, x, block_size=8) == 1.0
  np.testing.assert_array_equal(solved, x)
  # Without a reference the layout is still exact up to the whole image's symmetry.
  free = jigsaw.solve(y, block_size=8, transforms=transforms)
  assert jigsaw.neighbour_comparison(free, x, block_size=8, up_to=transforms) == 1.0
  assert jigsaw.placement_accuracy(free, x, block_size=8, up_to=transforms) == 1.0


def test_solver_returns_arrangements_that_render_its_images():
  x = _smooth(32, 3, 4)
  y, _ = jigsaw.scramble(x, block_size=8, transforms=ALL, seed=5)
  images, arrangements = jigsaw.solve(y[None], block_size=8, transforms=ALL,
                                      return_arrangements=True)
  assert images.shape == (1, 32, 32, 3) and len(arrangements) == 1
  arr = arrangements[0]
  assert sorted(arr.piece.ravel()) == list(range(16))
  np.testing.assert_array_equal(jigsaw.render(y, arr, block_size=8), images[0])


def test_content_amid_uniform_background_is_placed_as_a_whole():
  """A fundus-like disc on black: a raster-greedy solver (the previous one) stitches the
  disc but shifts it (placement <= 0.08 on these); the tree-based solver leaves the
  background out of the assembly and centres the layout in the grid."""
  size = 64
  x = _smooth(size, 1, 2)
  yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
  x = np.where((yy ** 2 + xx ** 2 < (0.45 * size) ** 2)[..., None], x, 0).astype(np.uint8)
  y, _ = jigsaw.scramble(x, block_size=8, seed=3)
  solved = jigsaw.solve(y, block_size=8)
  assert jigsaw.placement_accuracy(solved, x, block_size=8) > 0.8
  assert jigsaw.neighbour_comparison(solved, x, block_size=8) > 0.75


def test_the_solver_rejects_bad_input():
  x = _smooth(16, 1, 0)
  with pytest.raises(ValueError, match="not divisible"):
    jigsaw.solve(x, block_size=5)
  with pytest.raises(ValueError, match="unknown jigsaw transforms"):
    jigsaw.solve(x, block_size=4, transforms=("spin",))
  with pytest.raises(ValueError, match="at least 2x2"):
    jigsaw.solve(x, block_size=1)
  with pytest.raises(ValueError, match="reference must have"):
    jigsaw.solve(x, block_size=4, reference=x[:8])


def test_a_uniform_image_comes_back_whole():
  x = np.full((32, 32, 3), 90, np.uint8)
  y, _ = jigsaw.scramble(x, block_size=8, transforms=ALL, seed=0)
  np.testing.assert_array_equal(jigsaw.solve(y, block_size=8, transforms=ALL), x)


# ------------------------------------------------------------------ scores


def test_neighbour_comparison_on_a_hand_built_2x2_grid():
  # Plain: A B / C D. Recovered: B A / C D keeps only (C right of ... ) C-D: 1 of 4 pairs.
  plain = _blocks_image(np.array([[0, 50], [100, 150]]), 2)
  swapped = _blocks_image(np.array([[50, 0], [100, 150]]), 2)
  assert jigsaw.neighbour_comparison(swapped, plain, block_size=2) == pytest.approx(1 / 4)
  assert jigsaw.placement_accuracy(swapped, plain, block_size=2) == pytest.approx(2 / 4)
  assert jigsaw.neighbour_comparison(plain, plain, block_size=2) == 1.0
  # Identical blocks are interchangeable: A A / B B against A B / A B keeps nothing.
  twins = _blocks_image(np.array([[0, 0], [100, 100]]), 2)
  crossed = _blocks_image(np.array([[0, 100], [0, 100]]), 2)
  assert jigsaw.neighbour_comparison(crossed, twins, block_size=2) == 0.0
  assert jigsaw.placement_accuracy(crossed, twins, block_size=2) == pytest.approx(2 / 4)
  # The whole image turned a quarter: nothing strictly, everything up to rotation.
  turned = np.rot90(plain, 1, axes=(0, 1))
  assert jigsaw.neighbour_comparison(turned, plain, block_size=2) == 0.0
  assert jigsaw.neighbour_comparison(turned, plain, block_size=2, up_to=("rotate",)) == 1.0
  assert jigsaw.placement_accuracy(turned, plain, block_size=2, up_to=("rotate",)) == 1.0
  # Its negative counts up to the polarity only.
  negative = 255 - plain
  assert jigsaw.neighbour_comparison(negative, plain, block_size=2) == 0.0
  assert jigsaw.neighbour_comparison(negative, plain, block_size=2, up_to=("negate",)) == 1.0


def test_a_shifted_layout_scores_high_neighbours_and_no_placement():
  """A 4x4 grid of distinct blocks rolled one block column right: every slot wrong
  (placement 0) but 8 of 12 right pairs and all 12 below pairs kept: 20/24."""
  values = np.arange(16).reshape(4, 4) * 15
  plain = _blocks_image(values, 3)
  shifted = _blocks_image(np.roll(values, 1, axis=1), 3)
  assert jigsaw.placement_accuracy(shifted, plain, block_size=3) == 0.0
  assert jigsaw.neighbour_comparison(shifted, plain, block_size=3) == pytest.approx(20 / 24)
  batch = jigsaw.neighbour_comparison(np.stack([shifted, plain]), np.stack([plain, plain]),
                                      block_size=3)
  np.testing.assert_allclose(batch, [20 / 24, 1.0])
  s = jigsaw.scores(shifted[None], plain[None], block_size=3)
  assert s["neighbour_comparison"] == pytest.approx(20 / 24) and s["placement_accuracy"] == 0


def test_neighbour_comparison_matches_a_brute_force_count():
  rng = np.random.default_rng(0)
  values = rng.integers(0, 4, (3, 3)) * 60  # many repeated blocks
  plain = _blocks_image(values, 2)
  perm = rng.permutation(9)
  rec_values = values.ravel()[perm].reshape(3, 3)
  recovered = _blocks_image(rec_values, 2)
  want, got = [], []
  for y, x in itertools.product(range(3), range(3)):
    for dy, dx in ((0, 1), (1, 0)):
      if y + dy < 3 and x + dx < 3:
        want.append((dy, values[y, x], values[y + dy, x + dx]))
        got.append((dy, rec_values[y, x], rec_values[y + dy, x + dx]))
  hits = sum(min(want.count(p), got.count(p)) for p in set(want))
  assert jigsaw.neighbour_comparison(recovered, plain, block_size=2) == pytest.approx(
      hits / len(want))


def test_scores_reject_mismatched_shapes():
  with pytest.raises(ValueError, match="one shape"):
    jigsaw.neighbour_comparison(np.zeros((8, 8, 1), np.uint8), np.zeros((8, 4, 1), np.uint8),
                                block_size=2)
