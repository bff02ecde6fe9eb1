"""Test accuracy on PneumoniaMNIST: plain images vs every scheme, with and without adaptation.

Runs train_and_evaluate for each configuration of configs/pneumoniamnist.py
in turn (minutes each on a CPU) and writes benchmarks/results/accuracy.json.

  python -m benchmarks.accuracy                       # every run below
  python -m benchmarks.accuracy --runs none,none le,block le,none
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax

import lie_jax
from benchmarks.encrypt_throughput import machine
from configs import pneumoniamnist
from lie_jax.training import train_and_evaluate

RUNS = ("none,none", "le,block", "le,none", "ele,ele", "ele,none", "etc,block", "etc,none",
        "pe,pixel", "pe,none", "huang2022,pixel", "blockwise,block", "vit,none", "none,none,vit",
        "morph,morph")
OUT = os.path.join(os.path.dirname(__file__), "results", "accuracy.json")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", nargs="+", default=list(RUNS))
  parser.add_argument("--workdir", default="workdir/accuracy")
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  previous = {}
  if os.path.exists(args.out):
    with open(args.out) as f:
      previous = {r["run"]: r for r in json.load(f).get("results", [])}
  for run in args.runs:
    config = pneumoniamnist.get_config(run)
    config.train.progress_bar = False
    start = time.perf_counter()
    result = train_and_evaluate(config, os.path.join(args.workdir, run.replace(",", "_")))
    keep = ("test_accuracy", "test_auc", "test_accuracy_plain_inputs", "best_val_accuracy",
            "steps", "cipher", "adaptation", "backbone")
    previous[run] = {"run": run, **{k: result[k] for k in keep if k in result},
                     "wall_s": time.perf_counter() - start,
                     "command": f"python train.py --config configs/pneumoniamnist.py:{run} "
                                f"--workdir workdir/{run.replace(',', '_')}"}
    print(json.dumps(previous[run]), flush=True)
    with open(args.out, "w") as f:
      json.dump({"benchmark": "accuracy", "machine": machine(),
                 "lie_jax_version": lie_jax.__version__, "devices": jax.device_count(),
                 "results": list(previous.values())}, f, indent=1)


if __name__ == "__main__":
  main()
