"""Training-step cost of encrypting inside the step, for every scheme.

For every scheme, in its configuration from lie_jax/configs/pneumoniamnist.py (its own
adaptation layer and backbone, its block size, and per-image keys where that
config uses them: pe, huang2022), times two jitted train steps
(`lie_jax.training.trainer.make_steps`) of the same model on the same batch of
real PneumoniaMNIST images:

  in-step:        the step encrypts the uint8 plain images itself, as
                  `train_and_evaluate` does with on-device encryption
                  (`encryption.make_input_encoder`);
  pre-encrypted:  the step is fed the same batch already encrypted and only
                  scales it, as `train_and_evaluate` does for a dataset the
                  data owner encrypted (`encryption.encrypted_data_encoder`).

The only difference between the two is whether the jitted step encrypts, so
in-step / pre-encrypted is the cost of encrypting inside the step. Floor
(issue 16): <= 1.05 for every scheme. The pre-encrypted batch is made with the
encoder's own cipher key (shared-key schemes) or with per-image keys from a
key of its own (per-image schemes: the cost does not depend on the key).

Both steps are compiled (and run once) before timing, then run in --repeats
back-to-back pairs (alternating which goes first). The ratio checked is the
median over the pairs of in-step / pre-encrypted: both steps of a pair see the
same phase of a shared machine, which makes it steadier than the ratio of the
best-of-N times (also reported, with the best-of-N times themselves). Writes
benchmarks/results/train_overhead.json.

  python -m benchmarks.train_overhead                   # every scheme, a few minutes on 2 cores
  python -m benchmarks.train_overhead --schemes le pe --repeats 5
  python -m benchmarks.train_overhead --mole 64              # MoLe's step against plain VGG-16
  python -m benchmarks.train_overhead --mole-train 64        # both trained end to end (an hour)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from flax import nnx

from benchmarks.encrypt_throughput import machine
from lie_jax.configs import pneumoniamnist
from lie_jax import ciphers
from lie_jax import data
from lie_jax import models
from lie_jax.training import encryption
from lie_jax.training.trainer import make_optimizer
from lie_jax.training.trainer import make_steps

FLOOR = 1.05
DEFAULT_REPEATS = 30
DEFAULT_BATCH_SIZE = 64


def build_model_and_optimizer(config: ml_collections.ConfigDict, encoder: encryption.InputEncoder,
           image_shape: tuple[int, int, int]):
  """The model and optimizer `train_and_evaluate` builds for `config` (same seed every call)."""
  model = models.build_model(
      backbone=config.model.backbone, adaptation=config.model.adaptation, num_classes=2,
      image_shape=image_shape, block_size=encoder.options.get("block_size",
                                                              config.cipher.block_size),
      cipher_key=encoder.cipher_key if config.model.adaptation == "morph" else None,
      rngs=nnx.Rngs(config.seed),
      adaptation_options=models.set_options(config.model.get("adaptation_options")),
      **models.set_options(config.model.get("options")))
  optimizer = nnx.Optimizer(model, make_optimizer(config.optim, total_steps=1000),
                            wrt=nnx.Param)
  return model, optimizer


def _pre_encrypt(scheme: str, encoder: encryption.InputEncoder, batch: dict[str, jax.Array],
                 seed: int) -> jax.Array:
  """The batch as the data owner would have stored it: ciphertexts, not yet scaled."""
  record = ciphers.get_scheme(scheme)
  if encoder.per_image_keys:
    return record.encrypt_per_image(jax.random.key(seed), batch["image"],
                                    indices=batch["index"], **encoder.options)
  return record.encrypt(encoder.cipher_key, batch["image"])


def paired_times(first: Callable[[], Any], second: Callable[[], Any],
                 pairs: int) -> list[tuple[float, float]]:
  """`pairs` (first seconds, second seconds) of two compiled calls run back to back,
  alternating which goes first, so that both calls of a pair see the same phase of a shared
  machine."""
  out = []
  for i in range(pairs):
    took = {}
    for name, fn in ((("a", first), ("b", second)) if i % 2 == 0 else
                     (("b", second), ("a", first))):
      start = time.perf_counter()
      jax.block_until_ready(fn())
      took[name] = time.perf_counter() - start
    out.append((took["a"], took["b"]))
  return out


def paired_steps(runs: dict[str, tuple], repeats: int) -> tuple[dict[str, float], float]:
  """Runs two compiled steps {name: (train_step, model, optimizer, args)} back to back
  `repeats` times, alternating which goes first; returns ({name: best seconds}, the median
  over the pairs of first-named / second-named)."""
  names = list(runs)
  calls = [lambda r=runs[name]: r[0](r[1], r[2], *r[3]) for name in names]
  timed = paired_times(calls[0], calls[1], repeats)
  best = {names[0]: min(a for a, _ in timed), names[1]: min(b for _, b in timed)}
  return best, float(np.median([a / b for a, b in timed]))


def measure(scheme: str, batch: dict[str, jax.Array], repeats: int,
            backbone: str | None = None) -> dict[str, Any]:
  """Times the in-step and pre-encrypted train steps of one scheme; returns its row."""
  config = pneumoniamnist.get_config(scheme)
  if backbone:
    config.model.backbone = backbone
  image_shape = tuple(int(s) for s in batch["image"].shape[1:])
  in_step = encryption.make_input_encoder(config.cipher, image_shape=image_shape,
                                          seed=config.seed)
  stored = {"scheme": scheme, "options": in_step.options,
            "per_image_keys": in_step.per_image_keys, "key_fingerprint": None}
  pre = encryption.encrypted_data_encoder(
      ml_collections.ConfigDict({"name": encryption.FROM_MANIFEST, "secret_file": None}), stored)
  ciphertexts = jax.block_until_ready(_pre_encrypt(scheme, in_step, batch, config.seed))
  runs = {}
  for name, encoder, images in (("in_step", in_step, batch["image"]),
                                ("pre_encrypted", pre, ciphertexts)):
    # One model for both: built from the in-step encoder (morph's layer needs its key).
    model, optimizer = build_model_and_optimizer(config, in_step, image_shape)
    train_step, _ = make_steps(encoder)
    args = (images, batch["label"], batch["index"])
    jax.block_until_ready(train_step(model, optimizer, *args))  # compile
    runs[name] = (train_step, model, optimizer, args)
  best, ratio = paired_steps(runs, repeats)
  return {"scheme": scheme, "adaptation": config.model.adaptation,
          "backbone": config.model.backbone, "per_image_keys": in_step.per_image_keys,
          "options": {k: list(v) if isinstance(v, tuple) else v
                      for k, v in in_step.options.items()},
          "in_step_ms": 1e3 * best["in_step"], "pre_encrypted_ms": 1e3 * best["pre_encrypted"],
          "ratio": ratio, "ratio_of_best": best["in_step"] / best["pre_encrypted"],
          "passes": ratio <= FLOOR}


def measure_mole(size: int, batch_size: int, repeats: int) -> dict[str, Any]:
  """VGG-16 + MoLe (its augmented first layer on morphed vectors, one core copy per image row)
  against plain VGG-16 on the plain images, at size x size PneumoniaMNIST: paired step times."""
  from lie_jax.ciphers import morph  # pylint: disable=g-import-not-at-top
  images = data.load_dataset("pneumoniamnist", image_size=size).train
  batch = next(data.train_batches(images, batch_size=batch_size, seed=0))
  shape = (size, size, 1)
  runs = {}
  for name in ("plain", "mole"):
    config = pneumoniamnist.get_config("none,none,vgg16" if name == "plain" else
                                       "morph,morph,vgg16")
    config.cipher.options.copies = size
    encoder = encryption.make_input_encoder(config.cipher, image_shape=shape, seed=config.seed)
    model, optimizer = build_model_and_optimizer(config, encoder, shape)
    inputs = jax.device_put(batch["image"])
    if name == "mole":  # the owner morphs; the server's step takes the vectors as they are
      inputs = morph.encrypt(encoder.cipher_key, inputs)
      layer_bytes = model.adaptation.matrices[...].nbytes
      stored = {"scheme": "morph", "options": encoder.options, "per_image_keys": False,
                "key_fingerprint": None}
      encoder = encryption.encrypted_data_encoder(
          ml_collections.ConfigDict({"name": encryption.FROM_MANIFEST, "secret_file": None}),
          stored)
    train_step, _ = make_steps(encoder)
    args = (inputs, jax.device_put(batch["label"]), jax.device_put(batch["index"]))
    jax.block_until_ready(train_step(model, optimizer, *args))  # compile
    runs[name] = (train_step, model, optimizer, args)
  runs = {"mole": runs["mole"], "plain": runs["plain"]}  # the ratio is mole / plain
  best, ratio = paired_steps(runs, repeats)
  return {"image_shape": list(shape), "copies": size, "batch_size": batch_size,
          "plain_ms": 1e3 * best["plain"], "mole_ms": 1e3 * best["mole"],
          "ratio": ratio, "layer_bytes": int(layer_bytes)}


def format_row(r: dict[str, Any]) -> str:
  keys = "per image" if r["per_image_keys"] else "shared"
  return (f"| {r['scheme']} | {r['adaptation']} | {r['backbone']} | {keys} "
          f"| {r['in_step_ms']:.1f} | {r['pre_encrypted_ms']:.1f} | {r['ratio']:.3f} "
          f"| {r['ratio_of_best']:.3f} | {'PASS' if r['passes'] else 'MISS'} |")


HEADER = ("| scheme | adaptation | backbone | keys | step, encrypting (ms) "
          "| step, pre-encrypted (ms) | ratio (median of pairs) | ratio of bests "
          f"| ratio <= {FLOOR} |\n"
          "|---|---|---|---|---:|---:|---:|---:|---|")


def train_mole(size: int, epochs: int, batch_size: int, workdir: str) -> dict[str, Any]:
  """VGG-16 + MoLe and plain VGG-16 trained end to end (`train_and_evaluate`) on PneumoniaMNIST
  resized to size x size, same settings: test accuracy, AUC and wall time of each, and the
  ratio of training times (MoLe / plain; MoLe's paper: about 9% compute on CIFAR)."""
  from lie_jax.training import train_and_evaluate  # pylint: disable=g-import-not-at-top
  rows = {}
  for name, run in (("plain", "none,none,vgg16"), ("mole", "morph,morph,vgg16")):
    config = pneumoniamnist.get_config(run)
    config.data.image_size = size
    config.cipher.options.copies = size  # one core copy per image row, as --mole measures
    config.train.batch_size, config.train.num_epochs = batch_size, epochs
    config.train.progress_bar = False
    run_dir = os.path.join(workdir, f"{name}_{size}")
    if os.path.exists(run_dir):  # a resumed run's time would be only its last part
      raise SystemExit(f"{run_dir} exists: remove it (or pass another --workdir) to time the "
                       "whole training run")
    result = train_and_evaluate(config, run_dir)
    rows[name] = {"run": run, "test_accuracy": result["test_accuracy"],
                  "test_auc": result["test_auc"], "best_val_accuracy": result["best_val_accuracy"],
                  "steps": result["steps"], "train_s": result["train_time_s_this_run"]}
  return {"image_shape": [size, size, 1], "copies": size, "batch_size": batch_size,
          "epochs": epochs, **rows, "time_ratio": rows["mole"]["train_s"] / rows["plain"]["train_s"]}


def _add_mole_row(out: str, section: str, size: int, row: dict[str, Any], flags: str) -> None:
  """Adds one MoLe row (with its command and machine) to `out`'s section, keeping the rest."""
  with open(out) as f:
    result = json.load(f)
  row = {**row, "command": f"python -m benchmarks.train_overhead {flags}", "machine": machine()}
  result.setdefault(section, {})[str(size)] = row
  print(json.dumps(row, indent=1))
  with open(out, "w") as f:
    json.dump(result, f, indent=1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--schemes", nargs="+", default=list(ciphers.SCHEMES),
                      choices=list(ciphers.SCHEMES))
  parser.add_argument("--backbone", default=None,
                      help="override every scheme's backbone (default: its config's)")
  parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
  parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                    "train_overhead.json"))
  parser.add_argument("--mole", type=int, default=None, metavar="SIZE",
                      help="only measure VGG-16 + MoLe against plain VGG-16 at SIZE x SIZE and "
                           "add it to --out (which keeps its other rows)")
  parser.add_argument("--mole-train", type=int, default=None, metavar="SIZE",
                      help="train VGG-16 + MoLe and plain VGG-16 end to end at SIZE x SIZE and "
                           "add both to --out (which keeps its other rows)")
  parser.add_argument("--epochs", type=int, default=2, help="epochs of --mole-train")
  parser.add_argument("--workdir", default="workdir/mole_train", help="for --mole-train")
  args = parser.parse_args()
  if args.mole_train:
    _add_mole_row(args.out, "mole_training", args.mole_train,
                  train_mole(args.mole_train, args.epochs, 16, args.workdir),
                  f"--mole-train {args.mole_train}"
                  + (f" --epochs {args.epochs}" if args.epochs != 2 else ""))
    return
  if args.mole:
    _add_mole_row(args.out, "mole", args.mole, measure_mole(args.mole, 16, 10),
                  f"--mole {args.mole}")
    return
  splits = data.load_dataset("pneumoniamnist")
  batch = next(data.train_batches(splits.train, batch_size=args.batch_size, seed=0))
  batch = {k: jax.device_put(np.asarray(v)) for k, v in batch.items()}
  print(f"# batch {args.batch_size} on {jax.devices()[0]}\n{HEADER}", flush=True)
  rows = []
  for scheme in args.schemes:
    rows.append(measure(scheme, batch, args.repeats, backbone=args.backbone))
    print(format_row(rows[-1]), flush=True)
  checks = [f"{'PASS' if r['passes'] else 'MISS'} {r['scheme']}: in-step / pre-encrypted "
            f"{r['ratio']:.3f} (floor <= {FLOOR})" for r in rows]
  print("\n".join(checks))
  command = "python -m benchmarks.train_overhead" + (
      "" if args.schemes == list(ciphers.SCHEMES) else f" --schemes {' '.join(args.schemes)}"
  ) + "".join(
      f" --{flag} {value}" for flag, value, default in (
          ("batch-size", args.batch_size, DEFAULT_BATCH_SIZE),
          ("repeats", args.repeats, DEFAULT_REPEATS), ("backbone", args.backbone, None))
      if value != default)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "train_overhead", "batch_size": args.batch_size,
               "repeats": args.repeats, "machine": machine(), "floor": FLOOR, "results": rows,
               "floor_checks": checks, "command": command}, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
