"""Training throughput at 224 px: ResNet-18, DenseNet-121 and ViT-S/16, plain vs every scheme.

For each backbone, the jitted train step (`lie_jax.training.trainer.make_steps`, encryption
inside the step as `train_and_evaluate` runs it) of lie_jax/configs/medmnist.py at 224x224x3: plain
images, and every scheme with its own adaptation layer and that config's block size and
key mode. On random images (the rate does not depend on the content). Target (issue 20):
every scheme + adaptation at <= TARGET x the plain step.

Timing: after compiling, the scheme's step and the plain step run in --steps back-to-back
pairs, alternating which goes first; the ratio is the median over the pairs (both steps of a
pair see the same phase of a shared machine). Each row also breaks the extra time down:

  encrypt:      the jitted encryption of the batch alone;
  adaptation:   the adaptation layer's forward and backward pass alone (and its parameter
                count: the optimizer updates those too);
  input grad:   per backbone, what the backbone costs more once its input needs a gradient
                (any adaptation layer needs one; plain images do not): the median over
                pairs of (gradient w.r.t. parameters and input) - (parameters only).

A scheme may be given with config settings, e.g. `ele,block=16`. MoLe is skipped at
224x224x3: its augmented first layer alone is 24 GiB (docs/SCHEMES.md).

Records the device, so the same command fills the GPU rows where one is lent:

  python -m benchmarks.train_throughput                     # all (long on a 2-core CPU)
  python -m benchmarks.train_throughput --backbones resnet18 --schemes le pe ele,block=16 --steps 2

Writes benchmarks/results/train_throughput.json (--out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks import train_overhead
from benchmarks.encrypt_throughput import best_times
from benchmarks.encrypt_throughput import machine
from lie_jax.configs import medmnist
from lie_jax import ciphers
from lie_jax.training import encryption
from lie_jax.training.trainer import make_steps

TARGET = 1.15
SHAPE = (224, 224, 3)
BACKBONES = ("resnet18", "densenet121", "vit")
# Every scheme in the config's setting, and ELE with 16x16 blocks: its adaptation mixes
# block positions with a dense nb x nb matrix, quadratic in the number of blocks.
SCHEMES = (*ciphers.SCHEMES, "ele,block=16")
# Not run at 224x224x3, with the reason.
SKIPPED = {"morph": "MoLe's augmented first layer is 24 GiB at 224x224x3 (docs/SCHEMES.md)"}
OUT = os.path.join(os.path.dirname(__file__), "results", "train_throughput.json")
COMPONENT_REPEATS = 3


def check_scheme(spec: str) -> str:
  """`spec` ("SCHEME" or "SCHEME,NAME=VALUE...") if SCHEME is a scheme or "none"."""
  name = spec.partition(",")[0]
  if name not in ("none", *ciphers.SCHEMES):
    raise argparse.ArgumentTypeError(f"unknown scheme {name!r} in {spec!r}; choose one of "
                                     f"{['none', *ciphers.SCHEMES]}")
  return spec


def _paired(first: Callable[[], Any], second: Callable[[], Any], pairs: int) -> list[tuple]:
  """`pairs` (first seconds, second seconds) after one untimed (compiling) call of each
  (`train_overhead.paired_times`)."""
  jax.block_until_ready(first())
  jax.block_until_ready(second())
  return train_overhead.paired_times(first, second, pairs)


def _batch(batch_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  rng = np.random.default_rng(0)
  return (jax.device_put(rng.integers(0, 256, (batch_size, *SHAPE), dtype=np.uint8)),
          jax.device_put(rng.integers(0, 7, batch_size)), jax.device_put(np.arange(batch_size)))


def build(backbone: str, spec: str, batch_size: int) -> dict[str, Any]:
  """The compiled-on-first-call train step of `backbone` with scheme `spec` and its parts."""
  scheme, _, settings = spec.partition(",")
  config = medmnist.get_config(",".join(["dermamnist", scheme, "", backbone]
                                        + ([settings] if settings else [])))
  encoder = encryption.make_input_encoder(config.cipher, image_shape=SHAPE, seed=0)
  model, optimizer = train_overhead.build_model_and_optimizer(config, encoder, SHAPE)
  train_step, _ = make_steps(encoder)
  args = _batch(batch_size)
  return {"config": config, "encoder": encoder, "model": model, "args": args,
          "step": lambda: train_step(model, optimizer, *args)}


def components(run: dict[str, Any]) -> dict[str, float]:
  """Seconds of the batch's encryption alone and of the adaptation's forward + backward."""
  encoder, model, (images, _, indices) = run["encoder"], run["model"], run["args"]
  encode = jax.jit(lambda x, i: encoder.encode(x, i, "train"))
  out = {"encode_s": best_times({"encode": lambda: encode(images, indices)},
                                   COMPONENT_REPEATS)["encode"]}
  adaptation = getattr(model, "adaptation", None)
  if adaptation is not None:
    inputs = encode(images, indices)

    @nnx.jit
    def forward_backward(layer, x):
      return nnx.grad(lambda m: jnp.mean(jnp.square(m(x))))(layer)
    out["adaptation_s"] = best_times({"adaptation": lambda: forward_backward(adaptation, inputs)},
                                     COMPONENT_REPEATS)["adaptation"]
    out["adaptation_params"] = int(sum(p.size for p in jax.tree.leaves(
        nnx.state(adaptation, nnx.Param))))
  return out


def input_gradient_s(run: dict[str, Any], pairs: int) -> float:
  """What the plain model's backward pass costs more when its input needs a gradient."""
  model, (images, labels, _) = run["model"], run["args"]
  inputs = images.astype(jnp.float32) / 255.0
  loss = lambda m, x: optax.softmax_cross_entropy_with_integer_labels(m(x), labels).mean()
  params_only = nnx.jit(lambda m, x: nnx.grad(loss)(m, x))
  with_input = nnx.jit(lambda m, x: nnx.grad(loss, argnums=(0, 1))(m, x))
  timed = _paired(lambda: with_input(model, inputs), lambda: params_only(model, inputs), pairs)
  return float(np.median([a - b for a, b in timed]))


def measure(backbone: str, spec: str, plain: dict[str, Any], *, batch_size: int,
            steps: int) -> dict[str, Any]:
  """Times `backbone` with scheme `spec` against the plain run `plain` (from `build`)."""
  start = time.perf_counter()
  run = build(backbone, spec, batch_size)
  jax.block_until_ready(run["step"]())
  compile_s = time.perf_counter() - start
  timed = _paired(run["step"], plain["step"], steps)
  step = float(np.median([a for a, _ in timed]))
  encoder = run["encoder"]
  return {"backbone": backbone, "scheme": spec, "adaptation": run["config"].model.adaptation,
          "block_size": encoder.options.get("block_size"),
          "per_image_keys": encoder.per_image_keys, "batch_size": batch_size,
          "step_s": step, "images_per_s": batch_size / step, "compile_s": compile_s,
          "plain_step_s": float(np.median([b for _, b in timed])),
          "ratio": float(np.median([a / b for a, b in timed])), **components(run)}


def measure_plain(backbone: str, *, batch_size: int, steps: int) -> tuple[dict, dict]:
  """(the plain run from `build`, its row with the backbone's input-gradient cost)."""
  plain = build(backbone, "none", batch_size)
  jax.block_until_ready(plain["step"]())
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(plain["step"]())
    times.append(time.perf_counter() - start)
  step = float(np.median(times))
  return plain, {"backbone": backbone, "scheme": "none", "adaptation": "none",
                 "batch_size": batch_size, "step_s": step, "images_per_s": batch_size / step,
                 "input_grad_s": input_gradient_s(plain, 2 * steps)}


def _ms(row: dict[str, Any], key: str) -> str:
  return f"{row[key] * 1e3:.0f}" if row.get(key) is not None else "–"


def _millions(count: int | None) -> str:
  return "–" if count is None else f"{count / 1e6:.2f}"


def format_row(r: dict[str, Any]) -> str:
  if r.get("skipped"):
    return (f"| {r['backbone']} | {r['scheme']} | – | – | – | – | – | – | – | "
            f"skipped: {r['skipped']} |")
  if r["scheme"] == "none":
    return (f"| {r['backbone']} | none | none | {_ms(r, 'step_s')} | {r['images_per_s']:.1f} | "
            f"1.00 (plain) | – | – | – | |")
  verdict = "PASS" if r["ratio"] <= TARGET else "MISS"
  return (f"| {r['backbone']} | {r['scheme']} | {r['adaptation']} | {_ms(r, 'step_s')} | "
          f"{r['images_per_s']:.1f} | {r['ratio']:.2f} | {_ms(r, 'encode_s')} | "
          f"{_ms(r, 'adaptation_s')} | {_millions(r.get('adaptation_params'))} | {verdict} |")


HEADER = ("| backbone | scheme | adaptation | step (ms) | images/s | step / plain step | "
          f"encrypt (ms) | adaptation fwd+bwd (ms) | adaptation params (M) | <= {TARGET} |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---:|---|")


def checks(rows: list[dict[str, Any]]) -> list[str]:
  """One PASS / MISS line per measured scheme, with where a miss's extra time goes."""
  grad = {r["backbone"]: r.get("input_grad_s") for r in rows if r["scheme"] == "none"}
  lines = []
  for r in rows:
    if r["scheme"] == "none" or r.get("skipped"):
      continue
    line = (f"{'PASS' if r['ratio'] <= TARGET else 'MISS'} {r['backbone']} + {r['scheme']}: "
            f"{r['ratio']:.2f}x the plain step (target <= {TARGET})")
    if r["ratio"] > TARGET and r.get("plain_step_s") and grad.get(r["backbone"]) is not None:
      parts = {"encrypt": r.get("encode_s") or 0.0, "adaptation": r.get("adaptation_s") or 0.0,
               "input gradient": grad[r["backbone"]] if r.get("adaptation_s") else 0.0}
      share = lambda s: f"{100 * s / r['plain_step_s']:+.0f}%"
      parts["rest"] = r["step_s"] - r["plain_step_s"] - sum(parts.values())
      line += "; of the plain step: " + ", ".join(f"{k} {share(v)}" for k, v in parts.items())
    lines.append(line)
  return lines


def earlier_rows(out: str, args: argparse.Namespace) -> list[dict[str, Any]]:
  """The rows of other backbones in an earlier `out` run with the same schemes, batch size
  and steps (a run of some backbones replaces only theirs); nothing when `out` is missing,
  unreadable or from other settings."""
  try:
    with open(out) as f:
      prev = json.load(f)
    if (prev.get("benchmark") != "train_throughput"
        or f"--batch-size {args.batch_size} --steps {args.steps}" not in prev["command"]
        or sorted({r["scheme"] for r in prev["results"]} - {"none"})
        != sorted(set(args.schemes) - {"none"})):
      return []
    return [r for r in prev["results"] if r["backbone"] not in args.backbones]
  except (OSError, ValueError, KeyError, TypeError):
    return []


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
  parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), type=check_scheme,
                      help="schemes, optionally with config settings: ele,block=16")
  parser.add_argument("--batch-size", type=int, default=8)
  parser.add_argument("--steps", type=int, default=5, help="timed pairs per scheme")
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  print(f"# {jax.devices()[0]}, batch {args.batch_size}, {SHAPE}\n{HEADER}", flush=True)
  rows = []
  for backbone in args.backbones:
    plain, row = measure_plain(backbone, batch_size=args.batch_size, steps=args.steps)
    rows.append(row)
    print(format_row(row), f"(input gradient {_ms(row, 'input_grad_s')} ms)", flush=True)
    for spec in args.schemes:
      if spec == "none":
        continue
      if spec in SKIPPED:
        rows.append({"backbone": backbone, "scheme": spec, "skipped": SKIPPED[spec]})
      else:
        rows.append(measure(backbone, spec, plain, batch_size=args.batch_size,
                            steps=args.steps))
      print(format_row(rows[-1]), flush=True)
  rows = earlier_rows(args.out, args) + rows
  rows.sort(key=lambda r: BACKBONES.index(r["backbone"]))
  backbones = [b for b in BACKBONES if any(r["backbone"] == b for r in rows)]
  lines = checks(rows)
  print("\n".join(lines))
  command = ("python -m benchmarks.train_throughput"
             + ("" if backbones == list(BACKBONES) else f" --backbones {' '.join(backbones)}")
             + ("" if args.schemes == list(SCHEMES) else f" --schemes {' '.join(args.schemes)}")
             + f" --batch-size {args.batch_size} --steps {args.steps}")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "train_throughput", "machine": machine(), "image_shape": SHAPE,
               "target": TARGET, "results": rows, "checks": lines, "command": command},
              f, indent=1)
    f.write("\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
