"""Builds docs/RESULTS.md and its figures from benchmarks/results/*.json.

  python -m benchmarks.report

Writes docs/RESULTS.md, docs/accuracy.png and docs/throughput.png (matplotlib,
needed here and in the notebooks only: `pip install -e ".[notebooks]"`). Fails
loudly when a results file is missing or was made by another lie_jax version
than the one installed, instead of printing old numbers. Every section names
the command that made its numbers and the machine they were measured on.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import lie_jax
from benchmarks import encrypt_throughput
from benchmarks import train_overhead
from benchmarks import train_throughput
from lie_jax.attacks import report as attacks_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DOCS = os.path.join(ROOT, "docs")
OUT = os.path.join(DOCS, "RESULTS.md")
# The results files the report requires, in the order of its sections.
FILES = ("accuracy.json", "encrypt_throughput.json", "train_overhead.json", "data_pipeline.json",
         "train_throughput.json", "security.json")
# Rendered when present: what a GPU machine measured (benchmarks/gpu_checks.sh), when one is lent.
OPTIONAL_FILES = ("train_throughput_gpu.json", "gpu_checks.json")
ACCURACY_FIGURE = "accuracy.png"
THROUGHPUT_FIGURE = "throughput.png"


def _load(name: str) -> dict:
  path = os.path.join(RESULTS, name)
  if not os.path.exists(path):
    sys.exit(f"report: {path} is missing; run `python -m benchmarks.{name[:-5]}` first")
  with open(path) as f:
    result = json.load(f)
  version = result.get("machine", {}).get("lie_jax_version")
  if version != lie_jax.__version__:
    sys.exit(f"report: {path} was made by lie_jax {version}, not {lie_jax.__version__}; "
             f"rerun `python -m benchmarks.{name[:-5]}`")
  return result


def _machine(m: dict) -> str:
  return (f"{m['cpu_count']} CPU cores, {m['platform']}, JAX {m['jax_version']} on "
          f"{m['jax_backend']} ({m['jax_device']}), lie_jax {m['lie_jax_version']}")


def _config_of(run: str) -> str:
  return ",".join(f for f in run.split(",") if not f.startswith("seed="))


def accuracy_groups(result: dict) -> list[dict[str, Any]]:
  """The rows of an accuracy results file grouped by configuration (the run spec without its
  seed), first-seen order: n (seeds), mean and spread (sample standard deviation, 0 for one
  seed) of test accuracy, test AUC, plain-input and best validation accuracy; the other
  fields from the row of the lowest seed; wall time averaged."""
  import numpy as np

  groups: dict[str, list[dict]] = {}
  for r in result["results"]:
    groups.setdefault(r.get("config") or _config_of(r["run"]), []).append(r)
  out = []
  for config, rows in groups.items():
    first = min(rows, key=lambda r: r.get("seed", 0))
    row = {**first, "config": config, "n": len(rows),
           "seeds": sorted(r.get("seed", 0) for r in rows)}
    for metric in ("test_accuracy", "test_auc", "test_accuracy_plain_inputs",
                   "best_val_accuracy"):
      values = [r[metric] for r in rows if r.get(metric) is not None]
      row[f"{metric}_mean"] = float(np.mean(values)) if values else None
      row[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    row["wall_s"] = float(np.mean([r["wall_s"] for r in rows]))
    out.append(row)
  return out


def _mean_spread(row: dict, metric: str) -> str:
  mean = row[f"{metric}_mean"]
  if mean is None:
    return ""
  return f"{mean:.3f}" if row["n"] == 1 else f"{mean:.3f} ± {row[f'{metric}_std']:.3f}"


# What the accuracy runs on other data (run specs with data=FILE) measure, by file name.
OTHER_DATA = {
    "ihc_dab.npz": (
        "RGB, with colour the label depends on: 32x32 patches of scikit-image's "
        "immunohistochemistry image, DAB-positive (brown) against DAB-negative, split by "
        "position (`python -m benchmarks.rgb_patches`: where the data come from and what the "
        "labels are). The first runs of PE's and EtC's colour shuffles on colour; same model "
        "and settings as above. The test region holds fewer DAB-positive patches than the "
        "training region (41% against 61%), so test accuracy mostly says where a run put its "
        "threshold; compare the AUC."),
}


def _accuracy_table(groups: list[dict]) -> str:
  rows = ["| run (scheme,adaptation[,backbone][,settings]) | backbone | seeds | test accuracy | "
          "test AUC | plain-input accuracy | best val accuracy | steps | wall time | command |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
  for r in groups:
    rows.append(f"| {r['config']} | {r.get('backbone', '')} | {r['n']} | "
                f"{_mean_spread(r, 'test_accuracy')} | {_mean_spread(r, 'test_auc')} | "
                f"{_mean_spread(r, 'test_accuracy_plain_inputs')} | "
                f"{_mean_spread(r, 'best_val_accuracy')} | "
                f"{r['steps']} | {r['wall_s'] / 60:.1f} min | `{r['command']}` |")
  return "\n".join(rows)


def _dataset_of(config: str) -> str | None:
  """The data= file of a run spec (None: the bundled PneumoniaMNIST)."""
  return next((f.split("=", 1)[1] for f in config.split(",") if f.startswith("data=")), None)


def accuracy_section(result: dict) -> str:
  groups = accuracy_groups(result)
  others: dict[str, list[dict]] = {}
  for g in groups:
    if _dataset_of(g["config"]):
      others.setdefault(_dataset_of(g["config"]), []).append(g)
  text = (f"## Accuracy on PneumoniaMNIST (test split, encrypted test images)\n\n"
          f"Machine: {_machine(result['machine'])}. Mean ± sample standard deviation over the "
          f"seeds of each run (seed=S in the run spec; the command shows the first seed); "
          f"`python -m benchmarks.accuracy` made this table. PneumoniaMNIST's test split has "
          f"more normal scans (37.5%) than train and val (26%), so the test accuracy of short "
          f"runs moves by several points between checkpoints and seeds; the AUC is the "
          f"steadier comparison. Plain-input accuracy: the same model on unencrypted test "
          f"images (reported for PE, whose paper claims it works). PE's claims end to end: "
          f"`pe,pixel,augment=ciphertexts` trains on ciphertexts that the server itself flips "
          f"and shifts (`config.data.augment_ciphertexts`), every train and test image under "
          f"its own fresh key, and is scored on encrypted and on plain test images.\n\n"
          f"![Test accuracy and AUC, plain and every scheme with and without its adaptation "
          f"layer]({ACCURACY_FIGURE})\n\n"
          + _accuracy_table([g for g in groups if not _dataset_of(g["config"])]))
  for path, rows in others.items():
    about = OTHER_DATA.get(os.path.basename(path), "Same model and settings as above.")
    text += f"\n\n### Other data: {path}\n\n{about}\n\n" + _accuracy_table(rows)
  return text


def _rows_and_checks(format_row: Callable[[dict], str], rows: list[dict],
                     checks: list[str]) -> tuple[str, str]:
  """A results table's rows and its check lines as Markdown."""
  return "\n".join(format_row(r) for r in rows), "\n".join(f"- {line}" for line in checks)


def throughput_section(result: dict) -> str:
  rows, checks = _rows_and_checks(encrypt_throughput.format_row, result["results"],
                                  result["floor_checks"])
  floors = ", ".join(f">= {v:g}x on {k}" for k, v in result["le_floors"].items())
  return (f"## Encryption throughput ({result['num_images']:,} images per shape)\n\n"
          f"Machine: {_machine(result['machine'])}. Command: `{result['command']}`. "
          f"jit / NumPy: the jitted shared-key path over the independent NumPy reference "
          f"(tests/numpy_reference.py), on the same images; per-image: a fresh key for every "
          f"image, key generation included, with a threefry key and with the ChaCha20 key a "
          f"key file gives (the cost of the cryptographic generator).\n\n"
          f"![Images per second of every scheme: jitted shared key, per-image keys, NumPy "
          f"reference]({THROUGHPUT_FIGURE})\n\n"
          f"{encrypt_throughput.HEADER}\n{rows}\n\n"
          f"Floors (LE jitted over NumPy: {floors}):\n\n{checks}")


def overhead_section(result: dict) -> str:
  rows, checks = _rows_and_checks(train_overhead.format_row, result["results"],
                                  result["floor_checks"])
  return (f"## Training-step cost of encrypting inside the step (batch {result['batch_size']})"
          f"\n\nMachine: {_machine(result['machine'])}. Command: `{result['command']}`. "
          f"For every scheme in its lie_jax/configs/pneumoniamnist.py configuration, the jitted train "
          f"step that encrypts the plain batch itself against the same step (same model and "
          f"adaptation, same batch) fed the batch already encrypted, in {result['repeats']} "
          f"back-to-back pairs: step times are the best of the {result['repeats']}, the ratio "
          f"is the median over the pairs of their ratio. Floor: ratio <= {result['floor']} "
          f"for every scheme.\n\n{train_overhead.HEADER}\n{rows}\n\n{checks}"
          + _mole_lines(result.get("mole", {}))
          + _mole_training_lines(result.get("mole_training", {})))


def _mole_training_lines(runs: dict) -> str:
  """VGG-16 + MoLe and plain VGG-16 trained end to end (`--mole-train SIZE`)."""
  if not runs:
    return ""
  rows = "\n".join(
      f"| {'x'.join(map(str, r['image_shape']))} | {r['epochs']} ({r['plain']['steps']} steps) | "
      f"{r['plain']['test_accuracy']:.3f} / {r['plain']['test_auc']:.3f} | "
      f"{r['mole']['test_accuracy']:.3f} / {r['mole']['test_auc']:.3f} | "
      f"{r['plain']['train_s'] / 60:.1f} min | {r['mole']['train_s'] / 60:.1f} min | "
      f"`{r['command']}` |"
      for _, r in sorted(runs.items(), key=lambda kv: int(kv[0])))
  return ("\n\nMoLe trained end to end (`python -m benchmarks.train_overhead --mole-train SIZE`, "
          "one seed, batch 16): VGG-16 on the morphed vectors through MoLe's augmented first "
          "layer against plain VGG-16 on the images, same settings and data "
          "(PneumoniaMNIST resized); test accuracy / AUC on the test split and the training "
          "loop's wall time (its steps and the validation after every epoch; indicative only: "
          "other jobs may share the CPU, the paired step times above are the overhead).\n\n"
          "| image | epochs | plain VGG-16 acc / AUC | VGG-16 + MoLe acc / AUC | plain time | "
          "MoLe time | command |\n|---|---|---:|---:|---:|---:|---|\n" + rows)


def _mole_lines(mole: dict) -> str:
  """VGG-16 + MoLe against plain VGG-16 at each measured size (`--mole SIZE`)."""
  if not mole:
    return ""
  rows = "\n".join(
      f"| {'x'.join(map(str, r['image_shape']))} | {r['copies']} | "
      f"{r['layer_bytes'] / 2**20:.0f} MiB | {r['plain_ms']:.0f} | {r['mole_ms']:.0f} | "
      f"{100 * (r['ratio'] - 1):+.1f}% |"
      for _, r in sorted(mole.items(), key=lambda kv: int(kv[0])))
  first = next(iter(mole.values()))
  return ("\n\nMoLe at scale (`python -m benchmarks.train_overhead --mole SIZE`, batch "
          f"{first['batch_size']}, VGG-16 on PneumoniaMNIST resized): the step with MoLe's "
          "augmented first layer (chunked, one core copy per image row) on morphed vectors "
          "against plain VGG-16 on the images, median of paired steps (MoLe's paper: about 9% "
          "compute on CIFAR). docs/SCHEMES.md gives its memory as a function of size.\n\n"
          "| image | copies | first layer | plain VGG-16 step (ms) | with MoLe (ms) | overhead |\n"
          "|---|---:|---:|---:|---:|---:|\n" + rows)


def data_pipeline_section(result: dict) -> str:
  """The input pipeline at 224 px: peak RSS on data 4x its budget, and what bounds training."""
  mib = lambda b: f"{b / 2**20:.0f} MiB"
  npz, png, model = result["npz_pipeline"], result["png_folder_pipeline"], result["model_step"]
  ok = result["pipeline_rss_within_budget"] and result["dataset_over_4x_budget"]
  return (f"## Input pipeline at 224 px (batch {result['batch_size']})\n\n"
          f"Machine: {_machine(result['machine'])}. Command: `{result['command']}`. "
          f"{result['dataset_images']:,} generated 224x224 grayscale X-rays "
          f"({result['dataset_bytes'] / 2**30:.2f} GiB, an uncompressed MedMNIST-layout .npz) "
          f"read per batch by `lie_jax.data` and encrypted with {result['scheme']} (the "
          f"training encoder, jitted) for one epoch, in a fresh process; peak RSS growth is "
          f"measured from the process's RSS before loading (JAX and the compiled cipher "
          f"already counted).\n\n"
          f"| stage | images/s | peak RSS growth |\n|---|---:|---:|\n"
          f"| .npz read + encrypt + batch | {npz['images_per_s']:.0f} | "
          f"{mib(npz['pipeline_rss_bytes'])} (process peak {mib(npz['peak_rss_bytes'])}) |\n"
          f"| PNG folder decode + encrypt + batch | {png['images_per_s']:.0f} | "
          f"{mib(png['pipeline_rss_bytes'])} |\n"
          f"| model train step ({model['backbone']} + {model['adaptation']}, encrypting) | "
          f"{model['images_per_s']:.1f} | |\n\n"
          f"- {'PASS' if ok else 'FAIL'}: pipeline peak RSS growth "
          f"{mib(npz['pipeline_rss_bytes'])} < {mib(result['budget_bytes'])} on a dataset "
          f"{result['dataset_bytes'] / result['budget_bytes']:.1f}x the budget\n"
          f"- Training is bound by the {result['bound_npz']} here: the pipeline delivers "
          f"{npz['images_per_s'] / model['images_per_s']:.0f}x the images the model step "
          f"consumes (.npz), {png['images_per_s'] / model['images_per_s']:.0f}x from PNG files.")


def _on_device(m: dict) -> str:
  """" on NVIDIA H200" for a result measured on an accelerator, "" on the CPU."""
  return "" if m["jax_backend"] == "cpu" else f" on {m['jax_device']}"


def train_throughput_section(result: dict) -> str:
  """Images/s at 224 px per backbone, plain and with every scheme + adaptation."""
  rows, checks = _rows_and_checks(train_throughput.format_row, result["results"],
                                  result["checks"])
  rerun = result.get("rerun")
  if rerun:
    rerun_rows, rerun_checks = _rows_and_checks(train_throughput.format_row, rerun["results"],
                                                rerun["checks"])
    rerun = (f"\n\n{rerun['note']}\n\n{train_throughput.HEADER}\n{rerun_rows}\n\n"
             f"{rerun_checks}")
  shape = "x".join(map(str, result["image_shape"]))
  grads = "".join(f"- {r['backbone']}: backpropagating into the input adds "
                  f"{r['input_grad_s'] * 1e3:.0f} ms to the plain step ({r['step_s'] * 1e3:.0f} "
                  f"ms)\n" for r in result["results"]
                  if r["scheme"] == "none" and r.get("input_grad_s") is not None)
  if grads:
    grads = ("\nAny adaptation layer makes the backbone backpropagate into its input, which "
             "plain training skips (for a ResNet, the transposed 7x7 stride-2 stem convolution "
             "at full resolution):\n\n" + grads)
  return (f"## Training throughput at {shape}{_on_device(result['machine'])}\n\n"
          f"Machine: {_machine(result['machine'])}. "
          f"Command: `{result['command']}`. The jitted train step of lie_jax/configs/medmnist.py "
          f"(encryption inside the step) on random images, after compiling; each scheme's "
          f"step runs in pairs with the plain step, alternating which goes first, and step / "
          f"plain step is the median over the pairs. encrypt and adaptation: the batch's "
          f"encryption alone and the adaptation layer's forward and backward pass alone. "
          f"Target: every scheme + adaptation at <= {result['target']}x the same backbone's "
          f"plain step.\n\n{train_throughput.HEADER}\n{rows}\n{grads}\n{checks}{rerun or ''}")


def _keys(per_image_keys: bool | None) -> str:
  return "–" if per_image_keys is None else "per image" if per_image_keys else "shared"


def _kat_line(kat: dict | None) -> str:
  if kat is None:
    return "Known-answer vectors: not run.\n\n"
  clean = (kat.get("exit", 0) == 0 and not kat["failed"] and not kat.get("errors")
           and kat["passed"])
  verdict = ("keys from a key file and every scheme's ciphertexts (morph: its channel key) are "
             "bit-identical on both" if clean else
             "the accelerator gives other keys or ciphertexts than the CPU, or the tests broke")
  errors = f", {kat['errors']} errors" if kat.get("errors") else ""
  return (f"Known-answer vectors computed on the accelerator (`{kat['command']}`, "
          f"JAX_PLATFORMS=cuda, no fall-back to the CPU): {kat['passed']} passed, "
          f"{kat['failed']} failed{errors}. The vectors were made on the CPU: {verdict}.\n\n")


def _stages_line(stages: list[dict] | None) -> str:
  """The stages that did not complete, if any."""
  missed = [f"{s['name']} ({s['outcome']})" for s in stages or () if s["outcome"] != "ok"]
  return f"Stages not completed: {'; '.join(missed)}.\n\n" if missed else ""


def gpu_checks_section(result: dict) -> str:
  """What benchmarks/gpu_checks.sh measured: the known-answer tests on the accelerator and the
  training runs (224 px ResNet-18, 256 px DenseNet-121)."""
  runs = "\n".join(
      f"| {r['run']} | {_keys(r['per_image_keys'])} | {r['backbone']} | "
      f"{'x'.join(map(str, r['image_shape']))} | {r['num_epochs']} | {r['test_accuracy']:.3f} | {r['test_auc']:.3f} | "
      f"{r['test_sensitivity']:.3f} | {r['test_specificity']:.3f} | "
      f"{r['best_val_accuracy']:.3f} | {r['steps']} | {r['train_time_s_this_run']:.0f} s | "
      f"`{r['command']}` |" for r in result["runs"])
  packages = f" Packages: {result['packages']}." if result.get("packages") else ""
  return (f"## GPU checks{_on_device(result['machine'])}\n\n"
          f"Machine: {_machine(result['machine'])}.{packages} Command: `{result['command']}` "
          f"(one run, most important first).\n\n"
          f"{_kat_line(result['kat'])}{_stages_line(result.get('stages'))}"
          f"Training on the bundled PneumoniaMNIST resized on read, seed 0, the test split "
          f"encrypted as the training data (lie_jax/configs/medmnist.py: ResNet-18 with the "
          f"ImageNet stem, batch 64, SGD, the MedMNIST+ protocol at 224 px; "
          f"lie_jax/configs/huang2022.py: the seed paper's DenseNet-121 at 256 px, batch 35, SGD "
          f"0.9, on the same images as an image folder). Train time: the training loop, its "
          f"first compilation and each epoch's validation included:\n\n"
          f"| run | keys | backbone | input | epochs | test accuracy | test AUC | sensitivity | "
          f"specificity | best val accuracy | steps | train time | command |\n"
          f"|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n{runs}")


def security_section(result: dict) -> str:
  """The security table: `lie_jax.attacks.report.markdown_table` of the results rows."""
  broken = sorted({r["scheme"] for r in result["results"] if r["breaks"]})
  held = sorted({r["scheme"] for r in result["results"]} - set(broken))
  data = f" Data: {result['data']}." if result.get("data") else ""
  verdict = result.get("verdict_rule", "breaks?: the attack's verdict in the results file.")
  not_run = "".join(f"- {line}\n" for line in result.get("not_run", []))
  return (f"## Security: attacks on each scheme\n\n"
          f"Machine: {_machine(result['machine'])}. Command: `{result['command']}`.{data}\n\n"
          f"SSIM and PSNR: the attack's reconstruction against the plain images (means over the "
          f"images); top-1 / top-5 re-id: the share of reconstructions whose own plain image "
          f"ranks first / in the first five among the victims' plain images (chance in "
          f"brackets); exact: the share of images recovered byte for byte; known pairs / "
          f"chosen: the fewest known (plain, cipher) pairs / chosen plaintexts that recover "
          f"the key exactly; placement and neighbours: the share of blocks a jigsaw attack "
          f"puts back in place, and of plain adjacencies it restores; cipher SSIM and top-1: "
          f"the encrypted images themselves; prior SSIM: the mean training image. linkage "
          f"names one of the candidate scans instead of reconstructing: its top-1 is the share "
          f"of ciphertexts it names right, its SSIM that of the scan it names, its exact share "
          f"0 (it decrypts nothing). Key space: "
          f"effective bits (`lie_jax.ciphers.key_space_bits`); a large key space does not stop "
          f"these attacks, which search no keys. {verdict}\n\n"
          f"Broken by at least one attack: {', '.join(broken) or 'none'}. "
          f"Not broken by the attacks run here: {', '.join(held) or 'none'}.\n\n"
          + attacks_report.markdown_table(result["results"])
          + (f"\nNot run:\n\n{not_run}" if not_run else ""))


# Every results file the report can render, in section order; main() renders those in FILES.
SECTIONS: dict[str, Callable[[dict], str]] = {
    "accuracy.json": accuracy_section,
    "encrypt_throughput.json": throughput_section,
    "train_overhead.json": overhead_section,
    "data_pipeline.json": data_pipeline_section,
    "train_throughput.json": train_throughput_section,
    "train_throughput_gpu.json": train_throughput_section,
    "gpu_checks.json": gpu_checks_section,
    "security.json": security_section,
}


def accuracy_figure(result: dict, path: str) -> None:
  """Grouped bars: test accuracy and AUC of plain and of every scheme, with/without adaptation."""
  from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

  runs = {}
  for r in accuracy_groups(result):
    if r["config"].count(",") > 1:  # other backbones and settings: in the table only
      continue
    scheme, _, adaptation = r["config"].partition(",")
    runs[(scheme, "none" if adaptation == "none" else "adapted")] = {
        "test_accuracy": r["test_accuracy_mean"], "test_auc": r["test_auc_mean"]}
  schemes = list(dict.fromkeys(scheme for scheme, _ in runs))  # first-seen order
  labels = {"adapted": "with its adaptation layer", "none": "without adaptation"}
  fig = Figure(figsize=(11, 4.2), layout="constrained")
  axes = fig.subplots(1, 2)
  for ax, metric, title in zip(axes, ("test_accuracy", "test_auc"), ("test accuracy", "test AUC")):
    plain = runs.get(("none", "none"))
    if plain is not None:
      ax.axhline(plain[metric], color="gray", linestyle="--", linewidth=1)
      ax.bar_label(ax.bar([0], [plain[metric]], width=0.4, color="gray", label="plain images"),
                   fmt="%.2f", fontsize=7)
    for offset, kind, color in ((-0.2, "adapted", "tab:blue"), (0.2, "none", "tab:orange")):
      xs, ys = [], []
      for i, scheme in enumerate(schemes):
        r = runs.get((scheme, kind))
        if r is not None and scheme != "none":
          xs.append(i + offset)
          ys.append(r[metric])
      bars = ax.bar(xs, ys, width=0.4, color=color, label=labels[kind])
      ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(schemes)), ["plain" if s == "none" else s for s in schemes],
                  fontsize=9)
    ax.set_ylim(0.5, 1.0)
    ax.set_title(f"{title} on PneumoniaMNIST (encrypted test images)", fontsize=10)
  fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3,
             fontsize=8)
  fig.suptitle(f"python -m benchmarks.accuracy; {_machine(result['machine'])}", fontsize=8)
  fig.savefig(path, dpi=110, metadata={"Software": None})


def throughput_figure(result: dict, path: str) -> None:
  """Images/s (log scale) per scheme and shape: jit shared key, per-image keys, NumPy."""
  from matplotlib.figure import Figure

  shapes = list(dict.fromkeys(tuple(r["shape"]) for r in result["results"]))
  fig = Figure(figsize=(11, 3.8 * len(shapes)), layout="constrained")
  axes = fig.subplots(len(shapes), 1, squeeze=False)[:, 0]
  series = (("jax_shared_images_per_s", "jit, one key"),
            ("jax_per_image_images_per_s", "jit, a key per image"),
            ("numpy_images_per_s", "NumPy reference"))
  for ax, shape in zip(axes, shapes):
    rows = [r for r in result["results"] if tuple(r["shape"]) == shape]
    values = [r[field] for r in rows for field, _ in series if r[field] is not None]
    for j, (field, label) in enumerate(series):
      xs = [i + (j - 1) * 0.27 for i, r in enumerate(rows) if r[field] is not None]
      ys = [r[field] for r in rows if r[field] is not None]
      ax.bar(xs, ys, width=0.27, label=label)
    ax.set_xticks(range(len(rows)), [r["scheme"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylim(min(values) / 3, max(values) * 3)
    ax.set_ylabel("images / s")
    ax.set_title(f"{'x'.join(map(str, shape))} images, {result['num_images']:,} per batch",
                 fontsize=10)
  fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3,
             fontsize=8)
  fig.suptitle(f"{result['command']}; {_machine(result['machine'])}", fontsize=8)
  fig.savefig(path, dpi=110, metadata={"Software": None})


# Figures drawn from a results file, and the name each is written to in docs/.
FIGURES: dict[str, tuple[tuple[Callable[[dict, str], None], str], ...]] = {
    "accuracy.json": ((accuracy_figure, ACCURACY_FIGURE),),
    "encrypt_throughput.json": ((throughput_figure, THROUGHPUT_FIGURE),),
}


def render(results: dict[str, dict]) -> str:
  """The text of RESULTS.md from {results file name: its contents}, in SECTIONS order."""
  sections = [SECTIONS[name](results[name]) for name in SECTIONS if name in results]
  return ("# Results\n\nGenerated by `python -m benchmarks.report` from "
          "`benchmarks/results/*.json`; do not edit by hand.\n\n" + "\n\n".join(sections) + "\n")


def write_figures(results: dict[str, dict], docs_dir: str) -> list[str]:
  """Draws every figure of the given results into docs_dir; returns the paths written."""
  paths = []
  for name, figures in FIGURES.items():
    for draw, filename in figures if name in results else ():
      paths.append(os.path.join(docs_dir, filename))
      draw(results[name], paths[-1])
  return paths


def main() -> None:
  results = {name: _load(name) for name in FILES}  # all loaded (and checked) before any write
  results.update({name: _load(name) for name in OPTIONAL_FILES
                  if os.path.exists(os.path.join(RESULTS, name))})
  os.makedirs(DOCS, exist_ok=True)
  for path in write_figures(results, DOCS):
    print(f"wrote {path}")
  with open(OUT, "w") as f:
    f.write(render(results))
  print(f"wrote {OUT}")


if __name__ == "__main__":
  main()
