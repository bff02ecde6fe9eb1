"""Collects what benchmarks/gpu_checks.sh measured into two results files for docs/RESULTS.md.

  python -m benchmarks.gpu_checks OUTDIR   # run on the GPU machine by gpu_checks.sh itself
  python -m benchmarks.gpu_checks --pneumonia-folder DEST   # the image folder it trains on

Reads OUTDIR/log.txt (the known-answer tests' pytest summary), OUTDIR/runs/*/results.json (the
224 px training runs) and OUTDIR/results/train_throughput_*.json (one per backbone), and writes
OUTDIR/results/gpu_checks.json and OUTDIR/results/train_throughput_gpu.json; copy both into
benchmarks/results/ and run `python -m benchmarks.report`. The files come from another machine:
the numbers, names and command lines taken from the runs are checked (a malformed file is a
one-line error); the throughput files are taken as train_throughput wrote them.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from typing import Any

from benchmarks import train_throughput
from benchmarks.encrypt_throughput import machine

KAT_COMMAND = "python -m pytest tests/kat_test.py tests/chacha_test.py"
RUN_FIELDS = ("test_accuracy", "test_auc", "test_sensitivity", "test_specificity",
              "best_val_accuracy", "steps", "train_time_s_this_run")


def kat_summary(log: str) -> dict[str, Any] | None:
  """The known-answer stage's outcome from log.txt: {"passed", "failed", "errors", "exit"}
  from the pytest summary between "start kat" and "end kat: exit N"; None when the stage did
  not start. A stage that started but did not end (killed) or printed no summary is an error.
  """
  _, started, after = log.partition("start kat")
  if not started:
    return None
  stage_log, ended, tail = after.partition("end kat: exit ")
  exit_status = re.match(r"\d+", tail)
  summary = [line for line in stage_log.splitlines()
             if re.search(r"\d+ (passed|failed|errors?)\b", line) and " in " in line]
  if not ended or exit_status is None or not summary:
    raise ValueError("no pytest summary between 'start kat' and 'end kat' in log.txt: the "
                     "known-answer tests did not finish")
  count = lambda word: sum(int(n) for n in re.findall(rf"(\d+) {word}\b", summary[-1]))
  return {"command": KAT_COMMAND, "passed": count("passed"), "failed": count("failed"),
          "errors": count("errors?"), "exit": int(exit_status.group())}


def stages(log: str) -> list[dict[str, str]]:
  """Every stage's outcome from log.txt, in order: {"name", "outcome"} where outcome is "ok",
  "exit N" or "skipped: why"."""
  out = []
  for match in re.finditer(r"^\[gpu_checks \+\d+s\] (?:end (\S+): exit (\d+)|skip (\S+): (.*))$",
                           log, re.MULTILINE):
    if match.group(1):
      status = match.group(2)
      out.append({"name": match.group(1), "outcome": "ok" if status == "0" else f"exit {status}"})
    else:
      out.append({"name": match.group(3), "outcome": f"skipped: {match.group(4)[:200]}"})
  return out


def _number(value: Any, name: str, path: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f"{path}: {name} is not a number")
  return value


def write_pneumonia_folder(dest: str) -> int:
  """The bundled PneumoniaMNIST as an image folder, DEST/{train,val,test}/{normal,pneumonia}/
  NNNNN.png (28x28 grey PNGs: the huang2022 config resizes them to 256 on read); the number
  of images written."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from lie_jax import data  # pylint: disable=g-import-not-at-top
  splits = data.load_dataset("pneumoniamnist")
  count = 0
  for split in ("train", "val", "test"):
    part = getattr(splits, split)
    for k, (image, label) in enumerate(zip(part.images, part.labels)):
      folder = os.path.join(dest, split, splits.label_names[int(label)])
      os.makedirs(folder, exist_ok=True)
      Image.fromarray(image[..., 0]).save(os.path.join(folder, f"{k:05d}.png"))
      count += 1
  return count


def _command(run_dir: str) -> str:
  """The run's command line, as gpu_checks.sh recorded it in command.txt."""
  with open(os.path.join(run_dir, "command.txt")) as f:
    command = f.read(2001).strip()
  if (len(command) > 2000 or not command.isprintable()
      or not command.startswith("python -m lie_jax.train ")):
    raise ValueError(f"{run_dir}/command.txt: not a lie_jax.train command line")
  return command


def training_run(path: str) -> dict[str, Any]:
  """One training run's row from its results.json and the command.txt beside it."""
  with open(path) as f:
    result = json.load(f)
  if not isinstance(result, dict) or not isinstance(result.get("config"), dict):
    raise ValueError(f"{path}: not a lie_jax results.json")
  row = {field: _number(result.get(field), field, path) for field in RUN_FIELDS}
  cipher = result["config"].get("cipher", {})
  model = result["config"].get("model", {})
  scheme, adaptation = cipher.get("name"), model.get("adaptation")
  if not all(isinstance(v, str) and v.isidentifier() for v in (scheme, adaptation)):
    raise ValueError(f"{path}: config.cipher.name / config.model.adaptation are not names")
  shape = result.get("image_shape")
  if not (isinstance(shape, list) and len(shape) == 3
          and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
    raise ValueError(f"{path}: image_shape is not [height, width, channels]")
  return {"run": f"{scheme},{adaptation}", "backbone": model.get("backbone"),
          "image_shape": shape,
          "per_image_keys": None if scheme == "none" else bool(cipher.get("per_image_keys")),
          "num_epochs": result["config"].get("train", {}).get("num_epochs"), **row,
          "command": _command(os.path.dirname(path))}


def throughput(paths: list[str]) -> dict[str, Any] | None:
  """The per-backbone train_throughput files as one (rows and checks in BACKBONES order);
  None when there are none."""
  parts = []
  for path in paths:
    with open(path) as f:
      part = json.load(f)
    if part.get("benchmark") != "train_throughput" or not isinstance(part.get("results"), list):
      raise ValueError(f"{path}: not a train_throughput results file")
    parts.append(part)
  if not parts:
    return None
  order = lambda p: train_throughput.BACKBONES.index(p["results"][0]["backbone"])
  parts.sort(key=order)
  backbones = [p["results"][0]["backbone"] for p in parts]
  command = parts[0]["command"].replace(f"--backbones {backbones[0]}",
                                        f"--backbones {' '.join(backbones)}")
  return {**parts[0], "results": [r for p in parts for r in p["results"]],
          "checks": [c for p in parts for c in p["checks"]], "command": command}


def packages(out: str) -> str | None:
  """The "jax ... flax ... optax ..." line of OUTDIR/versions.txt, if any."""
  try:
    with open(os.path.join(out, "versions.txt")) as f:
      lines = [l.strip() for l in f if l.startswith("jax ")]
  except OSError:
    return None
  return lines[0][:200] if lines and lines[0].isprintable() else None


def collect(out: str, machine_info: dict[str, Any] | None = None) -> tuple[dict, dict | None]:
  """(gpu_checks.json, train_throughput_gpu.json) contents from gpu_checks.sh's OUTDIR (the
  second None when no throughput stage ran)."""
  with open(os.path.join(out, "log.txt")) as f:
    log = f.read()
  kat = kat_summary(log)
  runs = [training_run(p) for p in sorted(glob.glob(os.path.join(out, "runs", "*",
                                                                 "results.json")))]
  tput = throughput([p for b in train_throughput.BACKBONES
                     for p in glob.glob(os.path.join(out, "results", f"train_throughput_{b}.json"))])
  info = machine_info or machine()
  checks = {"benchmark": "gpu_checks", "machine": info, "kat": kat, "runs": runs,
            "stages": stages(log),
            "packages": packages(out), "command": "bash benchmarks/gpu_checks.sh OUTDIR"}
  return checks, tput and {**tput, "machine": info}


def main() -> None:
  if len(sys.argv) == 3 and sys.argv[1] == "--pneumonia-folder":
    print(f"wrote {write_pneumonia_folder(sys.argv[2])} images under {sys.argv[2]}")
    return
  if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
    sys.exit("usage: python -m benchmarks.gpu_checks OUTDIR | --pneumonia-folder DEST")
  out = sys.argv[1]
  try:
    checks, tput = collect(out)
  except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
    sys.exit(f"gpu_checks: {e}")
  for name, result in (("gpu_checks.json", checks), ("train_throughput_gpu.json", tput)):
    if result is None:
      continue
    path = os.path.join(out, "results", name)
    with open(path, "w") as f:
      json.dump(result, f, indent=1)
      f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
