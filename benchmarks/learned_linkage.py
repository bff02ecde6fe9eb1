"""Learned linkage against copies that are not the encrypted file (28x28 PneumoniaMNIST).

`benchmarks/linkage.py` links ciphertexts to six copies of the candidates with the exact
key-invariant attack (`lie_jax.attacks.linkage`): 100% against the exact file, as low as 3%
against a simulated re-acquisition. This benchmark runs the learned attacker
(`lie_jax.attacks.learned_linkage`) on the same ciphertexts (the first --num-images test
images, per-image keys, block schemes in 4x4 blocks, seed as there) and the same copies
(`benchmarks.linkage.copies`). The attacker trains on the train split only (4,708 images,
disjoint from the victims), pairing each image with a simulated re-acquisition of it
(`benchmarks.linkage.reacquired` with fresh draws every step: it expects its copies to come
from another acquisition, and is scored on every kind of copy). Its answer for each copy
kind is the better of the two attacks run together: the exact attack where its best
candidate matches exactly (L1 distance 0: the ciphertext's own invariants, certain), else
the learned metric's ranking. Writes benchmarks/results/learned_linkage.json (about 2
minutes per scheme on 2 cores; PE, one row per pixel, 26).

With --eval-set, the evaluation set's 224x224 tiles (16x16 blocks) instead, where the exact
attack is weakest: against a simulated re-acquisition of every tile (grayscale and RGB) and
against the real second views of `benchmarks.linkage.NEARBY` (the template brain 1 and 2 mm
further, every 2-D scan framed 8 px further). There is no public set of such scans to train
on, so the attacker trains on what it holds, its own candidate copies, each paired with
--copies simulated re-acquisitions of itself drawn once (`copies_per_image`): no victim's
encrypted scan or other view is ever seen in training. PE is left out at 224 px (its features
are one row per pixel: 50,176 rows an image).

  python -m benchmarks.learned_linkage [--steps 2000] [--schemes etc vit ...]
  python -m benchmarks.learned_linkage --eval-set workdir/eval_set/eval_set.npz \
      --steps 300 --copies 4   # 224 px, 24 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks import linkage as linkage_benchmark
from benchmarks.encrypt_throughput import machine
from lie_jax import data
from lie_jax.attacks import learned_linkage
from lie_jax.attacks import linkage
from lie_jax.attacks import reidentification

OUT = os.path.join(os.path.dirname(__file__), "results", "learned_linkage.json")


def combined_top1(cipher: np.ndarray, candidates: np.ndarray, scheme: str, opts: dict,
                  model: learned_linkage.LearnedLinkage) -> dict[str, float]:
  """Top-1 of the exact attack, of the learned one, and of both together (exact where its
  best candidate's invariants equal the ciphertext's, learned elsewhere)."""
  exact = linkage.scores(cipher, candidates, scheme=scheme, options=opts)
  learned = learned_linkage.scores(cipher, candidates, model)
  certain = exact.max(axis=1) == 0  # minus L1 distance: 0 only for an exact match
  both = np.where(certain[:, None], exact, learned)
  top1 = lambda s: float((reidentification.true_ranks(s) == 1).mean())
  return {"exact": top1(exact), "learned": top1(learned), "combined": top1(both)}


def measure(victims: np.ndarray, public: np.ndarray, scheme: str, *, steps: int,
            seed: int = 0, block_size: int = linkage_benchmark.BLOCK_SIZE) -> dict:
  """One scheme's row: for each copy kind, top-1 of the exact, learned and combined attacks."""
  start = time.perf_counter()
  cipher, opts = linkage_benchmark.encrypt(scheme, victims, seed, block_size)
  model = learned_linkage.train(public, scheme=scheme, options=opts,
                                copy_fn=linkage_benchmark.reacquired, steps=steps, seed=seed,
                                progress=True)
  row = {"scheme": scheme, "options": opts, "per_image_keys": True,
         "chance_top1": 1.0 / len(victims), "steps": steps,
         "final_loss": model.history["loss"][-1]}
  for name, candidates in linkage_benchmark.copies(victims, seed).items():
    for attack, value in combined_top1(cipher, candidates, scheme, opts, model).items():
      row[f"{attack}_{name}"] = value
  row["seconds"] = time.perf_counter() - start
  return row


EVAL_SET_SCHEMES = tuple(s for s in learned_linkage.SCHEMES if s != "pe")


def eval_set_scenarios(path: str, seed: int = 0):
  """(data name, view, victims, the attacker's candidate copies) at 224 px: every subset's
  tiles against their simulated re-acquisition, then NEARBY's real second views."""
  from benchmarks import eval_set  # pylint: disable=g-import-not-at-top
  subsets = eval_set.load(path)
  for name in ("gray", "rgb"):
    tiles = subsets[name].images
    yield (f"eval set {name} tiles ({len(tiles)})", "reacquired", tiles,
           linkage_benchmark.reacquired(tiles, seed))
  for view, name, tiles, views, _ in linkage_benchmark.nearby_pairs(
      subsets, linkage_benchmark.eval_set_nearby(path)):
    yield f"eval set {name} tiles ({len(tiles)})", view, tiles, views


def measure_eval_set(path: str, schemes: list[str], *, steps: int, copies: int,
                     seed: int = 0) -> list[dict]:
  """One row per (scenario, scheme): exact, learned and combined top-1, the learned attacker
  trained on the scenario's candidate copies alone."""
  rows = []
  for data_name, view, victims, candidates in eval_set_scenarios(path, seed):
    for scheme in schemes:
      start = time.perf_counter()
      cipher, opts = linkage_benchmark.encrypt(scheme, victims, seed,
                                               linkage_benchmark.EVAL_SET_BLOCK)
      model = learned_linkage.train(candidates, scheme=scheme, options=opts,
                                    copy_fn=linkage_benchmark.reacquired, steps=steps,
                                    seed=seed, copies_per_image=copies, progress=True)
      rows.append({"data": data_name, "view": view, "scheme": scheme, "options": opts,
                   "chance_top1": 1.0 / len(victims), "steps": steps,
                   "final_loss": model.history["loss"][-1],
                   **combined_top1(cipher, candidates, scheme, opts, model),
                   "seconds": time.perf_counter() - start})
  return rows


EVAL_SET_HEADER = ("| tiles | second view | scheme | exact attack | learned | both |\n"
                   "|---|---|---|---:|---:|---:|")


def format_eval_set_row(row: dict) -> str:
  return (f"| {row['data']} | {row['view']} | {row['scheme']} | {100 * row['exact']:.1f} | "
          f"{100 * row['learned']:.1f} | **{100 * row['combined']:.1f}** |")


HEADER = ("| scheme | " + " | ".join(linkage_benchmark.COPIES) + " |\n|---|"
          + "---:|" * len(linkage_benchmark.COPIES))


def format_row(row: dict) -> str:
  """'exact -> combined' top-1 % per copy kind."""
  cells = [f"{100 * row[f'exact_{c}']:.1f} -> **{100 * row[f'combined_{c}']:.1f}**"
           for c in linkage_benchmark.COPIES]
  return f"| {row['scheme']} | " + " | ".join(cells) + " |"


def _write(out: str, result: dict) -> None:
  """The results file: the benchmark's name and machine, then `result`'s fields."""
  with open(out, "w") as f:
    json.dump({"benchmark": "learned_linkage", "machine": machine(), **result}, f, indent=1)
    f.write("\n")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-images", type=int, default=200)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--schemes", nargs="+", default=list(learned_linkage.SCHEMES),
                      choices=learned_linkage.SCHEMES)
  parser.add_argument("--eval-set", default=None, metavar="NPZ",
                      help="the 224x224 tiles of this eval_set.npz instead (--out defaults to "
                           "learned_linkage_224.json)")
  parser.add_argument("--copies", type=int, default=8,
                      help="--eval-set: simulated re-acquisitions drawn per candidate")
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  if args.eval_set:
    schemes = [s for s in args.schemes if s in EVAL_SET_SCHEMES]
    out = args.out or OUT.replace(".json", "_224.json")
    start = time.perf_counter()
    rows = measure_eval_set(args.eval_set, schemes, steps=args.steps, copies=args.copies,
                            seed=args.seed)
    _write(out, {"command": f"python -m benchmarks.learned_linkage --eval-set NPZ "
                            f"--steps {args.steps} --copies {args.copies}",
                 "data": "eval set 224x224 tiles", "seed": args.seed,
                 "seconds": time.perf_counter() - start, "results": rows})
    print(f"{EVAL_SET_HEADER}\n" + "\n".join(format_eval_set_row(r) for r in rows))
    print(f"wrote {out}")
    return
  args.out = args.out or OUT
  splits = data.load_dataset("pneumoniamnist")
  victims, public = splits.test.images[:args.num_images], splits.train.images
  start = time.perf_counter()
  rows = [measure(victims, public, scheme, steps=args.steps, seed=args.seed)
          for scheme in args.schemes]
  _write(args.out, {"command": "python -m benchmarks.learned_linkage"
                              + (f" --steps {args.steps}" if args.steps != 2000 else ""),
                   "data": f"pneumoniamnist test[:{args.num_images}], trained on train",
                   "copies": list(linkage_benchmark.COPIES), "seed": args.seed,
                   "seconds": time.perf_counter() - start, "results": rows})
  print(f"{HEADER}\n" + "\n".join(format_row(r) for r in rows))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
