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
  if module.invertible:
    assert module.decrypt(k, y0).shape == empty.shape
  if module.per_image_keys:
    z0 = module.encrypt_per_image(jax.random.key(0), empty, **options)
    assert z0.shape == (0,) + y.shape[1:]
    if module.invertible:
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
  before = module.jitted_encrypt._cache_size()  # pylint: disable=protected-access
  for seed in (2, 3):
    module.encrypt(make_key(scheme, options, shape, seed=seed), random_images((3,) + shape, seed))
  assert module.jitted_encrypt._cache_size() == before  # pylint: disable=protected-access


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
  from lie_jax.ciphers import _core, le
  x = random_images((4,) + SHAPE_GRAY)
  le.SCHEME.encrypt_per_image(jax.random.key(0), x, block_size=4)
  before = _core._run_per_image._cache_size()  # pylint: disable=protected-access
  le.SCHEME.encrypt_per_image(jax.random.key(1), random_images((4,) + SHAPE_GRAY, 2),
                              indices=np.arange(4) + 9, block_size=4)
  assert _core._run_per_image._cache_size() == before  # pylint: disable=protected-access


def test_huang2022_per_image():
  from lie_jax.ciphers import huang2022
  x = np.repeat(random_images((1,) + SHAPE_RGB), 3, axis=0)
  y = np.asarray(huang2022.SCHEME.encrypt_per_image(jax.random.key(0), x, block_size=2))
  assert y.shape == x.shape and len({row.tobytes() for row in y}) == 3


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize("scheme", ["le", "ele", "etc", "vit", "huang2022"])
def test_sizes_not_divisible_by_the_block_are_refused_and_pad_to_blocks_fits_them(scheme):
  shape = (30, 27, 3)
  x = random_images((2,) + shape)
  module = _cipher(scheme)
  hint = "not divisible by block_size=4.*pad_to_blocks"
  with pytest.raises(ValueError, match=hint):  # fixed-shape keys refuse at key generation
    module.encrypt(module.generate_key(jax.random.key(0), image_shape=shape, block_size=4), x)
  with pytest.raises(ValueError, match=hint):
    module.encrypt_per_image(jax.random.key(0), x, block_size=4)
  padded = ciphers.pad_to_blocks(x, block_size=4)
  assert padded.shape == (2, 32, 28, 3)
  k = module.generate_key(jax.random.key(0), image_shape=padded.shape[1:], block_size=4)
  y = module.encrypt(k, padded)
  if module.invertible:
    np.testing.assert_array_equal(np.asarray(module.decrypt(k, y))[:, :30, :27], x)


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


def test_pe_colour_codes_are_uint8_and_other_integer_dtypes_give_the_same_cipher():
  # generate_key stores uint8 codes 0..5; a key built with int32 codes (imported,
  # or recovered by an attack) must encrypt and decrypt the same.
  from lie_jax.ciphers import pe
  key = pe.generate_key(jax.random.key(3), image_shape=(8, 8, 3))
  assert key.color.dtype == jnp.uint8 and int(key.color.max()) <= 5
  wide = pe.key_from_arrays(np.asarray(key.negate), np.asarray(key.color).astype(np.int32))
  x = random_images((3, 8, 8, 3), seed=1)
  y = pe.encrypt(key, x)
  np.testing.assert_array_equal(np.asarray(pe.encrypt(wide, x)), np.asarray(y))
  np.testing.assert_array_equal(np.asarray(pe.decrypt(wide, y)), x)
  with pytest.raises(ValueError, match="color codes"):
    pe.key_from_arrays(np.asarray(key.negate), np.full((8, 8), 6))


def test_scheme_records_declare_what_the_functions_do(any_case):
  # The declared facts of every record agree with what its functions compute.
  scheme, options = any_case
  record = ciphers.get_scheme(scheme)
  assert record.name == scheme and set(options) <= set(record.options)
  k = make_key(scheme, options, SHAPE_RGB)
  y = record.encrypt(k, random_images((2,) + SHAPE_RGB))
  assert np.dtype(y.dtype) == record.cipher_dtype(**options)
  assert record.storable == (y.shape[1:] == SHAPE_RGB)
  assert record.scrambles_blocks == hasattr(k, "block_perm")
  assert record.invertible == (scheme != "huang2022")
  with pytest.raises(ValueError, match="no option"):
    record.check_options({"no_such_option": 1})
  if not record.per_image_keys:
    with pytest.raises(ValueError, match="no per-image keys"):
      record.encrypt_per_image(jax.random.key(0), random_images((2,) + SHAPE_RGB))
