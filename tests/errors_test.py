"""Bad input gets a clear error naming the problem."""

import jax
import numpy as np
import pytest

from lie_jax import ciphers
from lie_jax.ciphers import ele, etc, le, pe, vit, blockwise
from tests.cipher_cases import random_images


@pytest.fixture
def le_key():
  return le.generate_key(jax.random.key(0), image_shape=(8, 8, 3), block_size=4)


def test_non_uint8_images(le_key):
  with pytest.raises(TypeError, match="images must be uint8, got float32"):
    le.encrypt(le_key, np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("shape", [(8, 8), (1, 1, 8, 8, 3), (8,)])
def test_bad_rank(le_key, shape):
  with pytest.raises(ValueError, match=r"\[H, W, C\] or \[N, H, W, C\], got rank"):
    le.encrypt(le_key, np.zeros(shape, np.uint8))


def test_block_size_does_not_divide(le_key):
  # The refusal names the way out (edge padding is an explicit step, not an encrypt option).
  with pytest.raises(ValueError, match="image size 10x8 is not divisible by block_size=4.*"
                     "pad_to_blocks"):
    le.encrypt(le_key, np.zeros((10, 8, 3), np.uint8))


def test_wrong_channel_count(le_key):
  with pytest.raises(ValueError, match="made for C=3 images, got C=1"):
    le.encrypt(le_key, np.zeros((8, 8, 1), np.uint8))


@pytest.mark.parametrize("module", [ele, etc, pe, vit])
def test_key_for_another_image_shape(module):
  kwargs = {} if module is pe else {"block_size": 4}
  k = module.generate_key(jax.random.key(0), image_shape=(8, 8, 3), **kwargs)
  with pytest.raises(ValueError, match=r"made for \[8, 8, 3\] images, got \[16, 8, 3\]"):
    module.encrypt(k, np.zeros((16, 8, 3), np.uint8))
  with pytest.raises(ValueError, match=r"made for \[8, 8, 3\] images, got \[16, 8, 3\]"):
    module.decrypt(k, np.zeros((16, 8, 3), np.uint8))


def test_key_of_another_scheme(le_key):
  with pytest.raises(TypeError, match="ele.encrypt needs a ELEKey, got LEKey"):
    ele.encrypt(le_key, np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(TypeError, match="JAX PRNG key"):
    le.encrypt(jax.random.key(0), np.zeros((8, 8, 3), np.uint8))


def test_errors_never_show_key_material(le_key):
  perm_text = " ".join(str(v) for v in np.asarray(le_key.perm)[:6])
  for bad in (np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8, 3), np.int32)):
    with pytest.raises((TypeError, ValueError)) as info:
      le.encrypt(le_key, bad)
    assert perm_text not in str(info.value) and "[" + perm_text[:5] not in str(info.value)


@pytest.mark.parametrize("kwargs,match", [
    ({"image_shape": (8, 8)}, "image_shape must be"),
    ({"image_shape": (8, 8, 2)}, "C = 1 or 3"),
    ({"image_shape": (8, 8, 3), "block_size": 0}, "block_size must be >= 1"),
    ({"image_shape": (8, 8, 3), "block_size": 2.0}, "block_size must be an int"),
    ({"image_shape": (8, 8, 3), "block_size": 16}, "larger than the image"),
    ({"image_shape": (8, 8, 3), "layout": "whc"}, "layout must be one of"),
])
def test_bad_key_options(kwargs, match):
  with pytest.raises((TypeError, ValueError), match=match):
    le.generate_key(jax.random.key(0), **kwargs)


def test_imported_keys_are_validated():
  with pytest.raises(ValueError, match="not a permutation"):
    le.key_from_permutation(np.zeros(96, int), block_shape=(4, 4, 3))
  with pytest.raises(ValueError, match="length 96"):
    le.key_from_permutation(np.arange(95), block_shape=(4, 4, 3))
  with pytest.raises(ValueError, match="square"):
    le.key_from_permutation(np.arange(96), block_shape=(4, 2, 3))
  with pytest.raises(ValueError, match="pixel_perm must have length 48"):
    vit.key_from_permutations(np.arange(47), np.arange(4), block_size=4, image_shape=(8, 8, 3))
  with pytest.raises(ValueError, match="flip_mask must have shape"):
    blockwise.key_from_arrays(block_shape=(2, 2, 1), flip_mask=np.zeros(3, bool))


def test_per_image_errors():
  x = random_images((2, 8, 8, 1))
  with pytest.raises(ValueError, match="need a batch"):
    le.SCHEME.encrypt_per_image(jax.random.key(0), x[0])
  with pytest.raises(ValueError, match=r"indices must have shape \(2,\)"):
    le.SCHEME.encrypt_per_image(jax.random.key(0), x, indices=[1, 2, 3])
  with pytest.raises(ValueError, match=r"no option\(s\) \['blocksize'\]"):
    le.SCHEME.encrypt_per_image(jax.random.key(0), x, blocksize=4)


@pytest.mark.parametrize("scheme", sorted(n for n, s in ciphers.SCHEMES.items()
                                          if s.per_image_keys))
@pytest.mark.parametrize("indices", [
    [0, 2**32], [-1, 3], np.array([2**32 + 7, 1], np.int64), np.array([2**40, 0], np.uint64),
    np.array([-2**31, 0], np.int32)])
def test_out_of_range_indices_are_refused(scheme, indices):
  # A uint32 cast would wrap them (2**32 -> 0): image 2**32 would reuse image 0's key.
  record = ciphers.get_scheme(scheme)
  x = random_images((2, 8, 8, 1))
  with pytest.raises(ValueError, match=r"indices must be in \[0, 2\*\*32\)"):
    record.encrypt_per_image(jax.random.key(0), x, indices=indices)
  if record.invertible:
    with pytest.raises(ValueError, match=r"indices must be in \[0, 2\*\*32\)"):
      record.decrypt_per_image(jax.random.key(0), x, indices=indices)


def test_edge_indices_are_accepted_and_distinct():
  x = np.repeat(random_images((1, 8, 8, 1)), 2, axis=0)
  y = np.asarray(le.SCHEME.encrypt_per_image(jax.random.key(0), x, indices=[0, 2**32 - 1]))
  assert not np.array_equal(y[0], y[1])


def test_unknown_scheme():
  with pytest.raises(ValueError, match="unknown scheme 'xyz'"):
    ciphers.get_scheme("xyz")
