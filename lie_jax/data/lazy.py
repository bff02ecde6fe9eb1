"""Image arrays read on demand: a split that is never materialised.

A `LazyImages` looks like a uint8 [N, H, W, C] numpy array to the code that
batches it (`shape`, `dtype`, `len`, indexing by an int, a slice or an int
array) but holds no pixels: indexing reads and decodes just the images asked
for. `lie_jax.data.pipeline` indexes one batch at a time, so a training run
holds a few batches, whatever the dataset's size. `np.asarray(lazy)` reads
everything (for small splits, attacks, notebooks).

Kinds::

  NpyRows        rows of an uncompressed .npy array at a byte offset of a file
                 (a .npy file, or a stored member of an .npz: MedMNIST files,
                 the data owner's shards), read with positioned reads (`os.pread`;
                 unlike mmap, pages read are not counted in the process's RSS).
  Decoded        anything decoded one item at a time, e.g.
    DecodedFiles image files (PNG/JPEG/TIFF/DICOM) decoded by `lie_jax.data.images`;
    Records      a random-access record source (`tfds.data_source`), decoded per record.
  Taken          a subset of another array's images (a carved validation split).
  Resized        another array's images resized on read.
  Concatenated   several arrays' images one after the other (shards).

Example:
  >>> import numpy as np, tempfile, os
  >>> from lie_jax.data import lazy
  >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
  >>> np.save(path, np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1))
  >>> rows = lazy.NpyRows.from_npy(path)
  >>> rows.shape, rows[np.array([1])].shape, int(rows[1][0, 1, 0])
  ((2, 4, 4, 1), (1, 4, 4, 1), 17)
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike
# Reading everything (np.asarray) goes through batches of this many images.
_CHUNK = 256


class LazyImages:
  """uint8 [N, H, W, C] images read only when indexed (subclasses define `_read`)."""

  dtype = np.dtype(np.uint8)
  ndim = 4

  def __init__(self, shape: Sequence[int]):
    self.shape = tuple(int(s) for s in shape)
    if len(self.shape) != 4:
      raise ValueError(f"lazy images must be [N, H, W, C], got shape {self.shape}")

  def _read(self, index: np.ndarray) -> np.ndarray:
    """uint8 [len(index), H, W, C] for int64 indices in [0, N)."""
    raise NotImplementedError

  def __len__(self) -> int:
    return self.shape[0]

  @property
  def size(self) -> int:
    return int(np.prod(self.shape))

  @property
  def nbytes(self) -> int:
    return self.size

  def _indices(self, key: Any) -> np.ndarray:
    n = self.shape[0]
    if isinstance(key, slice):
      return np.arange(*key.indices(n), dtype=np.int64)
    index = np.asarray(key)
    if index.dtype == bool:
      if index.shape != (n,):
        raise IndexError(f"boolean index of shape {index.shape} for {n} images")
      return np.flatnonzero(index)
    if index.size and index.dtype.kind not in "iu":
      raise IndexError(f"images are indexed by integers, got {index.dtype}")
    index = index.astype(np.int64).reshape(-1)
    if index.size and (index.min() < -n or index.max() >= n):
      raise IndexError(f"index out of range for {n} images")
    return np.where(index < 0, index + n, index)

  def __getitem__(self, key: Any) -> np.ndarray:
    rest: tuple = ()
    if isinstance(key, tuple):
      key, rest = (key[0], key[1:]) if key else (slice(None), ())
      if key is Ellipsis:
        key, rest = slice(None), (Ellipsis, *rest)
    if isinstance(key, (int, np.integer)):
      out = self._read(self._indices([key]))[0]
    else:
      index = self._indices(key)
      out = (self._read(index) if index.size else
             np.zeros((0, *self.shape[1:]), np.uint8))
    if rest:
      offset = () if isinstance(key, (int, np.integer)) else (slice(None),)
      out = out[(*offset, *rest)]
    return out

  def __iter__(self) -> Iterator[np.ndarray]:
    for start in range(0, len(self), _CHUNK):
      yield from self[start:start + _CHUNK]

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    out = np.empty(self.shape, np.uint8)
    for start in range(0, len(self), _CHUNK):
      out[start:start + _CHUNK] = self[start:start + _CHUNK]
    return out if dtype is None else out.astype(dtype)

  def __repr__(self) -> str:
    return f"{type(self).__name__}(shape={self.shape})"


def take(images: Any, index: np.ndarray) -> Any:
  """images[index] without reading anything when `images` is lazy (a `Taken` view)."""
  if isinstance(images, LazyImages):
    return Taken(images, index)
  return images[index]


# ---------------------------------------------------------------------------
# Uncompressed .npy data at a byte offset.


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype, bool]:
  version = np.lib.format.read_magic(f)
  if version == (1, 0):
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
  elif version in ((2, 0), (3, 0)):
    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
  else:
    raise ValueError(f"unsupported .npy format version {version}")
  return tuple(shape), dtype, fortran


class NpyRows(LazyImages):
  """Images [N, H, W, C] stored C-contiguous as uint8 from byte `offset` of `path`.

  Each read sorts the indices and reads runs of consecutive images with one
  `os.pread` each. The file is opened per read (thread-safe, no descriptor
  kept across forks).
  """

  def __init__(self, path: PathLike, offset: int, shape: Sequence[int], *,
               expand_channels: bool = False):
    shape = tuple(int(s) for s in shape)
    self._stored_shape = shape
    super().__init__((*shape, 1) if expand_channels else shape)
    self.path = str(path)
    self.offset = int(offset)
    self._row = int(np.prod(self.shape[1:]))

  @classmethod
  def from_npy(cls, path: PathLike) -> NpyRows:
    """The array of a .npy file (uint8, [N, H, W] or [N, H, W, C], C order)."""
    with open(path, "rb") as f:
      shape, dtype, fortran = _npy_header(f)
      offset = f.tell()
    return cls._checked(path, offset, shape, dtype, fortran, where=str(path))

  @classmethod
  def _checked(cls, path, offset, shape, dtype, fortran, *, where: str) -> NpyRows:
    if dtype != np.uint8 or fortran or len(shape) not in (3, 4):
      raise ValueError(f"{where}: lazy reading needs a C-ordered uint8 [N, H, W(, C)] array, "
                       f"got {dtype} {list(shape)}{' (Fortran order)' if fortran else ''}")
    size = os.path.getsize(path)
    if offset + int(np.prod(shape)) > size:
      raise ValueError(f"{where}: the file ends before the {list(shape)} array does "
                       "(truncated)")
    return cls(path, offset, shape, expand_channels=len(shape) == 3)

  def _read(self, index: np.ndarray) -> np.ndarray:
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    out = np.empty((len(index), *self.shape[1:]), np.uint8)
    flat = out.reshape(len(index), self._row)
    fd = os.open(self.path, os.O_RDONLY)
    try:
      start = 0
      while start < len(sorted_index):
        stop = start + 1
        while (stop < len(sorted_index)
               and sorted_index[stop] - sorted_index[stop - 1] in (0, 1)):
          stop += 1
        first, last = int(sorted_index[start]), int(sorted_index[stop - 1])
        count = last - first + 1
        data = os.pread(fd, count * self._row, self.offset + first * self._row)
        if len(data) != count * self._row:
          raise ValueError(f"{self.path}: short read (the file was truncated while in use)")
        rows = np.frombuffer(data, np.uint8).reshape(count, self._row)
        flat[order[start:stop]] = rows[sorted_index[start:stop] - first]
        start = stop
    finally:
      os.close(fd)
    return out


def npz_member(path: PathLike, name: str) -> NpyRows | None:
  """Lazy rows of member `name` (e.g. "train_images.npy") of an .npz; None if compressed.

  Raises:
    KeyError: no such member. ValueError: not a uint8 [N, H, W(, C)] array.
  """
  with zipfile.ZipFile(path) as archive:
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
      return None
    with archive.open(info) as member:
      shape, dtype, fortran = _npy_header(member)
      header = member.tell()
  with open(path, "rb") as f:  # the member's data starts after its local file header
    f.seek(info.header_offset)
    local = f.read(30)
    if local[:4] != b"PK\x03\x04":
      raise ValueError(f"{path}: member {name} has no local header (damaged zip)")
    name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30],
                                                                                  "little")
  data_start = info.header_offset + 30 + name_len + extra_len
  return NpyRows._checked(path, data_start + header, shape, dtype, fortran,
                          where=f"{path} [{name}]")


def extract_npz_member(path: PathLike, name: str, out: PathLike) -> NpyRows:
  """Decompresses one .npz member to a .npy file `out`, in chunks; lazy rows of it.

  For compressed files (MedMNIST ships `np.savez_compressed` files): random
  access needs the raw bytes. Writes `out` atomically; reuses it when it
  exists with the member's size.
  """
  out = Path(out)
  with zipfile.ZipFile(path) as archive:
    info = archive.getinfo(name)
    if not (out.is_file() and out.stat().st_size == info.file_size):
      out.parent.mkdir(parents=True, exist_ok=True)
      tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
      with archive.open(info) as member, open(tmp, "wb") as f:
        while chunk := member.read(1 << 22):
          f.write(chunk)
      os.replace(tmp, out)
  return NpyRows.from_npy(out)


# ---------------------------------------------------------------------------
# Decoded per image.


class Decoded(LazyImages):
  """Images decoded on read, one per item: `decode(items[i]) -> uint8 [H, W, C]` (one shape)."""

  def __init__(self, items: Sequence[Any], shape: Sequence[int],
               decode: Callable[[Any], np.ndarray], describe: Callable[[int], str]):
    super().__init__((len(items), *shape))
    self._items = items
    self._decode = decode
    self._describe = describe

  def _read(self, index: np.ndarray) -> np.ndarray:
    out = np.empty((len(index), *self.shape[1:]), np.uint8)
    for k, i in enumerate(index):
      image = self._decode(self._items[i])
      if image.shape != self.shape[1:]:
        raise ValueError(f"{self._describe(int(i))}: image of {list(image.shape)}, the "
                         f"dataset's are {list(self.shape[1:])}; pass image_size=... to resize")
      out[k] = image
    return out


class DecodedFiles(Decoded):
  """Image files decoded on read by `decode(path) -> uint8 [H, W, C]` (all of one shape)."""

  def __init__(self, paths: Sequence[PathLike], shape: Sequence[int],
               decode: Callable[[Path], np.ndarray]):
    self.paths = [Path(p) for p in paths]
    super().__init__(self.paths, shape, decode, lambda i: str(self.paths[i]))


class Records(Decoded):
  """Images of a random-access record source (len, source[i] -> record), decoded on read."""

  def __init__(self, source: Any, shape: Sequence[int], image: Callable[[Any], np.ndarray],
               *, where: str):
    super().__init__(range(len(source)), shape, lambda i: image(source[int(i)]),
                     lambda i: f"{where}[{i}]")


# ---------------------------------------------------------------------------
# Views.


class Taken(LazyImages):
  """base[index] for a fixed index array, read when indexed."""

  def __init__(self, base: LazyImages, index: np.ndarray):
    index = np.asarray(index, np.int64)
    super().__init__((len(index), *base.shape[1:]))
    self._base = base
    self._index = index

  def _read(self, index: np.ndarray) -> np.ndarray:
    return self._base[self._index[index]]


class Resized(LazyImages):
  """base's images resized to `size` (H, W) by `resize(image, size)` on read."""

  def __init__(self, base: LazyImages, size: Sequence[int],
               resize: Callable[[np.ndarray, Sequence[int]], np.ndarray]):
    super().__init__((len(base), int(size[0]), int(size[1]), base.shape[3]))
    self._base = base
    self._size = tuple(size)
    self._resize = resize

  def _read(self, index: np.ndarray) -> np.ndarray:
    return np.stack([self._resize(image, self._size) for image in self._base[index]])


class Concatenated(LazyImages):
  """parts[0]'s images, then parts[1]'s, ... (all of one image shape)."""

  def __init__(self, parts: Sequence[LazyImages]):
    if not parts:
      raise ValueError("Concatenated needs at least one part")
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
      raise ValueError(f"parts differ in image shape: {sorted(shapes)}")
    super().__init__((sum(len(p) for p in parts), *parts[0].shape[1:]))
    self._parts = list(parts)
    self._starts = np.cumsum([0] + [len(p) for p in parts])

  def _read(self, index: np.ndarray) -> np.ndarray:
    out = np.empty((len(index), *self.shape[1:]), np.uint8)
    part = np.searchsorted(self._starts, index, side="right") - 1
    for p in np.unique(part):
      where = np.flatnonzero(part == p)
      out[where] = self._parts[p][index[where] - self._starts[p]]
    return out
