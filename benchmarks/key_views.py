"""Per-image keys against a learned attacker who draws many keys per known image.

With per-image keys no key is reused, so the learned attacks (inverse network, SIA-GAN) learn
the cipher's family of maps from known pairs, one key per image in `benchmarks.security` and
`benchmarks.frontier`. The key distribution is public (only the keys are secret), so an
attacker who holds known images can encrypt each of them under as many fresh keys as it
likes. This benchmark trains the inverse network (early stopping on held-out images, no step
cap) on the first --train-images PneumoniaMNIST train images under 1 and under --views keys
each, and scores it on the first --num-images test images, each encrypted under its own key,
for the per-image configurations of the frontier that learned attacks do not break with one
key per image: Huang 2022 (2x2 median, the default), PE, EtC (4x4 blocks).

  python -m benchmarks.key_views                 # about 2 minutes on 2 cores

Writes benchmarks/results/key_views.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks.encrypt_throughput import machine
from lie_jax import data
from lie_jax.attacks import report
from lie_jax.attacks import suite

OUT = os.path.join(os.path.dirname(__file__), "results", "key_views.json")
# (scheme, block size) of the frontier's per-image configurations run here.
CONFIGS = (("huang2022", 2), ("pe", None), ("etc", 4))
DEFAULT_VIEWS = 32


def measure(victims, known, *, views: int, seed: int = 0, configs=CONFIGS,
            attack: str = "inverse_network", steps: int | None = None) -> list[dict]:
  """One row per (configuration, key views in (1, views)) with the attack's scores
  (`steps`: a cap on the attack's steps; None: it stops on held-out images)."""
  rows = []
  for scheme, block in configs:
    key = report.experiment_key(seed, scheme)
    for k in sorted({1, views}):
      start = time.perf_counter()
      result = suite.run_attack(attack, scheme, victims, key=key, block_size=block or 4,
                                per_image_keys=True, train_images=known, key_views=k,
                                **({} if steps is None else {"steps": steps}))
      row = report.json_row(result)
      row.update(key_views=k, block_size=block, seconds=time.perf_counter() - start,
                 steps=(row.get("details") or {}).get("steps"))
      rows.append(row)
  return rows


def format_row(r: dict) -> str:
  chance = 100 * (r.get("reid_chance_top1") or 0.0)
  block = f" (B={r['block_size']})" if r["block_size"] else ""
  return (f"| {r['scheme']}{block} | "
          f"{r['key_views']} | {r['ssim_mean']:.3f} | {r['prior_ssim_mean']:.3f} | "
          f"{100 * r['reid_top1']:.1f} ({chance:.1f}) | {100 * r['reid_top5']:.1f} | "
          f"{r['steps']} |")


HEADER = ("| per-image configuration | keys per known image | SSIM | prior SSIM | "
          "top-1 re-id % (chance) | top-5 % | steps |\n|---|---:|---:|---:|---:|---:|---:|")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-images", type=int, default=200)
  parser.add_argument("--train-images", type=int, default=1000)
  parser.add_argument("--views", type=int, default=DEFAULT_VIEWS)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  if args.views < 2:
    parser.error(f"--views must be at least 2, got {args.views}")
  splits = data.load_dataset("pneumoniamnist")
  victims = splits.test.images[:args.num_images]
  known = splits.train.images[:args.train_images]
  start = time.perf_counter()
  rows = measure(victims, known, views=args.views, seed=args.seed)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "key_views", "machine": machine(),
               "command": "python -m benchmarks.key_views" + (
                   "" if args.views == DEFAULT_VIEWS else f" --views {args.views}"),
               "data": f"pneumoniamnist test[:{len(victims)}] (victims), "
                       f"train[:{len(known)}] (known plaintexts)",
               "views": args.views, "seed": args.seed,
               "seconds": time.perf_counter() - start, "results": rows},
              f, indent=1, allow_nan=False)
  print(HEADER)
  print("\n".join(format_row(r) for r in rows))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
