"""The input pipeline at 224 px: its memory on a dataset larger than memory allows, and its rate.

Generates (once, in chunks) a MedMNIST-layout .npz of --images grayscale
224x224 images, by default 86,000 images = 4.3 GB, at least 4x the pipeline's
memory budget (BUDGET_BYTES = 1 GiB), made from the bundled chest X-rays
upsampled with noise. Then, each in a fresh process:

  pipeline   `data.load_dataset` (the split is read per batch: lie_jax.data.lazy) ->
             `data.train_batches` -> encryption with the training encoder of
             --scheme (jitted, on this machine's default device) for one whole
             epoch. Reports images/s and the growth of peak RSS over the process's
             RSS before loading (JAX, the compiled cipher and Python are counted
             before), which must stay under BUDGET_BYTES; the process's total peak
             is reported too.
  folder     the same pipeline over --png-images 224 px PNG files decoded per batch
             (`load_image_folder`, lazy): the decode cost of an image folder.
  model      the model's training step at 224 px (the scheme's configuration from
             lie_jax/configs/pneumoniamnist.py: backbone, adaptation, block size, keys), with
             encryption inside the step as `train_and_evaluate` runs it, images/s.

Prints which of pipeline and model bounds training, and writes
benchmarks/results/data_pipeline.json with the machine it ran on.

  python -m benchmarks.data_pipeline                       # ~10 min on 2 cores, 4.3 GB on disk
  python -m benchmarks.data_pipeline --images 20000 --scheme le
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

BUDGET_BYTES = 1 << 30
SIDE = 224
RESULTS = os.path.join(os.path.dirname(__file__), "results", "data_pipeline.json")
DEFAULT_IMAGES = math.ceil(4 * BUDGET_BYTES / SIDE**2 / 1000) * 1000  # 86,000


# ---------------------------------------------------------------------------
# The generated dataset.


def _xray_images(rng: np.random.Generator, count: int, base: np.ndarray) -> np.ndarray:
  """`count` 224x224 images: random bundled X-rays upsampled 8x, shifted, with noise."""
  pick = base[rng.integers(0, len(base), count)]
  big = np.repeat(np.repeat(pick, SIDE // base.shape[1], axis=1), SIDE // base.shape[2], axis=2)
  noise = rng.integers(-6, 7, big.shape, dtype=np.int16)
  return np.clip(big.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def generate(path: Path, count: int, *, seed: int = 0) -> None:
  """Writes a stored (uncompressed) MedMNIST-layout .npz in chunks; skips if already there."""
  from lie_jax import data  # pylint: disable=g-import-not-at-top
  expected = count * SIDE * SIDE
  if path.is_file():
    with zipfile.ZipFile(path) as archive:
      names = {i.filename: i.file_size for i in archive.infolist()}
    if names.get("train_images.npy", 0) >= expected:
      return
  bundled = data.load_dataset("pneumoniamnist").train
  base, labels = bundled.images[..., 0], bundled.labels
  rng = np.random.default_rng(seed)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
    with archive.open("train_images.npy", "w", force_zip64=True) as f:
      np.lib.format.write_array_header_1_0(
          f, {"descr": "|u1", "fortran_order": False, "shape": (count, SIDE, SIDE)})
      for start in range(0, count, 2000):
        f.write(_xray_images(rng, min(2000, count - start), base).tobytes())
    small = {"train_labels": labels[rng.integers(0, len(labels), count)],
             "test_images": _xray_images(rng, 64, base), "test_labels": labels[:64]}
    for name, array in small.items():
      with archive.open(f"{name}.npy", "w") as f:
        np.lib.format.write_array(f, array)
  os.replace(tmp, path)


def write_pngs(npz: Path, folder: Path, count: int) -> None:
  """The first `count` images of the generated set as PNGs in two class folders."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from lie_jax.data import lazy  # pylint: disable=g-import-not-at-top
  if folder.is_dir() and sum(1 for _ in folder.rglob("*.png")) >= count:
    return
  rows = lazy.npz_member(npz, "train_images.npy")
  for k in range(count):
    target = folder / ("a" if k % 2 else "b") / f"{k:06d}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rows[k][..., 0]).save(target)


# ---------------------------------------------------------------------------
# Children: each measurement in a fresh process.


def _status(field: str) -> int:
  """/proc/self/status field in bytes (Linux)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024
  raise OSError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
  """VmHWM := VmRSS (Linux >= 4.0); where refused, the sampled peak is used."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
  except OSError:
    pass


def _config(scheme: str):
  from benchmarks import frontier  # pylint: disable=g-import-not-at-top
  from lie_jax.configs import pneumoniamnist  # pylint: disable=g-import-not-at-top
  return pneumoniamnist.get_config(f"{scheme},{frontier.ADAPTATION[scheme]}")


def child_pipeline(path: str, scheme: str, batch_size: int, source: str) -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  from lie_jax import data  # pylint: disable=g-import-not-at-top
  from lie_jax.training import encryption  # pylint: disable=g-import-not-at-top
  config = _config(scheme)
  shape = (SIDE, SIDE, 1)
  encoder = encryption.make_input_encoder(config.cipher, image_shape=shape, seed=0)
  encode = jax.jit(lambda images, indices: encoder.encode(images, indices, "train"))
  encode(np.zeros((batch_size, *shape), np.uint8), np.arange(batch_size)).block_until_ready()
  _reset_peak()
  base = _status("VmRSS")
  # The generated .npz is far above IN_MEMORY_BYTES (lazy by size); the small PNG set is
  # made lazy explicitly, to time decoding per batch.
  splits = data.load_dataset(path=path, source=source,
                             in_memory=False if source == "folder" else None)
  steps = len(splits.train.labels) // batch_size
  batches = data.train_batches(splits.train, batch_size=batch_size, seed=0)
  sampled, start = 0, time.perf_counter()
  for _ in range(steps):
    batch = next(batches)
    encode(batch["image"], batch["index"]).block_until_ready()
    sampled = max(sampled, _status("VmRSS"))
  seconds = time.perf_counter() - start
  peak = max(sampled, _status("VmHWM"))
  return {"images": steps * batch_size, "seconds": seconds,
          "images_per_s": steps * batch_size / seconds, "lazy": type(splits.train.images).__name__,
          "rss_before_bytes": base, "peak_rss_bytes": peak, "pipeline_rss_bytes": peak - base}


def child_model(scheme: str, batch_size: int, steps: int) -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import train_overhead  # pylint: disable=g-import-not-at-top
  from lie_jax.training import encryption  # pylint: disable=g-import-not-at-top
  from lie_jax.training.trainer import make_steps  # pylint: disable=g-import-not-at-top
  config = _config(scheme)
  shape = (SIDE, SIDE, 1)
  encoder = encryption.make_input_encoder(config.cipher, image_shape=shape, seed=0)
  model, optimizer = train_overhead.build_model_and_optimizer(config, encoder, shape)
  train_step, _ = make_steps(encoder)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch_size, *shape), dtype=np.uint8)
  labels, indices = rng.integers(0, 2, batch_size), np.arange(batch_size)
  jax.block_until_ready(train_step(model, optimizer, images, labels, indices))
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(train_step(model, optimizer, images, labels, indices))
    times.append(time.perf_counter() - start)
  best = min(times)
  return {"backbone": config.model.backbone, "adaptation": config.model.adaptation,
          "block_size": encoder.options.get("block_size"), "per_image_keys":
          encoder.per_image_keys, "step_s": best, "images_per_s": batch_size / best}


def _run_child(*args: str) -> dict[str, Any]:
  out = subprocess.run([sys.executable, "-m", "benchmarks.data_pipeline", "--child", *args],
                       check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=DEFAULT_IMAGES)
  parser.add_argument("--png-images", type=int, default=1024)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--model-steps", type=int, default=3)
  parser.add_argument("--scheme", default=None, help="default: lie-jax encrypt's default")
  parser.add_argument("--workdir", default="workdir/data_pipeline")
  parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    kind, *rest = args.child
    if kind == "pipeline":
      result = child_pipeline(rest[0], rest[1], int(rest[2]), rest[3])
    else:
      result = child_model(rest[0], int(rest[1]), int(rest[2]))
    print(json.dumps(result))
    return

  from benchmarks.encrypt_throughput import machine  # pylint: disable=g-import-not-at-top
  from lie_jax import owner  # pylint: disable=g-import-not-at-top
  scheme = args.scheme or owner.DEFAULT_SCHEME
  workdir = Path(args.workdir)
  npz = workdir / f"xray224_{args.images}.npz"
  t0 = time.perf_counter()
  generate(npz, args.images)
  write_pngs(npz, workdir / "png", args.png_images)
  print(f"dataset: {npz} ({args.images} images, {args.images * SIDE * SIDE / 2**30:.2f} GiB, "
        f"{4 * BUDGET_BYTES / 2**30:.0f} GiB = 4x budget needed), ready in "
        f"{time.perf_counter() - t0:.0f} s", flush=True)
  pipeline = _run_child("pipeline", str(npz), scheme, str(args.batch_size), "npz")
  folder = _run_child("pipeline", str(workdir / "png"), scheme, str(args.batch_size), "folder")
  model = _run_child("model", scheme, str(args.batch_size), str(args.model_steps))
  bound = "pipeline" if pipeline["images_per_s"] < model["images_per_s"] else "model"
  folder_bound = "pipeline" if folder["images_per_s"] < model["images_per_s"] else "model"
  command = " ".join(["python -m benchmarks.data_pipeline", *sys.argv[1:]])
  result = {
      "machine": machine(), "command": command, "scheme": scheme, "batch_size": args.batch_size,
      "dataset_images": args.images, "dataset_bytes": args.images * SIDE * SIDE,
      "budget_bytes": BUDGET_BYTES, "npz_pipeline": pipeline, "png_folder_pipeline": folder,
      "model_step": model,
      "pipeline_rss_within_budget": pipeline["pipeline_rss_bytes"] < BUDGET_BYTES,
      "dataset_over_4x_budget": args.images * SIDE * SIDE >= 4 * BUDGET_BYTES,
      "bound_npz": bound, "bound_png_folder": folder_bound,
  }
  mib = lambda b: f"{b / 2**20:.0f} MiB"
  print(f"npz pipeline (read + encrypt {scheme} + batch): {pipeline['images_per_s']:.0f} img/s "
        f"over {pipeline['images']} images; peak RSS growth {mib(pipeline['pipeline_rss_bytes'])}"
        f" (budget {mib(BUDGET_BYTES)}; process peak {mib(pipeline['peak_rss_bytes'])})")
  print(f"PNG folder pipeline (decode + encrypt + batch): {folder['images_per_s']:.0f} img/s; "
        f"peak RSS growth {mib(folder['pipeline_rss_bytes'])}")
  print(f"model step at {SIDE} px ({model['backbone']} + {model['adaptation']}, batch "
        f"{args.batch_size}): {model['images_per_s']:.1f} img/s")
  print(f"training is bound by the {bound} (npz) / the {folder_bound} (PNG folder): pipeline / "
        f"model = {pipeline['images_per_s'] / model['images_per_s']:.1f}x (npz), "
        f"{folder['images_per_s'] / model['images_per_s']:.1f}x (PNG)")
  passed = result["pipeline_rss_within_budget"] and result["dataset_over_4x_budget"]
  print(f"memory bar (pipeline RSS < 1 GiB on >= 4x that data): {'PASS' if passed else 'FAIL'}")
  os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
  with open(RESULTS, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")


if __name__ == "__main__":
  main()
