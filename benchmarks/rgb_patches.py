r"""An RGB classification set from a real stained tissue image that scikit-image ships.

Every accuracy of the PneumoniaMNIST table is grayscale, so the colour shuffles of PE and
EtC never had colour to shuffle. This set makes the label depend on colour: 32x32 patches
of scikit-image's immunohistochemistry image (`skimage/data/ihc.png`, 512x512 RGB, human
colonic glands stained with haematoxylin (blue nuclei) and DAB (brown: the antibody target);
CMMI, no known copyright restrictions), labelled by their DAB content: 1 "dab_positive" when
the patch's mean DAB optical density (`skimage.color.rgb2hed`) is above the median of all
patches, else 0 "dab_negative", as IHC positivity is scored by thresholding DAB density.
Patches near the threshold differ by shades of brown: the label needs the colour measured,
not only seen (with the clear cases alone, top against bottom third, every run, plain, PE and
EtC, scored 96-100%, which tells nothing).

Split by position, not at random, so that no patch of one split overlaps a patch of another:
patches (stride 8) whose left edge is in [0, 192) train, in [224, 256) val, from 288 on test. Labels come from one fixed rule on the
image itself (a stain measurement), not from a pathologist: this is a test of whether a
network sees colour through a cipher, not a diagnostic task.

  python -m benchmarks.rgb_patches --out workdir/rgb_patches   # writes ihc_dab.npz (MedMNIST layout)
  D=workdir/rgb_patches/ihc_dab.npz
  python -m benchmarks.accuracy --allow-seed-keys --seeds 0 1 2 --runs none,none,data=$D \
      pe,pixel,augment=ciphertexts,data=$D etc,block,data=$D le,block,data=$D
"""

from __future__ import annotations

import argparse
import os

import numpy as np

PATCH, STRIDE = 32, 8
# Left edges of each split's patches: 32-pixel gaps, so no two splits share a pixel.
SPLITS = {"train": (0, 192), "val": (224, 256), "test": (288, 512)}
LABEL_NAMES = ("dab_negative", "dab_positive")


def ihc_patches() -> dict[str, np.ndarray]:
  """{train,val,test}_{images,labels} of the IHC DAB patch task."""
  from skimage import data as skdata  # pylint: disable=g-import-not-at-top
  from skimage.color import rgb2hed  # pylint: disable=g-import-not-at-top
  image = np.asarray(skdata.immunohistochemistry())[..., :3]
  dab = rgb2hed(image)[..., 2]
  h, w = dab.shape
  corners = [(y, x) for y in range(0, h - PATCH + 1, STRIDE) for x in range(0, w - PATCH + 1,
                                                                             STRIDE)]
  score = np.array([dab[y:y + PATCH, x:x + PATCH].mean() for y, x in corners])
  threshold = np.median(score)
  out = {}
  for split, (start, end) in SPLITS.items():
    chosen = [(i, c) for i, c in enumerate(corners) if start <= c[1] < end]
    out[f"{split}_images"] = np.stack([image[y:y + PATCH, x:x + PATCH] for _, (y, x) in chosen])
    out[f"{split}_labels"] = np.array([[int(score[i] > threshold)] for i, _ in chosen], np.uint8)
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="workdir/rgb_patches", help="output folder")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  arrays = ihc_patches()
  path = os.path.join(args.out, "ihc_dab.npz")
  np.savez(path, **arrays)
  for split in SPLITS:
    labels = arrays[f"{split}_labels"][:, 0]
    print(f"{split}: {len(labels)} patches, {int(labels.sum())} {LABEL_NAMES[1]}")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
