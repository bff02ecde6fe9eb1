"""Reading the data owner's plain images: MedMNIST .npz, image folders, DICOM.

Unlike the training loaders (`lie_jax.data.sources`), which stop at the first
bad file, these readers go on: every input that cannot be used (unreadable,
truncated, not an image, DICOM without pixel data, wrong size) becomes a
`FailedInput` with its path relative to the source and a reason, and the
caller decides (report and continue, or `--strict`: stop). Nothing is
dropped silently.

Folder layout: as `lie_jax.data.load_image_folder`, one subfolder per class,
optionally under train/ val/ test/; files may sit in nested folders inside a
class folder (a DICOM series per patient). Every non-hidden file counts:
PNG, JPEG (and anything else PIL reads), and DICOM (suffix .dcm/.dicom, or
the "DICM" marker at byte 128), read through the optional `pydicom`
(`pip install 'lie-jax[dicom]'`).

DICOM to uint8: the stored values go through the modality LUT (rescale slope
and intercept), then a linear window (DICOM PS3.3 C.11.2.1.2): the fixed
`window=(center, width)` when given, else each file's WindowCenter /
WindowWidth, else that image's min..max. MONOCHROME1 is inverted so that
bright means dense. The manifest states which was used.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lie_jax.data import sources
from lie_jax.owner.store import OwnerError

DICOM_SUFFIXES = sources.DICOM_SUFFIXES
RESAMPLE = "bilinear (PIL)"


class InputError(OwnerError):
  """The source cannot be read at all (bad layout, missing optional dependency, ...)."""


@dataclasses.dataclass(frozen=True)
class FailedInput:
  """An input left out of the dataset.

  Attributes:
    path: path relative to the source (or "<split>[<i>]" for arrays).
    split: the split it belonged to.
    reason: why it was left out (never contains pixel data).
  """

  path: str
  split: str
  reason: str

  def as_dict(self) -> dict[str, str]:
    return dataclasses.asdict(self)


@dataclasses.dataclass
class SourceData:
  """What a source holds, decoded.

  Attributes:
    name: the dataset's name (file or folder name).
    kind: "npz" or "folder".
    label_names: class names; label i means label_names[i].
    splits: split -> (images uint8 [N, H, W, C], labels int32 [N]).
    failures: inputs left out.
    preprocessing: what was done to the pixels (resize, grayscale, DICOM window).
  """

  name: str
  kind: str
  label_names: tuple[str, ...]
  splits: dict[str, tuple[np.ndarray, np.ndarray]]
  failures: list[FailedInput]
  preprocessing: dict[str, Any]

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(int(s) for s in next(iter(self.splits.values()))[0].shape[1:])


def _pydicom():
  try:
    import pydicom  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError("DICOM input needs pydicom: pip install 'lie-jax[dicom]' "
                     "(or pip install pydicom)") from None
  return pydicom


def is_dicom(path: Path) -> bool:
  if path.suffix.lower() in DICOM_SUFFIXES:
    return True
  try:
    with open(path, "rb") as f:
      head = f.read(132)
  except OSError:
    return False
  return len(head) == 132 and head[128:132] == b"DICM"


def _first(value: Any) -> float:
  if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
    value = value[0]
  return float(value)


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
  """DICOM linear VOI window (PS3.3 C.11.2.1.2) to 0..255, rounded."""
  width = max(float(width), 1.0)
  low = center - 0.5 - (width - 1) / 2
  scaled = ((values - (center - 0.5)) / (width - 1 if width > 1 else 1) + 0.5) * 255.0
  scaled = np.where(values <= low, 0.0, np.where(values > low + width - 1, 255.0, scaled))
  return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def read_dicom(path: Path, *, window: tuple[float, float] | None) -> tuple[np.ndarray, str]:
  """Decodes one DICOM file to uint8 [H, W, 1] (or [H, W, 3] for 8-bit colour).

  Returns:
    (image, how) where how is "fixed", "tags", "minmax" or "rgb".

  Raises:
    ValueError: the file cannot be used (the message is the reason).
  """
  pydicom = _pydicom()
  try:
    ds = pydicom.dcmread(path)
  except Exception as e:  # pydicom raises many types for damaged files
    raise ValueError(f"not a readable DICOM file ({type(e).__name__})") from None
  if "PixelData" not in ds:
    raise ValueError("DICOM without pixel data")
  if int(ds.get("NumberOfFrames", 1) or 1) > 1:
    raise ValueError(f"multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported")
  try:
    pixels = ds.pixel_array
  except Exception as e:  # missing decoder, truncated pixel data, ...
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
    center, width, how = float(window[0]), float(window[1]), "fixed"
  elif "WindowCenter" in ds and "WindowWidth" in ds:
    center, width, how = _first(ds.WindowCenter), _first(ds.WindowWidth), "tags"
  else:
    low, high = float(values.min()), float(values.max())
    center, width, how = (low + high + 1) / 2, max(high - low + 1, 1.0), "minmax"
  image = window_to_uint8(values, center, width)
  if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
    image = 255 - image
  return image[..., None], how


def _read_pil(path: Path) -> np.ndarray:
  """Decodes an image file fully to uint8 [H, W, 1] (grayscale) or [H, W, 3]."""
  try:
    with Image.open(path) as image:
      if image.mode in sources._UNSUPPORTED_MODES:  # pylint: disable=protected-access
        raise ValueError(f"{image.mode} pixels (16-bit or float); convert to 8-bit first")
      gray = image.mode in sources._GRAY_MODES  # pylint: disable=protected-access
      image.load()  # decodes everything: truncated files fail here
      array = np.asarray(image.convert("L" if gray else "RGB"), dtype=np.uint8)
  except Image.UnidentifiedImageError:
    raise ValueError("not an image file (unrecognised format)") from None
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    message = str(e).replace(str(path), path.name).splitlines()[0] if str(e) else ""
    raise ValueError(f"truncated or corrupt image ({type(e).__name__}: {message})") from None
  return array[..., None] if gray else array


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """[H, W, 1] or [H, W, 3] uint8 as `channels` channels (PIL's RGB <-> L conversions)."""
  if image.shape[-1] == channels:
    return image
  if channels == 3:
    return np.repeat(image, 3, axis=-1)
  return np.asarray(Image.fromarray(image).convert("L"), dtype=np.uint8)[..., None]


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  return sources._resize(image, tuple(size))  # pylint: disable=protected-access


def read_files(files: Sequence[Path], *, names: Sequence[str], split: str,
               resize_to: tuple[int, int] | None, window: tuple[float, float] | None,
               expected_shape: tuple[int, int, int] | None = None,
               progress: Callable[[int], None] | None = None
               ) -> tuple[list[int], list[np.ndarray], list[FailedInput], Counter]:
  """Decodes files; returns (positions of good files, images, failures, DICOM window uses).

  Images come back at their own size and channels unless `resize_to` /
  `expected_shape` are given; `expected_shape` makes other sizes failures and
  converts channels to its C.
  """
  good, images, failures, windows = [], [], [], Counter()
  for position, (path, name) in enumerate(zip(files, names)):
    try:
      if is_dicom(path):
        image, how = read_dicom(path, window=window)
        windows[how] += 1
      else:
        image = _read_pil(path)
      if resize_to is not None:
        image = resize(image, resize_to)
      if expected_shape is not None:
        if image.shape[:2] != tuple(expected_shape[:2]):
          raise ValueError(f"wrong size {image.shape[0]}x{image.shape[1]} (expected "
                           f"{expected_shape[0]}x{expected_shape[1]}; pass --resize H W)")
        image = _to_channels(image, expected_shape[2])
      good.append(position)
      images.append(image)
    except ValueError as e:
      failures.append(FailedInput(name, split, str(e)))
    if progress is not None:
      progress(1)
  return good, images, failures, windows


def files_under(folder: Path) -> list[Path]:
  """Every non-hidden regular file below `folder` (nested folders too), sorted by path."""
  found = []
  for dirpath, dirnames, filenames in os.walk(folder):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    found += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
  return sorted(found)


def read_folder(root: Path, *, resize_to: tuple[int, int] | None,
                window: tuple[float, float] | None, progress_factory=None) -> SourceData:
  """Reads a class-per-folder tree (see the module docstring); bad files become failures."""
  try:
    tree = sources.list_class_folders(root, list_files=files_under, require_files=False)
  except ValueError as e:
    raise InputError(str(e)) from None
  class_names, listing = tree.class_names, tree.files
  total = sum(len(v) for v in listing.values())
  if total == 0:
    raise InputError(f"{root} holds no files in its class folders")
  bar = progress_factory(total, "read") if progress_factory else None
  decoded: dict[str, tuple[list[np.ndarray], list[int], list[str]]] = {}
  failures: list[FailedInput] = []
  windows: Counter = Counter()
  for split, entries in listing.items():
    names = [path.relative_to(root).as_posix() for path, _ in entries]
    good, images, failed, used = read_files(
        [p for p, _ in entries], names=names, split=split, resize_to=resize_to, window=window,
        progress=bar.update if bar else None)
    decoded[split] = (images, [entries[i][1] for i in good], [names[i] for i in good])
    failures += failed
    windows += used
  if bar:
    bar.close()
  # One size for all (the most common; ties: the first seen), one channel count.
  all_images = [image for images, _, _ in decoded.values() for image in images]
  if not all_images:
    raise InputError(f"none of the {total} files under {root} could be read "
                     f"(first problem: {failures[0].path}: {failures[0].reason})")
  sizes = Counter(image.shape[:2] for image in all_images)
  best = max(sizes.values())
  size = next(image.shape[:2] for image in all_images if sizes[image.shape[:2]] == best)
  channels = 1 if all(image.shape[-1] == 1 for image in all_images) else 3
  splits = {}
  for split, (images, labels, names) in decoded.items():
    keep_images, keep_labels = [], []
    for image, label, name in zip(images, labels, names):
      if image.shape[:2] != size:
        failures.append(FailedInput(name, split, (
            f"wrong size {image.shape[0]}x{image.shape[1]} (most images are "
            f"{size[0]}x{size[1]}; pass --resize H W to resize every image)")))
        continue
      keep_images.append(_to_channels(image, channels))
      keep_labels.append(label)
    shape = (0, *size, channels)
    splits[split] = (np.stack(keep_images) if keep_images else np.zeros(shape, np.uint8),
                     np.asarray(keep_labels, np.int32))
  order = {name: i for i, name in enumerate(
      n for entries in listing.values() for n in
      (p.relative_to(root).as_posix() for p, _ in entries))}
  failures.sort(key=lambda f: order.get(f.path, len(order)))
  preprocessing = _preprocessing(resize_to, channels)
  if sum(windows.values()):
    preprocessing["dicom"] = _window_record(window, windows)
  return SourceData(root.resolve().name, "folder", tuple(class_names), splits, failures,
                    preprocessing)


def _window_record(window, windows: Counter) -> dict[str, Any]:
  if window is not None:
    return {"window": "fixed", "center": float(window[0]), "width": float(window[1]),
            "files": int(sum(windows.values())),
            "note": "modality LUT, then linear window (DICOM PS3.3 C.11.2.1.2) to 0..255; "
                    "MONOCHROME1 inverted"}
  return {"window": "per-file WindowCenter/WindowWidth tags, else the image's min..max",
          "files_using_tags": windows.get("tags", 0),
          "files_using_minmax": windows.get("minmax", 0),
          "files_rgb": windows.get("rgb", 0),
          "note": "modality LUT, then linear window (DICOM PS3.3 C.11.2.1.2) to 0..255; "
                  "MONOCHROME1 inverted"}


def _preprocessing(resize_to, channels) -> dict[str, Any]:
  return {"resize": list(resize_to) if resize_to else None,
          "resample": RESAMPLE if resize_to else None,
          "channels": channels}


def read_npz(path: Path, *, resize_to: tuple[int, int] | None, progress_factory=None
             ) -> SourceData:
  """Reads a MedMNIST-layout .npz (every array must be valid: it is one file)."""
  try:
    loaded = sources.load_medmnist_npz(path)
  except (ValueError, FileNotFoundError) as e:
    raise InputError(str(e)) from None
  splits = {}
  for split in ("train", "val", "test"):
    ds = getattr(loaded, split)
    if ds is None:
      continue
    images = ds.images
    if resize_to is not None and images.shape[1:3] != tuple(resize_to):
      bar = progress_factory(len(images), f"resize {split}") if progress_factory else None
      resized = []
      for image in images:
        resized.append(resize(image, resize_to))
        if bar:
          bar.update(1)
      if bar:
        bar.close()
      images = (np.stack(resized) if resized else
                np.zeros((0, *resize_to, images.shape[-1]), np.uint8))
    splits[split] = (np.ascontiguousarray(images), ds.labels)
  return SourceData(loaded.name, "npz", loaded.label_names, splits, [],
                    _preprocessing(resize_to, loaded.image_shape[2]))


def read_source(src: os.PathLike | str, *, resize_to: tuple[int, int] | None = None,
                window: tuple[float, float] | None = None, progress_factory=None) -> SourceData:
  """Reads a .npz file or an image folder (see the module docstring).

  Raises:
    InputError: the source does not exist or cannot be read as a whole.
  """
  src = Path(src)
  if not src.exists():
    raise InputError(f"no input file or folder at {src}")
  if src.is_dir():
    return read_folder(src, resize_to=resize_to, window=window, progress_factory=progress_factory)
  if src.suffix.lower() == ".npz":
    return read_npz(src, resize_to=resize_to, progress_factory=progress_factory)
  raise InputError(f"cannot read {src}: pass a MedMNIST .npz file or a folder with one "
                   "subfolder of images per class")
