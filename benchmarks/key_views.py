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
  python -m benchmarks.key_views --eval-set workdir/eval_set/eval_set.npz   # 224 px, about 1 h

With --eval-set the victims and known plaintexts are the 224x224 grayscale tiles of
`benchmarks.security --eval-set` (every third tile a victim, the others known), the
configurations Huang 2022 (2x2) and PE, which learned attacks re-identify most there with one
key per tile (block-wise shuffling and LE fall to the ciphertext itself), and each run is
capped at --steps (default 1000; about 1.4 s a step on 2 cores).

Writes benchmarks/results/key_views.json (key_views_224.json with --eval-set) and prints a
table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zipfile

from benchmarks import security
from benchmarks.encrypt_throughput import machine
from lie_jax.attacks import report
from lie_jax.attacks import suite

RESULTS = os.path.join(os.path.dirname(__file__), "results")
OUT = os.path.join(RESULTS, "key_views.json")
OUT_224 = os.path.join(RESULTS, "key_views_224.json")
# (scheme, block size) of the frontier's per-image configurations run here.
CONFIGS = (("huang2022", 2), ("pe", None), ("etc", 4))
# At 224 px: the per-image configurations that learned attacks re-identify most with one key
# per tile (ELE and EtC in 16x16 blocks stay at chance: a new block permutation per image).
CONFIGS_224 = (("huang2022", 2), ("pe", None))
DEFAULT_VIEWS = 32
STEPS_224 = 1000


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
  parser.add_argument("--num-images", type=int, default=None,
                      help="victims: the first N PneumoniaMNIST test images (default "
                           f"{security.NUM_VICTIMS})")
  parser.add_argument("--train-images", type=int, default=None,
                      help=f"known images: the first N train images (default "
                           f"{security.NUM_KNOWN})")
  parser.add_argument("--views", type=int, default=DEFAULT_VIEWS)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval-set", default=None, metavar="NPZ",
                      help="the 224x224 tiles of this eval_set.npz (see benchmarks.security)")
  parser.add_argument("--steps", type=int, default=None,
                      help=f"cap on each attack's steps (default: none; {STEPS_224} with "
                           "--eval-set)")
  parser.add_argument("--out", default=None,
                      help="default benchmarks/results/key_views.json (key_views_224.json "
                           "with --eval-set)")
  args = parser.parse_args()
  if args.views < 2:
    parser.error(f"--views must be at least 2, got {args.views}")
  if args.steps is not None and args.steps < 1:
    parser.error(f"--steps must be positive, got {args.steps}")
  if args.eval_set is not None and (args.num_images, args.train_images) != (None, None):
    parser.error("--num-images and --train-images choose PneumoniaMNIST images; the eval set "
                 "has its own split")
  out = args.out or (OUT if args.eval_set is None else OUT_224)
  if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
    parser.error(f"--out {out}: its folder does not exist")
  command = "python -m benchmarks.key_views" + (
      "" if args.views == DEFAULT_VIEWS else f" --views {args.views}")
  if args.eval_set is not None:
    try:
      victims, known, described = security.eval_set_split(args.eval_set)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
      parser.error(f"--eval-set {args.eval_set}: {e}")
    configs, steps = CONFIGS_224, args.steps or STEPS_224
    command += " --eval-set NPZ" + ("" if steps == STEPS_224 else f" --steps {steps}")
  else:
    counts = {"num_images": args.num_images, "train_images": args.train_images}
    victims, known, described = security.pneumonia_split(
        **{k: v for k, v in counts.items() if v is not None})
    configs, steps = CONFIGS, args.steps
    command += "" if steps is None else f" --steps {steps}"
  start = time.perf_counter()
  rows = measure(victims, known, views=args.views, seed=args.seed, configs=configs,
                 steps=steps)
  with open(out, "w") as f:
    json.dump({"benchmark": "key_views", "machine": machine(), "command": command,
               "data": described, "views": args.views, "seed": args.seed, "steps_cap": steps,
               "seconds": time.perf_counter() - start, "results": rows},
              f, indent=1, allow_nan=False)
  print(HEADER)
  print("\n".join(format_row(r) for r in rows))
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
