"""lie_jax.data: loaders on the bundled and on small generated files, batches, augmentation.

Expectations are computed independently of the code under test: from the
documented class counts, from arrays written by the test itself, from the
documented epoch order (`np.random.default_rng([seed, 0, epoch])`), and from a
per-image np.pad reference for the augmentation. Nothing touches the network.
"""

import hashlib
import inspect
import io
import itertools
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest
from PIL import Image

from lie_jax import data
from lie_jax.data import sources

# ---------------------------------------------------------------------------
# The bundled PneumoniaMNIST.


def test_bundled_pneumoniamnist_shapes_and_class_counts():
  splits = data.load_dataset("pneumoniamnist")
  assert splits.name == "pneumoniamnist"
  assert splits.label_names == ("normal", "pneumonia") and splits.num_classes == 2
  assert splits.image_shape == (28, 28, 1)
  expected = {"train": (4708, [1214, 3494]), "val": (524, [135, 389]),
              "test": (624, [234, 390])}
  for split, (n, counts) in expected.items():
    ds = getattr(splits, split)
    assert ds.images.shape == (n, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (n,) and ds.labels.dtype == np.int32
    assert np.bincount(ds.labels).tolist() == counts
  # Same pixels as a plain numpy read of the shipped file.
  with np.load(data.bundled_path()) as raw:
    np.testing.assert_array_equal(splits.test.images[..., 0], raw["test_images"])
    np.testing.assert_array_equal(splits.train.labels, raw["train_labels"][:, 0])


def test_bundled_path_and_attribution_ship_with_the_package():
  path = data.bundled_path("pneumoniamnist")
  assert path.name == "pneumoniamnist.npz" and path.is_file()
  notice = (path.parent / "PNEUMONIAMNIST.md").read_text()
  for credit in ("Scientific Data", "Kermany", "Cell", "CC BY 4.0"):
    assert credit in notice
  with pytest.raises(ValueError, match="no bundled dataset 'cifar10'"):
    data.bundled_path("cifar10")


# ---------------------------------------------------------------------------
# MedMNIST .npz files.


def _medmnist_arrays(rng, *, n=(12, 4, 6), hw=(5, 7), channels=None, with_val=True,
                     num_classes=3):
  arrays = {}
  for split, count in zip(("train", "val", "test"), n):
    if split == "val" and not with_val:
      continue
    shape = (count, *hw) + ((channels,) if channels else ())
    arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
    arrays[f"{split}_labels"] = rng.integers(0, num_classes, (count, 1), dtype=np.uint8)
  return arrays


def test_load_medmnist_npz_grayscale(tmp_path):
  arrays = _medmnist_arrays(np.random.default_rng(0))
  arrays["train_labels"][0] = 2  # every class present in train
  path = tmp_path / "toymnist.npz"
  np.savez(path, **arrays)
  splits = data.load_medmnist_npz(path)
  assert splits.name == "toymnist" and splits.label_names == ("0", "1", "2")
  for split in ("train", "val", "test"):
    ds = getattr(splits, split)
    np.testing.assert_array_equal(ds.images, arrays[f"{split}_images"][..., None])
    assert ds.labels.dtype == np.int32
    np.testing.assert_array_equal(ds.labels, arrays[f"{split}_labels"][:, 0].astype(np.int32))


def test_load_medmnist_npz_rgb_without_val_and_size_suffix(tmp_path):
  arrays = _medmnist_arrays(np.random.default_rng(1), channels=3, with_val=False,
                            num_classes=2)
  path = tmp_path / "pneumoniamnist_64.npz"
  np.savez_compressed(path, **arrays)
  splits = data.load_dataset(path=path)  # auto: .npz
  assert splits.val is None and splits.train.images.shape == (12, 5, 7, 3)
  assert splits.name == "pneumoniamnist" and splits.label_names == ("normal", "pneumonia")


def test_load_medmnist_npz_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere.npz"):
    data.load_medmnist_npz(tmp_path / "nowhere.npz")

  text = tmp_path / "text.npz"
  text.write_text("not an archive")
  with pytest.raises(ValueError, match="text.npz"):
    data.load_medmnist_npz(text)

  good = tmp_path / "good.npz"
  np.savez(good, **_medmnist_arrays(np.random.default_rng(2)))
  truncated = tmp_path / "truncated.npz"
  truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
  with pytest.raises(ValueError, match="truncated.npz"):
    data.load_medmnist_npz(truncated)

  single = tmp_path / "single.npz"
  with open(single, "wb") as f:
    np.save(f, np.zeros(3))
  with pytest.raises(ValueError, match="single array"):
    data.load_medmnist_npz(single)

  arrays = _medmnist_arrays(np.random.default_rng(3))
  missing = tmp_path / "missing.npz"
  np.savez(missing, **{k: v for k, v in arrays.items() if k not in ("test_labels",
                                                                    "val_images")})
  with pytest.raises(ValueError, match=r"missing the MedMNIST arrays \['test_labels', "
                     r"'val_images'\]"):
    data.load_medmnist_npz(missing)

  for key, bad, message in [
      ("train_images", arrays["train_images"].astype(np.float32), "uint8"),
      ("train_labels", np.zeros((12, 14), np.uint8), "multi-label"),
      ("test_labels", np.zeros((5, 1), np.uint8), "6 images but 5 labels"),
      ("val_images", np.zeros((4, 6, 6), np.uint8), "differ in shape"),
      ("train_images", np.zeros((12, 5, 7, 4), np.uint8), "C = 1 or 3"),
  ]:
    path = tmp_path / f"bad_{key}.npz"
    np.savez(path, **{**arrays, key: bad})
    with pytest.raises(ValueError, match=message):
      data.load_medmnist_npz(path)

  # Named pneumoniamnist, but with a third class: the two label names cannot cover it.
  path = tmp_path / "pneumoniamnist.npz"
  np.savez(path, **arrays)
  arrays["train_labels"][0] = 2
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match="label 2 found but only 2 classes"):
    data.load_medmnist_npz(path)


# ---------------------------------------------------------------------------
# Image folders.


def _write_image(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def _gray(value, hw=(6, 5)):
  return np.full(hw, value, np.uint8)


def test_load_image_folder_flat_layout_labels_by_sorted_class_name(tmp_path):
  # Pixel value 10 * class + i identifies every file.
  written = {}
  for label, cls in enumerate(["benign", "malignant", "normal"]):
    for i in range(label + 1):
      written[(label, i)] = _gray(10 * label + i)
      _write_image(tmp_path / "scans" / cls / f"img{i}.png", written[(label, i)])
  (tmp_path / "scans" / "notes.txt").write_text("ignored")
  (tmp_path / "scans" / "normal" / "readme.txt").write_text("ignored")
  splits = data.load_dataset(path=tmp_path / "scans")  # auto: folder
  assert splits.name == "scans" and splits.label_names == ("benign", "malignant", "normal")
  assert splits.val is None and splits.test is None
  assert splits.train.images.shape == (6, 6, 5, 1) and splits.train.images.dtype == np.uint8
  for image, label in zip(splits.train.images, splits.train.labels):
    value = int(image[0, 0, 0])
    assert value // 10 == label
    np.testing.assert_array_equal(image[..., 0], written[(label, value % 10)])


def test_load_image_folder_split_layout_png_and_jpeg(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
  _write_image(tmp_path / "train" / "a" / "0.png", rgb)
  _write_image(tmp_path / "train" / "b" / "0.jpg", rgb)
  _write_image(tmp_path / "train" / "b" / "1.JPEG", rgb)
  _write_image(tmp_path / "val" / "b" / "0.png", rgb)  # val lacks class a: fine
  _write_image(tmp_path / "test" / "a" / "0.png", _gray(7, (8, 8)))
  splits = data.load_image_folder(tmp_path)
  assert splits.label_names == ("a", "b")
  assert splits.train.labels.tolist() == [0, 1, 1] and splits.val.labels.tolist() == [1]
  # Mixed gray and RGB files: everything becomes RGB; PNG is lossless.
  assert splits.image_shape == (8, 8, 3)
  np.testing.assert_array_equal(splits.train.images[0], rgb)
  np.testing.assert_array_equal(splits.test.images[0], np.full((8, 8, 3), 7, np.uint8))
  # JPEG is lossy: compare with Pillow's own decode of the file.
  np.testing.assert_array_equal(splits.train.images[1],
                                np.asarray(Image.open(tmp_path / "train" / "b" / "0.jpg")))

  gray = data.load_image_folder(tmp_path, grayscale=True)
  assert gray.image_shape == (8, 8, 1)
  np.testing.assert_array_equal(gray.train.images[0, ..., 0],
                                np.asarray(Image.fromarray(rgb).convert("L")))
  resized = data.load_image_folder(tmp_path, image_size=(4, 6))
  assert resized.image_shape == (4, 6, 3) and resized.test.images.shape == (1, 4, 6, 3)


def test_load_image_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="absent"):
    data.load_image_folder(tmp_path / "absent")

  mixed = tmp_path / "mixed"
  _write_image(mixed / "a" / "small.png", _gray(1, (4, 4)))
  _write_image(mixed / "a" / "wide.png", _gray(1, (4, 9)))
  _write_image(mixed / "b" / "also_small.png", _gray(1, (4, 4)))
  with pytest.raises(ValueError, match=r"4x4 \(e.g. .*small.png\); 4x9 \(e.g. .*wide.png\)"):
    data.load_image_folder(mixed)
  assert data.load_image_folder(mixed, image_size=4).image_shape == (4, 4, 1)

  corrupt = tmp_path / "corrupt"
  _write_image(corrupt / "a" / "ok.png", _gray(1))
  (corrupt / "b").mkdir()
  (corrupt / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  with pytest.raises(ValueError, match="broken.png"):
    data.load_image_folder(corrupt)

  truncated = tmp_path / "truncated"
  _write_image(truncated / "a" / "ok.png", _gray(1, (64, 64)))
  buffer = io.BytesIO()
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(
      buffer, format="PNG")
  (truncated / "a" / "cut.png").write_bytes(buffer.getvalue()[:300])
  with pytest.raises(ValueError, match="cut.png"):
    data.load_image_folder(truncated)

  strays = tmp_path / "strays"
  _write_image(strays / "train" / "a" / "0.png", _gray(1))
  _write_image(strays / "extra" / "0.png", _gray(1))
  with pytest.raises(ValueError, match=r"mixes split folders \['train'\] with other folders "
                     r"\['extra'\]"):
    data.load_image_folder(strays)

  new_class = tmp_path / "new_class"
  _write_image(new_class / "train" / "a" / "0.png", _gray(1))
  _write_image(new_class / "test" / "z" / "0.png", _gray(1))
  with pytest.raises(ValueError, match="class 'z' is not among the training classes"):
    data.load_image_folder(new_class)

  empty = tmp_path / "empty"
  (empty / "a").mkdir(parents=True)
  with pytest.raises(ValueError, match="holds no"):
    data.load_image_folder(empty)


# ---------------------------------------------------------------------------
# TFDS (no TensorFlow, no data on disk).


class _FakeSource:
  """Behaves like a tfds random-access source: len, integer indexing, records as dicts."""

  def __init__(self, images, labels):
    self._records = [{"image": image, "label": np.int64(label)}
                     for image, label in zip(images, labels)]

  def __len__(self):
    return len(self._records)

  def __getitem__(self, i):
    return self._records[i]


@pytest.mark.parametrize("as_dict", [True, False])
def test_load_tfds_through_a_fake_data_source(monkeypatch, tmp_path, as_dict):
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(0)
  arrays = {split: (rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8),
                    rng.integers(0, 4, n)) for split, n in [("train", 9), ("test", 5)]}
  calls = []

  def fake_data_source(name, *, split=None, data_dir=None, download=True, **kwargs):
    calls.append((name, tuple(split), data_dir, download))
    fakes = {s: _FakeSource(*arrays[s]) for s in split}
    return fakes if as_dict else [fakes[s] for s in split]

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  splits = data.load_dataset("fake_ds", source="tfds", data_dir=tmp_path)
  assert calls == [("fake_ds", ("train", "test"), tmp_path, False)]
  assert splits.name == "fake_ds" and splits.val is None and splits.label_names == (
      "0", "1", "2", "3")[:max(arrays["train"][1].max(), arrays["test"][1].max()) + 1]
  for split in ("train", "test"):
    np.testing.assert_array_equal(getattr(splits, split).images, arrays[split][0])
    np.testing.assert_array_equal(getattr(splits, split).labels, arrays[split][1])
    assert getattr(splits, split).labels.dtype == np.int32


def test_load_tfds_through_tfds_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=6):
    splits = data.load_tfds("mnist", splits=("train", "test", "test"))
  assert splits.train.images.shape == (6, 28, 28, 1) and splits.val.images.shape[0] == 6
  assert splits.num_classes == 10 and splits.label_names[:2] == ("0", "1")


def test_load_tfds_errors_name_the_data_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    data.load_tfds("mnist", data_dir=tmp_path)
  with pytest.raises(FileNotFoundError, match="tfds build"):
    data.load_dataset("mnist", data_dir=tmp_path)  # auto: not bundled, no path -> tfds
  with pytest.raises(ValueError, match="no dataset named 'no_such_dataset_xyz'"):
    data.load_tfds("no_such_dataset_xyz", data_dir=tmp_path)
  with pytest.raises(ValueError, match="splits"):
    data.load_tfds("mnist", splits=("train",))


def test_load_dataset_source_errors(tmp_path):
  with pytest.raises(ValueError, match="source must be one of"):
    data.load_dataset(source="csv")
  with pytest.raises(FileNotFoundError, match="nothing_here"):
    data.load_dataset(path=tmp_path / "nothing_here")
  (tmp_path / "file.csv").write_text("a,b")
  with pytest.raises(ValueError, match="cannot tell how to load"):
    data.load_dataset(path=tmp_path / "file.csv")
  with pytest.raises(ValueError, match="needs path"):
    data.load_dataset(source="folder")


# ---------------------------------------------------------------------------
# download_medmnist with a fake network.


class _FakeResponse(io.BytesIO):

  def __init__(self, payload):
    super().__init__(payload)
    self.headers = {"Content-Length": str(len(payload))}


def _npz_bytes():
  buffer = io.BytesIO()
  np.savez(buffer, **_medmnist_arrays(np.random.default_rng(5)))
  return buffer.getvalue()


def test_download_medmnist_verifies_md5_and_writes_atomically(monkeypatch, tmp_path):
  payload = _npz_bytes()
  requested = []

  def fake_urlopen(url, timeout=None):
    requested.append(url)
    return _FakeResponse(payload)

  monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
  monkeypatch.setitem(sources.MEDMNIST_MD5, "toymnist", hashlib.md5(payload).hexdigest())
  path = data.download_medmnist("toymnist", tmp_path / "cache")
  assert requested == ["https://zenodo.org/records/10519652/files/toymnist.npz?download=1"]
  assert path == tmp_path / "cache" / "toymnist.npz" and path.read_bytes() == payload
  assert sorted(p.name for p in path.parent.iterdir()) == ["toymnist.npz"]
  assert data.load_dataset(path=path).train.images.shape == (12, 5, 7, 1)
  data.download_medmnist("toymnist", tmp_path / "cache")  # present and verified: no request
  assert len(requested) == 1

  monkeypatch.setitem(sources.MEDMNIST_MD5, "toymnist", "0" * 32)
  with pytest.raises(ValueError, match="MD5"):
    data.download_medmnist("toymnist", tmp_path / "other")
  assert list((tmp_path / "other").iterdir()) == []  # no partial or temporary file left


def test_download_medmnist_unknown_md5_warns_and_offline_error(monkeypatch, tmp_path):
  payload = _npz_bytes()
  monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _FakeResponse(payload))
  with pytest.warns(UserWarning, match="no published MD5"):
    path = data.download_medmnist("unlistedmnist", tmp_path, size=64)
  assert path.name == "unlistedmnist_64.npz" and path.read_bytes() == payload

  def offline(url, timeout=None):
    raise urllib.error.URLError("Temporary failure in name resolution")

  monkeypatch.setattr(urllib.request, "urlopen", offline)
  with pytest.raises(ConnectionError, match="pass its path"):
    data.download_medmnist("pneumoniamnist", tmp_path / "offline")
  assert list((tmp_path / "offline").iterdir()) == []
  assert sources.MEDMNIST_MD5["pneumoniamnist"] == "28209eda62fecd6e6a2d98b1501bb15f"


# ---------------------------------------------------------------------------
# Training and eval batches.


def _indexed_dataset(n, hw=(4, 3)):
  """Image i is filled with value i (n <= 256), label i % 3: both reveal the index."""
  images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                           (n, *hw, 1)).copy()
  return data.ArrayDataset(images, (np.arange(n) % 3).astype(np.int32))


def _take(iterator, k):
  return list(itertools.islice(iterator, k))


def test_steps_per_epoch():
  assert data.steps_per_epoch(10, 3) == 3 and data.steps_per_epoch(9, 3) == 3
  assert data.steps_per_epoch(4708, 128) == 36
  with pytest.raises(ValueError, match="larger than"):
    data.steps_per_epoch(5, 6)
  with pytest.raises(ValueError, match=">= 1"):
    data.steps_per_epoch(5, 0)


def test_train_batches_follow_the_documented_epoch_order():
  n, batch_size, seed = 23, 5, 7
  ds = _indexed_dataset(n)
  batches = _take(data.train_batches(ds, batch_size=batch_size, seed=seed), 3 * 4)
  for epoch in range(3):
    chunk = batches[4 * epoch:4 * (epoch + 1)]
    seen = np.concatenate([b["index"] for b in chunk])
    expected = np.random.default_rng([seed, 0, epoch]).permutation(n)[:20]
    np.testing.assert_array_equal(seen, expected)
    assert len(set(seen.tolist())) == 20  # no example twice within an epoch
  for b in batches:
    assert b["image"].shape == (5, 4, 3, 1) and b["image"].dtype == np.uint8
    assert b["label"].dtype == np.int32 and b["index"].dtype == np.int32
    np.testing.assert_array_equal(b["image"][:, 0, 0, 0], b["index"])  # image i holds i
    np.testing.assert_array_equal(b["label"], b["index"] % 3)


def test_train_batches_every_example_once_per_epoch_when_divisible():
  ds = _indexed_dataset(20)
  batches = _take(data.train_batches(ds, batch_size=4, seed=0), 10)
  for epoch in range(2):
    seen = np.concatenate([b["index"] for b in batches[5 * epoch:5 * (epoch + 1)]])
    assert sorted(seen.tolist()) == list(range(20))
  epoch0 = np.concatenate([b["index"] for b in batches[:5]])
  epoch1 = np.concatenate([b["index"] for b in batches[5:]])
  assert not np.array_equal(epoch0, epoch1)


def test_train_batches_determinism_and_seed_dependence():
  ds = _indexed_dataset(30)
  first = _take(data.train_batches(ds, batch_size=8, seed=1), 7)
  again = _take(data.train_batches(ds, batch_size=8, seed=1), 7)
  other = _take(data.train_batches(ds, batch_size=8, seed=2), 7)
  for a, b in zip(first, again):
    for key in ("image", "label", "index"):
      np.testing.assert_array_equal(a[key], b[key])
  assert any(not np.array_equal(a["index"], c["index"]) for a, c in zip(first, other))


@pytest.mark.parametrize("augment", [None, data.random_flip_and_shift])
def test_train_batches_start_step_equals_skipping(augment):
  ds = data.ArrayDataset(np.random.default_rng(0).integers(0, 256, (17, 6, 6, 1), np.uint8),
                         np.zeros(17, np.int32))
  run = _take(data.train_batches(ds, batch_size=4, seed=3, augment=augment), 14)
  for k in (1, 4, 5, 9):  # 4 steps per epoch: mid-epoch and epoch boundaries
    resumed = _take(data.train_batches(ds, batch_size=4, seed=3, start_step=k, augment=augment),
                    14 - k)
    for a, b in zip(run[k:], resumed):
      for key in ("image", "label", "index"):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(
        resumed[0]["index"], data.train_batch_indices(17, batch_size=4, seed=3, step=k))


def test_train_batches_augment_runs_on_the_gathered_batch():
  ds = _indexed_dataset(16, hw=(6, 6))
  ds = ds._replace(images=np.random.default_rng(1).integers(0, 256, ds.images.shape, np.uint8))
  plain = _take(data.train_batches(ds, batch_size=8, seed=0), 4)
  augmented = _take(data.train_batches(ds, batch_size=8, seed=0,
                                       augment=data.random_flip_and_shift), 4)
  changed = 0
  for p, a in zip(plain, augmented):
    np.testing.assert_array_equal(p["index"], a["index"])  # same order with or without
    changed += int((p["image"] != a["image"]).any(axis=(1, 2, 3)).sum())
  assert changed > 16
  # The documented randomness: step s augments with default_rng([seed, 1, s]).
  for step, a in enumerate(augmented):
    expected = data.random_flip_and_shift(np.random.default_rng([0, 1, step]),
                                          ds.images[a["index"]])
    np.testing.assert_array_equal(a["image"], expected)

  def bad_augment(rng, images):
    return images.astype(np.float32)

  with pytest.raises(ValueError, match="augment must return"):
    next(data.train_batches(ds, batch_size=8, seed=0, augment=bad_augment))


def test_train_batches_argument_errors():
  ds = _indexed_dataset(10)
  with pytest.raises(ValueError, match="larger than"):
    data.train_batches(ds, batch_size=11, seed=0)
  with pytest.raises(ValueError, match="seed must be >= 0"):
    data.train_batches(ds, batch_size=2, seed=-1)
  with pytest.raises(TypeError, match="uint8"):
    data.train_batches(ds._replace(images=ds.images.astype(np.float32)), batch_size=2, seed=0)
  with pytest.raises(TypeError, match="ArrayDataset"):
    data.train_batches((ds.images, ds.labels), batch_size=2, seed=0)


@pytest.mark.parametrize("n,batch_size", [(23, 5), (20, 5), (3, 8)])
def test_eval_batches_cover_every_example_once_with_mask(n, batch_size):
  ds = _indexed_dataset(n)
  batches = list(data.eval_batches(ds, batch_size=batch_size))
  assert len(batches) == -(-n // batch_size)
  for b in batches:
    assert b["image"].shape == (batch_size, 4, 3, 1) and b["mask"].dtype == bool
    np.testing.assert_array_equal(b["image"][:, 0, 0, 0], b["index"])
    np.testing.assert_array_equal(b["label"], b["index"] % 3)
  real = np.concatenate([b["index"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(real, np.arange(n))  # in order, each once
  padding = n % batch_size and batch_size - n % batch_size
  assert sum(int((~b["mask"]).sum()) for b in batches) == padding
  assert batches[-1]["mask"].tolist() == [True] * (batch_size - padding) + [False] * padding


# ---------------------------------------------------------------------------
# Augmentation.


def _reference_candidates(image, max_shift):
  """Every flip/shift of one [H, W, C] image, built with np.pad(mode='edge')."""
  h, w, _ = image.shape
  m = max_shift
  for flip in (False, True):
    source = image[:, ::-1] if flip else image
    padded = np.pad(source, ((m, m), (m, m), (0, 0)), mode="edge")
    for dy in range(-m, m + 1):
      for dx in range(-m, m + 1):
        yield (flip, dy, dx), padded[m - dy:m - dy + h, m - dx:m - dx + w]


def test_random_flip_and_shift_matches_a_per_image_reference():
  images = np.random.default_rng(0).integers(0, 256, (64, 7, 9, 3), np.uint8)
  out = data.random_flip_and_shift(np.random.default_rng(42), images, max_shift=2)
  assert out.shape == images.shape and out.dtype == np.uint8
  seen = []
  for image, result in zip(images, out):
    matches = [params for params, candidate in _reference_candidates(image, 2)
               if np.array_equal(candidate, result)]
    assert len(matches) == 1
    seen.append(matches[0])
  flips = sum(flip for flip, _, _ in seen)
  assert 16 < flips < 48  # about half flipped
  assert len({(dy, dx) for _, dy, dx in seen}) > 12  # of 25 possible shifts
  again = data.random_flip_and_shift(np.random.default_rng(42), images, max_shift=2)
  np.testing.assert_array_equal(out, again)
  assert not np.array_equal(out, data.random_flip_and_shift(np.random.default_rng(43), images))


def test_random_flip_and_shift_options():
  images = np.random.default_rng(0).integers(0, 256, (8, 5, 5, 1), np.uint8)
  identity = data.random_flip_and_shift(np.random.default_rng(0), images, max_shift=0,
                                        flip=False)
  np.testing.assert_array_equal(identity, images)
  flipped_only = data.random_flip_and_shift(np.random.default_rng(0), images, max_shift=0)
  for image, result in zip(images, flipped_only):
    assert np.array_equal(result, image) or np.array_equal(result, image[:, ::-1])
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    data.random_flip_and_shift(np.random.default_rng(0), images[0])


def test_augmentation_commutes_with_grayscale_pe():
  import jax
  from lie_jax.ciphers import pe
  images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), np.uint8)
  cipher_key = pe.generate_key(jax.random.key(0), image_shape=(8, 8, 1))
  ciphertexts = np.asarray(pe.encrypt(cipher_key, images))
  mask = np.asarray(pe.encrypt(cipher_key, np.zeros_like(images)))  # grayscale PE: x ^ mask
  np.testing.assert_array_equal(ciphertexts, images ^ mask)

  def augment(x):
    return data.random_flip_and_shift(np.random.default_rng(9), x, max_shift=3)

  # Augmenting the ciphertext = encrypting the augmented image under the moved key.
  np.testing.assert_array_equal(augment(ciphertexts), augment(images) ^ augment(mask))


# ---------------------------------------------------------------------------
# Public API hygiene.


def test_public_api_is_documented_with_keyword_only_options():
  for name in data.__all__:
    obj = getattr(data, name)
    if callable(obj):
      assert obj.__doc__, f"lie_jax.data.{name} has no docstring"
  for fn, positional in [(data.train_batches, ["dataset"]), (data.eval_batches, ["dataset"]),
                         (data.load_tfds, ["name"]), (data.load_dataset, ["name"]),
                         (data.load_image_folder, ["root"]),
                         (data.random_flip_and_shift, ["rng", "images"])]:
    params = list(inspect.signature(fn).parameters.values())
    assert [p.name for p in params[:len(positional)]] == positional
    assert all(p.kind == p.KEYWORD_ONLY for p in params[len(positional):]), fn.__name__


def test_no_warnings_when_loading_bundled_data():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    data.load_dataset()


def test_labels_are_range_checked_before_the_int32_cast():
  images = np.zeros((2, 4, 4), np.uint8)
  with pytest.raises(ValueError, match="below"):
    data.as_array_dataset(images, np.array([0, 2 ** 32], np.int64))  # would wrap to class 0
  assert data.as_array_dataset(images, np.array([0, 5], np.int64)).labels.tolist() == [0, 5]
