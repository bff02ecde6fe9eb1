"""The shared block executors against a NumPy oracle of the BlockTransform definition.

out block j, value i = in block block_perm[j], value value_perm[j, i], XOR xor[j, i]
(value_perm / xor may be shared by all blocks); nibble transforms act on the
2d nibbles of a block (its d low nibbles, then its d high nibbles).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lie_jax.ciphers import _apply
from lie_jax.ciphers import _blocks
from lie_jax.ciphers import le
from lie_jax.ciphers import vit


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
  """Oracle: one transform (arrays as numpy, broadcastable) applied to every image."""
  blocks = np_blockify(images, b, layout)
  n, nb, d = blocks.shape
  values = np.concatenate([blocks & 15, blocks >> 4], axis=2) if nibbles else blocks
  e = values.shape[2]
  bp = np.arange(nb) if t["block_perm"] is None else t["block_perm"]
  vp = np.arange(e) if t["value_perm"] is None else t["value_perm"]
  if isinstance(vp, tuple):  # (codes, table)
    vp = vp[1][vp[0]]
  vp = np.broadcast_to(vp, (nb, e))
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
    # value_perm a PermChoice: per-block codes into a fixed table (EtC's form).
    ("table choice + scramble + xor per block", (8, 8, 3), 4, "hwc", False, ("bp", "vp", "xor"),
     "choice", "block"),
    ("table choice + xor per value", (6, 6, 1), 3, "hwc", False, ("vp", "xor"), "choice", "full"),
]


def _random_transform(rng, nb, e, fields, per_block, xor_kind, nibbles):
  t = {"block_perm": None, "value_perm": None, "xor": None}
  if "bp" in fields:
    t["block_perm"] = rng.permutation(nb).astype(np.int32)
  if "vp" in fields and per_block == "choice":
    # One fixed table per geometry (as EtC's), so that a batch of keys shares it.
    table_rng = np.random.default_rng(e)
    table = np.stack([table_rng.permutation(e) for _ in range(5)]).astype(np.int32)
    t["value_perm"] = (rng.integers(0, 5, nb).astype(np.int32), table)
  elif "vp" in fields:
    t["value_perm"] = (np.stack([rng.permutation(e) for _ in range(nb)]) if per_block
                       else rng.permutation(e)).astype(np.int32)
  if "xor" in fields:
    top = 16 if nibbles else 256
    shape = {"block": (nb, 1), "value": (e,), "full": (nb, e)}[xor_kind]
    t["xor"] = rng.integers(0, top, shape).astype(np.uint8)
  return t


def _as_jax(t):
  def convert(v):
    if isinstance(v, tuple):  # (codes, table)
      return _blocks.PermChoice(jnp.asarray(v[0]), v[1])
    return None if v is None else jnp.asarray(v)
  return _blocks.BlockTransform(**{k: convert(v) for k, v in t.items()})


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_executors_equal_numpy_oracle_and_invert(case):
  _, shape, b, layout, nibbles, fields, per_block, xor_kind = case
  rng = np.random.default_rng(len(case[0]))
  h, w, c = shape
  nb, e = (h // b) * (w // b), b * b * c * (2 if nibbles else 1)
  images = rng.integers(0, 256, (3,) + shape, dtype=np.uint8)
  statics = dict(block_size=b, layout=layout, nibbles=nibbles)
  transforms = [_random_transform(rng, nb, e, fields, per_block, xor_kind, nibbles)
                for _ in range(3)]
  expected = [np_transform(images[k:k + 1], t, b, layout, nibbles)[0]
              for k, t in enumerate(transforms)]
  # One key for a batch (flat maps), also on a single [H, W, C] image.
  for k, t in enumerate(transforms):
    shared = jax.jit(lambda x, t: _blocks.transform_flat(x, t, **statics))
    np.testing.assert_array_equal(np.asarray(shared(images, _as_jax(t)))[k], expected[k])
    np.testing.assert_array_equal(np.asarray(shared(images[k], _as_jax(t))), expected[k])
    # The inverse transform undoes it.
    inverse = _blocks.invert_transform(_as_jax(t))
    back = _blocks.transform_flat(jnp.asarray(expected[k]), inverse, **statics)
    np.testing.assert_array_equal(np.asarray(back), images[k])
  # One key per image (batched block gathers).
  stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[_as_jax(t) for t in transforms])
  keyed = jax.jit(lambda x, t: _blocks.transform_blocks(x, lambda t: t, t, **statics))
  np.testing.assert_array_equal(np.asarray(keyed(jnp.asarray(images), stacked)), np.stack(expected))
  # ... and its inverse, the per-image arrays inverted inside the executor.
  back = _blocks.transform_blocks(jnp.asarray(np.stack(expected)), _blocks.invert_transform,
                                  stacked, **statics)
  np.testing.assert_array_equal(np.asarray(back), images)


def test_separately_returns_fn_of_args_for_pytrees_under_jit_and_vmap():
  x = jnp.arange(12, dtype=jnp.uint8).reshape(3, 4)
  fn = lambda a, tree: {"sum": a.astype(jnp.int32) + tree[0], "none": None, "t": tree[1].T}
  tree = (jnp.int32(5), jnp.ones((2, 3), jnp.float32))
  expected = fn(x, tree)
  jitted = jax.jit(lambda a, t: _blocks.separately(fn, a, t))
  for got in (_blocks.separately(fn, x, tree), jitted(x, tree)):
    np.testing.assert_array_equal(got["sum"], expected["sum"])
    np.testing.assert_array_equal(got["t"], expected["t"])
    assert got["none"] is None
  # Under vmap the (batched) conditional becomes a select: still fn's value.
  plus_one = jax.vmap(lambda a: _blocks.separately(lambda v: v + 1, a))
  batched = plus_one(jnp.array([[0], [3]], jnp.int32))
  np.testing.assert_array_equal(batched, [[1], [4]])
  # An empty first argument (no element to read) calls fn directly.
  assert _blocks.separately(lambda v: v + 1, jnp.zeros((0, 3), jnp.uint8)).shape == (0, 3)
  # So do arguments without arrays (an identity transform has no leaves).
  assert _blocks.separately(lambda t: t, _blocks.BlockTransform()) == _blocks.BlockTransform()
  # On CPU fn runs as a conditional's branch (compiled apart from its surroundings).
  hlo = jax.jit(lambda a: _blocks.separately(lambda v: v + 1, a)).lower(x).compile().as_text()
  assert ("conditional" in hlo) == (jax.default_backend() == "cpu")


@pytest.mark.parametrize("module, transform, nibbles", [
    (le, lambda k: le.nibble_transform(k.perm), True),
    (vit, vit._transform, False),  # pylint: disable=protected-access
])
def test_shared_key_executors_agree(module, transform, nibbles):
  # Small batches may take the block executor (shared_blocks_max_bytes), large
  # ones the flat maps: both must compute the same cipher, and invert it.
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 16, 12, 3), dtype=np.uint8)
  key = module.generate_key(jax.random.key(1), image_shape=(16, 12, 3), block_size=4)
  flat = _apply.block_cipher(transform, nibbles=nibbles)
  blocks = _apply.block_cipher(transform, nibbles=nibbles, shared_blocks_max_bytes=1 << 30)
  expected = np.asarray(jax.jit(flat.encrypt_shared)(key, images))
  np.testing.assert_array_equal(jax.jit(blocks.encrypt_shared)(key, images), expected)
  np.testing.assert_array_equal(blocks.encrypt_shared(key, images[2]), expected[2])
  np.testing.assert_array_equal(jax.jit(blocks.decrypt_shared)(key, expected), images)
  np.testing.assert_array_equal(flat.decrypt_shared(key, expected), images)
