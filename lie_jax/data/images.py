"""Decoding image files: PNG, JPEG, TIFF (anything Pillow reads) and DICOM; resizing; class folders.

The one decoder behind both sides of lie_jax: the training loaders
(`lie_jax.data.load_image_folder`) and the data owner's tools
(`lie_jax.owner.inputs`, `lie-jax encrypt` and `lie-jax predict`). A file
decodes to the same uint8 [H, W, C] array (C = 1 or 3) on both sides, so a
model trained on a folder and the owner's encryption of that folder see the
same pixels.

Conversion order: decode, convert to the requested channels (Pillow's "L" /
"RGB" conversions), then resize (bilinear, antialiased, Pillow). Pixel modes
without an 8-bit meaning (16-bit and float: "I;16", "F", ...) are refused.

DICOM (suffix .dcm/.dicom, or the "DICM" marker at byte 128) needs the
optional `pydicom` (`pip install 'lie-jax[dicom]'`). The stored values go
through the modality LUT (rescale slope and intercept), then a linear window
(DICOM PS3.3 C.11.2.1.2) to 0..255: the fixed `window=(center, width)` when
given, else the file's WindowCenter / WindowWidth, else the image's min..max.
MONOCHROME1 is inverted so that bright means dense.

Class folders: one subfolder per class, optionally under train/ val/ test/
(`list_class_folders`).

Errors: every function here raises ValueError whose message is the reason a
file cannot be used (it does not repeat the path: callers add it, or list
the file with the reason).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
SPLIT_FOLDERS = ("train", "val", "test")
# Pillow modes decoded as one channel; modes refused (no 8-bit meaning).
GRAY_MODES = ("1", "L", "LA")
UNSUPPORTED_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# How `resize` resamples (recorded in the owner's manifests).
RESAMPLE = "bilinear (PIL)"

PathLike = str | os.PathLike


def parse_image_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
  """An image size option as (H, W): an int s means (s, s); None stays None.

  Raises:
    ValueError: not a positive int or a pair of positive ints.
  """
  if image_size is None:
    return None
  if isinstance(image_size, (int, np.integer)):
    size = (int(image_size), int(image_size))
  else:
    size = tuple(operator.index(s) for s in image_size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
  return size


def resize(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """Bilinear (antialiased, Pillow) resize of uint8 [H, W, C] to [size[0], size[1], C]."""
  size = tuple(int(s) for s in size)
  if image.shape[:2] == size:
    return image
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((size[1], size[0]), Image.Resampling.BILINEAR))
  return out.reshape(size + image.shape[-1:])


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """uint8 [H, W, 1] or [H, W, 3] as `channels` channels (Pillow's L <-> RGB conversions)."""
  if image.shape[-1] == channels:
    return image
  if channels == 3:
    return np.repeat(image, 3, axis=-1)
  return np.asarray(Image.fromarray(image).convert("L"), dtype=np.uint8)[..., None]


# ---------------------------------------------------------------------------
# DICOM.


def is_dicom(path: PathLike) -> bool:
  """Whether `path` is a DICOM file: a .dcm/.dicom suffix, or "DICM" at byte 128."""
  path = Path(path)
  if path.suffix.lower() in DICOM_SUFFIXES:
    return True
  try:
    with open(path, "rb") as f:
      head = f.read(132)
  except OSError:
    return False
  return len(head) == 132 and head[128:132] == b"DICM"


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
  """DICOM linear VOI window (PS3.3 C.11.2.1.2) of float values to uint8 0..255, rounded."""
  width = max(float(width), 1.0)
  low = center - 0.5 - (width - 1) / 2
  scaled = ((values - (center - 0.5)) / (width - 1 if width > 1 else 1) + 0.5) * 255.0
  scaled = np.where(values <= low, 0.0, np.where(values > low + width - 1, 255.0, scaled))
  return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _first(value: Any) -> float:
  """A DICOM tag value that may hold several numbers (multi-valued window): its first."""
  if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
    value = value[0]
  return float(value)


def _voi_to_uint8(values: np.ndarray, ds: Any) -> np.ndarray:
  """The file's first VOI transform, by pydicom's `apply_voi_lut` (a VOI LUT Sequence, or the
  window with its VOI LUT Function: LINEAR, LINEAR_EXACT or SIGMOID), scaled from its output
  range to 0..255 and rounded.

  The output range is what the transform gives far below and far above every value (pydicom
  takes it from the bits stored, the rescale, or the LUT's entries)."""
  from pydicom.pixels import apply_voi_lut  # pylint: disable=g-import-not-at-top
  with np.errstate(over="ignore"):  # SIGMOID's exp at the range probes
    out = np.asarray(apply_voi_lut(values, ds), np.float64)
    if "VOILUTSequence" in ds:
      lut = np.asarray(ds.VOILUTSequence[0].LUTData, np.float64).reshape(-1)
      low, high = float(lut.min()), float(lut.max())
    else:
      low, high = (float(v) for v in apply_voi_lut(np.array([-1e30, 1e30]), ds))
  if high <= low:
    raise ValueError("DICOM VOI transform with an empty output range")
  return np.clip(np.rint((out - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)


def read_dicom(path: PathLike, *,
               window: tuple[float, float] | None = None) -> tuple[np.ndarray, str]:
  """Decodes one DICOM file to uint8 [H, W, 1] (or [H, W, 3] for 8-bit colour).

  Args:
    path: the file.
    window: (center, width) to apply; None: the file's own VOI transform (its VOI LUT
      Sequence, else its first window with its VOI LUT Function, through pydicom's
      `apply_voi_lut`), else its min..max.

  Returns:
    (image, how), how in "fixed", "voi_lut", "tags", "minmax" (what mapped the values
    to 0..255) or "rgb".

  Raises:
    ValueError: pydicom is not installed, or the file cannot be used (the
      message is the reason).
  """
  try:
    import pydicom  # pylint: disable=g-import-not-at-top  (optional dependency)
  except ImportError:
    raise ValueError("DICOM input needs pydicom: pip install 'lie-jax[dicom]' "
                     "(or pip install pydicom)") from None
  try:
    ds = pydicom.dcmread(path)
  except Exception as e:  # pylint: disable=broad-except  (pydicom raises many types)
    raise ValueError(f"not a readable DICOM file ({type(e).__name__})") from None
  if "PixelData" not in ds:
    raise ValueError("DICOM without pixel data")
  if int(ds.get("NumberOfFrames", 1) or 1) > 1:
    raise ValueError(f"multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported")
  try:
    pixels = ds.pixel_array
  except Exception as e:  # pylint: disable=broad-except  (missing decoder, truncated data)
    raise ValueError(f"cannot decode the DICOM pixel data ({type(e).__name__}: "
                     f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
  if int(ds.get("SamplesPerPixel", 1)) == 3:
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
      raise ValueError("colour DICOM other than 8-bit RGB is not supported")
    return np.ascontiguousarray(pixels), "rgb"
  if pixels.ndim != 2:
    raise ValueError(f"unexpected DICOM pixel array shape {pixels.shape}")
  from pydicom.pixels import apply_modality_lut  # pylint: disable=g-import-not-at-top
  values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
  if window is not None:
    image, how = window_to_uint8(values, float(window[0]), float(window[1])), "fixed"
  elif "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds):
    image, how = _voi_to_uint8(values, ds), ("voi_lut" if "VOILUTSequence" in ds else "tags")
  else:
    low, high = float(values.min()), float(values.max())
    image = window_to_uint8(values, (low + high + 1) / 2, max(high - low + 1, 1.0))
    how = "minmax"
  if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
    image = 255 - image
  return image[..., None], how


# ---------------------------------------------------------------------------
# Any image file.


class ImageInfo(NamedTuple):
  """What a file's header says: its size and whether it is grayscale.

  height, width: pixels.
  channels: 1 (grayscale modes) or 3.
  """

  height: int
  width: int
  channels: int


class DecodedImage(NamedTuple):
  """A decoded file.

  Attributes:
    image: uint8 [H, W, C], C = 1 or 3.
    dicom_window: for DICOM, the window used ("fixed", "tags", "minmax" or
      "rgb", see `read_dicom`); None for other files.
  """

  image: np.ndarray
  dicom_window: str | None


def _corrupt(path: Path, error: BaseException) -> ValueError:
  message = str(error).replace(str(path), path.name).splitlines()[0] if str(error) else ""
  return ValueError(f"truncated or corrupt image ({type(error).__name__}: {message})")


def _open(path: Path) -> Image.Image:
  """Opens a file with Pillow (header only), refusing modes without an 8-bit meaning."""
  try:
    image = Image.open(path)
  except Image.UnidentifiedImageError:
    raise ValueError("not an image file (unrecognised format)") from None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise _corrupt(path, e) from None
  if image.mode in UNSUPPORTED_MODES:
    image.close()
    raise ValueError(f"{image.mode} pixels (16-bit or float); convert it to 8-bit grayscale "
                     "or RGB first")
  return image


def probe_image(path: PathLike) -> ImageInfo:
  """The size and channels of an image file, reading only its header (DICOM: decoded).

  Raises:
    ValueError: not a usable image file (the message is the reason).
  """
  path = Path(path)
  if is_dicom(path):
    image, _ = read_dicom(path)
    return ImageInfo(image.shape[0], image.shape[1], image.shape[2])
  with _open(path) as image:
    return ImageInfo(image.height, image.width, 1 if image.mode in GRAY_MODES else 3)


def read_image(path: PathLike, *, channels: int | None = None,
               size: Sequence[int] | None = None,
               window: tuple[float, float] | None = None) -> DecodedImage:
  """Decodes an image file fully to uint8 [H, W, C].

  Args:
    path: a PNG, JPEG, TIFF (any format Pillow reads) or DICOM file.
    channels: 1 or 3 to convert to; None: 1 for grayscale files, else 3.
    size: (H, W) to resize to (after the channel conversion); None: as stored.
    window: DICOM window (center, width); None: each file's tags, else its min..max.

  Returns:
    A `DecodedImage`.

  Raises:
    ValueError: the file cannot be used (the message is the reason: unreadable,
      truncated, not an image, 16-bit pixels, DICOM without pixel data, ...).

  Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from lie_jax.data import images
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scan.png"
    >>> Image.fromarray(np.zeros((8, 6), np.uint8)).save(path)
    >>> images.read_image(path, size=(4, 4)).image.shape
    (4, 4, 1)
  """
  path = Path(path)
  if channels not in (None, 1, 3):
    raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
  how = None
  if is_dicom(path):
    image, how = read_dicom(path, window=window)
    if channels is not None:
      image = to_channels(image, channels)
  else:
    with _open(path) as pil:
      gray = channels == 1 if channels is not None else pil.mode in GRAY_MODES
      try:
        pil.load()  # decodes everything: truncated files fail here
        image = np.asarray(pil.convert("L" if gray else "RGB"), dtype=np.uint8)
      except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _corrupt(path, e) from None
    if gray:
      image = image[..., None]
  if size is not None:
    image = resize(image, size)
  return DecodedImage(image, how)


# ---------------------------------------------------------------------------
# Class folders.


def image_files(folder: PathLike) -> list[Path]:
  """The image and DICOM files (by suffix) directly in `folder`, not hidden, sorted."""
  return sorted(p for p in Path(folder).iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + DICOM_SUFFIXES
                and not p.name.startswith("."))


def files_under(folder: PathLike) -> list[Path]:
  """Every non-hidden regular file below `folder` (nested folders too), sorted by path."""
  found = []
  for dirpath, dirnames, filenames in os.walk(folder):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    found += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
  return sorted(found)


def _subfolders(folder: Path) -> list[str]:
  return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


class ClassFolders(NamedTuple):
  """A class-per-folder tree.

  class_names: the sorted class folder names; label i means class_names[i].
  split_folders: split -> its folder (root itself for a tree without splits).
  files: split -> [(file, label)], in class then file order.
  """

  class_names: list[str]
  split_folders: dict[str, Path]
  files: dict[str, list[tuple[Path, int]]]


def list_class_folders(root: PathLike, *,
                       list_files: Callable[[Path], list[Path]] = image_files,
                       require_files: bool = True) -> ClassFolders:
  """Walks a class-per-folder tree (no file is opened).

  Layouts: root/<class>/... (train only) or root/{train,val,test}/<class>/...
  Class names are the sorted subfolders of root (or root/train); val/test
  may lack classes but not add any, and root may hold no other folders.

  Args:
    root: the folder.
    list_files: lists the files of one class folder (default `image_files`:
      the image and DICOM files directly in it; the owner's tools pass
      `files_under`).
    require_files: raise if a training class folder or a split has no files
      (the data owner's tools instead report the files they cannot read).

  Raises:
    ValueError: mixed split and class folders, split folders without train/,
      no class folders, a val/test class that train lacks, or (with
      `require_files`) an empty training class or split.
  """
  root = Path(root)
  suffixes = "/".join(IMAGE_SUFFIXES + DICOM_SUFFIXES)
  folders = _subfolders(root)
  split_names = [f for f in folders if f in SPLIT_FOLDERS]
  if split_names:
    strays = [f for f in folders if f not in SPLIT_FOLDERS]
    if strays:
      raise ValueError(f"{root} mixes split folders {split_names} with other folders {strays}; "
                       "put class folders inside train/ (and val/, test/), or use no split "
                       "folders at all")
    if "train" not in split_names:
      raise ValueError(f"{root} has split folders {split_names} but no train/")
    split_roots = {split: root / split for split in SPLIT_FOLDERS if split in split_names}
  else:
    split_roots = {"train": root}
  class_names = _subfolders(split_roots["train"])
  if not class_names:
    raise ValueError(f"{split_roots['train']} has no class subfolders (expected one folder of "
                     "images per class)")
  listing: dict[str, list[tuple[Path, int]]] = {}
  for split, split_root in split_roots.items():
    listing[split] = []
    for class_name in _subfolders(split_root):
      if class_name not in class_names:
        raise ValueError(f"{split_root / class_name}: class {class_name!r} is not among the "
                         f"training classes {class_names}")
      class_files = list_files(split_root / class_name)
      if require_files and split == "train" and not class_files:
        raise ValueError(f"{split_root / class_name} holds no {suffixes} images")
      listing[split] += [(path, class_names.index(class_name)) for path in class_files]
    if require_files and not listing[split]:
      raise ValueError(f"{split_root} holds no {suffixes} images in class folders")
  return ClassFolders(class_names, split_roots, listing)
