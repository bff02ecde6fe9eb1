"""Linkage when the attacker's copy of a scan is not the very file that was encrypted.

`lie_jax.attacks.linkage` names which of the attacker's candidate scans a ciphertext encrypts
(100% in every run of `benchmarks/security.py`, where the candidates are the exact plain
images). An attacker's copy may differ: re-exported, recompressed, denoised, or acquired
again. This benchmark encrypts the first --num-images PneumoniaMNIST test images with
per-image keys (every scheme linkage covers; block schemes B=4, Huang 2022 its default 2x2
filter; morph, which has none, one shared key and one copy of its core, one per image row at
224 px) and links the ciphertexts to six versions of the candidates (COPIES): the exact
images, the images with uniform noise of +-2 grey levels, the images saved as JPEG at quality
90 (Pillow), the images moved by one pixel right and down (edge pixels repeated), the images
resized to 90% and back (bilinear, Pillow: a copy kept at another resolution), and a simulated
re-acquisition (`reacquired`: the field of view moved and zoomed, another exposure, sensor
noise). With --eval-set, the same on the evaluation set's 224x224 tiles, grayscale and RGB
(block schemes in 16x16 blocks, the ViT setting; Huang 2022 still 2x2), and against real
second views of the tiles (NEARBY, from `benchmarks.eval_set.nearby_tiles`: the template
brain cut 1 and 2 mm further along each slice's axis, and every other image framed 8 pixels
(half a 16x16 block) further right and down). Writes benchmarks/results/linkage.json (30 s;
with --eval-set up to 30 minutes on 2 cores).

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
COPIES = ("exact", "noise_2", "jpeg_90", "shift_1", "resized_90", "reacquired")
# Real second views of the eval set's tiles: (name, `eval_set.nearby_tiles` arguments).
NEARBY = (("slice_1mm", {"slice_offset": 1}), ("slice_2mm", {"slice_offset": 2}),
          ("crop_8px", {"crop_offset": 8}))
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


def reacquired(images: np.ndarray, seed: int = 0, *, crop: float = 0.94,
               gamma: float = 0.2, gain: float = 0.1, offset: float = 8.0,
               sigma: float = 2.0) -> np.ndarray:
  """[N, H, W, C] uint8 images as a second acquisition might show them (simulated).

  Per image, drawn independently: a window of `crop` of each side at a uniformly random
  position, resized back to H x W (bilinear: the patient or the field of view moved and the
  magnification changed, up to 6% at the default, 13 px at 224 and 2 px at 28); an exposure
  x -> gain * x ** g + offset on a 0..1 scale with log g uniform in [-gamma, gamma], gain in
  1 +- `gain` and offset in +-`offset` grey levels (a new exposure and windowing); Gaussian
  noise of `sigma` grey levels. Rounded and clipped to uint8. It does not change the anatomy
  (pose, breathing, disease): the eval set's NEARBY views are real second views.
  """
  rng = np.random.default_rng(seed)
  h, w = images.shape[1:3]
  ch, cw = max(1, round(h * crop)), max(1, round(w * crop))
  out = np.empty_like(images)
  for i, im in enumerate(images):
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    moved = image_lib.resize(np.ascontiguousarray(im[y:y + ch, x:x + cw]), (h, w))
    g = np.exp(rng.uniform(-gamma, gamma))
    a, b = rng.uniform(1 - gain, 1 + gain), rng.uniform(-offset, offset)
    v = a * (moved / 255.0) ** g * 255.0 + b + rng.normal(0.0, sigma, moved.shape)
    out[i] = np.clip(np.round(v), 0, 255).astype(np.uint8)
  return out


def copies(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
  """The attacker's versions of the candidates, one per name in COPIES."""
  noise = np.random.default_rng(seed).integers(-2, 3, images.shape)
  return {"exact": images,
          "noise_2": np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8),
          "jpeg_90": jpeg(images), "shift_1": shift(images), "resized_90": resized(images),
          "reacquired": reacquired(images, seed)}


def options(scheme: str, block_size: int, image_shape: tuple[int, ...]) -> dict:
  """The block size for block schemes; Huang 2022 its default filter; morph one dense core
  up to 64x64 pixels, one core per image row beyond (a dense core at 224x224 is 10 GB)."""
  if scheme == "morph":
    return {"copies": 1 if image_shape[0] * image_shape[1] <= 64 * 64 else image_shape[0]}
  return {"block_size": block_size} if scheme != "huang2022" and "block_size" in (
      ciphers.SCHEMES[scheme].options) else {}


def encrypt(scheme: str, images: np.ndarray, seed: int = 0, block_size: int = BLOCK_SIZE
            ) -> tuple[np.ndarray, dict]:
  """(ciphertexts, options) of `images` under `scheme`: per-image keys where the scheme has
  them, else (morph) one shared key."""
  opts, record = options(scheme, block_size, images.shape[1:]), ciphers.SCHEMES[scheme]
  key = jax.random.fold_in(jax.random.key(seed), 1)
  cipher = np.asarray(
      record.encrypt_per_image(key, images, **opts) if record.per_image_keys else
      record.encrypt(record.generate_key(key, image_shape=images.shape[1:], **opts), images))
  return cipher, opts


def top1(cipher: np.ndarray, candidates: np.ndarray, scheme: str, opts: dict) -> float:
  """Share of ciphertexts whose own candidate (same index) ranks first."""
  ranks = reidentification.true_ranks(linkage.scores(cipher, candidates, scheme=scheme,
                                                     options=opts))
  return float((ranks == 1).mean())


def measure(images: np.ndarray, seed: int = 0, block_size: int = BLOCK_SIZE,
            data_name: str = "") -> list[dict]:
  """One row per scheme: top-1 linkage against each copy of the candidates, with chance."""
  versions = copies(images, seed)
  rows = []
  for scheme in linkage.SCHEMES:
    cipher, opts = encrypt(scheme, images, seed, block_size)
    row = {"data": data_name, "scheme": scheme,
           "per_image_keys": ciphers.SCHEMES[scheme].per_image_keys,
           "options": opts, "chance_top1": 1.0 / len(images)}
    for name, cand in versions.items():
      row[f"top1_{name}"] = top1(cipher, cand, scheme, opts)
    rows.append(row)
  return rows


def distinct_views(images: np.ndarray, views: np.ndarray) -> np.ndarray:
  """Indices of the tiles whose second view is byte-identical to no other tile's view and to
  no other tile: no attacker can tell such candidates apart (the symmetric template's
  sagittal slices x and 196 - x are the same image, so their neighbours coincide)."""
  key = lambda a: a.tobytes()
  view_count: dict[bytes, int] = {}
  for v in views:
    view_count[key(v)] = view_count.get(key(v), 0) + 1
  tile_at = {key(t): i for i, t in enumerate(images)}
  return np.array([i for i, v in enumerate(views) if view_count[key(v)] == 1
                   and tile_at.get(key(v), i) == i], dtype=np.int64)


def nearby_pairs(subsets: dict, nearby: dict[str, dict[str, np.ndarray]]):
  """(view, subset name, tiles, their views) for every second view and subset: the subset's
  tiles that have that view and whose view is distinct (`distinct_views`; at least 2), with
  how many identical ones were left out. `nearby` maps a NEARBY name to `nearby_tiles`'
  output."""
  for view, tiles in nearby.items():
    for subset, s in subsets.items():
      idx = [i for i, n in enumerate(s.names) if str(n) in tiles]
      if len(idx) < 2:
        continue
      candidates = np.stack([tiles[str(s.names[i])] for i in idx])
      keep = distinct_views(s.images[idx], candidates)
      if len(keep) >= 2:
        yield view, subset, s.images[idx][keep], candidates[keep], len(idx) - len(keep)


def measure_nearby(subsets: dict, nearby: dict[str, dict[str, np.ndarray]], seed: int = 0,
                   block_size: int = EVAL_SET_BLOCK) -> list[dict]:
  """One row per (second view, subset, scheme) of `nearby_pairs`: the tiles encrypted,
  linked to their views."""
  rows = []
  for view, subset, images, candidates, left_out in nearby_pairs(subsets, nearby):
    for scheme in linkage.SCHEMES:
      cipher, opts = encrypt(scheme, images, seed, block_size)
      rows.append({"data": f"eval set {subset} tiles ({len(images)})", "view": view,
                   "scheme": scheme, "options": opts, "chance_top1": 1.0 / len(images),
                   "left_out_identical": left_out,
                   "top1": top1(cipher, candidates, scheme, opts)})
  return rows


def eval_set_nearby(path: str) -> dict[str, dict[str, np.ndarray]]:
  """NEARBY's views of the eval set at `path`, built with the set's own tile size and slice
  step (its eval_set.json beside the npz; defaults when it is missing)."""
  from benchmarks import eval_set
  settings = {}
  try:
    with open(os.path.join(os.path.dirname(path), "eval_set.json")) as f:
      provenance = json.load(f)
    settings = {"size": int(provenance["tile_size"]),
                "slice_step": int(provenance["slice_step"])}
  except (OSError, ValueError, KeyError, TypeError):
    pass
  return {name: eval_set.nearby_tiles(**settings, **kw) for name, kw in NEARBY}


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
  near = []
  if args.eval_set:
    near = measure_nearby(subsets, eval_set_nearby(args.eval_set), args.seed, EVAL_SET_BLOCK)
  with open(args.out, "w") as f:
    json.dump({"benchmark": "linkage", "machine": machine(), "command":
               "python -m benchmarks.linkage" + (" --eval-set NPZ" if args.eval_set else ""),
               "data": [name for name, _, _ in sets], "copies": list(COPIES),
               "nearby": [name for name, _ in NEARBY] if args.eval_set else [],
               "seed": args.seed, "seconds": time.perf_counter() - start, "results": rows,
               "nearby_results": near}, f, indent=1)
  print("| data | scheme | " + " | ".join(COPIES) + " |")
  for r in rows:
    print(f"| {r['data']} | {r['scheme']} | "
          + " | ".join(f"{100 * r[f'top1_{c}']:.1f}" for c in COPIES) + " |")
  for r in near:
    print(f"| {r['data']} | {r['scheme']} | {r['view']} | {100 * r['top1']:.1f} "
          f"(chance {100 * r['chance_top1']:.1f}) |")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
