"""The one block executor against a NumPy oracle of the block-transform definition.

out block j, value i = in block block_perm[j], value value_perm[j, i], XOR xor[j, i]
(value_perm / xor may be shared by all blocks); nibble transforms act on the
2d nibbles of a block (its d low nibbles, then its d high nibbles).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lie_jax import ciphers


def np_blockify(images, b, layout):
  n, h, w, c = images.shape
  x = images.reshape(n, h // b, b, w // b, b, c)
  x = x.transpose(0, 1, 3, 2, 4, 5) if layout == "hwc" else x.transpose(0, 1, 3, 5, 2, 4)
  return x.reshape(n, (h // b) * (w // b), -1)


def np_unblockify(blocks, shape, b, layout):
  n = blocks.shape[0]
  h, w, c = shape
  if layout == "hwc":
    x = blocks.reshape(n, h // b, w // b, b, b, c).transpose(0, 1, 3, 2, 4, 5)
  else:
    x = blocks.reshape(n, h // b, w // b, c, b, b).transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(n, h, w, c)


def np_transform(images, t, b, layout, nibbles):
  """Oracle: one transform (numpy arrays, broadcastable) applied to every image, by loops."""
  blocks = np_blockify(images, b, layout)
  n, nb, d = blocks.shape
  values = np.concatenate([blocks & 15, blocks >> 4], axis=2) if nibbles else blocks
  e = values.shape[2]
  bp = np.arange(nb) if t["block_perm"] is None else t["block_perm"]
  vp = np.broadcast_to(np.arange(e) if t["value_perm"] is None else t["value_perm"], (nb, e))
  xor = np.broadcast_to(np.uint8(0) if t["xor"] is None else t["xor"], (nb, e))
  out = np.empty_like(values)
  for j in range(nb):
    for i in range(e):
      out[:, j, i] = values[:, bp[j], vp[j, i]] ^ xor[j, i]
  if nibbles:
    out = out[:, :, :d] | (out[:, :, d:] << 4)
  return np_unblockify(out, images.shape[1:], b, layout)


CASES = [
    # (name, shape, block size, layout, nibbles, which fields, value_perm per block, xor shape)
    ("shuffle shared", (8, 8, 3), 4, "hwc", False, ("vp",), False, None),
    ("scramble+perm per block+xor per block", (8, 12, 1), 2, "hwc", False, ("bp", "vp", "xor"),
     True, "block"),
    ("scramble chw + xor per value", (8, 8, 3), 4, "chw", False, ("bp", "xor"), False, "value"),
    ("xor only", (6, 6, 3), 3, "hwc", False, ("xor",), False, "full"),
    ("nibbles shared perm + flips", (8, 8, 3), 4, "hwc", True, ("vp", "xor"), False, "value"),
    ("nibbles per block + scramble", (8, 4, 1), 2, "chw", True, ("bp", "vp", "xor"), True, "full"),
    ("pixels (1 x 1 blocks) per-pixel perm + xor", (5, 7, 3), 1, "hwc", False, ("vp", "xor"),
     True, "full"),
]


def _random_transform(rng, nb, e, fields, per_block, xor_kind, nibbles):
  t = {"block_perm": None, "value_perm": None, "xor": None}
  if "bp" in fields:
    t["block_perm"] = rng.permutation(nb).astype(np.int32)
  if "vp" in fields:
    t["value_perm"] = (np.stack([rng.permutation(e) for _ in range(nb)]) if per_block
                       else rng.permutation(e)).astype(np.int32)
  if "xor" in fields:
    shape = {"block": (nb, 1), "value": (e,), "full": (nb, e)}[xor_kind]
    t["xor"] = rng.integers(0, 16 if nibbles else 256, shape).astype(np.uint8)
  return t


def _as_jax(t):
  return ciphers.BlockTransform(**{k: None if v is None else jnp.asarray(v) for k, v in t.items()})


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_executor_equals_numpy_oracle_and_inverts(case):
  _, shape, b, layout, nibbles, fields, per_block, xor_kind = case
  rng = np.random.default_rng(len(case[0]))
  h, w, c = shape
  nb, e = (h // b) * (w // b), b * b * c * (2 if nibbles else 1)
  images = rng.integers(0, 256, (3,) + shape, dtype=np.uint8)
  statics = dict(block_size=b, layout=layout, nibbles=nibbles)
  transforms = [_random_transform(rng, nb, e, fields, per_block, xor_kind, nibbles)
                for _ in range(3)]
  run = jax.jit(lambda t, x, inverse: ciphers.apply_transform(t, x, inverse=inverse, **statics),
                static_argnums=2)
  for k, t in enumerate(transforms):
    expected = np_transform(images[k:k + 1], t, b, layout, nibbles)[0]
    got = run(_as_jax(t), images[k], False)
    chex.assert_shape(got, shape)
    chex.assert_type(got, jnp.uint8)
    np.testing.assert_array_equal(np.asarray(got), expected)
    with jax.disable_jit():  # eager computes the same
      np.testing.assert_array_equal(
          np.asarray(ciphers.apply_transform(_as_jax(t), images[k], **statics)), expected)
    np.testing.assert_array_equal(np.asarray(run(_as_jax(t), expected, True)), images[k])
  # A batch of transforms, one per image, under vmap (what per-image keys run).
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *[_as_jax(t) for t in transforms])
  batch = jax.vmap(lambda t, x: ciphers.apply_transform(t, x, **statics))(stacked, images)
  for k, t in enumerate(transforms):
    np.testing.assert_array_equal(np.asarray(batch[k]),
                                  np_transform(images[k:k + 1], t, b, layout, nibbles)[0])


@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_block_positions_are_the_blockified_flat_indices(layout):
  pos = ciphers.block_positions((4, 6, 3), 2, layout)
  ids = np.arange(72).reshape(1, 4, 6, 3)
  np.testing.assert_array_equal(pos, np_blockify(ids, 2, layout)[0])
  assert sorted(pos.ravel()) == list(range(72))


def test_colour_permutations_are_the_six_orders_lexicographic():
  table = ciphers.COLOR_PERMUTATIONS
  assert table.shape == (6, 3) and table[0].tolist() == [0, 1, 2]
  assert [tuple(r) for r in table] == sorted({tuple(r) for r in table})
  with pytest.raises(ValueError):
    table[0, 0] = 1  # read-only: a shared constant


def test_key_permutations_are_uniform_over_positions():
  # Keys draw their permutations with jax.random: each value lands in each
  # position with probability 1/d (chi-square per cell near 1; 4000 draws, d = 64).
  from lie_jax.ciphers import vit
  keys = jax.random.split(jax.random.key(0), 4000)
  perms = np.asarray(jax.vmap(lambda k: vit.generate_key(
      k, image_shape=(8, 8, 1), block_size=8).pixel_perm)(keys))
  assert (np.sort(perms, axis=1) == np.arange(64)).all()
  counts = np.stack([(perms == v).sum(0) for v in range(64)])  # [value, position]
  expected = len(perms) / 64
  chi2_per_cell = ((counts - expected) ** 2 / expected).sum() / 63 ** 2
  assert 0.8 < chi2_per_cell < 1.2


def test_vit_without_pixel_shuffling_only_moves_blocks():
  """Block scrambling alone: every ciphertext block is a plain block, untouched."""
  from lie_jax.ciphers import vit
  x = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  k = vit.generate_key(jax.random.key(4), image_shape=(16, 16, 3), block_size=4,
                       pixel_shuffling=False)
  y = np.asarray(vit.encrypt(k, x))
  blocks_x, blocks_y = np_blockify(x, 4, "hwc"), np_blockify(y, 4, "hwc")
  perm = np.asarray(k.block_perm)
  np.testing.assert_array_equal(blocks_y, blocks_x[:, perm])
  assert sorted(perm.tolist()) == list(range(16)) and (perm != np.arange(16)).any()
  shuffled = vit.generate_key(jax.random.key(4), image_shape=(16, 16, 3), block_size=4)
  np.testing.assert_array_equal(shuffled.block_perm, perm)  # the same block permutation
  space = ciphers.key_space_bits("vit", image_shape=(16, 16, 3), block_size=4,
                                 pixel_shuffling=False)
  assert space.nominal_bits == pytest.approx(np.log2(float(np.prod(np.arange(1, 17)))))
  with pytest.raises(ValueError, match="pixel_shuffling"):
    vit.generate_key(jax.random.key(4), image_shape=(16, 16, 3), pixel_shuffling="no")
