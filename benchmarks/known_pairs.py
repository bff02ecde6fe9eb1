"""How many known (and chosen) images recover each shared-key scheme's key exactly.

For every shared-key scheme the exact known-plaintext attack covers
(`lie_jax.attacks.known_plaintext_exact.SCHEMES`, and the ViT cipher without
pixel shuffling: block scrambling alone), on
  - PneumoniaMNIST (28x28 gray, block size 4): train images as the pool, as the suite does;
  - the realistic-resolution evaluation set (benchmarks/eval_set.py, 224x224, block size 16,
    gray and RGB; base-install sources, built in memory, nothing written),
the fewest known pairs whose recovered map decrypts every held-out image byte for byte
(`known_images_to_recover`: pool = the first images, victims = the last, an experiment key)
and the chosen plaintexts the chosen-plaintext attack needs.

  python -m benchmarks.known_pairs      # a few minutes on 2 cores

Writes benchmarks/results/known_pairs.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks import eval_set
from benchmarks.encrypt_throughput import machine
from lie_jax import data
from lie_jax.attacks import known_plaintext_exact as kpe

OUT = os.path.join(os.path.dirname(__file__), "results", "known_pairs.json")
# (label, scheme, options without block_size)
SCHEMES = [(s, s, {}) for s in kpe.SCHEMES] + [("vit, no pixel shuffling", "vit",
                                                 {"pixel_shuffling": False})]


def datasets(max_pairs: int, victims: int) -> list[tuple[str, np.ndarray, int]]:
  """(name, images, block size) of every dataset measured."""
  xrays = data.load_dataset("pneumoniamnist").train.images[:max_pairs + victims]
  base = [s for s in eval_set.SOURCES if s.dist in eval_set.BASE_DISTRIBUTIONS]
  subsets, _ = eval_set.build(sources=base)
  out = [("pneumoniamnist 28x28x1", xrays, 4)]
  for name in ("gray", "rgb"):
    images = subsets[name].images
    if len(images) >= 2:
      out.append((f"eval set 224x224 {name} ({len(images)} tiles)", images, 16))
  return out


def measure(max_pairs: int = 32, victims: int = 8) -> list[dict]:
  rows = []
  for name, images, block in datasets(max_pairs, victims):
    for label, scheme, extra in SCHEMES:
      options = {**extra, **({} if scheme == "pe" else {"block_size": block})}
      start = time.perf_counter()
      est = kpe.known_images_to_recover(images, scheme=scheme, options=options,
                                        max_pairs=max_pairs, victims=victims)
      rows.append({"data": name, "scheme": label, "options": options, "known_pairs": est.pairs,
                   "pool": est.pool, "victims": est.victims,
                   "chosen_plaintexts": kpe.min_chosen_plaintexts(
                       scheme, tuple(images.shape[1:]), options),
                   "seconds": time.perf_counter() - start})
      print(json.dumps(rows[-1]), flush=True)
  return rows


def table(rows: list[dict]) -> str:
  lines = ["| data | scheme | known pairs for exact recovery | chosen plaintexts |",
           "|---|---|---:|---:|"]
  for r in rows:
    known = r["known_pairs"] if r["known_pairs"] is not None else f"> {r['pool']}"
    lines.append(f"| {r['data']} | {r['scheme']} | {known} | {r['chosen_plaintexts']} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--max-pairs", type=int, default=32)
  parser.add_argument("--victims", type=int, default=8)
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  start = time.perf_counter()
  rows = measure(args.max_pairs, args.victims)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "known_pairs", "machine": machine(),
               "command": "python -m benchmarks.known_pairs", "max_pairs": args.max_pairs,
               "victims": args.victims, "seconds": time.perf_counter() - start,
               "results": rows}, f, indent=1)
  print(table(rows))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
