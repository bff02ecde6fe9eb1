"""Reading the data owner's plain images: MedMNIST .npz, image folders, DICOM.

Unlike the training loaders (`lie_jax.data.sources`), which stop at the first
bad file, these readers go on: every input that cannot be used (unreadable,
truncated, not an image, DICOM without pixel data, wrong size) becomes a
`FailedInput` with its path relative to the source and a reason, and the
caller decides (report and continue, or `--strict`: stop). Nothing is
dropped silently.

Files are decoded by `lie_jax.data.images`, the decoder the training loaders
use too (PNG, JPEG, TIFF and anything else Pillow reads; DICOM through the
optional `pydicom`, windowed to uint8 as described there). Folder layout: as
`lie_jax.data.load_image_folder`, one subfolder per class, optionally under
train/ val/ test/; here every non-hidden file counts and files may sit in
nested folders inside a class folder (a DICOM series per patient). The
manifest states the preprocessing: resize, channels, and the DICOM window used.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lie_jax.data import images as images_lib
from lie_jax.data import sources
from lie_jax.owner import OwnerError


class InputError(OwnerError):
  """The source cannot be read at all (missing, bad folder layout, no readable file, ...)."""


MAX_RESIZE_SIDE = 8192


def _memory_bytes() -> int:
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return 1 << 34


def check_resize(resize_to: tuple[int, int] | None, count: int = 1, channels: int = 3) -> None:
  """Refuses a --resize that is out of bounds, or whose decoded images would not fit in memory.

  Args:
    resize_to: (H, W) or None.
    count: how many images will be held at that size.
    channels: channels per image (3 when unknown: the larger estimate).

  Raises:
    InputError: a side outside 1..MAX_RESIZE_SIDE, or an estimate above half
      of the machine's memory.
  """
  if resize_to is None:
    return
  h, w = (int(s) for s in resize_to)
  if not (0 < h <= MAX_RESIZE_SIDE and 0 < w <= MAX_RESIZE_SIDE):
    raise InputError(f"--resize {h} {w}: each side must be 1..{MAX_RESIZE_SIDE}")
  need, have = count * h * w * channels, _memory_bytes()
  if need > have // 2:
    raise InputError(f"--resize {h} {w} for {count} images needs about {need / 2**30:.1f} GiB "
                     f"of memory, more than half of this machine's {have / 2**30:.1f} GiB")


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


def read_files(files: Sequence[Path], *, names: Sequence[str], split: str,
               resize_to: tuple[int, int] | None, window: tuple[float, float] | None,
               expected_shape: tuple[int, int, int] | None = None,
               progress: Callable[[int], None] | None = None
               ) -> tuple[list[int], list[np.ndarray], list[FailedInput], Counter]:
  """Decodes files; returns (positions of good files, images, failures, DICOM window uses).

  Images come back at their own size and channels unless `resize_to` /
  `expected_shape` are given; `expected_shape` converts channels to its C
  and makes other sizes failures.
  """
  channels = None if expected_shape is None else int(expected_shape[2])
  good, images, failures, windows = [], [], [], Counter()
  for position, (path, name) in enumerate(zip(files, names)):
    try:
      image, how = images_lib.read_image(path, channels=channels, size=resize_to, window=window)
      if how is not None:
        windows[how] += 1
      if expected_shape is not None and image.shape[:2] != tuple(expected_shape[:2]):
        raise ValueError(f"wrong size {image.shape[0]}x{image.shape[1]} (expected "
                         f"{expected_shape[0]}x{expected_shape[1]}; pass --resize H W)")
      good.append(position)
      images.append(image)
    except ValueError as e:
      failures.append(FailedInput(name, split, str(e)))
    if progress is not None:
      progress(1)
  return good, images, failures, windows


def read_folder(root: Path, *, resize_to: tuple[int, int] | None,
                window: tuple[float, float] | None, progress_factory=None) -> SourceData:
  """Reads a class-per-folder tree (see the module docstring); bad files become failures."""
  try:
    tree = images_lib.list_class_folders(root, list_files=images_lib.files_under,
                                         require_files=False)
  except ValueError as e:
    raise InputError(str(e)) from None
  class_names, listing = tree.class_names, tree.files
  total = sum(len(v) for v in listing.values())
  if total == 0:
    raise InputError(f"{root} holds no files in its class folders")
  check_resize(resize_to, total)
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
    # An empty class folder is not an error (val/test may lack a class), but it is reported.
    present = {label for _, label in entries}
    folder = tree.split_folders[split]
    for label, cls in enumerate(class_names):
      if label not in present and (folder / cls).is_dir():
        failures.append(FailedInput(f"{(folder / cls).relative_to(root).as_posix()}/", split,
                                    "empty class folder (no files)"))
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
  converted = sum(image.shape[-1] != channels for image in all_images)
  splits = {}
  for split, (images, labels, names) in decoded.items():
    keep_images, keep_labels = [], []
    for image, label, name in zip(images, labels, names):
      if image.shape[:2] != size:
        failures.append(FailedInput(name, split, (
            f"wrong size {image.shape[0]}x{image.shape[1]} (most images are "
            f"{size[0]}x{size[1]}; pass --resize H W to resize every image)")))
        continue
      keep_images.append(images_lib.to_channels(image, channels))
      keep_labels.append(label)
    shape = (0, *size, channels)
    splits[split] = (np.stack(keep_images) if keep_images else np.zeros(shape, np.uint8),
                     np.asarray(keep_labels, np.int32))
  order = {name: i for i, name in enumerate(
      n for entries in listing.values() for n in
      (p.relative_to(root).as_posix() for p, _ in entries))}
  failures.sort(key=lambda f: order.get(f.path, len(order)))
  preprocessing = _preprocessing(resize_to, channels)
  if converted:  # mixed grayscale and RGB inputs: say so, the model sees them all as RGB
    preprocessing["grayscale_converted_to_rgb"] = int(converted)
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
  return {"window": "per-file VOI LUT Sequence or WindowCenter/WindowWidth tags (with their "
                    "VOI LUT Function), else the image's min..max",
          "files_using_voi_lut": windows.get("voi_lut", 0),
          "files_using_tags": windows.get("tags", 0),
          "files_using_minmax": windows.get("minmax", 0),
          "files_rgb": windows.get("rgb", 0),
          "note": "modality LUT, then the file's VOI transform (pydicom apply_voi_lut: DICOM "
                  "PS3.3 C.11.2) scaled to 0..255; MONOCHROME1 inverted"}


def _preprocessing(resize_to, channels) -> dict[str, Any]:
  return {"resize": list(resize_to) if resize_to else None,
          "resample": images_lib.RESAMPLE if resize_to else None,
          "channels": channels}


def read_npz(path: Path, *, resize_to: tuple[int, int] | None, progress_factory=None
             ) -> SourceData:
  """Reads a MedMNIST-layout .npz (every array must be valid: it is one file)."""
  try:
    loaded = sources.load_medmnist_npz(path, in_memory=True)  # encrypted whole, as before
  except (ValueError, FileNotFoundError) as e:
    raise InputError(str(e)) from None
  splits = {}
  for split in ("train", "val", "test"):
    ds = getattr(loaded, split)
    if ds is None:
      continue
    images = ds.images
    check_resize(resize_to, len(images), images.shape[-1])
    if resize_to is not None and images.shape[1:3] != tuple(resize_to):
      bar = progress_factory(len(images), f"resize {split}") if progress_factory else None
      resized = []
      for image in images:
        resized.append(images_lib.resize(image, resize_to))
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
