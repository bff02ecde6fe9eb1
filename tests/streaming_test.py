"""Data read on demand (lie_jax.data.lazy), per-process batch parts, and what a run logs.

Oracles: numpy indexing of the same arrays held in memory, the unsharded
batch, and a run on in-memory data; peak RSS of a fresh process.
"""

import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from lie_jax import data
from lie_jax import keys
from lie_jax.data import lazy
from lie_jax.owner import dataset as owner_dataset
from tests.training_test import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _arrays(rng, n, hw=(6, 5), channels=1):
  return rng.integers(0, 256, (n, *hw, channels), dtype=np.uint8)


@pytest.mark.parametrize("key", [3, -1, slice(2, 9, 3), slice(None), [4, 1, 1, 7, 0],
                                 np.array([], np.int64), (slice(1, 4), Ellipsis, 0),
                                 (Ellipsis, 0), (2, slice(None), 1)])
def test_npy_rows_index_like_numpy(tmp_path, key):
  images = _arrays(np.random.default_rng(0), 10)
  np.save(tmp_path / "x.npy", images)
  rows = lazy.NpyRows.from_npy(tmp_path / "x.npy")
  assert rows.shape == images.shape and rows.dtype == np.uint8 and len(rows) == 10
  np.testing.assert_array_equal(rows[key], images[key])
  np.testing.assert_array_equal(np.asarray(rows), images)
  mask = np.arange(10) % 3 == 0
  np.testing.assert_array_equal(rows[mask], images[mask])
  with pytest.raises(IndexError):
    rows[np.array([10])]


def test_npy_rows_refuse_what_they_cannot_read(tmp_path):
  np.save(tmp_path / "f.npy", np.zeros((3, 4, 4), np.float32))
  with pytest.raises(ValueError, match="uint8"):
    lazy.NpyRows.from_npy(tmp_path / "f.npy")
  np.save(tmp_path / "t.npy", np.zeros((30, 4, 4), np.uint8))
  raw = (tmp_path / "t.npy").read_bytes()
  (tmp_path / "t.npy").write_bytes(raw[:-100])
  with pytest.raises(ValueError, match="truncated"):
    lazy.NpyRows.from_npy(tmp_path / "t.npy")


@pytest.mark.parametrize("compressed", [False, True])
def test_medmnist_npz_read_on_demand_equals_in_memory(tmp_path, compressed):
  rng = np.random.default_rng(1)
  arrays = {"train_images": _arrays(rng, 20)[..., 0], "train_labels": rng.integers(0, 3, (20, 1)),
            "val_images": _arrays(rng, 5)[..., 0], "val_labels": rng.integers(0, 3, (5, 1)),
            "test_images": _arrays(rng, 7)[..., 0], "test_labels": rng.integers(0, 3, (7, 1))}
  path = tmp_path / "toymnist.npz"
  (np.savez_compressed if compressed else np.savez)(path, **arrays)
  cache = tmp_path / "cache"
  eager = data.load_medmnist_npz(path, in_memory=True)
  streamed = data.load_medmnist_npz(path, in_memory=False, cache_dir=cache)
  for split in ("train", "val", "test"):
    a, b = getattr(eager, split), getattr(streamed, split)
    assert isinstance(b.images, lazy.LazyImages) and b.images.shape == a.images.shape
    np.testing.assert_array_equal(np.asarray(b.images), a.images)
    np.testing.assert_array_equal(b.labels, a.labels)
  # Stored members are read in place; compressed ones are unpacked once to the cache.
  assert cache.exists() == compressed
  assert data.load_medmnist_npz(path).train.images.__class__ is np.ndarray  # small: in memory


def _png_folder(root, rng):
  """root/train/<class>/*.png and root/test/<class>/*.tif (two formats the trainer reads)."""
  arrays = {}
  for split, suffix in (("train", ".png"), ("test", ".tif")):
    for cls in ("a", "b"):
      (root / split / cls).mkdir(parents=True)
      for k in range(4):
        image = rng.integers(0, 256, (9, 7), dtype=np.uint8)
        Image.fromarray(image).save(root / split / cls / f"{k}{suffix}")
        arrays.setdefault(split, []).append(image)
  return arrays


def test_image_folder_decoded_per_batch_equals_decoded_at_load(tmp_path):
  _png_folder(tmp_path / "scans", np.random.default_rng(2))
  eager = data.load_image_folder(tmp_path / "scans", in_memory=True)
  streamed = data.load_image_folder(tmp_path / "scans", in_memory=False)
  assert isinstance(streamed.train.images, lazy.DecodedFiles)
  for split in ("train", "test"):
    np.testing.assert_array_equal(np.asarray(getattr(streamed, split).images),
                                  getattr(eager, split).images)
  resized = data.load_image_folder(tmp_path / "scans", in_memory=False, image_size=(4, 6))
  np.testing.assert_array_equal(
      resized.test.images[np.array([3, 0])],
      data.load_image_folder(tmp_path / "scans", in_memory=True, image_size=(4, 6)).test.images[
          [3, 0]])
  # A file damaged after loading fails when its batch is read, naming it.
  victim = streamed.train.images.paths[1]
  victim.write_bytes(b"not an image")
  with pytest.raises(ValueError, match=victim.name):
    streamed.train.images[np.array([0, 1])]


def test_encrypted_dir_read_per_batch_equals_in_memory(tmp_path):
  rng = np.random.default_rng(3)
  np.savez(tmp_path / "xray.npz", train_images=_arrays(rng, 13, (8, 8))[..., 0],
           train_labels=rng.integers(0, 2, 13), test_images=_arrays(rng, 6, (8, 8))[..., 0],
           test_labels=rng.integers(0, 2, 6))
  owner_dataset.encrypt_dataset(tmp_path / "xray.npz", tmp_path / "enc",
                                secret=keys.generate_secret(), scheme="le", block_size=4,
                                shard_size=5, progress=False)
  eager = data.load_encrypted_dir(tmp_path / "enc", in_memory=True)
  streamed = data.load_encrypted_dir(tmp_path / "enc", in_memory=False)
  assert isinstance(streamed.train.images, lazy.Concatenated)  # 13 images in shards of 5
  for split in ("train", "test"):
    a, b = getattr(eager, split), getattr(streamed, split)
    np.testing.assert_array_equal(b.images[np.array([5, 4, 0, 12][:len(a.labels) // 2])],
                                  a.images[np.array([5, 4, 0, 12][:len(a.labels) // 2])])
    np.testing.assert_array_equal(np.asarray(b.images), a.images)
    np.testing.assert_array_equal(b.labels, a.labels)


def test_tfds_records_decoded_per_batch(monkeypatch):
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(4)
  images, labels = _arrays(rng, 9, (6, 6), 3), rng.integers(0, 4, 9)
  reads = []

  class Source:
    def __len__(self):
      return 9

    def __getitem__(self, i):
      reads.append(i)
      return {"image": images[i], "label": labels[i]}

  monkeypatch.setattr(tfds, "data_source",
                      lambda name, *, split, **kw: {s: Source() for s in split})
  splits = data.load_tfds("fake", in_memory=False)
  reads.clear()
  np.testing.assert_array_equal(splits.train.images[np.array([7, 2])], images[[7, 2]])
  assert sorted(reads) == [2, 7]  # only the records asked for
  np.testing.assert_array_equal(splits.test.labels, labels)


def test_carved_validation_and_resize_stay_lazy():
  streamed = data.load_dataset("pneumoniamnist", in_memory=False, image_size=32)
  eager = data.load_dataset("pneumoniamnist", image_size=32)
  cut = lambda s: data.carve_validation(s._replace(val=None), fraction=0.1, seed=5)[0]
  a, b = cut(eager), cut(streamed)
  assert isinstance(b.val.images, lazy.LazyImages) and isinstance(b.train.images,
                                                                  lazy.LazyImages)
  for split in ("train", "val"):
    idx = np.array([0, 17, len(getattr(a, split).labels) - 1])
    np.testing.assert_array_equal(getattr(b, split).images[idx], getattr(a, split).images[idx])


# ---------------------------------------------------------------------------
# Per-process parts of every global batch.


class _Counting(lazy.LazyImages):
  def __init__(self, images):
    super().__init__(images.shape)
    self.images, self.read = images, []

  def _read(self, index):
    self.read.extend(index.tolist())
    return self.images[index]


def test_each_shard_reads_only_its_part_and_the_parts_make_the_batch():
  images = _arrays(np.random.default_rng(6), 40, (4, 4))
  labels = np.arange(40, dtype=np.int32) % 3
  full = next(data.train_batches(data.ArrayDataset(images, labels), batch_size=8, seed=2,
                                 start_step=7))
  parts = []
  for i in range(4):
    counting = _Counting(images)
    batches = data.train_batches(data.ArrayDataset(counting, labels), batch_size=8, seed=2,
                                 start_step=7, shard_index=i, shard_count=4)
    parts.append(next(batches))
    del batches
    assert set(parts[-1]["index"].tolist()) <= set(counting.read)
  for key in ("image", "label", "index"):
    np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), full[key])
  assert all(len(p["index"]) == 2 for p in parts)
  eval_full = list(data.eval_batches(data.ArrayDataset(images, labels), batch_size=12))
  eval_parts = [list(data.eval_batches(data.ArrayDataset(images, labels), batch_size=12,
                                       shard_index=i, shard_count=2)) for i in range(2)]
  for k, batch in enumerate(eval_full):
    for key in ("image", "label", "index", "mask"):
      np.testing.assert_array_equal(
          np.concatenate([eval_parts[0][k][key], eval_parts[1][k][key]]), batch[key])
  with pytest.raises(ValueError, match="not divisible"):
    data.train_batches(data.ArrayDataset(images, labels), batch_size=6, seed=0, shard_count=4)
  with pytest.raises(ValueError, match="shard_index"):
    data.eval_batches(data.ArrayDataset(images, labels), batch_size=8, shard_index=2,
                      shard_count=2)


# ---------------------------------------------------------------------------
# Memory: a split four times larger than the pipeline's share is never held.

_RSS_SCRIPT = r"""
import sys, numpy as np
from lie_jax import data

def status(field):  # kB, Linux
  for line in open("/proc/self/status"):
    if line.startswith(field + ":"):
      return int(line.split()[1]) * 1024

def reset_peak():  # VmHWM := VmRSS (Linux >= 4.0); sampled peaks otherwise
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
  except OSError:
    pass

path, in_memory = sys.argv[1], {"auto": None, "yes": True}[sys.argv[2]]
reset_peak()
base = status("VmRSS")
splits = data.load_dataset(path=path, in_memory=in_memory)
seen, sampled = 0, 0
batches = data.train_batches(splits.train, batch_size=64, seed=0)
for _ in range(len(splits.train.labels) // 64):
  seen += int(next(batches)["image"][:, ::37, ::41].sum() >= 0)
  sampled = max(sampled, status("VmRSS"))
peak = max(sampled, status("VmHWM"))
print(peak - base, type(splits.train.images).__name__, seen)
"""


def _write_stored_npz(path, n, hw):
  """A MedMNIST-layout .npz of n grayscale images, written in chunks (never all in memory)."""
  rng = np.random.default_rng(0)
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
    with archive.open("train_images.npy", "w", force_zip64=True) as f:
      np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                               "shape": (n, *hw)})
      for start in range(0, n, 1000):
        f.write(rng.integers(0, 256, (min(1000, n - start), *hw), dtype=np.uint8).tobytes())
    for name, count in (("train_labels", n), ("test_images", 4), ("test_labels", 4)):
      with archive.open(f"{name}.npy", "w") as f:
        shape = (count, *hw) if name.endswith("images") else (count,)
        np.lib.format.write_array(f, np.zeros(shape, np.uint8 if "images" in name else np.int64))


def test_a_split_larger_than_memory_budget_streams_with_flat_rss(tmp_path):
  """Pipeline over 8000 images of 224x224 (401 MB, above IN_MEMORY_BYTES): it reads them per
  batch, and its peak RSS grows by far less than the data; loading them fully does not."""
  path = tmp_path / "big.npz"
  _write_stored_npz(path, 8000, (224, 224))
  dataset_bytes = 8000 * 224 * 224

  def grow(mode):
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path), mode], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout.split()
    return int(out[0]), out[1], int(out[2])

  grown, kind, seen = grow("auto")
  assert kind == "NpyRows" and seen == 8000 // 64
  assert grown < dataset_bytes / 4, f"streaming grew RSS by {grown / 2**20:.0f} MiB"
  grown_eager, kind, _ = grow("yes")
  assert kind == "ndarray" and grown_eager > dataset_bytes * 0.9  # the oracle: it can fail


# ---------------------------------------------------------------------------
# Training on streamed data, and what a run logs.


def _events(directory):
  """(tag, step, value) of every scalar in a TensorBoard event directory, read with an
  independent TFRecord parser (length, crc, payload, crc) and the Event protobuf."""
  from tensorboardX.proto import event_pb2
  out = []
  for name in sorted(os.listdir(directory)):
    raw = (directory / name).read_bytes()
    pos = 0
    while pos < len(raw):
      (length,) = struct.unpack("<Q", raw[pos:pos + 8])
      payload = raw[pos + 12:pos + 12 + length]
      pos += 12 + length + 4
      event = event_pb2.Event.FromString(payload)
      for value in event.summary.value:
        out.append((value.tag, event.step, value.simple_value))
  return out


def test_training_on_streamed_data_equals_in_memory_and_logs_for_people(tmp_path, capsys):
  from lie_jax.training import train_and_evaluate
  results = {}
  for mode in (True, False):
    config = tiny_config("le", "block")
    config.data.in_memory = mode
    config.train.progress_bar = True  # stderr is captured here: not a terminal
    results[mode] = train_and_evaluate(config, str(tmp_path / str(mode)))
  for k in ("test_accuracy", "test_auc", "test_loss", "best_val_accuracy"):
    assert results[False][k] == results[True][k], k
  err = capsys.readouterr().err
  lines = [l for l in err.splitlines() if l.startswith("train le: step")]
  assert any(l.startswith("train le: step 6/6 (100%) | loss ") and "img/s" in l and "eta" in l
             for l in lines), err[-2000:]
  assert any(l.startswith("train le: step 3/6 eval | val_accuracy ") for l in lines)
  assert "\r" not in err  # no carriage-return bar in a log file
  workdir = tmp_path / "False"
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_losses = {r["step"]: r["train_loss"] for r in records if "val_loss" not in r}
  scalars = _events(workdir / "tensorboard")
  board_losses = {step: v for tag, step, v in scalars if tag == "train/loss"}
  assert sorted(board_losses) == sorted(train_losses) == [1, 2, 3, 4, 5, 6]
  for step, loss in train_losses.items():
    assert board_losses[step] == pytest.approx(loss, rel=1e-6)
  val = {step: v for tag, step, v in scalars if tag == "val/accuracy"}
  evals = {r["step"]: r["val_accuracy"] for r in records if "val_loss" in r}
  assert val.keys() == evals.keys() == {3, 6}
  assert all(val[s] == pytest.approx(evals[s], rel=1e-6) for s in evals)
