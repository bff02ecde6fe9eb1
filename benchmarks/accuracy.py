"""Test accuracy on PneumoniaMNIST: plain images vs every scheme, with and without adaptation.

Runs train_and_evaluate for each configuration of lie_jax/configs/pneumoniamnist.py
and each seed in turn (minutes each on a CPU) and writes
benchmarks/results/accuracy.json: one row per (configuration, seed), updated
in place, so runs can be added later (the report shows mean and spread over
the seeds of each configuration).

  python -m benchmarks.accuracy                       # every run below, seed 0
  python -m benchmarks.accuracy --seeds 0 1 2         # three seeds each
  python -m benchmarks.accuracy --runs none,none le,block le,none,keys=per_image,block=7
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import jax

import lie_jax
from benchmarks.encrypt_throughput import machine
from lie_jax.configs import pneumoniamnist
from lie_jax.training import train_and_evaluate

RUNS = ("none,none", "le,block", "le,none", "ele,ele", "ele,none", "etc,block", "etc,none",
        "pe,pixel", "pe,none", "huang2022,pixel", "blockwise,block", "vit,none", "none,none,vit",
        "morph,morph")
OUT = os.path.join(os.path.dirname(__file__), "results", "accuracy.json")


def with_seed(run: str, seed: int) -> str:
  """The run spec with `seed=` set (seed 0 is the spec itself, as in earlier results files)."""
  fields = [f for f in run.split(",") if not f.startswith("seed=")]
  return ",".join(fields + ([f"seed={seed}"] if seed else []))


def config_of(run: str) -> str:
  """The run spec without its seed: what the seeds of one configuration share."""
  return with_seed(run, 0)


def train_one(run: str, workdir: str, allow_seed_keys: bool = False) -> dict[str, Any]:
  """Trains one run spec (lie_jax/configs/pneumoniamnist.py) and returns its results row.

  allow_seed_keys: the data= file of the spec is public (e.g. made by benchmarks.rgb_patches),
  so experiment keys from the seed are fine there; the trainer refuses them for any data but
  the bundled set otherwise.
  """
  config = pneumoniamnist.get_config(run)
  config.train.progress_bar = False
  extra = " --config.cipher.allow_seed_keys=True" if allow_seed_keys and config.data.path else ""
  if extra:
    config.cipher.allow_seed_keys = True
  name = run.replace(",", "_").replace("=", "-").replace("/", "-")
  start = time.perf_counter()
  result = train_and_evaluate(config, os.path.join(workdir, name))
  keep = ("test_accuracy", "test_auc", "test_accuracy_plain_inputs", "best_val_accuracy",
          "steps", "cipher", "adaptation", "backbone", "per_image_keys")
  return {"run": run, "config": config_of(run), "seed": int(config.seed),
          "block_size": int(config.cipher.block_size),
          **{k: result[k] for k in keep if k in result},
          "wall_s": time.perf_counter() - start,
          "command": f"python -m lie_jax.train --config pneumoniamnist:{run}{extra} "
                     f"--workdir workdir/{name}"}


def load(path: str) -> dict[str, dict[str, Any]]:
  """{run spec: row} of an accuracy results file ({} when there is none)."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    rows = json.load(f).get("results", [])
  return {r["run"]: {"config": config_of(r["run"]), "seed": 0, **r} for r in rows}


def save(path: str, rows: dict[str, dict[str, Any]]) -> None:
  with open(path, "w") as f:
    json.dump({"benchmark": "accuracy", "machine": machine(),
               "lie_jax_version": lie_jax.__version__, "devices": jax.device_count(),
               "results": list(rows.values())}, f, indent=1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", nargs="+", default=list(RUNS))
  parser.add_argument("--seeds", nargs="+", type=int, default=[0])
  parser.add_argument("--missing-only", action="store_true",
                      help="skip (run, seed) pairs already in the results file")
  parser.add_argument("--workdir", default="workdir/accuracy")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--allow-seed-keys", action="store_true",
                      help="runs with data=FILE: FILE is public, so keys derived from the seed "
                           "are fine (never for patients' images)")
  args = parser.parse_args()
  rows = load(args.out)
  for run in args.runs:
    for seed in args.seeds:
      spec = with_seed(run, seed)
      if args.missing_only and spec in rows:
        continue
      rows[spec] = train_one(spec, args.workdir, args.allow_seed_keys)
      print(json.dumps(rows[spec]), flush=True)
      save(args.out, rows)


if __name__ == "__main__":
  main()
