"""lie_jax ciphers against the independent NumPy references, byte for byte.

`tests/numpy_reference.py` is written from the scheme descriptions only
(docs/SCHEMES.md and the module docstrings), with reshape/transpose block vectors,
so agreement here checks the library's conventions, not just its round trips.
The Tanaka ICCE-TW 2018 known-answer vector anchors LE to the published code.
"""

import functools
import itertools
import pathlib

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import numpy as np
import pytest

from lie_jax import ciphers
from lie_jax.ciphers import blockwise, ele, etc, huang2022, le, pe, vit
from tests import numpy_reference as ref

KAV_PATH = pathlib.Path(__file__).parent / "data" / "tanaka_icce2018_kav.npz"

# (image shape, block size): grayscale and RGB, square and non-square, B = 2, 4, 8.
# Kept small: the library jit-compiles per shape (and key generation per block
# grid), and the file should run in under a minute on 2 CPU cores.
GRID = [
    ((28, 28, 1), 4),
    ((32, 32, 3), 4),
    ((32, 32, 3), 8),
    ((16, 24, 3), 2),
    ((16, 24, 3), 8),
]
# Schemes whose keys depend on the number of blocks (ELE, EtC) compile key
# generation per block grid: a smaller grid, one entry per block size.
SMALL_GRID = [((28, 28, 1), 2), ((32, 32, 3), 4), ((16, 24, 3), 8)]
# The hypothesis tests draw keys and images for one shape that is already
# compiled by the grids.
HYPOTHESIS_SHAPE, HYPOTHESIS_BLOCK = (16, 24, 3), 8


# With a layout option: every grid entry in "hwc", and RGB ones in "chw" too
# (for C = 1 the two layouts are the same order).
LAYOUT_CASES = [(s, b, "hwc") for s, b in GRID] + [
    ((32, 32, 3), 4, "chw"), ((16, 24, 3), 2, "chw")]
SMALL_LAYOUT_CASES = [(s, b, "hwc") for s, b in SMALL_GRID] + [((32, 32, 3), 4, "chw")]


def _ids(cases):
  return ["-".join([f"{h}x{w}x{c}", f"B{b}", *rest]) for (h, w, c), b, *rest in cases]


GRID_IDS, SMALL_GRID_IDS = _ids(GRID), _ids(SMALL_GRID)
LAYOUT_IDS, SMALL_LAYOUT_IDS = _ids(LAYOUT_CASES), _ids(SMALL_LAYOUT_CASES)
SHAPES = [(28, 28, 1), (16, 24, 3)]
LAYOUTS = ("hwc", "chw")
N_IMAGES = 3

# Hypothesis draws keys and image contents for a fixed shape (no recompiles).
FEW = hypothesis.settings(max_examples=8, deadline=None, derandomize=True,
                          suppress_health_check=list(hypothesis.HealthCheck))


def _images(shape, seed, n=N_IMAGES):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _assert_bytes_equal(actual, expected):
  actual = np.asarray(actual)
  assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  mismatch = np.argwhere(actual != expected)
  assert mismatch.size == 0, (
      f"{len(mismatch)} of {actual.size} bytes differ; first at {tuple(mismatch[0])}: "
      f"{actual[tuple(mismatch[0])]} != {expected[tuple(mismatch[0])]}")


@functools.lru_cache(maxsize=None)
def _key(module, seed, shape, block_size=None, **options):
  kwargs = dict(options)
  if block_size is not None:
    kwargs["block_size"] = block_size
  return module.generate_key(jax.random.key(seed), image_shape=shape, **kwargs)


# ------------------------------------------------------------------ LE KAV


@pytest.fixture(scope="module")
def kav():
  with np.load(KAV_PATH) as data:
    return {name: data[name] for name in data.files}


def test_kav_file_is_the_published_vector(kav):
  assert kav["plain"].shape == kav["cipher"].shape == (16, 32, 32, 3)
  assert kav["plain"].dtype == kav["cipher"].dtype == np.uint8
  assert tuple(kav["block_size"]) == (4, 4, 3)
  assert sorted(kav["key"].tolist()) == list(range(96))


def test_reference_reproduces_kav(kav):
  _assert_bytes_equal(ref.le_encrypt(kav["plain"], kav["key"], 4), kav["cipher"])
  _assert_bytes_equal(ref.le_decrypt(kav["cipher"], kav["key"], 4), kav["plain"])


def test_library_reproduces_kav(kav):
  key = le.key_from_permutation(kav["key"], block_shape=(4, 4, 3))
  _assert_bytes_equal(le.encrypt(key, kav["plain"]), kav["cipher"])
  _assert_bytes_equal(le.decrypt(key, kav["cipher"]), kav["plain"])


def test_kav_pins_the_icce_conventions(kav):
  # The vector tells the ICCE-TW 2018 convention apart from its near misses, so
  # reproducing it is a real check: a ">=" flip mask, high-first nibbles.
  key = kav["key"].astype(np.intp)
  blocks = ref.blockify(kav["plain"], 4)
  cipher = ref.blockify(kav["cipher"], 4)
  assert 48 in key  # the boundary value that is not flipped
  assert not np.array_equal(ref._le_blocks(blocks, key, key >= 48), cipher)
  swapped = ((blocks & 0x0F) << 4) | (blocks >> 4)  # high nibbles first
  out = ref._le_blocks(swapped, key, key > 48)
  assert not np.array_equal(((out & 0x0F) << 4) | (out >> 4), cipher)


# ------------------------------------------------------------------ LE


def _le_ref_args(key):
  return np.asarray(key.perm), key.geometry.block_size, key.geometry.layout


@pytest.mark.parametrize("shape, block_size, layout", LAYOUT_CASES, ids=LAYOUT_IDS)
def test_le_matches_reference(shape, block_size, layout):
  key = _key(le, 0, shape, block_size, layout=layout)
  perm, b, lay = _le_ref_args(key)
  assert (b, lay) == (block_size, layout)
  x = _images(shape, 1)
  _assert_bytes_equal(le.encrypt(key, x), ref.le_encrypt(x, perm, b, lay))
  _assert_bytes_equal(le.decrypt(key, x), ref.le_decrypt(x, perm, b, lay))


@FEW
@hypothesis.given(seed=st.integers(0, 2**31 - 1),
                  x=hnp.arrays(np.uint8, (N_IMAGES, *HYPOTHESIS_SHAPE)),
                  layout=st.sampled_from(LAYOUTS))
def test_le_matches_reference_random_keys(seed, x, layout):
  key = le.generate_key(jax.random.key(seed), image_shape=HYPOTHESIS_SHAPE,
                        block_size=HYPOTHESIS_BLOCK, layout=layout)
  perm, b, lay = _le_ref_args(key)
  _assert_bytes_equal(le.encrypt(key, x), ref.le_encrypt(x, perm, b, lay))
  _assert_bytes_equal(le.decrypt(key, x), ref.le_decrypt(x, perm, b, lay))


def test_le_single_image_matches_reference():
  key = _key(le, 0, (32, 32, 3), 4, layout="hwc")
  x = _images((32, 32, 3), 2, n=1)
  _assert_bytes_equal(le.encrypt(key, x[0]), ref.le_encrypt(x, *_le_ref_args(key))[0])


def test_le_edge_padding_matches_reference():
  key = _key(le, 0, (28, 28, 1), 8, layout="hwc")
  x = _images((28, 28, 1), 3)
  padded = np.pad(x, ((0, 0), (0, 4), (0, 4), (0, 0)), mode="edge")
  _assert_bytes_equal(le.encrypt(key, ciphers.pad_to_blocks(x, block_size=8)),
                      ref.le_encrypt(padded, *_le_ref_args(key)))


# ------------------------------------------------------------------ ELE


def _ele_ref_args(key):
  return (np.asarray(key.perms), np.asarray(key.block_perm), key.geometry.block_size,
          key.geometry.layout)


@pytest.mark.parametrize("shape, block_size, layout", SMALL_LAYOUT_CASES,
                         ids=SMALL_LAYOUT_IDS)
def test_ele_matches_reference(shape, block_size, layout):
  key = _key(ele, 0, shape, block_size, layout=layout)
  args = _ele_ref_args(key)
  h, w, c = shape
  assert args[0].shape == (h * w // block_size**2, 2 * block_size**2 * c)
  x = _images(shape, 1)
  _assert_bytes_equal(ele.encrypt(key, x), ref.ele_encrypt(x, *args))
  _assert_bytes_equal(ele.decrypt(key, x), ref.ele_decrypt(x, *args))


@FEW
@hypothesis.given(seed=st.integers(0, 2**31 - 1),
                  x=hnp.arrays(np.uint8, (N_IMAGES, *HYPOTHESIS_SHAPE)))
def test_ele_matches_reference_random_keys(seed, x):
  key = ele.generate_key(jax.random.key(seed), image_shape=HYPOTHESIS_SHAPE,
                         block_size=HYPOTHESIS_BLOCK)
  args = _ele_ref_args(key)
  _assert_bytes_equal(ele.encrypt(key, x), ref.ele_encrypt(x, *args))
  _assert_bytes_equal(ele.decrypt(key, x), ref.ele_decrypt(x, *args))


# ------------------------------------------------------------------ EtC


def _etc_ref_args(key):
  return (np.asarray(key.block_perm), np.asarray(key.rotation), np.asarray(key.flip),
          np.asarray(key.negate), np.asarray(key.color), key.geometry.block_size)


@pytest.mark.parametrize("shape, block_size", SMALL_GRID, ids=SMALL_GRID_IDS)
def test_etc_matches_reference(shape, block_size):
  key = _key(etc, 0, shape, block_size)
  args = _etc_ref_args(key)
  x = _images(shape, 1)
  _assert_bytes_equal(etc.encrypt(key, x), ref.etc_encrypt(x, *args))
  _assert_bytes_equal(etc.decrypt(key, x), ref.etc_decrypt(x, *args))


@FEW
@hypothesis.given(seed=st.integers(0, 2**31 - 1),
                  x=hnp.arrays(np.uint8, (N_IMAGES, *HYPOTHESIS_SHAPE)))
def test_etc_matches_reference_random_keys(seed, x):
  key = etc.generate_key(jax.random.key(seed), image_shape=HYPOTHESIS_SHAPE,
                         block_size=HYPOTHESIS_BLOCK)
  args = _etc_ref_args(key)
  _assert_bytes_equal(etc.encrypt(key, x), ref.etc_encrypt(x, *args))
  _assert_bytes_equal(etc.decrypt(key, x), ref.etc_decrypt(x, *args))


def test_etc_every_rotation_flip_colour_choice_matches_reference():
  # A hand-made key covering all 4 x 3 x 2 x 6 per-block choices, on a
  # non-symmetric image, so each convention (CCW, lr/ud, colour order) is pinned.
  shape, b = (12 * 4, 12 * 4, 3), 4
  nb = 144
  base = _key(etc, 0, shape, b)
  choices = np.array(list(itertools.product(range(4), range(3), range(2), range(6))))
  choices = choices[np.arange(nb) % len(choices)]
  key = type(base)(
      block_perm=np.asarray(base.block_perm), rotation=choices[:, 0].astype(np.int32),
      flip=choices[:, 1].astype(np.int32), negate=choices[:, 2].astype(bool),
      color=choices[:, 3].astype(np.int32), geometry=base.geometry)
  args = _etc_ref_args(key)
  x = _images(shape, 4, n=2)
  _assert_bytes_equal(etc.encrypt(key, x), ref.etc_encrypt(x, *args))
  _assert_bytes_equal(etc.decrypt(key, x), ref.etc_decrypt(x, *args))


# ------------------------------------------------------------------ PE


def _pe_ref_args(key):
  return np.asarray(key.negate), np.asarray(key.color)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_pe_matches_reference(shape):
  key = _key(pe, 0, shape)
  args = _pe_ref_args(key)
  x = _images(shape, 1)
  _assert_bytes_equal(pe.encrypt(key, x), ref.pe_encrypt(x, *args))
  _assert_bytes_equal(pe.decrypt(key, x), ref.pe_decrypt(x, *args))


@FEW
@hypothesis.given(seed=st.integers(0, 2**31 - 1),
                  x=hnp.arrays(np.uint8, (N_IMAGES, *HYPOTHESIS_SHAPE)))
def test_pe_matches_reference_random_keys(seed, x):
  key = pe.generate_key(jax.random.key(seed), image_shape=HYPOTHESIS_SHAPE)
  args = _pe_ref_args(key)
  _assert_bytes_equal(pe.encrypt(key, x), ref.pe_encrypt(x, *args))
  _assert_bytes_equal(pe.decrypt(key, x), ref.pe_decrypt(x, *args))


# ------------------------------------------------------------------ ViT


def _vit_ref_args(key):
  return (np.asarray(key.pixel_perm), np.asarray(key.block_perm), key.geometry.block_size,
          key.geometry.layout)


@pytest.mark.parametrize("shape, block_size, layout", LAYOUT_CASES, ids=LAYOUT_IDS)
def test_vit_matches_reference(shape, block_size, layout):
  key = _key(vit, 0, shape, block_size, layout=layout)
  args = _vit_ref_args(key)
  assert args[3] == layout
  x = _images(shape, 1)
  _assert_bytes_equal(vit.encrypt(key, x), ref.vit_encrypt(x, *args))
  _assert_bytes_equal(vit.decrypt(key, x), ref.vit_decrypt(x, *args))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_vit_imported_key_matches_reference(layout):
  rng = np.random.default_rng(5)
  shape, b = (32, 32, 3), 8
  pixel_perm, block_perm = rng.permutation(b * b * 3), rng.permutation(16)
  key = vit.key_from_permutations(pixel_perm, block_perm, block_size=b, layout=layout)
  x = _images(shape, 6)
  _assert_bytes_equal(vit.encrypt(key, x), ref.vit_encrypt(x, pixel_perm, block_perm, b, layout))
  _assert_bytes_equal(vit.decrypt(key, x), ref.vit_decrypt(x, pixel_perm, block_perm, b, layout))


# ------------------------------------------------------------------ block-wise


def _blockwise_ref_kwargs(key):
  t = key.transforms
  return dict(
      perm=np.asarray(key.perm) if "shuffle" in t else None,
      flip_mask=np.asarray(key.flip_mask) if "flip" in t else None,
      ffx_table=np.asarray(key.ffx_table) if "ffx" in t else None,
      layout=key.geometry.layout)


@pytest.mark.parametrize("shape, block_size, layout", LAYOUT_CASES, ids=LAYOUT_IDS)
def test_blockwise_shuffle_flip_matches_reference(shape, block_size, layout):
  key = _key(blockwise, 0, shape, block_size, transforms=("shuffle", "flip"), layout=layout)
  kw = _blockwise_ref_kwargs(key)
  d = block_size**2 * shape[2]
  assert int(kw["flip_mask"].sum()) == d // 2
  x = _images(shape, 1)
  _assert_bytes_equal(blockwise.encrypt(key, x), ref.blockwise_encrypt(x, block_size, **kw))
  _assert_bytes_equal(blockwise.decrypt(key, x), ref.blockwise_decrypt(x, block_size, **kw))


@pytest.mark.parametrize("transforms, layout", [
    (("shuffle",), "hwc"), (("flip",), "hwc"), (("ffx",), "hwc"),
    (("shuffle", "flip", "ffx"), "hwc"), (("shuffle", "flip", "ffx"), "chw")],
    ids=lambda v: "+".join(v) if isinstance(v, tuple) else v)
def test_blockwise_transforms_match_reference(transforms, layout):
  shape, b = (16, 24, 3), 4
  key = _key(blockwise, 0, shape, b, transforms=transforms, layout=layout)
  kw = _blockwise_ref_kwargs(key)
  x = _images(shape, 1)
  y = ref.blockwise_encrypt(x, b, **kw)
  assert y.dtype == (np.uint16 if "ffx" in transforms else np.uint8)
  _assert_bytes_equal(blockwise.encrypt(key, x), y)
  _assert_bytes_equal(blockwise.decrypt(key, y), ref.blockwise_decrypt(y, b, **kw))
  _assert_bytes_equal(ref.blockwise_decrypt(y, b, **kw), x)


def test_blockwise_imported_key_matches_reference():
  rng = np.random.default_rng(7)
  b, c = 4, 3
  d = b * b * c
  perm = rng.permutation(d)
  mask = np.zeros(d, bool)
  mask[rng.choice(d, d // 2, replace=False)] = True
  key = blockwise.key_from_arrays(block_shape=(b, b, c), permutation=perm, flip_mask=mask)
  x = _images((32, 32, 3), 8)
  y = ref.blockwise_encrypt(x, b, perm=perm, flip_mask=mask)
  _assert_bytes_equal(blockwise.encrypt(key, x), y)
  _assert_bytes_equal(blockwise.decrypt(key, y), x)


# ------------------------------------------------------------------ Huang 2022


@pytest.mark.parametrize("statistic", huang2022.STATISTICS)
@pytest.mark.parametrize("shape, block_size", [((28, 28, 1), 4), ((16, 24, 3), 2),
                                               ((32, 32, 3), 8)],
                         ids=["28x28x1-B4", "16x24x3-B2", "32x32x3-B8"])
def test_huang2022_block_filter_matches_reference(shape, block_size, statistic):
  x = _images(shape, 1)
  _assert_bytes_equal(huang2022.block_filter(x, block_size=block_size, statistic=statistic),
                      ref.block_filter(x, block_size, statistic))


def test_huang2022_block_filter_rounding():
  # One 2 x 2 block per channel: values whose mean / median sit exactly on .5.
  x = np.array([[[[0, 0, 1], [0, 1, 1]], [[0, 2, 9], [1, 3, 200]]]], np.uint8)  # [1, 2, 2, 3]
  # channel 0: 0 0 0 1 -> mean 0.25 -> 0, median (0+0)/2 -> 0
  # channel 1: 0 1 2 3 -> mean 1.5 -> 2, median (1+2)/2 = 1.5 -> 2
  # channel 2: 1 1 9 200 -> mean 52.75 -> 53, median (1+9)/2 -> 5
  expected = {"mean": [0, 2, 53], "median": [0, 2, 5], "max": [1, 3, 200], "min": [0, 0, 1]}
  for statistic, values in expected.items():
    want = np.broadcast_to(np.array(values, np.uint8), x.shape)
    _assert_bytes_equal(ref.block_filter(x, 2, statistic), want)
    _assert_bytes_equal(huang2022.block_filter(x, block_size=2, statistic=statistic), want)


@pytest.mark.parametrize("statistic", ["median", "mean"])
@pytest.mark.parametrize("shape, block_size", [((28, 28, 1), 2), ((16, 24, 3), 4)],
                         ids=["28x28x1-B2", "16x24x3-B4"])
def test_huang2022_encrypt_matches_reference(shape, block_size, statistic):
  key = _key(huang2022, 0, shape, block_size, statistic=statistic)
  negate, color = _pe_ref_args(key.pixel_key)
  x = _images(shape, 1)
  staged = ref.pe_encrypt(x, negate, color)
  _assert_bytes_equal(
      huang2022.shuffle_colors(key, huang2022.negative_positive(key, x)), staged)
  _assert_bytes_equal(huang2022.encrypt(key, x),
                      ref.huang2022_encrypt(x, negate, color, block_size, statistic))


# ------------------------------------------------------------------ the oracle itself


def _perm(rng, n):
  return rng.permutation(n)


@hypothesis.settings(max_examples=25, deadline=None, derandomize=True)
@hypothesis.given(
    hw=st.sampled_from([(4, 4), (8, 12), (12, 8), (16, 16)]),
    c=st.sampled_from([1, 3]),
    b=st.sampled_from([1, 2, 4]),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**32 - 1))
def test_reference_round_trips(hw, c, b, layout, seed):
  rng = np.random.default_rng(seed)
  h, w = hw
  x = rng.integers(0, 256, (2, h, w, c), dtype=np.uint8)
  nb, d = h * w // (b * b), b * b * c

  # blockify is a bijection and undoes itself.
  blocks = ref.blockify(x, b, layout)
  assert blocks.shape == (2, nb, d)
  _assert_bytes_equal(ref.unblockify(blocks, (h, w, c), b, layout), x)

  def check(enc, dec):
    y = enc(x)
    assert y.shape == x.shape
    _assert_bytes_equal(dec(y), x)

  perm = _perm(rng, 2 * d)
  check(lambda v: ref.le_encrypt(v, perm, b, layout), lambda v: ref.le_decrypt(v, perm, b, layout))

  perms = np.stack([_perm(rng, 2 * d) for _ in range(nb)])
  bperm = _perm(rng, nb)
  check(lambda v: ref.ele_encrypt(v, perms, bperm, b, layout),
        lambda v: ref.ele_decrypt(v, perms, bperm, b, layout))

  etc_args = (bperm, rng.integers(0, 4, nb), rng.integers(0, 3, nb),
              rng.integers(0, 2, nb).astype(bool),
              rng.integers(0, 6, nb) if c == 3 else np.zeros(nb, int), b)
  check(lambda v: ref.etc_encrypt(v, *etc_args), lambda v: ref.etc_decrypt(v, *etc_args))

  negate = rng.integers(0, 2, (h, w, c)).astype(bool)
  color = rng.integers(0, 6, (h, w))
  check(lambda v: ref.pe_encrypt(v, negate, color), lambda v: ref.pe_decrypt(v, negate, color))

  pperm = _perm(rng, d)
  check(lambda v: ref.vit_encrypt(v, pperm, bperm, b, layout),
        lambda v: ref.vit_decrypt(v, pperm, bperm, b, layout))

  mask = rng.integers(0, 2, d).astype(bool)
  table = np.stack([rng.choice(1000, 256, replace=False) for _ in range(d)]).astype(np.uint16)
  kw = dict(perm=pperm, flip_mask=mask, ffx_table=table, layout=layout)
  y = ref.blockwise_encrypt(x, b, **kw)
  assert y.dtype == np.uint16 and int(y.max()) < 1000
  _assert_bytes_equal(ref.blockwise_decrypt(y, b, **kw), x)
  kw = dict(perm=pperm, flip_mask=mask, layout=layout)
  check(lambda v: ref.blockwise_encrypt(v, b, **kw), lambda v: ref.blockwise_decrypt(v, b, **kw))


def test_reference_conventions_by_hand():
  # Small cases worked out from the descriptions, independent of both codes.
  # hwc vs chw block vectors of one 2 x 2 x 3 block.
  x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
  np.testing.assert_array_equal(ref.blockify(x, 2, "hwc")[0, 0], np.arange(12))
  np.testing.assert_array_equal(ref.blockify(x, 2, "chw")[0, 0],
                                [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11])
  # Row-major block order on a non-square 2 x 3 grid of 2 x 2 blocks.
  x = np.arange(24, dtype=np.uint8).reshape(1, 4, 6, 1)
  np.testing.assert_array_equal(ref.blockify(x, 2)[0, :, 0], [0, 2, 4, 12, 14, 16])
  # EtC rotation is counter-clockwise, flip 1 = left-right.
  blk = np.array([[1, 2], [3, 4]], np.uint8)[None, :, :, None]
  ident = np.zeros(1, int)
  rot = ref.etc_encrypt(blk, ident, np.array([1]), ident, np.zeros(1, bool), ident, 2)
  np.testing.assert_array_equal(rot[0, :, :, 0], [[2, 4], [1, 3]])
  lr = ref.etc_encrypt(blk, ident, ident, np.array([1]), np.zeros(1, bool), ident, 2)
  np.testing.assert_array_equal(lr[0, :, :, 0], [[2, 1], [4, 3]])
  # Colour order 3 = (1, 2, 0): output channel c = input channel (1, 2, 0)[c].
  px = np.array([10, 20, 30], np.uint8).reshape(1, 1, 1, 3)
  out = ref.pe_encrypt(px, np.zeros((1, 1, 3), bool), np.array([[3]]))
  np.testing.assert_array_equal(out.ravel(), [20, 30, 10])
  # LE: identity perm of 0..2d-1 flips positions > d twice -> identity.
  v = _images((4, 4, 1), 9, n=1)
  _assert_bytes_equal(ref.le_encrypt(v, np.arange(32), 4), v)
