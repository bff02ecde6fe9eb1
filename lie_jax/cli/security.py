"""`lie-jax attack | security-report`: the security suite from the command line.

  lie-jax attack --scheme le --attack chosen_plaintext --data pneumoniamnist --out r.json
  lie-jax security-report --data pneumoniamnist --out security/

Both encrypt with experiment keys drawn from --seed (never a data owner's
key file) and never print or save key material. Victim images come from the
data's test split (the train split when there is no other); known plaintexts
for the inverse network and the baselines come from a disjoint split.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

KEY_NOTE = ("Ciphertexts were made with experiment keys drawn from the seed "
            "(jax.random.key(seed)); no data owner's key was used and no key material is "
            "stored here.")


def register(subparsers) -> None:
  """Adds the security suite's subcommands to `subparsers`."""
  from lie_jax import ciphers
  from lie_jax.attacks.suite import ATTACKS

  def common(p):
    p.add_argument("--data", required=True,
                   help="a MedMNIST .npz file, an image folder, or 'pneumoniamnist' (bundled)")
    p.add_argument("--num-images", type=int, default=100,
                   help="victim images to attack (default 100)")
    p.add_argument("--train-images", type=int, default=1000,
                   help="known plaintexts for the inverse network and baselines (default 1000)")
    p.add_argument("--block-size", type=int, default=4, help="block size B (default 4)")
    p.add_argument("--steps", type=int, default=None,
                   help="step cap of the learned attacks (inverse network, GAN); default: "
                        "their own, with early stopping on held-out pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the experiment keys (default 0)")

  p = subparsers.add_parser("attack", help="run one attack against one scheme",
                            description="Run one attack against one scheme and score it.")
  p.add_argument("--scheme", required=True, help=f"one of {', '.join(ciphers.SCHEMES)}")
  p.add_argument("--attack", required=True, help=f"one of {', '.join(ATTACKS)}")
  common(p)
  p.add_argument("--per-image-keys", action="store_true",
                 help="encrypt every image under its own key")
  p.add_argument("--key-views", type=int, default=1,
                 help="with --per-image-keys, the learned attacks train on every known image "
                      "under this many fresh keys (default 1; an attacker may draw as many as "
                      "it likes: see benchmarks/key_views.py)")
  p.add_argument("--out", required=True, help="report JSON path (a PNG grid goes next to it)")
  p.set_defaults(func=run_attack_command)

  p = subparsers.add_parser("security-report", help="run every attack against every scheme",
                            description="Run every applicable attack against every scheme.")
  common(p)
  p.add_argument("--out", required=True,
                 help="output folder (security.md, security.json, security.png)")
  p.set_defaults(func=security_report_command)


class UsageError(Exception):
  """A user error: reported as one line, exit status 2."""


def load_images(data: str, *, num_images: int, train_images: int):
  """(victims [N, H, W, C], known plaintexts [M, H, W, C], description) from --data."""
  from lie_jax import data as data_lib

  if num_images < 1:
    raise UsageError(f"--num-images must be >= 1, got {num_images}")
  if train_images < 0:
    raise UsageError(f"--train-images must be >= 0, got {train_images}")
  try:
    if data in data_lib.BUNDLED_DATASETS:
      splits = data_lib.load_dataset(data)
    else:
      if not os.path.exists(data):
        raise UsageError(f"--data: no file or folder at {data!r} (give a MedMNIST .npz, an "
                         f"image folder, or one of {list(data_lib.BUNDLED_DATASETS)})")
      splits = data_lib.load_dataset(path=data)
  except (ValueError, FileNotFoundError) as e:
    raise UsageError(f"--data: {e}") from None
  # Slices: a large split is read on demand (lie_jax.data.lazy), only these images are read.
  if splits.test is not None:
    victims, split = splits.test.images[:num_images], "test"
    known = splits.train.images[:train_images]
  else:
    # Only one split: victims and known plaintexts are its two disjoint halves.
    pool = splits.train.images
    half = max(1, len(pool) // 2)
    victims, split = pool[:min(half, num_images)], "train (first half)"
    known = pool[half:half + train_images]
  description = f"{splits.name} {split} split, {len(victims)} images {victims.shape[1:]}"
  return victims, known, description


def _check_block_size(block_size: int, shape) -> None:
  if block_size < 2 or shape[0] % block_size or shape[1] % block_size:
    raise UsageError(f"--block-size {block_size} must be >= 2 and divide the image size "
                     f"{shape[0]}x{shape[1]}")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  clean = json.loads(json.dumps(payload, default=str), parse_constant=lambda _: None)
  path.write_text(json.dumps(clean, indent=1, allow_nan=False) + "\n")


def _guard(fn):
  def run(args) -> int:
    try:
      return fn(args)
    except UsageError as e:
      print(f"lie-jax {args.command}: error: {e}", file=sys.stderr)
      return 2
    except ValueError as e:  # validation errors of the library: user input
      print(f"lie-jax {args.command}: error: {e}", file=sys.stderr)
      return 2
  run.__name__ = fn.__name__
  return run


@_guard
def run_attack_command(args) -> int:
  """`lie-jax attack`: one attack, a JSON report and a PNG grid."""
  from lie_jax.attacks import suite

  # Names first, so a typo fails before any data is loaded; chosen-plaintext = chosen_plaintext.
  args.attack = args.attack.replace("-", "_")
  suite.check_applicable(args.attack, args.scheme, per_image_keys=args.per_image_keys)
  victims, known, description = load_images(args.data, num_images=args.num_images,
                                            train_images=args.train_images)
  _check_block_size(args.block_size, victims.shape[1:])
  if args.attack in suite.KNOWN_PLAINTEXT_ATTACKS and len(known) == 0:
    raise UsageError(f"the {args.attack} attack needs known plaintexts: --train-images >= 1")
  import jax
  from lie_jax.attacks import report

  result = suite.run_attack(args.attack, args.scheme, victims, key=jax.random.key(args.seed),
                            block_size=args.block_size, per_image_keys=args.per_image_keys,
                            train_images=known if len(known) else None, progress=True,
                            key_views=args.key_views,
                            **({} if args.steps is None else {"steps": args.steps}))
  out = Path(args.out)
  grid = out.with_suffix(".png")
  payload = {**result.summary(), "data": description, "seed": args.seed,
             "known_plaintexts": len(known), "grid": grid.name, "keys": KEY_NOTE}
  _write_json(out, payload)
  report.result_grid(result).save(grid)
  verdict = "BREAKS" if result.breaks else "does not break"
  print(f"{args.attack} vs {args.scheme}{' (per-image keys)' if args.per_image_keys else ''}: "
        f"SSIM {result.ssim_mean:.3f} (ciphertext {result.cipher_ssim_mean:.3f}), "
        f"PSNR {result.psnr_mean:.1f} dB, top-1 re-identification "
        f"{100 * result.reid_top1:.1f}% (chance {100 * result.reid_chance_top1:.1f}%)"
        + ("" if result.known_pairs_needed is None
           else f", {result.known_pairs_needed} known pairs recover the key")
        + f" -> {verdict}")
  print(f"wrote {out} and {grid}")
  return 0


@_guard
def security_report_command(args) -> int:
  """`lie-jax security-report`: every attack, security.md / .json / .png in --out."""
  victims, known, description = load_images(args.data, num_images=args.num_images,
                                            train_images=args.train_images)
  _check_block_size(args.block_size, victims.shape[1:])
  if len(known) == 0:
    raise UsageError("the report needs known plaintexts: --train-images >= 1")
  from lie_jax.attacks import report

  skipped: list[str] = []
  results = report.security_report(victims, known, seed=args.seed, block_size=args.block_size,
                                   steps=args.steps, progress=True, skipped=skipped)
  for line in skipped:
    print(f"lie-jax security-report: {line}", file=sys.stderr)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  rows = [report.json_row(r) for r in results]
  _write_json(out / "security.json", {"data": description, "seed": args.seed,
                                      "known_plaintexts": len(known), "keys": KEY_NOTE,
                                      "verdict_rule": report.VERDICT_RULE, "results": rows,
                                      "not_run": skipped})
  report.report_figure(results).save(out / "security.png")
  uncovered = report.uncovered_schemes()
  text = [f"# Security report\n\nData: {description}; {len(known)} known plaintexts from a "
          f"disjoint split; block size {args.block_size}.\n",
          KEY_NOTE + "\n", report.markdown_table(rows),
          "\n" + report.VERDICT_RULE + "\n",
          "\nkeys = per image: the negative control (PE as published, a fresh key per image).\n"]
  if uncovered:
    text.append(f"\nNo attack of the suite applies to: {', '.join(uncovered)}.\n")
  if skipped:
    text.append("\nNot run (does not apply, or give more known plaintexts with "
                "--train-images):\n\n"
                + "".join(f"- {line}\n" for line in skipped))
  text.append("\n![plain / ciphertexts | recoveries](security.png)\n")
  (out / "security.md").write_text("".join(text))
  broken = sorted({(r["scheme"]) for r in rows if r["breaks"] and not r["per_image_keys"]})
  print(f"schemes broken by at least one attack: {', '.join(broken) or 'none'}")
  print(f"wrote {out / 'security.md'}, {out / 'security.json'}, {out / 'security.png'}")
  return 0
