"""Linkage when the attacker's copy of a scan is not the very file that was encrypted.

`lie_jax.attacks.linkage` names which of the attacker's candidate scans a ciphertext encrypts
(100% in every run of `benchmarks/security.py`, where the candidates are the exact plain
images). An attacker's copy may differ: re-exported, recompressed, denoised. This benchmark
encrypts the first --num-images PneumoniaMNIST test images with per-image keys (every scheme
linkage covers; block schemes B=4, Huang 2022 its default 2x2 filter; morph, which has none,
one shared key and one copy of its core, one per image row at 224 px) and links the
ciphertexts to five versions of the candidates: the exact images, the images with uniform
noise of +-2 grey levels, the images saved as JPEG at quality 90 (Pillow), the images moved
by one pixel right and down (edge pixels repeated: a re-acquisition a pixel off), and the
images resized to 90% and back (bilinear, Pillow: a copy kept at another resolution). With
--eval-set, the same on the evaluation set's 224x224 tiles, grayscale and RGB (block schemes
in 16x16 blocks, the ViT setting; Huang 2022 still 2x2). Writes benchmarks/results/linkage.json
(15 s; with --eval-set about 5 minutes on 2 cores).

  python -m benchmarks.linkage [--eval-set workdir/eval_set/eval_set.npz]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

import jax
import numpy as np

from benchmarks.encrypt_throughput import machine
from lie_jax import ciphers
from lie_jax import data
from lie_jax.data import images as image_lib
from lie_jax.attacks import linkage
from lie_jax.attacks import reidentification

OUT = os.path.join(os.path.dirname(__file__), "results", "linkage.json")
COPIES = ("exact", "noise_2", "jpeg_90", "shift_1", "resized_90")
BLOCK_SIZE = 4
EVAL_SET_BLOCK = 16


def jpeg(images: np.ndarray, quality: int = 90) -> np.ndarray:
  """[N, H, W, C] uint8 images after a JPEG round trip (Pillow)."""
  from PIL import Image

  out = []
  for im in images:
    buf = io.BytesIO()
    Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(buf, format="JPEG",
                                                                  quality=quality)
    out.append(np.asarray(Image.open(buf)).reshape(im.shape))
  return np.stack(out)


def shift(images: np.ndarray, pixels: int = 1) -> np.ndarray:
  """[N, H, W, C] images moved `pixels` right and down; the top rows and left columns repeat
  the edge (`lie_jax.data.flip_and_shift`)."""
  n = len(images)
  moved = np.full(n, pixels)
  return data.flip_and_shift(images, moved, moved, np.zeros(n, bool))


def resized(images: np.ndarray, scale: float = 0.9) -> np.ndarray:
  """[N, H, W, C] uint8 images resized to `scale` of their size and back (bilinear, Pillow:
  `lie_jax.data.images.resize`)."""
  h, w = images.shape[1:3]
  small = (max(1, round(h * scale)), max(1, round(w * scale)))
  return np.stack([image_lib.resize(image_lib.resize(im, small), (h, w)) for im in images])


def copies(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
  """The attacker's versions of the candidates, one per name in COPIES."""
  noise = np.random.default_rng(seed).integers(-2, 3, images.shape)
  return {"exact": images,
          "noise_2": np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8),
          "jpeg_90": jpeg(images), "shift_1": shift(images), "resized_90": resized(images)}


def options(scheme: str, block_size: int, image_shape: tuple[int, ...]) -> dict:
  """The block size for block schemes; Huang 2022 its default filter; morph one dense core
  up to 64x64 pixels, one core per image row beyond (a dense core at 224x224 is 10 GB)."""
  if scheme == "morph":
    return {"copies": 1 if image_shape[0] * image_shape[1] <= 64 * 64 else image_shape[0]}
  return {"block_size": block_size} if scheme != "huang2022" and "block_size" in (
      ciphers.SCHEMES[scheme].options) else {}


def measure(images: np.ndarray, seed: int = 0, block_size: int = BLOCK_SIZE,
            data_name: str = "") -> list[dict]:
  """One row per scheme: top-1 linkage against each copy of the candidates, with chance."""
  versions = copies(images, seed)
  rows = []
  for scheme in linkage.SCHEMES:
    opts, record = options(scheme, block_size, images.shape[1:]), ciphers.SCHEMES[scheme]
    key = jax.random.fold_in(jax.random.key(seed), 1)
    cipher = np.asarray(  # morph has no per-image keys: one shared key
        record.encrypt_per_image(key, images, **opts) if record.per_image_keys else
        record.encrypt(record.generate_key(key, image_shape=images.shape[1:], **opts), images))
    row = {"data": data_name, "scheme": scheme, "per_image_keys": record.per_image_keys,
           "options": opts, "chance_top1": 1.0 / len(images)}
    for name, cand in versions.items():
      ranks = reidentification.true_ranks(linkage.scores(cipher, cand, scheme=scheme,
                                                         options=opts))
      row[f"top1_{name}"] = float((ranks == 1).mean())
    rows.append(row)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-images", type=int, default=200)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval-set", default=None, metavar="NPZ",
                      help="also the 224x224 grayscale and RGB tiles of this eval_set.npz")
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args()
  sets = [(f"pneumoniamnist test[:{args.num_images}]", BLOCK_SIZE,
           data.load_dataset("pneumoniamnist").test.images[:args.num_images])]
  if args.eval_set:
    from benchmarks import eval_set
    subsets = eval_set.load(args.eval_set)
    sets += [(f"eval set {name} tiles ({len(subsets[name].images)})", EVAL_SET_BLOCK,
              subsets[name].images) for name in ("gray", "rgb")]
  start = time.perf_counter()
  rows = []
  for name, block_size, images in sets:
    rows += measure(images, args.seed, block_size, name)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "linkage", "machine": machine(), "command":
               "python -m benchmarks.linkage" + (" --eval-set NPZ" if args.eval_set else ""),
               "data": [name for name, _, _ in sets], "copies": list(COPIES),
               "seed": args.seed, "seconds": time.perf_counter() - start, "results": rows},
              f, indent=1)
  print("| data | scheme | " + " | ".join(COPIES) + " |")
  for r in rows:
    print(f"| {r['data']} | {r['scheme']} | "
          + " | ".join(f"{100 * r[f'top1_{c}']:.1f}" for c in COPIES) + " |")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
