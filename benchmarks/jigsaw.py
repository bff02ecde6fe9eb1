"""Jigsaw attack at realistic resolution: 224x224 medical images in 16x16 blocks (196 pieces).

Images: scikit-image's retina fundus photo (RGB, and its luminance as a grayscale
image), and pydicom's CT and MR test slices (grayscale, resized to 224x224 and
windowed to their 0.5-99.5 percentiles). Every image is scrambled by:
  scramble        block scrambling alone (the baseline every block scheme is compared with);
  scramble+flip   block scrambling and a random flip (none, horizontal, vertical, both) per block;
  etc             the EtC cipher (lie_jax.ciphers.etc: scrambling, rotation, flip,
                  negative-positive and, for RGB, colour shuffle per block), its own keys;
  vit             the ViT cipher (lie_jax.ciphers.vit: scrambling and one pixel shuffle
                  for all blocks of the image), its own keys: solved by
                  `lie_jax.attacks.pixel_layout`, which reads the pixel shuffle off the
                  blocks' statistics first, and scored up to the block's dihedral symmetry
                  (what the layout is found up to); its rows also score the pixel layout
                  against the key (`layout_adjacency`: share of pixel adjacencies right).
(The `blockwise` scheme shuffles pixels inside blocks that stay in place: no jigsaw
applies, so it is not run here.) Each puzzle is solved ciphertext-only by
`lie_jax.attacks.jigsaw.solve` with the transforms it is known to use, and scored by
placement (absolute position and variant right), neighbour comparison (share of plain
adjacencies kept), both also up to the whole image's symmetry (rotation, mirror image,
negative, colour order: what edge matching cannot decide), SSIM against the plain image
(and the ciphertext's own SSIM) and the time per image.

  python -m benchmarks.jigsaw            # all, three keys each (about 2 minutes on 2 cores)
  python -m benchmarks.jigsaw --seeds 1  # one key per cell
  python -m benchmarks.jigsaw --eval-set --scrambles scramble vit --seeds 1
      # every base-install tile of benchmarks/eval_set.py (12 gray, 43 RGB; about 8 minutes)
      # -> benchmarks/results/jigsaw_eval_set.json

Writes benchmarks/results/jigsaw.json (what benchmarks/frontier.py reads) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np
from skimage import data as skdata
from skimage import transform

from benchmarks.encrypt_throughput import machine
from lie_jax import ciphers
from lie_jax.attacks import jigsaw
from lie_jax.attacks import metrics
from lie_jax.attacks import pixel_layout

SIZE = 224
SCRAMBLES = {
    "scramble": ("shuffle",),
    "scramble+flip": ("shuffle", "flip"),
    "etc": jigsaw.SCHEME_TRANSFORMS["etc"],
    "vit": pixel_layout.SYMMETRY,
}
# Scrambles that are a scheme's own cipher, encrypted with the scheme's key from the seed.
CIPHERS = ("etc", "vit")


def _resize(image: np.ndarray) -> np.ndarray:
  """Any 2-D or RGB array -> [SIZE, SIZE, C] uint8, windowed to its 0.5-99.5 percentiles."""
  x = np.asarray(image, np.float64)
  if x.ndim == 2:
    x = x[..., None]
  h, w = x.shape[:2]
  side = min(h, w)
  x = x[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
  x = transform.resize(x, (SIZE, SIZE, x.shape[2]), anti_aliasing=True, preserve_range=True)
  lo, hi = np.percentile(x, [0.5, 99.5])
  return np.round(255 * np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1)).astype(np.uint8)


def images() -> dict[str, np.ndarray]:
  """The evaluation images, [SIZE, SIZE, C] uint8 each."""
  fundus = _resize(skdata.retina())
  out = {"fundus_rgb": fundus,
         "fundus_gray": np.round(fundus @ np.array([0.299, 0.587, 0.114])).astype(
             np.uint8)[..., None]}
  try:
    import pydicom
    from pydicom.data import get_testdata_file
    for name, path in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
      out[name] = _resize(pydicom.dcmread(get_testdata_file(path)).pixel_array)
  except ImportError:  # pydicom is optional: fundus only
    pass
  return out


def eval_set_images() -> dict[str, np.ndarray]:
  """Every base-install tile of the realistic-resolution evaluation set, by tile name."""
  from benchmarks import eval_set

  base = [s for s in eval_set.SOURCES if s.dist in eval_set.BASE_DISTRIBUTIONS]
  subsets, _ = eval_set.build(sources=base)
  return {f"{subset}:{name}": image for subset in ("gray", "rgb")
          for name, image in zip(subsets[subset].names, subsets[subset].images)}


def scramble(image: np.ndarray, kind: str, seed: int,
             block_size: int) -> tuple[np.ndarray, object | None]:
  """(ciphertext of `image` under scramble `kind` with key/seed `seed`, the scheme's key for
  the scrambles that are a scheme's cipher, else None)."""
  if kind in CIPHERS:
    scheme = ciphers.get_scheme(kind)
    key = scheme.generate_key(jax.random.key(seed), image_shape=image.shape,
                              block_size=block_size)
    return np.asarray(scheme.encrypt(key, image)), key
  return jigsaw.scramble(image, block_size=block_size, transforms=SCRAMBLES[kind],
                         seed=seed)[0], None


def evaluate(name: str, image: np.ndarray, kind: str, seed: int,
             block_size: int) -> dict[str, object]:
  """One row: scores of the solver on one scrambled image."""
  cipher, key = scramble(image, kind, seed, block_size)
  transforms = SCRAMBLES[kind]
  start = time.perf_counter()
  extra = {}
  if kind == "vit":  # the layout kept to score it against the key
    solved, (order,) = pixel_layout.attack(cipher, block_size=block_size, return_layouts=True)
    extra["layout_adjacency"] = pixel_layout.layout_adjacency(
        order, np.asarray(key.pixel_perm), block_size=block_size, channels=image.shape[-1])
  else:
    solved = jigsaw.solve(cipher, block_size=block_size, transforms=transforms)
  seconds = time.perf_counter() - start
  row = {**extra, "image": name, "channels": int(image.shape[-1]), "scramble": kind, "seed": seed,
         "transforms": list(transforms), "seconds": seconds,
         "ssim": float(metrics.ssim(solved, image)),
         "cipher_ssim": float(metrics.ssim(cipher, image))}
  row.update(jigsaw.scores(solved, image, block_size=block_size, transforms=transforms))
  return row


def _mean_rows(rows: list[dict[str, object]]) -> list[dict[str, object]]:
  keys = ("placement_accuracy", "placement_accuracy_global", "neighbour_comparison",
          "neighbour_comparison_global", "ssim", "cipher_ssim", "seconds")
  cells: dict[tuple[str, str], list[dict[str, object]]] = {}
  for r in rows:
    cells.setdefault((r["image"], r["scramble"]), []).append(r)
  return [{"image": i, "scramble": s, "n": len(rs),
           **{k: float(np.mean([r[k] for r in rs])) for k in keys + ("layout_adjacency",)
              if k in rs[0]}}
          for (i, s), rs in cells.items()]


def table(means: list[dict[str, object]]) -> str:
  """Markdown table of the per-cell means."""
  lines = ["| image | scramble | placement | placement (global) | neighbour | "
           "neighbour (global) | SSIM | cipher SSIM | s/image |",
           "|---|---|---|---|---|---|---|---|---|"]
  for m in means:
    lines.append(f"| {m['image']} | {m['scramble']} | {m['placement_accuracy']:.3f} | "
                 f"{m['placement_accuracy_global']:.3f} | {m['neighbour_comparison']:.3f} | "
                 f"{m['neighbour_comparison_global']:.3f} | {m['ssim']:.3f} | "
                 f"{m['cipher_ssim']:.3f} | {m['seconds']:.2f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, default=3, help="keys per image and scramble")
  parser.add_argument("--block-size", type=int, default=16)
  parser.add_argument("--images", nargs="*", default=None, help="subset of the image names")
  parser.add_argument("--scrambles", nargs="*", default=list(SCRAMBLES),
                      choices=list(SCRAMBLES))
  parser.add_argument("--eval-set", action="store_true",
                      help="the eval set's base-install 224x224 tiles instead of the four images")
  parser.add_argument("--out", default=None, help="default: benchmarks/results/jigsaw.json "
                      "(with --eval-set: jigsaw_eval_set.json)")
  args = parser.parse_args()
  if args.out is None:
    args.out = os.path.join(os.path.dirname(__file__), "results",
                            "jigsaw_eval_set.json" if args.eval_set else "jigsaw.json")
  pool = eval_set_images() if args.eval_set else images()
  names = args.images or list(pool)
  unknown = sorted(set(names) - set(pool))
  if unknown:
    raise SystemExit(f"unknown images {unknown}; choose from {sorted(pool)}")
  start = time.perf_counter()
  rows = []
  for name in names:
    for kind in args.scrambles:
      for seed in range(args.seeds):
        rows.append(evaluate(name, pool[name], kind, seed, args.block_size))
        r = rows[-1]
        layout = (f"pixel layout {r['layout_adjacency']:.3f}, " if "layout_adjacency" in r
                  else "")
        print(f"{name[:40]:12s} {kind:14s} seed {seed}: {layout}placement "
              f"{r['placement_accuracy']:.3f} ({r['placement_accuracy_global']:.3f} global), "
              "neighbour "
              f"{r['neighbour_comparison']:.3f} ({r['neighbour_comparison_global']:.3f}), "
              f"SSIM {r['ssim']:.3f}, {r['seconds']:.1f} s", flush=True)
  if args.eval_set:  # one mean per subset (gray, rgb) and scramble, over its tiles
    for r in rows:
      r["tile"], r["image"] = r["image"], r["image"].split(":")[0]
  means = _mean_rows(rows)
  print(table(means))
  result = {"benchmark": "jigsaw", "image_size": SIZE, "block_size": args.block_size,
            "images": "eval set base-install tiles" if args.eval_set else "four images",
            "seeds": args.seeds, "machine": machine(),
            "wall_seconds": time.perf_counter() - start, "means": means, "rows": rows}
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
