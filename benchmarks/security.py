"""Security evaluation: every applicable attack against every scheme on PneumoniaMNIST.

Victims: the first --num-images images of the PneumoniaMNIST test split.
Known plaintexts (inverse network, prior baseline, FR polarity hint): the
first --train-images images of the train split (disjoint). Experiment keys
from --seed. Runs the same library function as `lie-jax security-report`
and writes benchmarks/results/security.json (and, with --figure, a PNG).

  python -m benchmarks.security

At realistic resolution (`--eval-set`): the 224x224 grayscale tiles of the evaluation set
(`python -m benchmarks.eval_set`; with the `evalset` extra, 184 tiles of 10 source images),
every third tile a victim, the others the attacker's known plaintexts (tiles of the same
source images: an attacker who holds other views of the victims' scans), per-image keys
(shared keys fall to `known_plaintext_exact` from a few pairs at any size, see
benchmarks/known_pairs.py). Block schemes use 16x16 blocks (the ViT setting), Huang 2022
its filter of the default configuration (2x2). The learned attacks are capped at --steps
(default 100 here: about 4 minutes each on 2 cores; their scores are lower bounds).

  python -m benchmarks.eval_set --out workdir/eval_set
  python -m benchmarks.security --eval-set workdir/eval_set/eval_set.npz --schemes pe huang2022
      # -> benchmarks/results/security_224.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks.encrypt_throughput import machine
from lie_jax import ciphers
from lie_jax import data
from lie_jax.attacks import report
from lie_jax.attacks import suite

EVAL_SET_BLOCK = 16
EVAL_SET_STEPS = 100
# Schemes run at their own block size on the eval set: Huang 2022's filter keeps one value per
# block (16x16 would average the image away; the default configuration uses 2x2).
OWN_BLOCK = ("huang2022",)
# The 28 px runs: the first NUM_VICTIMS PneumoniaMNIST test images are the victims, the first
# NUM_KNOWN train images the attacker's known plaintexts (`pneumonia_split`).
NUM_VICTIMS = 200
NUM_KNOWN = 1000
PER_IMAGE_SCHEMES = [s for s in ciphers.SCHEMES if ciphers.get_scheme(s).per_image_keys]


def eval_set_split(path: str) -> tuple[np.ndarray, np.ndarray, str]:
  """(victims, known plaintexts, description) from an eval_set.npz's grayscale tiles."""
  from benchmarks import eval_set

  tiles = eval_set.load(path)["gray"].images
  if len(tiles) < 6:
    raise ValueError(f"{path} holds {len(tiles)} grayscale tiles; at least 6 are needed")
  victims = tiles[::3]
  known = np.concatenate([tiles[1::3], tiles[2::3]])
  return victims, known, (f"{path} gray tiles[::3] ({len(victims)} victims), the other "
                          f"{len(known)} tiles (known plaintexts)")


def pneumonia_split(num_images: int = NUM_VICTIMS, train_images: int = NUM_KNOWN
                    ) -> tuple[np.ndarray, np.ndarray, str]:
  """(victims, known plaintexts, description): the first PneumoniaMNIST test and train images."""
  splits = data.load_dataset("pneumoniamnist")
  victims = splits.test.images[:num_images]
  known = splits.train.images[:train_images]
  return victims, known, (f"pneumoniamnist test[:{len(victims)}] (victims), "
                          f"train[:{len(known)}] (known plaintexts)")


def _eval_set_report(victims, known, *, args, skipped: list[str]) -> list:
  """Per-image-key runs on the eval set, each scheme at its block size (OWN_BLOCK or 16)."""
  results = []
  for scheme in args.schemes or PER_IMAGE_SCHEMES:
    default = args.block_size or EVAL_SET_BLOCK
    block = _block_for(scheme, default, eval_set=True) or default
    results += report.security_report(
        victims, known, seed=args.seed, block_size=block, steps=args.steps or EVAL_SET_STEPS,
        schemes=[scheme], key_modes=[True], skipped=skipped, attacks=args.attacks)
  return results


def _block_for(scheme: str, block_size: int, *, eval_set: bool) -> int | None:
  """The block size a run gives `scheme` (None for schemes without one)."""
  options = ciphers.SCHEMES[scheme].options
  if "block_size" not in options:
    return None
  return options["block_size"] if eval_set and scheme in OWN_BLOCK else block_size


def _earlier_rows(out: str, described: str, steps: int | None, *, schemes: list[str],
                  attacks: list[str] | None, blocks: dict[str, int | None]
                  ) -> tuple[list[dict], list[str], dict]:
  """(rows, not-run lines, the earlier file) of an earlier run in `out` on the same images
  with the same step cap that this run did not repeat: other schemes, other attacks (with
  --attacks) or other block sizes; nothing when `out` is missing, unreadable or from other
  settings (it is then overwritten)."""
  def repeated(scheme, attack, block=None, any_block=False):
    return (scheme in schemes and (attacks is None or attack in attacks)
            and (any_block or block == blocks[scheme]))
  try:
    with open(out) as f:
      prev = json.load(f)
    if prev.get("data") != described or prev.get("learned_attack_steps") != steps:
      return [], [], {}
    kept = [r for r in prev["results"] if not repeated(
        r["scheme"], r.get("attack"), (r.get("options") or {}).get("block_size"))]
    lines = []
    for line in prev.get("not_run", []):
      scheme, _, attack = report.not_run_key(line)
      if scheme and not repeated(scheme, attack, any_block=True):
        lines.append(line)
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return [], [], {}
  return kept, lines, (prev if kept or lines else {})


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-images", type=int, default=NUM_VICTIMS)
  parser.add_argument("--train-images", type=int, default=NUM_KNOWN)
  parser.add_argument("--block-size", type=int, default=None,
                      help="B of the block schemes (default 4; with --eval-set 16)")
  parser.add_argument("--steps", type=int, default=None,
                      help="step cap of the learned attacks (default: their own, with early "
                           "stopping)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval-set", default=None, metavar="NPZ",
                      help="attack the 224x224 tiles of this eval_set.npz, per-image keys")
  parser.add_argument("--schemes", nargs="+", default=None,
                      choices=PER_IMAGE_SCHEMES,
                      help="with --eval-set: these schemes (default every per-image one)")
  parser.add_argument("--attacks", nargs="+", default=None, choices=sorted(suite.ATTACKS),
                      help="only these attacks; the results file keeps the other rows of an "
                           "earlier run on the same images")
  parser.add_argument("--out", default=None,
                      help="default benchmarks/results/security.json (--eval-set: "
                           "security_224.json)")
  parser.add_argument("--figure", default=None, help="also write the report figure here")
  args = parser.parse_args()
  if args.schemes and not args.eval_set:
    parser.error("--schemes needs --eval-set")
  results_dir = os.path.join(os.path.dirname(__file__), "results")
  out = args.out or os.path.join(results_dir,
                                 "security_224.json" if args.eval_set else "security.json")
  steps = args.steps or (EVAL_SET_STEPS if args.eval_set else None)
  block_size = args.block_size or (EVAL_SET_BLOCK if args.eval_set else 4)
  skipped: list[str] = []
  start = time.perf_counter()
  if args.eval_set:
    victims, known, described = eval_set_split(args.eval_set)
    results = _eval_set_report(victims, known, args=args, skipped=skipped)
    command = "python -m benchmarks.security --eval-set NPZ"
  else:
    victims, known, described = pneumonia_split(args.num_images, args.train_images)
    command = "python -m benchmarks.security"
    results = report.security_report(victims, known, seed=args.seed, block_size=block_size,
                                     steps=steps, skipped=skipped, attacks=args.attacks)
  seconds = time.perf_counter() - start
  # Strict JSON: morph's infinite nominal key space is written as null (the table shows ∞).
  rows = [report.json_row(r) for r in results]
  if args.eval_set or args.attacks:  # rows this run did not repeat are kept
    ran = list(args.schemes or (PER_IMAGE_SCHEMES if args.eval_set else ciphers.SCHEMES))
    kept, kept_lines, prev = _earlier_rows(
        out, described, steps, schemes=ran, attacks=args.attacks,
        blocks={s: _block_for(s, block_size, eval_set=bool(args.eval_set)) for s in ran})
    order = list(ciphers.SCHEMES)  # shared-key rows first, then per-image ones, by scheme
    rows = sorted(kept + rows, key=lambda r: (bool(r.get("per_image_keys")),
                                              order.index(r["scheme"])))
    skipped = kept_lines + skipped
    if prev:  # the file holds both runs: their total time, the first run's block size
      seconds += float(prev.get("seconds") or 0.0)
      block_size = prev.get("block_size", block_size)
    if args.eval_set:
      every = sorted({r["scheme"] for r in rows} | set(args.schemes or PER_IMAGE_SCHEMES))
      if not set(every) >= set(PER_IMAGE_SCHEMES):
        command += f" --schemes {' '.join(every)}"
  with open(out, "w") as f:
    json.dump({"benchmark": "security", "machine": machine(), "command": command,
               "data": described, "size": int(victims.shape[1]),
               "block_size": block_size, "learned_attack_steps": steps,
               "seed": args.seed, "seconds": seconds, "verdict_rule": report.VERDICT_RULE,
               "results": rows, "not_run": skipped}, f, indent=1, allow_nan=False)
  if args.figure:
    report.report_figure(results).save(args.figure)
  print(report.markdown_table(rows))
  print("".join(f"- {line}\n" for line in skipped))
  print(f"wrote {out} ({seconds:.0f} s)")


if __name__ == "__main__":
  main()
