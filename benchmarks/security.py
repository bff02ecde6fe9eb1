"""Security evaluation: every applicable attack against every scheme on PneumoniaMNIST.

Victims: the first --num-images images of the PneumoniaMNIST test split.
Known plaintexts (inverse network, prior baseline, FR polarity hint): the
first --train-images images of the train split (disjoint). Experiment keys
from --seed. Runs the same library function as `lie-jax security-report`
and writes benchmarks/results/security.json (and, with --figure, a PNG).

  python -m benchmarks.security
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks.encrypt_throughput import machine
from lie_jax import data
from lie_jax.attacks import report

def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-images", type=int, default=200)
  parser.add_argument("--train-images", type=int, default=1000)
  parser.add_argument("--block-size", type=int, default=4)
  parser.add_argument("--steps", type=int, default=None,
                      help="step cap of the learned attacks (default: their own, with early "
                           "stopping)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "security.json"))
  parser.add_argument("--figure", default=None, help="also write the report figure here")
  args = parser.parse_args()
  splits = data.load_dataset("pneumoniamnist")
  victims = splits.test.images[:args.num_images]
  known = splits.train.images[:args.train_images]
  start = time.perf_counter()
  skipped: list[str] = []
  results = report.security_report(victims, known, seed=args.seed, block_size=args.block_size,
                                   steps=args.steps, skipped=skipped)
  seconds = time.perf_counter() - start
  # Strict JSON: morph's infinite nominal key space is written as null (the table shows ∞).
  rows = [report.json_row(r) for r in results]
  with open(args.out, "w") as f:
    json.dump({"benchmark": "security", "machine": machine(),
               "command": "python -m benchmarks.security",
               "data": f"pneumoniamnist test[:{len(victims)}] (victims), "
                       f"train[:{len(known)}] (known plaintexts)",
               "block_size": args.block_size, "learned_attack_steps": args.steps,
               "seed": args.seed, "seconds": seconds, "verdict_rule": report.VERDICT_RULE,
               "results": rows, "not_run": skipped}, f, indent=1, allow_nan=False)
  if args.figure:
    report.report_figure(results).save(args.figure)
  print(report.markdown_table(rows))
  print("".join(f"- {line}\n" for line in skipped))
  print(f"wrote {args.out} ({seconds:.0f} s)")


if __name__ == "__main__":
  main()
