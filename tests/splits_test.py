"""Honest splits: validation carved from train when a source has none; the test split never
selects a checkpoint; train/val-only and flat folder layouts train end to end."""

import json

import numpy as np
import pytest
from PIL import Image

from lie_jax import data
from tests.training_test import tiny_config


def _numbered(n):
  """n 2x2 images whose first pixel is their number: a split we can trace."""
  images = np.zeros((n, 2, 2, 1), np.uint8)
  images[:, 0, 0, 0] = np.arange(n)
  return data.ArrayDataset(images, (np.arange(n) % 2).astype(np.int32))


def _splits(train, val=None, test=None):
  return data.DatasetSplits(train, val, test, 2, ("a", "b"), "numbered")


def test_carve_validation_takes_a_seeded_disjoint_share_of_train():
  carved, where = data.carve_validation(_splits(_numbered(40)), fraction=0.25, seed=3)
  val_ids = carved.val.images[:, 0, 0, 0].tolist()
  train_ids = carved.train.images[:, 0, 0, 0].tolist()
  assert len(val_ids) == 10 and len(train_ids) == 30
  assert sorted(val_ids + train_ids) == list(range(40))  # a partition of train
  assert carved.val.labels.tolist() == [i % 2 for i in val_ids]  # labels travel with images
  assert "carved from train (10 of 40 images" in where and "seed 3" in where
  again, _ = data.carve_validation(_splits(_numbered(40)), fraction=0.25, seed=3)
  assert again.val.images[:, 0, 0, 0].tolist() == val_ids
  other, _ = data.carve_validation(_splits(_numbered(40)), fraction=0.25, seed=4)
  assert other.val.images[:, 0, 0, 0].tolist() != val_ids


def test_carve_validation_keeps_a_real_val_split_and_refuses_what_it_cannot_do():
  own = _splits(_numbered(4), val=_numbered(2))
  assert data.carve_validation(own, fraction=0.1, seed=0) == (own, "val")
  tiny, _ = data.carve_validation(_splits(_numbered(3)), fraction=0.01, seed=0)
  assert len(tiny.val.labels) == 1 and len(tiny.train.labels) == 2
  with pytest.raises(ValueError, match="val_fraction must be in"):
    data.carve_validation(_splits(_numbered(4)), fraction=0.0, seed=0)
  with pytest.raises(ValueError, match="too few to carve"):
    data.carve_validation(_splits(_numbered(1)), fraction=0.5, seed=0)


def _folder(root, splits):
  """Class folders of 28x28 X-rays (real ones, from the bundled set) under root/<split>/."""
  xrays = data.load_dataset("pneumoniamnist").train
  k = 0
  for split, n in splits.items():
    for i in range(n):
      label = int(xrays.labels[k])
      out = (root / split if split else root) / ("normal", "pneumonia")[label] / f"{k}.png"
      out.parent.mkdir(parents=True, exist_ok=True)
      Image.fromarray(xrays.images[k, ..., 0]).save(out)
      k += 1


def _run(path, workdir, monkeypatch):
  from lie_jax.training import trainer
  seen = []
  evaluate = trainer._evaluate  # pylint: disable=protected-access

  def spy(model, eval_step, mesh, split, name, *args, **kwargs):
    seen.append(name)
    return evaluate(model, eval_step, mesh, split, name, *args, **kwargs)

  monkeypatch.setattr(trainer, "_evaluate", spy)
  config = tiny_config(num_steps=4, eval_every_steps=2)
  config.data.path = str(path)
  config.cipher.allow_seed_keys = True
  return trainer.train_and_evaluate(config, str(workdir)), seen


@pytest.mark.parametrize("layout", ["flat", "train_val", "train_test"])
def test_folder_layouts_train_end_to_end_and_never_select_on_test(tmp_path, monkeypatch,
                                                                   layout):
  sizes = {"flat": {"": 60}, "train_val": {"train": 50, "val": 20},
           "train_test": {"train": 50, "test": 20}}[layout]
  _folder(tmp_path / "scans", sizes)
  results, seen = _run(tmp_path / "scans", tmp_path / "work", monkeypatch)
  # Every evaluation during training is on val; test (where there is one) only at the end.
  has_test = layout == "train_test"
  assert seen == ["val", "val"] + (["test"] if has_test else [])
  if layout == "train_val":
    assert results["selected_on"] == "val"
  else:
    assert results["selected_on"].startswith("val carved from train (")
  assert results["test_split"] is has_test
  assert (results["test_accuracy"] is None) is not has_test
  on_disk = json.loads((tmp_path / "work" / "results.json").read_text())
  assert on_disk["selected_on"] == results["selected_on"]
  lines = [json.loads(l) for l in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "val_accuracy" in l] == [2, 4]
