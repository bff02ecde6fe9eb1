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
minutes per scheme on 2 cores).

  python -m benchmarks.learned_linkage [--steps 2000] [--schemes etc vit ...]
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


HEADER = ("| scheme | " + " | ".join(linkage_benchmark.COPIES) + " |\n|---|"
          + "---:|" * len(linkage_benchmark.COPIES))


def format_row(row: dict) -> str:
  """'exact -> combined' top-1 % per copy kind."""
  cells = [f"{100 * row[f'exact_{c}']:.1f} -> **{100 * row[f'combined_{c}']:.1f}**"
           for c in linkage_benchmark.COPIES]
  return f"| {row['scheme']} | " + " | ".join(cells) + " |"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-images", type=int, default=200)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--schemes", nargs="+", default=list(learned_linkage.SCHEMES),
                      choices=learned_linkage.SCHEMES)
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  splits = data.load_dataset("pneumoniamnist")
  victims, public = splits.test.images[:args.num_images], splits.train.images
  start = time.perf_counter()
  rows = [measure(victims, public, scheme, steps=args.steps, seed=args.seed)
          for scheme in args.schemes]
  with open(args.out, "w") as f:
    json.dump({"benchmark": "learned_linkage", "machine": machine(),
               "command": "python -m benchmarks.learned_linkage"
                          + (f" --steps {args.steps}" if args.steps != 2000 else ""),
               "data": f"pneumoniamnist test[:{args.num_images}], trained on train",
               "copies": list(linkage_benchmark.COPIES), "seed": args.seed,
               "seconds": time.perf_counter() - start, "results": rows}, f, indent=1)
    f.write("\n")
  print(f"{HEADER}\n" + "\n".join(format_row(r) for r in rows))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
