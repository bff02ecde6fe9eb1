"""Issue 20: the server's augmentation of ciphertexts (config.data.augment_ciphertexts): the
JAX flip-and-shift against the NumPy one, the identity that makes it valid for PE with
per-image keys, and its refusal, with the reason, everywhere else."""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lie_jax import ciphers
from lie_jax import data
from lie_jax.ciphers import pe
from lie_jax.training import encryption
from lie_jax.training import trainer
from tests.training_test import tiny_config


def _images(shape=(3, 8, 6, 3), seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_the_jax_gather_is_the_numpy_gather():
  images = _images((4, 7, 5, 2))
  dy, dx = np.array([-2, 0, 1, 2]), np.array([1, -2, 0, 2])
  mirrored = np.array([True, False, True, False])
  expected = data.flip_and_shift(images, dy, dx, mirrored)
  got = data.flip_and_shift(jnp.asarray(images), jnp.asarray(dy), jnp.asarray(dx),
                            jnp.asarray(mirrored))
  assert isinstance(got, jax.Array)
  np.testing.assert_array_equal(np.asarray(got), expected)
  # One image by hand: shift down 1 with the top row repeated, then mirrored.
  x = np.arange(12, dtype=np.uint8).reshape(1, 3, 4, 1)
  y = data.flip_and_shift(x, np.array([1]), np.array([0]), np.array([True]))
  np.testing.assert_array_equal(y[0, :, :, 0], [[3, 2, 1, 0], [3, 2, 1, 0], [7, 6, 5, 4]])


def test_every_augmented_image_is_one_allowed_flip_and_shift_and_the_key_decides():
  images = _images((16, 9, 9, 1), seed=1)
  key = jax.random.key(3)
  out = np.asarray(jax.jit(data.random_flip_and_shift_jax)(key, jnp.asarray(images)))
  np.testing.assert_array_equal(out, np.asarray(data.random_flip_and_shift_jax(key, images)))
  moves = list(itertools.product(range(-2, 3), range(-2, 3), (False, True)))
  seen = set()
  for img, aug in zip(images, out):  # brute force: which of the 50 moves made it?
    matches = [m for m in moves
               if np.array_equal(data.flip_and_shift(img[None], *map(np.array, ([m[0]], [m[1]],
                                                                                   [m[2]])))[0],
                                 aug)]
    assert matches, "not a flip and shift within max_shift=2"
    seen.add(matches[0])
  assert len(seen) > 4  # random moves, not one for the batch
  other = np.asarray(data.random_flip_and_shift_jax(jax.random.key(4), images))
  assert not np.array_equal(out, other)
  still = data.random_flip_and_shift_jax(key, images, max_shift=0, flip=False)
  np.testing.assert_array_equal(np.asarray(still), images)


def test_augmenting_pe_ciphertexts_is_encrypting_the_augmented_image_under_the_moved_key():
  """The identity behind PE's claim: flip/shift(E_k(x)) == E_{k moved}(flip/shift(x)); with a
  fresh random key per image, the moved key is just another random key."""
  x = _images((1, 10, 8, 3), seed=2)
  key = pe.generate_key(jax.random.key(5), image_shape=(10, 8, 3))
  dy, dx, m = np.array([2]), np.array([-1]), np.array([True])
  moved = pe.key_from_arrays(data.flip_and_shift(np.asarray(key.negate)[None], dy, dx, m)[0],
                             data.flip_and_shift(np.asarray(key.color)[None, ..., None], dy, dx,
                                                 m)[0, ..., 0])
  augmented_cipher = data.flip_and_shift(np.asarray(pe.encrypt(key, x)), dy, dx, m)
  np.testing.assert_array_equal(augmented_cipher,
                                np.asarray(pe.encrypt(moved, data.flip_and_shift(x, dy, dx, m))))
  # A block cipher has no such key: a 1-pixel shift of an LE ciphertext decrypts to garbage.
  from lie_jax.ciphers import le
  k = le.generate_key(jax.random.key(6), image_shape=(8, 8, 3), block_size=4)
  y = _images((1, 8, 8, 3), seed=3)
  shifted = data.flip_and_shift(np.asarray(le.encrypt(k, y)), np.array([0]), np.array([1]),
                                np.array([False]))
  decrypted = np.asarray(le.decrypt(k, shifted))
  expected = data.flip_and_shift(y, np.array([0]), np.array([1]), np.array([False]))
  assert np.mean(decrypted == expected) < 0.5


def _encoder(scheme, per_image_keys=False, block_size=None):
  config = tiny_config(scheme, "none").cipher
  config.per_image_keys = per_image_keys
  if block_size is not None:
    config.block_size = block_size
  return encryption.make_input_encoder(config, image_shape=(28, 28, 1), seed=0)


@pytest.mark.parametrize("scheme,per_image,block,reason", [
    ("le", False, None, r"le is a block cipher with 4x4 blocks: a flip or shift of its ciphertexts is no "
                        r"ciphertext of the augmented image"),
    ("etc", True, None, r"etc is a block cipher"),
    ("vit", True, None, r"vit is a block cipher"),
    ("huang2022", True, 2, r"huang2022 is a pixel cipher with 2x2 blocks"),
    ("pe", False, None, r"pe with one shared key: a shifted ciphertext is encrypted under a "
                        r"moved key, not the key"),
])
def test_refused_with_the_reason_for_block_ciphers_and_shared_keys(scheme, per_image, block,
                                                                   reason):
  enc = _encoder(scheme, per_image, block)
  assert enc.per_image_keys == per_image
  msg = encryption.ciphertext_augmentation_error(enc)
  assert msg is not None and re.search(reason, msg), msg
  config = tiny_config(scheme, "none")
  config.data.augment_ciphertexts = True
  with pytest.raises(ValueError, match="config.data.augment_ciphertexts: " + reason):
    trainer._ciphertext_augmentation(config, enc)


def test_allowed_for_pe_with_per_image_keys_and_plain_images():
  assert encryption.ciphertext_augmentation_error(_encoder("pe", True)) is None
  assert encryption.ciphertext_augmentation_error(_encoder("none")) is None
  assert {n for n, s in ciphers.SCHEMES.items() if s.kind == "pixel"} == {"pe", "huang2022"}


def test_owner_and_server_augmentation_are_not_both_set_and_stored_ciphertexts_refuse_owner_side():
  enc = _encoder("pe", True)
  config = tiny_config("pe", "pixel")
  config.data.augment, config.data.augment_ciphertexts = True, True
  with pytest.raises(ValueError, match="are both set: choose one"):
    trainer._ciphertext_augmentation(config, enc)
  config.data.augment_ciphertexts = False
  stored = encryption.InputEncoder("le", lambda *a: None, None, "fp", {"block_size": 4},
                                   pre_encrypted=True)
  with pytest.raises(ValueError, match="this dataset arrives encrypted by its owner"):
    trainer._ciphertext_augmentation(config, stored)


@pytest.mark.slow
def test_a_pe_run_with_server_augmentation_trains_and_differs_from_one_without(tmp_path):
  from lie_jax.training import train_and_evaluate
  runs = {}
  for name, server in (("server", True), ("none", False)):
    config = tiny_config("pe", "pixel", num_steps=3, eval_every_steps=3)
    config.cipher.per_image_keys = True
    config.data.augment, config.data.augment_ciphertexts = False, server
    runs[name] = train_and_evaluate(config, str(tmp_path / name))
  assert runs["server"]["steps"] == 3 and "test_accuracy_plain_inputs" in runs["server"]
  assert runs["server"]["test_loss"] != runs["none"]["test_loss"]  # the inputs were augmented
  bad = tiny_config("le", "block")
  bad.data.augment, bad.data.augment_ciphertexts = False, True
  with pytest.raises(ValueError, match="le is a block cipher"):
    train_and_evaluate(bad, str(tmp_path / "le"))


def test_the_servers_augmentation_follows_the_seed_and_the_step():
  config = tiny_config("pe", "pixel")
  config.data.augment, config.data.augment_ciphertexts = False, True
  augment = trainer._ciphertext_augmentation(config, _encoder("pe", True))
  x = jnp.asarray(_images((8, 12, 12, 1), seed=4), jnp.float32)
  np.testing.assert_array_equal(augment(3, x), augment(3, x))  # resumable: (seed, step) decide
  assert not np.array_equal(augment(3, x), augment(4, x))
  config.seed = 1
  other_seed = trainer._ciphertext_augmentation(config, _encoder("pe", True))
  assert not np.array_equal(augment(3, x), other_seed(3, x))
