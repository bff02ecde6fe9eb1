"""Training-step overhead of encryption + adaptation over the plain backbone.

For each scheme (with its adaptation layer) and backbone, times the jitted
train step (on-device encryption + adaptation + backbone + optimizer update)
and the same backbone's train step on plain images, on the same batch of real
PneumoniaMNIST images, in one run, and prints the ratio. Target: <= 1.15 for
block-wise adaptation. Writes benchmarks/results/train_overhead.json.

  python -m benchmarks.train_overhead
  python -m benchmarks.train_overhead --backbones small_resnet --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import ml_collections
import optax
from flax import nnx

from benchmarks.encrypt_throughput import machine
from lie_jax import data
from lie_jax import models
from lie_jax.training import encryption
from lie_jax.training.trainer import make_steps

CASES = (("none", "none"), ("le", "block"), ("etc", "block"), ("pe", "pixel"), ("ele", "ele"))


def step_time(scheme: str, adaptation: str, backbone: str, batch, repeats: int) -> float:
  cipher = ml_collections.ConfigDict({"name": scheme, "block_size": 4, "per_image_keys": False,
                                      "secret_file": None, "options": {}})
  image_shape = tuple(batch["image"].shape[1:])
  encoder = encryption.make_input_encoder(cipher, image_shape=image_shape, seed=0)
  model = models.build_model(backbone=backbone, adaptation=adaptation, num_classes=2,
                             image_shape=image_shape, block_size=4,
                             rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
  optimizer = nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)
  train_step, _ = make_steps(encoder)
  args = (batch["image"], batch["label"], batch["index"])
  jax.block_until_ready(train_step(model, optimizer, *args))  # compile
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(train_step(model, optimizer, *args))
    times.append(time.perf_counter() - start)
  times.sort()
  return times[len(times) // 2]  # median


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--backbones", nargs="+", default=["small_resnet", "resnet18"])
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "train_overhead.json"))
  args = parser.parse_args()
  splits = data.load_dataset("pneumoniamnist")
  batch = next(data.train_batches(splits.train, batch_size=args.batch_size, seed=0))
  batch = {k: jax.device_put(v) for k, v in batch.items()}
  rows = []
  for backbone in args.backbones:
    plain = step_time("none", "none", backbone, batch, args.repeats)
    for scheme, adaptation in CASES[1:]:
      t = step_time(scheme, adaptation, backbone, batch, args.repeats)
      row = {"backbone": backbone, "scheme": scheme, "adaptation": adaptation,
             "step_ms": 1e3 * t, "plain_step_ms": 1e3 * plain, "ratio": t / plain}
      rows.append(row)
      print(f"{backbone:13s} {scheme:5s} + {adaptation:6s}: {1e3 * t:8.1f} ms vs plain "
            f"{1e3 * plain:8.1f} ms  ratio {t / plain:.2f}", flush=True)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "train_overhead", "batch_size": args.batch_size,
               "machine": machine(), "target_block_ratio": 1.15, "results": rows,
               "command": "python -m benchmarks.train_overhead"}, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
