"""Properties every cipher must have: exact round trip, purity, jit = eager,
vmap = loop, shape/dtype kept, no recompilation, per-image keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lie_jax import ciphers
from tests.cipher_cases import INVERTIBLE_CASES, case_id, make_key, random_images

SHAPE_GRAY = (28, 28, 1)
SHAPE_RGB = (16, 24, 3)


def _shape_for(options, channels):
  return SHAPE_GRAY if channels == 1 else SHAPE_RGB


def _cipher(scheme):
  return ciphers.get_scheme(scheme)


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_is_exact(invertible_case, channels):
  scheme, options = invertible_case
  shape = _shape_for(options, channels)
  x = random_images((5,) + shape, seed=1)
  k = make_key(scheme, options, shape)
  y = _cipher(scheme).encrypt(k, x)
  np.testing.assert_array_equal(np.asarray(_cipher(scheme).decrypt(k, y)), x)


@pytest.mark.parametrize("case", INVERTIBLE_CASES[:7], ids=case_id)
@settings(max_examples=6, deadline=None)
@given(channels=st.sampled_from([1, 3]), block=st.integers(1, 4), grid_h=st.integers(1, 3),
       grid_w=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_round_trip_any_geometry(case, channels, block, grid_h, grid_w, seed):
  scheme, options = case
  options = dict(options)
  if "block_size" in options:
    options["block_size"] = block
  shape = (grid_h * block, grid_w * block, channels)
  x = random_images((2,) + shape, seed=seed % 1000)
  k = make_key(scheme, options, shape, seed=seed)
  y = _cipher(scheme).encrypt(k, x)
  assert y.shape == x.shape and y.dtype == x.dtype
  np.testing.assert_array_equal(np.asarray(_cipher(scheme).decrypt(k, y)), x)


def test_shape_and_dtype_kept(any_case):
  scheme, options = any_case
  x = random_images((3,) + SHAPE_GRAY)
  k = make_key(scheme, options, SHAPE_GRAY)
  y = _cipher(scheme).encrypt(k, x)
  if scheme == "morph":
    assert y.dtype == jnp.float32 and y.shape == (3, k.vector_size)
  elif "ffx" in options.get("transforms", ()):
    assert y.dtype == jnp.uint16 and y.shape == x.shape and int(y.max()) < 1000
  else:
    assert y.dtype == jnp.uint8 and y.shape == x.shape
  assert _cipher(scheme).encrypt(k, x[0]).shape == y.shape[1:]
  # An empty batch is a valid batch: empty out, both ways, shared and per-image keys.
  module = _cipher(scheme)
  empty = x[:0]
  y0 = module.encrypt(k, empty)
  assert y0.shape == (0,) + y.shape[1:] and y0.dtype == y.dtype
  if hasattr(module, "decrypt"):
    assert module.decrypt(k, y0).shape == empty.shape
  if hasattr(module, "encrypt_per_image"):
    z0 = module.encrypt_per_image(jax.random.key(0), empty, **options)
    assert z0.shape == (0,) + y.shape[1:]
    if getattr(module, "decrypt_per_image", None):
      assert module.decrypt_per_image(jax.random.key(0), z0, **options).shape == empty.shape


def test_same_key_same_output_different_key_different_output(any_case):
  scheme, options = any_case
  x = random_images((2,) + SHAPE_GRAY, seed=3)
  encrypt = _cipher(scheme).encrypt
  a = encrypt(make_key(scheme, options, SHAPE_GRAY, seed=7), x)
  b = encrypt(make_key(scheme, options, SHAPE_GRAY, seed=7), x)
  c = encrypt(make_key(scheme, options, SHAPE_GRAY, seed=8), x)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_encryption_changes_the_image(invertible_case):
  scheme, options = invertible_case
  x = random_images((2,) + SHAPE_RGB, seed=4)
  y = np.asarray(_cipher(scheme).encrypt(make_key(scheme, options, SHAPE_RGB), x))
  # A random key leaves at most about half of the values in place (bit
  # flipping alone negates exactly half of the positions).
  assert (y.astype(np.int64) == x).mean() <= 0.51


def test_jit_equals_eager(any_case):
  scheme, options = any_case
  x = random_images((2,) + SHAPE_GRAY, seed=5)
  k = make_key(scheme, options, SHAPE_GRAY)
  encrypt = _cipher(scheme).encrypt
  jitted = jax.jit(encrypt)(k, x)
  with jax.disable_jit():
    eager = encrypt(k, x)
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-6)


def test_batch_equals_loop(any_case):
  scheme, options = any_case
  x = random_images((4,) + SHAPE_GRAY, seed=6)
  k = make_key(scheme, options, SHAPE_GRAY)
  encrypt = _cipher(scheme).encrypt
  batch = np.asarray(encrypt(k, x))
  loop = np.stack([np.asarray(encrypt(k, image)) for image in x])
  np.testing.assert_array_equal(batch, loop)
  # And the user's own vmap over a single-image call agrees.
  np.testing.assert_array_equal(np.asarray(jax.vmap(lambda im: encrypt(k, im))(x)), batch)


def test_no_recompilation_for_new_keys_or_images(invertible_case):
  scheme, options = invertible_case
  module = _cipher(scheme)
  shape = (12, 20, 3)
  module.encrypt(make_key(scheme, options, shape, seed=1), random_images((3,) + shape, 1))
  before = module._encrypt._cache_size()  # pylint: disable=protected-access
  for seed in (2, 3):
    module.encrypt(make_key(scheme, options, shape, seed=seed), random_images((3,) + shape, seed))
  assert module._encrypt._cache_size() == before  # pylint: disable=protected-access


def test_keys_pass_through_jit_and_vmap(invertible_case):
  scheme, options = invertible_case
  module = _cipher(scheme)
  x = random_images((3,) + SHAPE_GRAY, seed=9)
  seeds = jnp.arange(3)
  gen = lambda s: module.generate_key(jax.random.key(s), image_shape=SHAPE_GRAY, **options)
  keys = jax.vmap(gen)(seeds)
  y = jax.vmap(module.encrypt)(keys, x)
  loop = np.stack([np.asarray(module.encrypt(gen(int(s)), x[i])) for i, s in enumerate(seeds)])
  np.testing.assert_array_equal(np.asarray(y), loop)


# ----------------------------------------------------------------------------- per-image keys


def test_per_image_round_trip_and_keys_differ(invertible_case):
  scheme, options = invertible_case
  module = _cipher(scheme)
  x = np.repeat(random_images((1,) + SHAPE_GRAY, seed=10), 4, axis=0)
  key = jax.random.key(42)
  y = np.asarray(module.encrypt_per_image(key, x, **options))
  # Identical images, different keys: different ciphertexts.
  assert len({row.tobytes() for row in y}) == 4
  np.testing.assert_array_equal(np.asarray(module.decrypt_per_image(key, y, **options)), x)


def test_per_image_matches_fold_in_keys(invertible_case):
  scheme, options = invertible_case
  module = _cipher(scheme)
  x = random_images((3,) + SHAPE_GRAY, seed=11)
  key = jax.random.key(5)
  indices = np.array([7, 0, 123])
  y = np.asarray(module.encrypt_per_image(key, x, indices=indices, **options))
  for i, index in enumerate(indices):
    k = module.generate_key(jax.random.fold_in(key, index), image_shape=SHAPE_GRAY, **options)
    np.testing.assert_array_equal(y[i], np.asarray(module.encrypt(k, x[i])))


def test_per_image_no_recompilation():
  from lie_jax.ciphers import le
  x = random_images((4,) + SHAPE_GRAY)
  le.encrypt_per_image(jax.random.key(0), x, block_size=4)
  run = le.encrypt_per_image.__closure__  # the jitted runner lives in the closure
  jitted = [c.cell_contents for c in run if hasattr(c.cell_contents, "_cache_size")]
  before = jitted[0]._cache_size()
  le.encrypt_per_image(jax.random.key(1), random_images((4,) + SHAPE_GRAY, 2), block_size=4)
  assert jitted[0]._cache_size() == before


def test_huang2022_per_image():
  from lie_jax.ciphers import huang2022
  x = np.repeat(random_images((1,) + SHAPE_RGB), 3, axis=0)
  y = np.asarray(huang2022.encrypt_per_image(jax.random.key(0), x, block_size=2))
  assert y.shape == x.shape and len({row.tobytes() for row in y}) == 3


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize("scheme", ["le", "ele", "etc", "vit"])
def test_edge_padding_round_trip(scheme):
  shape = (30, 27, 3)
  x = random_images((2,) + shape)
  module = _cipher(scheme)
  k = module.generate_key(jax.random.key(0), image_shape=shape, block_size=4)
  with pytest.raises(ValueError, match="not divisible by block_size=4.*padding='edge'"):
    module.encrypt(k, x)
  y = module.encrypt(k, x, padding="edge")
  assert y.shape == (2, 32, 28, 3)
  z = np.asarray(module.decrypt(k, y))
  if scheme == "le":  # shape-free key: decrypt returns the padded image
    z = z[:, :30, :27]
  np.testing.assert_array_equal(z, x)


def test_pad_to_blocks_replicates_edges():
  x = random_images((5, 6, 1))
  padded = np.asarray(ciphers.pad_to_blocks(x, block_size=4))
  np.testing.assert_array_equal(padded, np.pad(x, ((0, 3), (0, 2), (0, 0)), mode="edge"))


# ----------------------------------------------------------------------------- blockify


@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_blockify_matches_explicit_loop_and_inverts(layout):
  x = random_images((2, 8, 12, 3))
  blocks = np.asarray(ciphers.blockify(x, block_size=4, layout=layout))
  assert blocks.shape == (2, 6, 48)
  j = 0
  for r in range(2):
    for c in range(3):
      block = x[:, 4 * r:4 * r + 4, 4 * c:4 * c + 4, :]
      if layout == "chw":
        block = block.transpose(0, 3, 1, 2)
      np.testing.assert_array_equal(blocks[:, j], block.reshape(2, -1))
      j += 1
  back = ciphers.unblockify(blocks, image_shape=(8, 12, 3), block_size=4, layout=layout)
  np.testing.assert_array_equal(np.asarray(back), x)


def test_pe_source_channels_match_the_colour_permutation_table():
  # The arithmetic colour shuffle against the table it replaces (and its inverse).
  from lie_jax.ciphers import _blocks, pe
  codes = jnp.arange(6, dtype=jnp.int32)
  table = _blocks.COLOR_PERMUTATIONS
  got = np.stack([np.asarray(s) for s in pe._source_channels(codes, inverse=False)], axis=1)
  np.testing.assert_array_equal(got, table)
  got_inv = np.stack([np.asarray(s) for s in pe._source_channels(codes, inverse=True)], axis=1)
  np.testing.assert_array_equal(got_inv, np.argsort(table, axis=1))


def test_pe_colour_codes_are_uint8_and_other_integer_dtypes_give_the_same_cipher():
  # generate_key stores uint8 codes 0..5; a key built by hand with int32 codes
  # (e.g. imported, or from the chosen-plaintext attack) must encrypt the same.
  from lie_jax.ciphers import _blocks, pe
  key = pe.generate_key(jax.random.key(3), image_shape=(8, 8, 3))
  assert key.color.dtype == jnp.uint8
  k_col = jax.random.split(jax.random.key(3))[1]
  np.testing.assert_array_equal(np.asarray(key.color),
                                np.asarray(_blocks.random_below(k_col, (8, 8), 6)))
  wide = pe.PEKey(negate=key.negate, color=key.color.astype(jnp.int32), geometry=key.geometry)
  x = random_images((3, 8, 8, 3), seed=1)
  y = pe.encrypt(key, x)
  np.testing.assert_array_equal(np.asarray(pe.encrypt(wide, x)), np.asarray(y))
  np.testing.assert_array_equal(np.asarray(pe.decrypt(wide, y)), x)
