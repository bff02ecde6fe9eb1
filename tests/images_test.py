"""lie_jax.data.images: the one image decoder of the training loaders and the data owner's tools.

Oracles: Pillow's own decode and resize of each file, written out step by step.
"""

import io

import chex
import numpy as np
import pytest
from PIL import Image

from lie_jax import data
from lie_jax.data import images
from lie_jax.owner import inputs


def _save(path, array, **kwargs):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path, **kwargs)
  return path


@pytest.fixture
def rgb():
  return np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_read_image_matches_pillow_decode_convert_and_resize(tmp_path, rgb, suffix):
  path = _save(tmp_path / f"scan{suffix}", rgb)
  pil = Image.open(path)
  as_rgb = np.asarray(pil.convert("RGB"))
  as_gray = np.asarray(pil.convert("L"))
  resized_gray = np.asarray(pil.convert("L").resize((7, 5), Image.Resampling.BILINEAR))

  decoded = images.read_image(path)
  chex.assert_shape(decoded.image, (10, 12, 3))
  chex.assert_type(decoded.image, np.uint8)
  np.testing.assert_array_equal(decoded.image, as_rgb)
  assert decoded.dicom_window is None
  np.testing.assert_array_equal(images.read_image(path, channels=1).image[..., 0], as_gray)
  # Channels first, then the resize.
  small = images.read_image(path, channels=1, size=(5, 7)).image
  chex.assert_shape(small, (5, 7, 1))
  np.testing.assert_array_equal(small[..., 0], resized_gray)
  assert images.probe_image(path) == images.ImageInfo(10, 12, 3)


def test_grayscale_and_palette_files_keep_their_channels_unless_asked(tmp_path, rgb):
  gray = rgb[..., 0]
  path = _save(tmp_path / "gray.png", gray)
  np.testing.assert_array_equal(images.read_image(path).image[..., 0], gray)
  assert images.probe_image(path).channels == 1
  np.testing.assert_array_equal(images.read_image(path, channels=3).image,
                                np.repeat(gray[..., None], 3, axis=-1))
  palette = Image.fromarray(rgb).convert("P")
  palette.save(tmp_path / "palette.png")
  np.testing.assert_array_equal(images.read_image(tmp_path / "palette.png").image,
                                np.asarray(palette.convert("RGB")))


def test_unusable_files_give_the_reason(tmp_path, rgb):
  (tmp_path / "notes.png").write_text("not an image\n")
  with pytest.raises(ValueError, match="not an image file"):
    images.read_image(tmp_path / "notes.png")
  with pytest.raises(ValueError, match="not an image file"):
    images.probe_image(tmp_path / "notes.png")
  buffer = io.BytesIO()
  Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64), np.uint8)).save(
      buffer, "PNG")
  (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:300])
  with pytest.raises(ValueError, match="truncated or corrupt"):
    images.read_image(tmp_path / "cut.png")
  _save(tmp_path / "deep.png", np.zeros((4, 4), np.uint16))
  with pytest.raises(ValueError, match="16-bit"):
    images.read_image(tmp_path / "deep.png")
  with pytest.raises(ValueError, match="channels must be"):
    images.read_image(tmp_path / "deep.png", channels=2)


def test_parse_image_size_and_resize():
  assert images.parse_image_size(None) is None
  assert images.parse_image_size(8) == (8, 8) and images.parse_image_size((4, 6)) == (4, 6)
  for bad in (0, (4,), (4, 0)):
    with pytest.raises(ValueError, match="image_size"):
      images.parse_image_size(bad)
  x = np.random.default_rng(2).integers(0, 256, (6, 6, 1), dtype=np.uint8)
  assert images.resize(x, (6, 6)) is x
  expected = np.asarray(Image.fromarray(x[..., 0]).resize((3, 4), Image.Resampling.BILINEAR))
  np.testing.assert_array_equal(images.resize(x, (4, 3))[..., 0], expected)


def test_window_to_uint8_is_the_dicom_linear_function():
  # PS3.3 C.11.2.1.2.1 with centre c, width w, written out independently.
  c, w = 40.0, 400.0
  x = np.linspace(-300, 400, 57)
  expected = np.where(x <= c - 0.5 - (w - 1) / 2, 0,
                      np.where(x > c - 0.5 + (w - 1) / 2, 255,
                               np.rint(((x - (c - 0.5)) / (w - 1) + 0.5) * 255)))
  np.testing.assert_array_equal(images.window_to_uint8(x, c, w), expected.astype(np.uint8))


def test_training_loader_and_owner_decode_a_folder_identically(tmp_path, rgb):
  rng = np.random.default_rng(3)
  root = tmp_path / "scans"
  _save(root / "a" / "0.png", rgb)
  _save(root / "a" / "1.tif", rng.integers(0, 256, (10, 12), dtype=np.uint8))
  _save(root / "b" / "0.jpg", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
  for size in (None, (6, 8)):
    loaded = data.load_image_folder(root, image_size=size)
    owned = inputs.read_source(root, resize_to=size)
    assert owned.failures == [] and owned.label_names == loaded.label_names
    owner_images, owner_labels = owned.splits["train"]
    np.testing.assert_array_equal(owner_images, loaded.train.images)
    np.testing.assert_array_equal(owner_labels, loaded.train.labels)
    chex.assert_shape(loaded.train.images, (3, *(size or (10, 12)), 3))
