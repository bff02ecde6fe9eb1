"""Where training images come from: loaders that return splits in memory or read on demand.

Every loader returns a `DatasetSplits` whose splits are `ArrayDataset`s of
uint8 [N, H, W, C] images (C = 1 or 3) and int32 [N] labels. Labels are always
in memory. Images are a numpy array when the split is small (at most
IN_MEMORY_BYTES of pixels, e.g. PneumoniaMNIST's 3.7 MB) and otherwise a
`lie_jax.data.lazy.LazyImages`, which reads and decodes only the images a
batch asks for: a 224 px MedMNIST+ file, a hospital's folder of 100,000 scans
or a large encrypted directory is never materialised (`in_memory=True` or
False forces either way). `lie_jax.data.pipeline` gathers a batch with one
indexing operation either way.

Sources:
  load_medmnist_npz   a MedMNIST-layout .npz (the bundled PneumoniaMNIST, or
                      a file `download_medmnist` fetched)
  download_medmnist   fetches a MedMNIST .npz from Zenodo, checking its MD5
  load_image_folder   one subfolder of PNG/JPEG/TIFF/DICOM files per class,
                      optionally under train/ val/ test/ split folders
                      (decoded by `lie_jax.data.images`)
  load_tfds           a TFDS dataset already prepared on disk (array_record
                      format, read without TensorFlow)
  load_encrypted_dir  an encrypted dataset directory written by the data
                      owner's `lie-jax encrypt` (format:
                      `lie_jax.data.encrypted_dir`), read without any key
  load_dataset        the one entry point configs call

Nothing here downloads unless `download_medmnist` is called explicitly.

Example:
  >>> from lie_jax import data
  >>> splits = data.load_dataset("pneumoniamnist")
  >>> splits.train.images.shape, splits.train.images.dtype, splits.label_names
  ((4708, 28, 28, 1), dtype('uint8'), ('normal', 'pneumonia'))
  >>> splits.train.labels.dtype, splits.num_classes, splits.image_shape
  (dtype('int32'), 2, (28, 28, 1))
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import importlib.resources
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from lie_jax.data import encrypted_dir
from lie_jax.data import images as images_lib
from lie_jax.data import lazy

PathLike = str | os.PathLike


# A split whose pixels take more bytes than this is read on demand (in_memory=None).
IN_MEMORY_BYTES = 256 << 20


class ArrayDataset(NamedTuple):
  """One split of a dataset.

  Attributes:
    images: [N, H, W, C] uint8, C = 1 (grayscale) or 3 (RGB): a numpy array,
      or a `lie_jax.data.lazy.LazyImages` read on indexing (np.asarray reads it all).
    labels: [N] int32 class indices in 0..num_classes - 1 (in memory).
  """

  images: np.ndarray | lazy.LazyImages
  labels: np.ndarray


class DatasetSplits(NamedTuple):
  """The splits of one dataset and what its labels mean.

  Attributes:
    train: the training split.
    val: the validation split, or None where the source has none.
    test: the test split, or None where the source has none (an image folder
      without split folders has a train split only).
    num_classes: number of classes; labels lie in 0..num_classes - 1.
    label_names: num_classes names; label i means label_names[i].
    name: the dataset's name (MedMNIST or TFDS name, or the folder's name).
  """

  train: ArrayDataset
  val: ArrayDataset | None
  test: ArrayDataset | None
  num_classes: int
  label_names: tuple[str, ...]
  name: str

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of every image in every split (what cipher keys are made for)."""
    return tuple(int(d) for d in self.train.images.shape[1:])


# ---------------------------------------------------------------------------
# Validation shared by every loader (and by the pipeline).


MAX_CLASSES = 1 << 20  # far above any real label set, far below int32 overflow


def _check_array_dataset(dataset: Any, *, where: str = "dataset") -> None:
  """Raises TypeError / ValueError unless `dataset` is a well-formed `ArrayDataset`
  (uint8 [N, H, W, C] images with C = 1 or 3, int32 [N] labels >= 0); no copies."""
  if not isinstance(dataset, ArrayDataset):
    raise TypeError(f"{where} must be an ArrayDataset, got {type(dataset).__name__}")
  images, labels = dataset
  if not isinstance(images, (np.ndarray, lazy.LazyImages)) or images.dtype != np.uint8:
    raise TypeError(f"{where}.images must be a uint8 numpy array, got "
                    f"{getattr(images, 'dtype', type(images).__name__)}")
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"{where}.images must be [N, H, W, C] with C = 1 or 3, got shape "
                     f"{images.shape}")
  if not isinstance(labels, np.ndarray) or labels.dtype != np.int32:
    raise TypeError(f"{where}.labels must be an int32 numpy array, got "
                    f"{getattr(labels, 'dtype', type(labels).__name__)}")
  if labels.shape != images.shape[:1]:
    raise ValueError(f"{where}.labels must be [N] = [{images.shape[0]}] to match the images, "
                     f"got shape {labels.shape}")
  if labels.size and labels.min() < 0:
    raise ValueError(f"{where}.labels must be class indices >= 0, found {labels.min()}")


def as_array_dataset(images: Any, labels: Any, *, where: str = "arrays") -> ArrayDataset:
  """Makes an `ArrayDataset` from in-memory arrays, checking them.

  Args:
    images: [N, H, W] (grayscale) or [N, H, W, C] uint8, C = 1 or 3 (or a
      `LazyImages`, kept lazy).
    labels: [N] or [N, 1] non-negative integers (one class per image).
    where: how error messages name the arrays.

  Returns:
    `ArrayDataset` with images [N, H, W, C] uint8 (a channel axis added to
    grayscale [N, H, W]) and labels [N] int32.

  Raises:
    ValueError: wrong dtype, shape or length, or negative labels.

  Example:
    >>> import numpy as np
    >>> from lie_jax import data
    >>> ds = data.as_array_dataset(np.zeros((5, 28, 28), np.uint8), np.ones((5, 1), np.uint8))
    >>> ds.images.shape, ds.labels.dtype
    ((5, 28, 28, 1), dtype('int32'))
  """
  images = images if isinstance(images, lazy.LazyImages) else np.asarray(images)
  labels = np.asarray(labels)
  if images.dtype != np.uint8:
    raise ValueError(f"{where}: images must be uint8 (0..255), got {images.dtype}")
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"{where}: images must be [N, H, W] or [N, H, W, C] with C = 1 or 3, "
                     f"got shape {images.shape}")
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1:
    raise ValueError(f"{where}: labels must be [N] or [N, 1], one class per image (multi-label "
                     f"data is not supported), got shape {labels.shape}")
  if labels.size and not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{where}: labels must be integers, got {labels.dtype}")
  if len(labels) != len(images):
    raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels")
  if labels.size and labels.min() < 0:
    raise ValueError(f"{where}: labels must be class indices >= 0, found {labels.min()}")
  # Range-checked before the cast: int64 label 2**32 would otherwise wrap to class 0.
  if labels.size and int(labels.max()) > MAX_CLASSES:
    raise ValueError(f"{where}: labels must be class indices below {MAX_CLASSES}, found "
                     f"{labels.max()}")
  if not isinstance(images, lazy.LazyImages):
    images = np.ascontiguousarray(images)
  return ArrayDataset(images, labels.astype(np.int32))


def _make_splits(train: ArrayDataset, val: ArrayDataset | None, test: ArrayDataset | None, *,
                 label_names: Sequence[str] | None, name: str) -> DatasetSplits:
  """Checks that the splits agree (image shape, labels in range) and bundles them.

  label_names None: "0", "1", ... up to the largest label found.
  """
  present = {"train": train, "val": val, "test": test}
  present = {split: ds for split, ds in present.items() if ds is not None}
  shapes = {split: ds.images.shape[1:] for split, ds in present.items()}
  if len(set(shapes.values())) > 1:
    raise ValueError(f"{name}: the splits' images differ in shape (H, W, C): {shapes}")
  max_label = max((int(ds.labels.max()) for ds in present.values() if ds.labels.size),
                  default=-1)
  if label_names is None:
    label_names = [str(i) for i in range(max_label + 1)]
  label_names = tuple(str(n) for n in label_names)
  if max_label >= len(label_names):
    raise ValueError(f"{name}: label {max_label} found but only {len(label_names)} classes "
                     f"{label_names}")
  return DatasetSplits(train=train, val=val, test=test, num_classes=len(label_names),
                       label_names=label_names, name=name)


def _require_one_size(sizes: Sequence[tuple[int, int]], names: Sequence[str], *,
                      where: str) -> None:
  """Raises ValueError listing one example (`names[i]`) of each (H, W) in `sizes`
  unless they are all equal."""
  examples: dict[tuple[int, int], str] = {}
  for size, name in zip(sizes, names):
    examples.setdefault(tuple(size), name)
  if len(examples) > 1:
    listed = "; ".join(f"{h}x{w} (e.g. {name})" for (h, w), name in examples.items())
    raise ValueError(f"{where}: images have {len(examples)} different sizes (HxW): {listed}. "
                     "Pass image_size=... to resize them all to one size.")


def _stack_images(images: Sequence[np.ndarray], names: Sequence[str],
                  size: tuple[int, int] | None, *, where: str) -> np.ndarray:
  """Stacks [H, W, C] images into [N, H, W, C], resized to `size` when given; without
  `size` they must already agree in (H, W)."""
  if size is None:
    _require_one_size([image.shape[:2] for image in images], names, where=where)
  else:
    images = [images_lib.resize(image, size) for image in images]
  return np.stack(images)


# ---------------------------------------------------------------------------
# MedMNIST (.npz) and the bundled file.

BUNDLED_DATASETS = ("pneumoniamnist",)
MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{file_name}?download=1"
# Published MD5s of MedMNIST v3 files (Zenodo record 10519652), those that MedMNIST's
# info.py lists identically for the v2 record too. Other files download unchecked.
MEDMNIST_MD5 = {
    "pathmnist": "a8b06965200029087d5bd730944a56c1",
    "chestmnist": "02c8a6516a18b556561a56cbdd36c4a8",
    "dermamnist": "0744692d530f8e62ec473284d019b0c7",
    "octmnist": "c68d92d5b585d8d81f7112f81e2d0842",
    "pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f",
    "pneumoniamnist_64": "8f4eceb4ccffa70c672198ea285246c6",
    "retinamnist": "bd4c0672f1bba3e3a89f0e4e876791e4",
    "breastmnist": "750601b1f35ba3300ea97c75c52ff8f6",
    "bloodmnist": "7053d0359d879ad8a5505303e11de1dc",
    "tissuemnist": "ebe78ee8b05294063de985d821c1c34b",
}
# The class names of every single-label 2D MedMNIST dataset (MedMNIST v2/v3 metadata), written
# so that they are safe as CSV columns and folder names (no commas or slashes: MedMNIST's
# "normal, benign" is "normal or benign" here). ChestMNIST is multi-label (not supported);
# RetinaMNIST's labels are ordinal grades.
_ORGAN = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
          "liver", "lung-left", "lung-right", "pancreas", "spleen")
MEDMNIST_LABEL_NAMES = {
    "pathmnist": ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
                  "normal colon mucosa", "cancer-associated stroma",
                  "colorectal adenocarcinoma epithelium"),
    "dermamnist": ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                   "benign keratosis-like lesions", "dermatofibroma", "melanoma",
                   "melanocytic nevi", "vascular lesions"),
    "octmnist": ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
    "pneumoniamnist": ("normal", "pneumonia"),
    "retinamnist": ("grade 0", "grade 1", "grade 2", "grade 3", "grade 4"),
    "breastmnist": ("malignant", "normal or benign"),
    "bloodmnist": ("basophil", "eosinophil", "erythroblast", "immature granulocytes",
                   "lymphocyte", "monocyte", "neutrophil", "platelet"),
    "tissuemnist": ("collecting duct or connecting tubule", "distal convoluted tubule",
                    "glomerular endothelial cells", "interstitial endothelial cells",
                    "leukocytes", "podocytes", "proximal tubule segments",
                    "thick ascending limb"),
    "organamnist": _ORGAN, "organcmnist": _ORGAN, "organsmnist": _ORGAN,
}
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def bundled_path(name: str = "pneumoniamnist") -> Path:
  """Path of a dataset file that ships inside lie_jax (see BUNDLED_DATASETS).

  Example:
    >>> from lie_jax import data
    >>> data.bundled_path().name
    'pneumoniamnist.npz'
  """
  if name not in BUNDLED_DATASETS:
    raise ValueError(f"no bundled dataset {name!r}; lie_jax ships {list(BUNDLED_DATASETS)}. "
                     "Pass path= to a local file, or fetch a MedMNIST file with "
                     "download_medmnist(name, root).")
  path = Path(str(importlib.resources.files("lie_jax.data").joinpath(f"{name}.npz")))
  if not path.is_file():
    raise FileNotFoundError(f"the bundled file {path} is missing: reinstall lie_jax")
  return path


def _medmnist_name(path: Path) -> str:
  """'pneumoniamnist' for .../pneumoniamnist.npz and .../pneumoniamnist_64.npz."""
  return re.sub(r"_\d+$", "", path.name.removesuffix(".npz"))


def _in_memory(in_memory: bool | None, nbytes: int) -> bool:
  """Whether to hold a split of `nbytes` pixels in memory (None: when <= IN_MEMORY_BYTES)."""
  if in_memory not in (None, True, False):
    raise ValueError(f"in_memory must be None, True or False, got {in_memory!r}")
  return nbytes <= IN_MEMORY_BYTES if in_memory is None else in_memory


def default_cache_dir() -> Path:
  """Where compressed .npz images are unpacked for random access: $LIE_JAX_CACHE, else
  $XDG_CACHE_HOME/lie_jax, else ~/.cache/lie_jax."""
  if os.environ.get("LIE_JAX_CACHE"):
    return Path(os.environ["LIE_JAX_CACHE"])
  return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lie_jax"


def _lazy_npz_images(path: Path, member: str, cache_dir: PathLike | None) -> lazy.LazyImages:
  """Lazy rows of an .npz images member: in place if stored, else unpacked once to the cache."""
  rows = lazy.npz_member(path, member)
  if rows is not None:
    return rows
  stat = path.stat()
  key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
                       ).hexdigest()[:16]
  cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
  return lazy.extract_npz_member(path, member, cache / "npz" / f"{path.stem}-{key}" / member)


def load_medmnist_npz(path: PathLike, *, name: str | None = None, in_memory: bool | None = None,
                      cache_dir: PathLike | None = None) -> DatasetSplits:
  """Loads a .npz in the MedMNIST layout.

  The file holds `train_images`, `train_labels`, `test_images`, `test_labels`
  and optionally `val_images`, `val_labels`; images [N, H, W] (grayscale) or
  [N, H, W, 3] uint8, labels [N, 1] or [N] integers (one class per image;
  multi-label files such as ChestMNIST are rejected). Checksums are not
  checked: local copies may legitimately differ (the bundled file does).

  Args:
    path: the .npz file.
    name: the dataset's name; default: the file name without `.npz` and any
      `_64`-style size suffix. "pneumoniamnist" gets the label names
      ("normal", "pneumonia"); other names get "0", "1", ...
    in_memory: None: splits of at most IN_MEMORY_BYTES in memory, larger ones
      read on demand (`lie_jax.data.lazy`); True / False: all in memory / all
      on demand. Images stored uncompressed are read in place; compressed ones
      (MedMNIST's own files) are unpacked once, in chunks, to `cache_dir`.
    cache_dir: where compressed images are unpacked (default: `default_cache_dir()`).

  Returns:
    `DatasetSplits` with images [N, H, W, C] uint8 (C = 1 for grayscale) and
    labels [N] int32; `val` is None when the file has no validation arrays.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: not a readable .npz, arrays missing, or of the wrong dtype or shape.
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no MedMNIST .npz file at {path}")
  name = _medmnist_name(path) if name is None else name
  try:
    archive = np.load(path, allow_pickle=False)
  except _NPZ_ERRORS as e:
    raise ValueError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from e
  if not isinstance(archive, np.lib.npyio.NpzFile):
    raise ValueError(f"{path} holds a single array (.npy format), not an .npz of named arrays")
  with archive:
    required = ["train_images", "train_labels", "test_images", "test_labels"]
    missing = [key for key in required if key not in archive.files]
    has_val = [key in archive.files for key in ("val_images", "val_labels")]
    if any(has_val) and not all(has_val):
      missing += [key for key, has in zip(("val_images", "val_labels"), has_val) if not has]
    if missing:
      raise ValueError(f"{path} is missing the MedMNIST arrays {missing} (it has "
                       f"{sorted(archive.files)})")
    splits = {}
    for split in ("train", "val", "test"):
      if split == "val" and not all(has_val):
        splits[split] = None
        continue
      try:
        member = f"{split}_images.npy"
        nbytes = archive.zip.getinfo(member).file_size
        images = (archive[f"{split}_images"] if _in_memory(in_memory, nbytes) else
                  _lazy_npz_images(path, member, cache_dir))
        labels = archive[f"{split}_labels"]
      except _NPZ_ERRORS as e:
        raise ValueError(f"{path}: the {split} arrays are corrupt ({type(e).__name__}: {e})"
                         ) from e
      splits[split] = as_array_dataset(images, labels, where=f"{path} [{split}]")
  return _make_splits(**splits, label_names=MEDMNIST_LABEL_NAMES.get(name), name=name)


def _file_md5(path: Path) -> str:
  md5 = hashlib.md5()
  with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
      md5.update(chunk)
  return md5.hexdigest()


def download_medmnist(name: str, root: PathLike, *, size: int = 28,
                      timeout_s: float = 60.0) -> Path:
  """Downloads a MedMNIST .npz from Zenodo (record 10519652) into `root`.

  The file is written to a temporary file in `root` and renamed into place
  only once complete and, where its published MD5 is known (MEDMNIST_MD5),
  verified; a failed or mismatched download leaves nothing behind. A file
  already at the destination is kept if its MD5 matches (or none is known).

  Args:
    name: MedMNIST name, e.g. "pneumoniamnist", "dermamnist".
    root: directory to write `{name}.npz` (or `{name}_{size}.npz`) into.
    size: 28 (the classic files) or 64, 128, 224 (MedMNIST+).
    timeout_s: network timeout in seconds.

  Returns:
    The path of the downloaded (or already present) file.

  Raises:
    ConnectionError: the download failed (e.g. no network); the message says
      how to pass a local file instead.
    ValueError: the downloaded bytes do not have the published MD5.
  """
  if size not in (28, 64, 128, 224):
    raise ValueError(f"MedMNIST sizes are 28, 64, 128, 224; got {size}")
  stem = name if size == 28 else f"{name}_{size}"
  file_name = f"{stem}.npz"
  url = MEDMNIST_URL.format(file_name=file_name)
  root = Path(root)
  root.mkdir(parents=True, exist_ok=True)
  dest = root / file_name
  expected_md5 = MEDMNIST_MD5.get(stem)
  if dest.is_file() and (expected_md5 is None or _file_md5(dest) == expected_md5):
    return dest
  if expected_md5 is None:
    warnings.warn(f"no published MD5 is known for {file_name}; the download is not verified",
                  stacklevel=2)
  offline_hint = (f"Without network access, fetch {file_name} elsewhere and pass its path: "
                  f"load_dataset({name!r}, path='/path/to/{file_name}')")
  fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{file_name}.", suffix=".part")
  tmp = Path(tmp_name)
  try:
    md5 = hashlib.md5()
    with os.fdopen(fd, "wb") as out:
      try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
          total = int(response.headers.get("Content-Length") or 0) or None
          with tqdm(total=total, unit="B", unit_scale=True, desc=file_name) as progress:
            while chunk := response.read(1 << 20):
              out.write(chunk)
              md5.update(chunk)
              progress.update(len(chunk))
      except (urllib.error.URLError, TimeoutError, ConnectionError,
              http.client.HTTPException) as e:  # not disk errors: those are no network issue
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        raise ConnectionError(f"could not download {url}: {reason}. {offline_hint}") from e
    digest = md5.hexdigest()
    if expected_md5 is not None and digest != expected_md5:
      raise ValueError(f"{url} downloaded with MD5 {digest}, but MedMNIST publishes "
                       f"{expected_md5}; the download was discarded")
    os.replace(tmp, dest)
  finally:
    tmp.unlink(missing_ok=True)
  return dest


# ---------------------------------------------------------------------------
# Image folders.


def _read_file(path: Path, **options: Any) -> np.ndarray:
  """`images.read_image(path, **options).image`, with the path in any error."""
  try:
    return images_lib.read_image(path, **options).image
  except ValueError as e:
    raise ValueError(f"cannot read {path}: {e}") from None


def load_image_folder(root: PathLike, *, image_size: int | Sequence[int] | None = None,
                      grayscale: bool | None = None,
                      in_memory: bool | None = None) -> DatasetSplits:
  """Loads PNG/JPEG/TIFF (or DICOM) images stored one subfolder per class.

  Two layouts:

    root/<class>/<image>                          -> train only (val, test None)
    root/train/<class>/<image>, root/val/..., root/test/...   (val/, test/ optional)

  Class names are the sorted subfolder names of `root` (or of `root/train`);
  label i means the i-th name. In split layout val/ and test/ may lack some
  classes but may not add new ones, and `root` may hold no other folders.
  Files without a .png/.jpg/.jpeg/.tif/.tiff (or .dcm/.dicom) suffix and
  hidden entries are skipped. Files are decoded by `lie_jax.data.images`,
  the decoder `lie-jax encrypt` uses too: DICOM files (the `dicom` extra,
  pydicom) go through the modality LUT and the file's VOI window (or its
  min-max) to uint8. Small splits are decoded once, at load time; larger ones
  (see `in_memory`) are decoded per batch, file by file, while training.

  Args:
    root: the folder.
    image_size: None (every image must already have the same size), an int s
      or (height, width): every image is resized (bilinear) to that size.
    grayscale: True: convert to 1 channel; False: convert to RGB (3
      channels); None: 1 channel if every image is grayscale, else RGB.
    in_memory: None: decode a split at load time when its pixels fit in
      IN_MEMORY_BYTES, else on demand (`lie_jax.data.lazy.DecodedFiles`);
      True / False: always / never at load time. Headers are read at load time
      either way (sizes and modes checked then; a file damaged past its header
      fails when its batch is read, naming the file).

  Returns:
    `DatasetSplits` named after `root`, images [N, H, W, C] uint8, labels [N] int32.

  Raises:
    FileNotFoundError: `root` does not exist.
    ValueError: no class folders or no images, mixed split and class folders,
      a class folder in val/test that train lacks, an unreadable file (named),
      or images of different sizes without `image_size` (one example of each
      size listed).

  Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from lie_jax import data
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for cls in ("cat", "dog"):
    ...   (root / cls).mkdir()
    ...   Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / cls / "a.png")
    >>> splits = data.load_image_folder(root)
    >>> splits.train.images.shape, splits.train.labels.tolist(), splits.label_names
    ((2, 8, 8, 1), [0, 1], ('cat', 'dog'))
  """
  root = Path(root)
  if not root.exists():
    raise FileNotFoundError(f"no image folder at {root}")
  if not root.is_dir():
    raise NotADirectoryError(f"{root} is a file; load_image_folder needs a folder of class "
                             "folders")
  size = images_lib.parse_image_size(image_size)
  tree = images_lib.list_class_folders(root)
  files = {split: [path for path, _ in entries] for split, entries in tree.files.items()}
  labels = {split: [label for _, label in entries] for split, entries in tree.files.items()}

  if grayscale is None or size is None:
    # One cheap pass over the headers: modes decide the channels, sizes must agree.
    all_files = [path for split_files in files.values() for path in split_files]
    infos = []
    for path in all_files:
      try:
        infos.append(images_lib.probe_image(path))
      except ValueError as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    sizes = [(info.height, info.width) for info in infos]
    if grayscale is None:
      grayscale = all(info.channels == 1 for info in infos)
    if size is None:
      _require_one_size(sizes, [str(path) for path in all_files], where=str(root))
      size = sizes[0]
  datasets = {}
  channels = 1 if grayscale else 3
  decode = functools.partial(_read_file, channels=channels, size=size)
  for split, split_files in files.items():
    if _in_memory(in_memory, len(split_files) * size[0] * size[1] * channels):
      images = np.stack([decode(p) for p in split_files])
    else:
      images = lazy.DecodedFiles(split_files, (*size, channels), decode)
    datasets[split] = as_array_dataset(images, np.asarray(labels[split], np.int32),
                                        where=f"{tree.split_folders[split]}")
  return _make_splits(datasets["train"], datasets.get("val"), datasets.get("test"),
                      label_names=tree.class_names, name=root.resolve().name)


# ---------------------------------------------------------------------------
# TFDS (array_record, no TensorFlow).


def _record_image(record: Any, *, image_key: str, size: tuple[int, int] | None) -> np.ndarray:
  image = np.asarray(record[image_key])
  image = image[..., None] if image.ndim == 2 else image
  return images_lib.resize(image, size) if size is not None else image


def load_tfds(name: str, *, data_dir: PathLike | None = None,
              splits: Sequence[str] = ("train", "test"),
              image_size: int | Sequence[int] | None = None,
              image_key: str = "image", label_key: str = "label",
              in_memory: bool | None = None) -> DatasetSplits:
  """Loads a TFDS dataset that is already prepared on disk, without TensorFlow.

  Reads through `tfds.data_source(name, data_dir=..., download=False)`: the
  dataset must have been prepared in a random-access format (array_record or
  parquet), e.g. elsewhere with
  `tfds build NAME --file_format=array_record --data_dir=DIR` and copied.
  Labels are read once at load time (one pass over the records); images are
  held in memory when a split's pixels fit IN_MEMORY_BYTES, else decoded per
  batch from the source (`lie_jax.data.lazy.Records`).

  Args:
    name: TFDS name, optionally with config and version ("cifar10:3.0.2").
    data_dir: where the prepared data lives; None: TFDS's default
      ($TFDS_DATA_DIR or ~/tensorflow_datasets).
    splits: TFDS split names for (train, test) or (train, val, test);
      slices like "train[:90%]" work.
    image_size: None, an int s or (height, width) to resize every image to;
      needed when the dataset's images differ in size.
    image_key: the record's image feature ([H, W] or [H, W, C] uint8).
    label_key: the record's class label feature.
    in_memory: None (by size), True or False: see `load_medmnist_npz`.

  Returns:
    `DatasetSplits` with images [N, H, W, C] uint8 and labels [N] int32; label
    names from the dataset's ClassLabel feature when it has one.

  Raises:
    FileNotFoundError: the dataset is not prepared under `data_dir` (named).
    ValueError: unknown dataset name, bad `splits`, records without
      `image_key`/`label_key`, or images of different sizes without `image_size`.
  """
  if isinstance(splits, str) or len(splits) not in (2, 3):
    raise ValueError("splits must name (train, test) or (train, val, test) TFDS splits, got "
                     f"{splits!r}")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)

  where = (f"data_dir={str(data_dir)!r}" if data_dir is not None else
           f"the default data_dir {os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets')!r}")
  try:
    sources = tfds.data_source(name, split=list(splits), data_dir=data_dir, download=False)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(f"TFDS has no dataset named {name!r}") from e
  except (KeyError, OSError, NotImplementedError, AssertionError, ValueError) as e:
    # TFDS reports unprepared data in several ways (an empty split dict, a
    # TFRECORD-only NotImplementedError, missing files); all mean the same here.
    raise FileNotFoundError(
        f"TFDS dataset {name!r} splits {list(splits)} are not prepared under {where} "
        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). This loader never "
        f"downloads: prepare it where there is network with `tfds build {name} "
        "--file_format=array_record --data_dir=DIR` and pass data_dir=DIR, or load local "
        "files with load_dataset(..., path=...).") from e
  if isinstance(sources, dict):
    sources = [sources[split] for split in splits]
  size = images_lib.parse_image_size(image_size)
  datasets = []
  for split, source in zip(splits, sources):
    if not len(source):
      raise ValueError(f"TFDS {name!r} split {split!r} is empty")
    first = source[0]
    if not (image_key in first and label_key in first):
      raise ValueError(f"TFDS {name!r} [{split}] records have features {sorted(first)}, "
                       f"not {image_key!r} and {label_key!r}")
    image_of = functools.partial(_record_image, image_key=image_key, size=size)
    shape = image_of(first).shape
    where = f"TFDS {name!r} [{split}]"
    if image_of(first).dtype != np.uint8:
      raise ValueError(f"{where}: images must be uint8 (0..255), got {image_of(first).dtype}")
    if _in_memory(in_memory, len(source) * int(np.prod(shape))):
      images, labels = [], []
      for i in range(len(source)):
        record = source[i]
        images.append(_record_image(record, image_key=image_key, size=None))  # resized below
        labels.append(record[label_key])
      names = [f"{split}[{i}]" for i in range(len(images))]
      stacked = _stack_images(images, names, size, where=f"TFDS {name!r}")
    else:
      labels = [source[i][label_key] for i in tqdm(range(len(source)), desc=f"labels {split}",
                                                    unit="record", leave=False)]
      stacked = lazy.Records(source, shape, image_of, where=where)
    datasets.append(as_array_dataset(stacked, np.asarray(labels), where=where))
  if len(datasets) == 2:
    datasets.insert(1, None)
  info = getattr(sources[0], "dataset_info", None)
  label_names = None
  if info is not None and label_key in getattr(info, "features", {}):
    label_names = getattr(info.features[label_key], "names", None)
  return _make_splits(*datasets, label_names=label_names, name=name)


# ---------------------------------------------------------------------------
# Encrypted dataset directories (written by the data owner's `lie-jax encrypt`).


def load_encrypted_dir(path: PathLike, *, verify: bool = True,
                       in_memory: bool | None = None) -> DatasetSplits:
  """Loads an encrypted dataset directory written by `lie-jax encrypt`, without any key.

  The images are the owner's ciphertexts, used as they are: train on them
  with `config.cipher.name = "manifest"` (lie_jax/configs/encrypted_dir.py), which
  takes the scheme and block size from the directory's manifest.json
  (`lie_jax.data.encrypted_dir.read_manifest`) and never encrypts again.

  Args:
    path: the directory holding manifest.json and shards/.
    verify: check every shard's SHA-256 against the manifest first (read in
      chunks: a lazy split is hashed, not held).
    in_memory: None (by size), True or False: see `load_medmnist_npz`. Lazy
      splits read their images from the shard files per batch.

  Returns:
    `DatasetSplits` named as in the manifest, images [N, H, W, C] uint8
    (encrypted), labels [N] int32, in the order of the examples' per-image
    key indices; val/test None where the owner had none.

  Raises:
    FileNotFoundError: no manifest.json in `path`.
    ValueError: an unknown format version, or a missing or damaged shard.
  """
  manifest = encrypted_dir.read_manifest(path)
  datasets = {}
  for split in ("train", "val", "test"):
    if split not in manifest["splits"]:
      datasets[split] = None
      continue
    entry = manifest["splits"][split]
    nbytes = sum(shard["count"] for shard in entry["shards"]) * int(
        np.prod(manifest["image_shape"]))
    images, labels, _ = encrypted_dir.read_split(path, split, manifest, check=verify,
                                                 lazy=not _in_memory(in_memory, nbytes))
    datasets[split] = as_array_dataset(images, labels, where=f"{path} [{split}]")
  if datasets["train"] is None:
    raise ValueError(f"{path}: the encrypted dataset has no train split")
  return _make_splits(datasets["train"], datasets["val"], datasets["test"],
                      label_names=manifest["label_names"], name=manifest["name"])


# ---------------------------------------------------------------------------
# The entry point.

SOURCES = ("auto", "npz", "folder", "tfds", "encrypted")


def _resized(splits: DatasetSplits, size: tuple[int, int] | None) -> DatasetSplits:
  if size is None or splits.image_shape[:2] == size:
    return splits

  def resize(ds):
    if ds is None:
      return None
    if isinstance(ds.images, lazy.LazyImages):
      return ArrayDataset(lazy.Resized(ds.images, size, images_lib.resize), ds.labels)
    images = np.stack([images_lib.resize(image, size) for image in ds.images])
    return ArrayDataset(images, ds.labels)

  return splits._replace(train=resize(splits.train), val=resize(splits.val),
                         test=resize(splits.test))


def carve_validation(splits: DatasetSplits, *, fraction: float, seed: int
                     ) -> tuple[DatasetSplits, str]:
  """Gives `splits` a validation split: its own, or `fraction` of train drawn with `seed`.

  Model selection must never look at the test split. A source with a val
  split keeps it; otherwise a seeded random `fraction` of train (at least one
  image, leaving at least one) becomes val and the rest stays train.

  Returns:
    (splits with val set, a short description of where val came from).

  Raises:
    ValueError: fraction outside (0, 1) when a split must be carved, or a train
      split too small to carve.
  """
  if splits.val is not None:
    return splits, "val"
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"data.val_fraction must be in (0, 1) when {splits.name!r} has no "
                     f"validation split, got {fraction}")
  n = len(splits.train.labels)
  k = min(n - 1, max(1, round(fraction * n)))
  if n < 2:
    raise ValueError(f"{splits.name!r}: the train split holds {n} image(s), too few to carve "
                     "a validation split from; add a val/ folder")
  order = np.random.default_rng(seed).permutation(n)
  val_idx, train_idx = np.sort(order[:k]), np.sort(order[k:])
  pick = lambda d, i: ArrayDataset(lazy.take(d.images, i), d.labels[i])
  carved = splits._replace(train=pick(splits.train, train_idx),
                           val=pick(splits.train, val_idx))
  return carved, f"val carved from train ({k} of {n} images, fraction {fraction}, seed {seed})"


def load_dataset(name: str = "pneumoniamnist", *, source: str = "auto",
                 path: PathLike | None = None, data_dir: PathLike | None = None,
                 image_size: int | Sequence[int] | None = None,
                 in_memory: bool | None = None, download: bool = False) -> DatasetSplits:
  """Loads a dataset from wherever it is: the one entry point configs call.

  Args:
    name: a bundled dataset ("pneumoniamnist") or a TFDS name. With a `path`
      the dataset is named after the file or folder instead.
    source: "npz" (a MedMNIST-layout file: `path`, or the bundled file of
      `name` when `path` is None), "folder" (`load_image_folder(path)`),
      "tfds" (`load_tfds(name, data_dir=data_dir)`), "encrypted"
      (`load_encrypted_dir(path)`), or "auto": the bundled file if `name` is
      bundled and `path` is None; "npz" if `path` ends in .npz; "encrypted"
      if `path` is a directory holding manifest.json; "folder" if `path` is
      another directory; "tfds" if `path` is None.
    path: a local .npz file, image folder or encrypted dataset directory.
    data_dir: TFDS data directory (source "tfds" only).
    image_size: None (keep the stored size), an int s or (height, width) to
      resize every image to (bilinear).
    in_memory: None: splits larger than IN_MEMORY_BYTES are read on demand,
      per batch (`lie_jax.data.lazy`), smaller ones held in memory; True /
      False: always in memory / always on demand.
    download: when `path` is a MedMNIST file name that does not exist yet
      ("{name}.npz" or "{name}_{size}.npz", e.g. ~/.medmnist/dermamnist_224.npz),
      fetch it there first (`download_medmnist`). Never used by tests.

  Returns:
    `DatasetSplits` with images [N, H, W, C] uint8 and labels [N] int32.

  Raises:
    FileNotFoundError: `path` does not exist, or TFDS data is not prepared.
    ValueError: unknown `source`, or a `path` that fits no source.

  Example:
    >>> from lie_jax import data
    >>> splits = data.load_dataset("pneumoniamnist", image_size=32)
    >>> splits.image_shape, len(splits.val.labels), len(splits.test.labels)
    ((32, 32, 1), 524, 624)
  """
  if source not in SOURCES:
    raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
  size = images_lib.parse_image_size(image_size)
  if download and path is not None and not Path(path).exists():
    match = re.fullmatch(r"([a-z]+mnist)(?:_(\d+))?\.npz", Path(path).name)
    if not match:
      raise ValueError(f"download=True fetches MedMNIST files named NAME.npz or NAME_SIZE.npz; "
                       f"{Path(path).name!r} is not one")
    path = download_medmnist(match[1], Path(path).expanduser().parent,
                             size=int(match[2] or 28))
  if source == "auto":
    if path is None:
      source = "npz" if name in BUNDLED_DATASETS else "tfds"
    elif str(path).endswith(".npz"):
      source = "npz"
    elif encrypted_dir.is_encrypted_dir(path):
      source = "encrypted"
    elif Path(path).is_dir():
      source = "folder"
    elif not Path(path).exists():
      raise FileNotFoundError(f"no dataset file or folder at {path}")
    else:
      raise ValueError(f"cannot tell how to load {path}: pass a MedMNIST .npz file or a "
                       "folder of class folders (or set source=...)")
  if source == "encrypted":
    if path is None:
      raise ValueError("source='encrypted' needs path= (the encrypted dataset directory)")
    splits = load_encrypted_dir(path, in_memory=in_memory)
    if size is not None and splits.image_shape[:2] != size:
      raise ValueError(f"{path} holds encrypted images of {splits.image_shape[0]}x"
                       f"{splits.image_shape[1]}; ciphertexts cannot be resized (image_size="
                       f"{image_size!r}): the owner resizes before encrypting (--resize)")
    return splits
  if source == "npz":
    return _resized(load_medmnist_npz(bundled_path(name) if path is None else path,
                                      in_memory=in_memory), size)
  if source == "folder":
    if path is None:
      raise ValueError("source='folder' needs path= (the image folder)")
    return load_image_folder(path, image_size=size, in_memory=in_memory)
  if path is not None:
    raise ValueError("source='tfds' reads from data_dir=..., not path=...")
  return load_tfds(name, data_dir=data_dir, image_size=size, in_memory=in_memory)
