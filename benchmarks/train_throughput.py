"""Training throughput at 224 px: ResNet-18, DenseNet-121 and ViT-S/16, plain vs every scheme.

For each backbone, the jitted train step (`lie_jax.training.trainer.make_steps`, encryption
inside the step as `train_and_evaluate` runs it) of lie_jax/configs/medmnist.py at 224x224x3: plain
images, and every scheme with its own adaptation layer and that config's block size and
key mode. Times --steps steps after compiling, on random images (the rate does not depend
on the content), and reports images/s and the step time relative to the same backbone on
plain images. Target (issue 20): every scheme + adaptation at <= TARGET x the plain step.
MoLe is skipped at 224x224x3: its augmented first layer alone is 24 GiB (docs/SCHEMES.md).

Records the device, so the same command fills the GPU rows where one is lent:

  python -m benchmarks.train_throughput                     # all (long on a 2-core CPU)
  python -m benchmarks.train_throughput --backbones resnet18 --schemes le pe --steps 2

Writes benchmarks/results/train_throughput.json (--out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import jax
import numpy as np

from benchmarks import train_overhead
from benchmarks.encrypt_throughput import machine
from lie_jax.configs import medmnist
from lie_jax import ciphers
from lie_jax.training import encryption
from lie_jax.training.trainer import make_steps

TARGET = 1.15
SHAPE = (224, 224, 3)
BACKBONES = ("resnet18", "densenet121", "vit")
# Not run at 224x224x3, with the reason.
SKIPPED = {"morph": "MoLe's augmented first layer is 24 GiB at 224x224x3 (docs/SCHEMES.md)"}
OUT = os.path.join(os.path.dirname(__file__), "results", "train_throughput.json")


def measure(backbone: str, scheme: str, *, batch_size: int, steps: int) -> dict[str, Any]:
  """Compiles and times the train step of `backbone` with `scheme` ("none": plain)."""
  config = medmnist.get_config(f"dermamnist,{scheme},,{backbone}")
  encoder = encryption.make_input_encoder(config.cipher, image_shape=SHAPE, seed=0)
  model, optimizer = train_overhead.build_model_and_optimizer(config, encoder, SHAPE)
  train_step, _ = make_steps(encoder)
  rng = np.random.default_rng(0)
  args = (jax.device_put(rng.integers(0, 256, (batch_size, *SHAPE), dtype=np.uint8)),
          jax.device_put(rng.integers(0, 7, batch_size)), jax.device_put(np.arange(batch_size)))
  start = time.perf_counter()
  jax.block_until_ready(train_step(model, optimizer, *args))
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(train_step(model, optimizer, *args))
    times.append(time.perf_counter() - start)
  step = float(np.median(times))
  return {"backbone": backbone, "scheme": scheme, "adaptation": config.model.adaptation,
          "block_size": encoder.options.get("block_size"),
          "per_image_keys": encoder.per_image_keys, "batch_size": batch_size,
          "step_s": step, "images_per_s": batch_size / step, "compile_s": compile_s}


def format_row(r: dict[str, Any]) -> str:
  if r.get("skipped"):
    return f"| {r['backbone']} | {r['scheme']} | – | – | – | – | skipped: {r['skipped']} |"
  ratio = "1.00 (plain)" if r["scheme"] == "none" else f"{r['ratio']:.2f}"
  verdict = "" if r["scheme"] == "none" else ("PASS" if r["ratio"] <= TARGET else "MISS")
  return (f"| {r['backbone']} | {r['scheme']} | {r['adaptation']} | {r['step_s'] * 1e3:.0f} | "
          f"{r['images_per_s']:.1f} | {ratio} | {verdict} |")


HEADER = ("| backbone | scheme | adaptation | step (ms) | images/s | step / plain step | "
          f"<= {TARGET} |\n|---|---|---|---:|---:|---:|---|")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
  parser.add_argument("--schemes", nargs="+", default=list(ciphers.SCHEMES),
                      choices=list(ciphers.SCHEMES))
  parser.add_argument("--batch-size", type=int, default=8)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  print(f"# {jax.devices()[0]}, batch {args.batch_size}, {SHAPE}\n{HEADER}", flush=True)
  rows = []
  for backbone in args.backbones:
    plain = measure(backbone, "none", batch_size=args.batch_size, steps=args.steps)
    rows.append(plain)
    print(format_row(plain), flush=True)
    for scheme in args.schemes:
      if scheme in SKIPPED:
        rows.append({"backbone": backbone, "scheme": scheme, "skipped": SKIPPED[scheme]})
      else:
        rows.append(measure(backbone, scheme, batch_size=args.batch_size, steps=args.steps))
        rows[-1]["ratio"] = rows[-1]["step_s"] / plain["step_s"]
      print(format_row(rows[-1]), flush=True)
  measured = [r for r in rows if r["scheme"] != "none" and not r.get("skipped")]
  checks = [f"{'PASS' if r['ratio'] <= TARGET else 'MISS'} {r['backbone']} + {r['scheme']}: "
            f"{r['ratio']:.2f}x the plain step (target <= {TARGET})" for r in measured]
  print("\n".join(checks))
  command = ("python -m benchmarks.train_throughput"
             + ("" if args.backbones == list(BACKBONES) else
                f" --backbones {' '.join(args.backbones)}")
             + ("" if args.schemes == list(ciphers.SCHEMES) else
                f" --schemes {' '.join(args.schemes)}")
             + f" --batch-size {args.batch_size} --steps {args.steps}")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "train_throughput", "machine": machine(), "image_shape": SHAPE,
               "target": TARGET, "results": rows, "checks": checks, "command": command},
              f, indent=1)
    f.write("\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
