"""Encrypted inference: a model trained by `train_and_evaluate`, applied to the owner's images.

`load_trained_model(workdir)` rebuilds the model from the training run's
results.json (its public config, number of classes, image shape, block size
and encryption parameters) and restores the best checkpoint (workdir/best/,
else the last one in workdir/checkpoints/). No key is stored there.

`predict` classifies either an encrypted dataset directory (as stored, no
key needed) or plain image files, which it first encrypts with the owner's
key exactly as the training data were encrypted: same key file (checked by
fingerprint), scheme and options; with per-image keys, the files get keys
of their own under a fresh dataset nonce (never the test split's keys).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lie_jax import keys
from lie_jax.data import encrypted_dir
from lie_jax.data import images as images_lib
from lie_jax.owner import OwnerError
from lie_jax.owner import inputs

_BATCH = 256


class TrainedModel(NamedTuple):
  """A restored classifier and what its training run recorded.

  Attributes:
    model: the NNX model in eval mode; maps [N, H, W, C] float32 in [0, 1] to
      logits [N, num_classes].
    results: the run's results.json (encryption, label_names, image_shape, ...).
    step: the checkpoint step restored.
  """

  model: Any
  results: dict[str, Any]
  step: int


def load_trained_model(checkpoint: str | os.PathLike) -> TrainedModel:
  """Restores the model of a `train_and_evaluate` run.

  Args:
    checkpoint: the run's workdir (holding results.json and best/), or its
      best/ or checkpoints/ folder.

  Raises:
    OwnerError: not a finished training workdir, or one this version cannot rebuild.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top

  from lie_jax import models  # pylint: disable=g-import-not-at-top
  from lie_jax.training import checkpoints  # pylint: disable=g-import-not-at-top

  path = Path(checkpoint)
  workdir = path.parent if path.name in ("best", "checkpoints") else path
  results_path = workdir / "results.json"
  if not results_path.is_file():
    raise OwnerError(f"{checkpoint} is not a finished training workdir (no results.json): pass "
                     "the --workdir of train.py")
  try:
    results = json.loads(results_path.read_text(encoding="utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
    raise OwnerError(f"{results_path} is not valid JSON ({encrypted_dir.printable(e)}); the "
                     "training run did not finish writing it: rerun train.py") from None
  if not isinstance(results, dict):
    raise OwnerError(f"{results_path} is not a training results object")
  missing = [k for k in ("encryption", "num_classes", "image_shape", "block_size", "config")
             if k not in results]
  if missing:
    raise OwnerError(f"{results_path} lacks {missing}: it was written by an older lie_jax; "
                     "retrain to use predict")
  check_results(results, results_path)
  config = ml_collections.ConfigDict(results["config"])
  if config.model.adaptation == "morph":
    raise OwnerError("models with the morph adaptation need the key-dependent first layer; "
                     "predict does not support them")
  # Plain JSON; unset placeholders (None) keep the backbone's defaults.
  model_options = models.set_options(results["config"]["model"].get("options"))
  try:
    model = models.build_model(
        backbone=config.model.backbone, adaptation=config.model.adaptation,
        num_classes=int(results["num_classes"]), image_shape=tuple(results["image_shape"]),
        block_size=int(results["block_size"]), rngs=nnx.Rngs(config.seed),
        adaptation_options=models.set_options(
            results["config"]["model"].get("adaptation_options")),
        **model_options)
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    raise OwnerError(f"{results_path}: cannot rebuild the model it describes "
                     f"({encrypted_dir.printable(e)[:200]})") from None
  for folder in ("best", "checkpoints"):
    if (workdir / folder).is_dir() and not (workdir / folder).is_symlink():
      ckpts = checkpoints.Checkpoints(workdir / folder)
      try:
        step = ckpts.latest_step()
        if step is not None:
          ckpts.restore(step, {"model": model})
          model.eval()
          return TrainedModel(model, results, int(step))
      except (ValueError, TypeError, KeyError, OSError) as e:
        raise OwnerError(f"{workdir / folder}: the checkpoint does not match the model that "
                         f"results.json describes ({encrypted_dir.printable(e)[:200]})") from None
      finally:
        ckpts.close()
  raise OwnerError(f"{workdir} holds no checkpoint (best/ or checkpoints/)")


def check_results(results: dict[str, Any], where: Path) -> None:
  """Checks the fields of results.json that predict uses (types, ranges, class names).

  Raises:
    OwnerError: naming the bad field.
  """
  def require(ok: bool, field: str, what: str) -> None:
    if not ok:
      raise OwnerError(f"{where}: field {field!r} must be {what}")

  def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)

  require(is_int(results["num_classes"]) and 1 <= results["num_classes"] <= 100_000,
          "num_classes", "a positive integer")
  shape = results["image_shape"]
  require(isinstance(shape, list) and len(shape) == 3 and all(is_int(s) and s > 0 for s in shape)
          and max(shape) <= encrypted_dir.MAX_SIDE, "image_shape", "[H, W, C] positive integers")
  require(is_int(results["block_size"]) and results["block_size"] >= 1, "block_size",
          "a positive integer")
  enc = results["encryption"]
  require(isinstance(enc, dict) and isinstance(enc.get("scheme"), str), "encryption",
          "an object with a scheme")
  require(isinstance(enc.get("options") or {}, dict), "encryption.options", "an object")
  nonce = enc.get("nonce")
  require(nonce is None or (isinstance(nonce, str) and len(nonce) >= 32 and len(nonce) % 2 == 0
                            and all(c in "0123456789abcdef" for c in nonce)),
          "encryption.nonce", "at least 16 bytes as lowercase hex")
  config = results["config"]
  require(isinstance(config, dict) and isinstance(config.get("model"), dict)
          and isinstance(config["model"].get("options") or {}, dict), "config.model",
          "an object")
  names = results.get("label_names", [str(i) for i in range(results["num_classes"])])
  require(isinstance(names, list) and len(names) == results["num_classes"], "label_names",
          "num_classes names")
  for i, name in enumerate(names):
    try:
      encrypted_dir.check_label_name(name, f"label_names[{i}]")
    except ValueError as e:
      raise OwnerError(f"{where}: {e}") from None
  results["label_names"] = names


def _logits(model, images: np.ndarray, *, progress: bool = True) -> np.ndarray:
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  forward = nnx.jit(lambda m, x: m(x.astype(jnp.float32) / 255.0))
  size = min(_BATCH, len(images))
  out = []
  bar = tqdm(total=len(images), desc="predict", unit="img", disable=not progress,
             dynamic_ncols=True)
  for i in range(0, len(images), size):
    batch = images[i:i + size]
    n = len(batch)
    if n < size:  # one batch shape: one compilation
      batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
    out.append(np.asarray(forward(model, jnp.asarray(batch)))[:n])
    bar.update(n)
  bar.close()
  return np.concatenate(out).astype(np.float64)


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = np.exp(logits - logits.max(axis=1, keepdims=True))
  return z / z.sum(axis=1, keepdims=True)


class Predictions(NamedTuple):
  """Rows of predictions.csv and the inputs that could not be used."""

  rows: list[dict[str, Any]]
  failures: list[inputs.FailedInput]
  columns: list[str]
  # With known labels (an encrypted directory): accuracy, auc and the clinical metrics
  # (`lie_jax.training.metrics.clinical_metrics`); None otherwise.
  metrics: dict[str, Any] | None = None


def _rows(ids, logits, label_names, true_labels=None) -> tuple[list[dict[str, Any]], list[str]]:
  probs = _softmax(logits)
  columns = ["id", "predicted_label", "predicted_name", *[f"p_{n}" for n in label_names],
             "label"]
  rows = []
  for i, name in enumerate(ids):
    k = int(np.argmax(probs[i]))
    row = {"id": name, "predicted_label": k, "predicted_name": label_names[k],
           "label": "" if true_labels is None else int(true_labels[i])}
    row.update({f"p_{n}": f"{p:.6f}" for n, p in zip(label_names, probs[i])})
    rows.append(row)
  return rows, columns


def _check_same_cipher(trained: dict[str, Any], found: dict[str, Any], what: str) -> None:
  same = (trained["scheme"] == found["scheme"]
          and dict(trained.get("options") or {}) == dict(found.get("options") or {})
          and bool(trained.get("per_image_keys")) == bool(found.get("per_image_keys"))
          and trained.get("key_fingerprint") == found.get("key_fingerprint"))
  if not same:
    def describe(c):
      return (f"{c['scheme']} {c.get('options') or {}}"
              f"{' per-image keys' if c.get('per_image_keys') else ''}, key "
              f"{c.get('key_fingerprint')}")
    raise OwnerError(f"{what} is encrypted with {describe(found)}, but the model was trained on "
                     f"{describe(trained)}")


def predict_encrypted_dir(trained: TrainedModel, directory: str | os.PathLike, *,
                          splits: Sequence[str] | None = None, secret: keys.SecretKey | None = None,
                          progress: bool = True) -> Predictions:
  """Predicts every image of an encrypted dataset directory (no key needed).

  Without a key the shards' checksums are verified; with `secret` the
  manifest's MAC is verified too (refusing an edited manifest).
  """
  from lie_jax.owner import dataset  # pylint: disable=g-import-not-at-top
  try:
    manifest = encrypted_dir.read_manifest(directory)
  except (ValueError, FileNotFoundError) as e:
    raise OwnerError(str(e)) from None
  if secret is not None:
    dataset.verify_manifest(manifest, secret, Path(directory))
  _check_same_cipher(trained.results["encryption"], manifest["cipher"], str(directory))
  if list(manifest["image_shape"]) != list(trained.results["image_shape"]):
    raise OwnerError(f"{directory} holds {manifest['image_shape']} images; the model takes "
                     f"{trained.results['image_shape']}")
  wanted = ([s for s in encrypted_dir.SPLITS if s in manifest["splits"]] if not splits
            else list(splits))
  ids, logits, labels = [], [], []
  for split in wanted:
    if split not in manifest["splits"]:
      raise OwnerError(f"{directory} has no {split!r} split (it has {list(manifest['splits'])})")
    try:
      images, split_labels, indices = encrypted_dir.read_split(directory, split, manifest)
    except ValueError as e:
      raise OwnerError(str(e)) from None
    if not len(indices):
      raise OwnerError(f"{directory}: the {split} split is empty; nothing to predict")
    ids += [f"{split}/{i}" for i in indices]
    logits.append(_logits(trained.model, images, progress=progress))
    labels.append(split_labels)
  from lie_jax.training import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  logits, labels = np.concatenate(logits), np.concatenate(labels)
  rows, columns = _rows(ids, logits, trained.results["label_names"], labels)
  scores = {**metrics_lib.classification_metrics(logits, labels),
            **metrics_lib.clinical_metrics(logits, labels, trained.results["label_names"])}
  return Predictions(rows, [], columns, scores)


def _expand(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, str]]:
  found = []
  for p in map(Path, paths):
    if p.is_dir():
      found += [(f, f.relative_to(p).as_posix()) for f in images_lib.files_under(p)]
    elif p.exists():
      found.append((p, str(p)))
    else:
      raise OwnerError(f"no input file or folder at {p}")
  return found


def predict_files(trained: TrainedModel, paths: Sequence[str | os.PathLike], *,
                  secret: keys.SecretKey | None, resize_to: tuple[int, int] | None = None,
                  window: tuple[float, float] | None = None, progress: bool = True
                  ) -> Predictions:
  """Encrypts plain image files (PNG/JPEG/DICOM, or folders of them) with `secret` like the
  training data, and predicts them; unusable files are returned as failures."""
  from lie_jax.data import encryption  # pylint: disable=g-import-not-at-top  (imports JAX)
  from lie_jax.owner import dataset  # pylint: disable=g-import-not-at-top

  enc = trained.results["encryption"]
  shape = tuple(trained.results["image_shape"])
  if enc["scheme"] != "none":
    if enc.get("key_fingerprint") == "seed":  # said first: no --key can help
      raise OwnerError("the model was trained with experiment keys derived from the run's seed, "
                       "not from a key file: its encryption cannot be reproduced with --key")
    if secret is None:
      raise OwnerError(f"the model was trained on {enc['scheme']}-encrypted images: pass --key "
                       "KEYFILE to encrypt these plain images the same way")
    if enc.get("key_fingerprint") != secret.fingerprint:
      raise OwnerError(f"wrong key: the key file's fingerprint is {secret.fingerprint}, but the "
                       f"model was trained on images encrypted under {enc.get('key_fingerprint')}")
  files = _expand(paths)
  if not files:
    raise OwnerError("no input files")
  bar = dataset.progress_factory(progress)(len(files), "read")
  good, images, failures, _ = inputs.read_files(
      [f for f, _ in files], names=[n for _, n in files], split="predict", resize_to=resize_to,
      window=window, expected_shape=shape, progress=bar.update)
  bar.close()
  if not images:
    return Predictions([], failures, [])
  batch = np.stack(images)
  if enc["scheme"] != "none":
    per_image = bool(enc.get("per_image_keys"))
    # Per-image keys: a model trained across many keys takes any, so these files get keys of
    # their own under a fresh nonce, never the keys of the test split (or of an earlier call).
    # One shared key: the model learned that key, so the training data's nonce is reused.
    nonce = (keys.new_nonce() if per_image else
             bytes.fromhex(enc["nonce"]) if enc.get("nonce") else None)
    try:
      cipher = encryption.key_file_cipher(secret, enc["scheme"], image_shape=shape,
                                          options=enc.get("options") or {},
                                          per_image_keys=per_image, nonce=nonce)
    except (ValueError, TypeError) as e:
      raise OwnerError(f"cannot rebuild the training encryption from results.json ({e})"
                       ) from None
    batch = dataset.apply_cipher(cipher.encrypt, batch, np.arange(len(batch), dtype=np.int64),
                                 "test")
  rows, columns = _rows([files[i][1] for i in good],
                        _logits(trained.model, batch, progress=progress),
                        trained.results["label_names"])
  return Predictions(rows, failures, columns)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
  """A cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading ',
  and control characters (a file name may hold any) are escaped as \\t, \\r, \\x1b, ...

  Numbers (probabilities, labels) are written as they are.
  """
  if not isinstance(value, str):
    return value
  return ("'" if value.startswith(_FORMULA_START) else "") + encrypted_dir.printable(value)


def write_csv(path: str | os.PathLike, predictions: Predictions) -> None:
  """Writes the rows atomically as CSV (header from `predictions.columns`), cells escaped."""
  buffer = io.StringIO()
  columns = predictions.columns or ["id"]
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow([csv_cell(c) for c in columns])
  for row in predictions.rows:
    writer.writerow([csv_cell(row.get(c, "")) for c in columns])
  encrypted_dir.atomic_write(Path(path), buffer.getvalue().encode("utf-8"), mode=0o600)
