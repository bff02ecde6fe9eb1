"""The encrypted dataset directory: manifest, shards, checksums, atomic writes.

Layout of a directory written by `lie-jax encrypt`:

  DIR/manifest.json                 what the directory holds (below)
  DIR/shards/<split>-<k:05d>.npz    images [n, H, W, C] uint8 (ciphertexts),
                                    labels [n] int32, indices [n] int64
                                    (each image's position in its split, the
                                    per-image key index)

Shards are zip files of .npy members written with fixed member dates and no
compression, so the same inputs give byte-identical files (numpy's own
`np.savez` stamps the current time into every member). `np.load` reads them.

The manifest (JSON, keys sorted) holds the format marker and version, the
scheme and its options, the key's public fingerprint (never the key), image
shape and dtype, label names, counts per split and class, every shard's
file name, count, first index, size and SHA-256, the preprocessing applied
(resize, DICOM window), and the inputs that could not be read, with reasons.

This module needs only numpy: `lie_jax.data.load_dataset(path=DIR)` reads the
directory without any key and without importing the cipher code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

FORMAT = "lie-jax-encrypted-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
SPLITS = ("train", "val", "test")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20

PathLike = str | os.PathLike


class OwnerError(ValueError):
  """A problem the user can fix (bad arguments, wrong key, unusable input): the command
  prints its one-line message and exits with status 2."""


def shard_name(split: str, k: int) -> str:
  """Relative path of shard k of a split: 'shards/train-00000.npz'."""
  return f"{SHARD_DIR}/{split}-{k:05d}.npz"


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
  """A deterministic .npz: same arrays, same bytes (fixed member dates, stored, no pickles).

  Args:
    arrays: name -> array, written in the dict's order as `<name>.npy`.

  Returns:
    The zip file's bytes, readable with `np.load`.
  """
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
    for name, array in arrays.items():
      member = io.BytesIO()
      np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
      info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
      info.create_system = 3
      info.external_attr = 0o644 << 16
      archive.writestr(info, member.getvalue())
  return buffer.getvalue()


def sha256_bytes(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(_CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def fsync_dir(path: PathLike) -> None:
  """Makes a rename in `path` durable (no-op where directories cannot be opened)."""
  try:
    fd = os.open(os.fspath(path), os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def tmp_path(path: Path) -> Path:
  """The temporary name `atomic_write` uses next to `path` (hidden, per process)."""
  return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def is_tmp_name(name: str) -> bool:
  return name.startswith(".") and ".tmp-" in name


def atomic_write(path: PathLike, data: bytes, *, mode: int = 0o644, before_rename=None) -> None:
  """Writes `data` to `path` all or nothing: temporary file, fsync, rename, fsync of the folder.

  Args:
    path: destination (replaced if it exists).
    data: the bytes.
    mode: permission bits of the new file.
    before_rename: optional callable run after the temporary file is synced
      and before the rename (tests interrupt the writer there).
  """
  path = Path(path)
  tmp = tmp_path(path)
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
  try:
    view = memoryview(data)
    while view:
      view = view[os.write(fd, view):]
    os.fsync(fd)
  finally:
    os.close(fd)
  if before_rename is not None:
    before_rename()
  os.replace(tmp, path)
  fsync_dir(path.parent)


def json_bytes(payload: Any) -> bytes:
  """Canonical JSON text (sorted keys, one-space indent, trailing newline)."""
  return (json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def is_dataset_dir(path: PathLike | None) -> bool:
  """Whether `path` is a directory holding an encrypted dataset's manifest.json."""
  return path is not None and (Path(path) / MANIFEST).is_file()


def read_manifest(path: PathLike) -> dict[str, Any]:
  """Reads and checks DIR/manifest.json.

  Raises:
    FileNotFoundError: no manifest in `path`.
    ValueError: not a lie_jax encrypted dataset manifest, or an unknown version.
  """
  path = Path(path)
  manifest_path = path / MANIFEST
  if not manifest_path.is_file():
    raise FileNotFoundError(f"{path} is not an encrypted dataset directory (no {MANIFEST}); "
                            "make one with `lie-jax encrypt`")
  try:
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{manifest_path} is not valid JSON ({e})") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise ValueError(f"{manifest_path} is not a lie_jax encrypted dataset manifest (no "
                     f"format marker {FORMAT!r})")
  if manifest.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{manifest_path} has format version {manifest.get('format_version')!r}; "
                     f"this lie_jax reads version {FORMAT_VERSION}")
  for field in ("cipher", "image_shape", "label_names", "splits"):
    if field not in manifest:
      raise ValueError(f"{manifest_path} lacks the field {field!r}")
  return manifest


class ShardCheck(NamedTuple):
  """The result of checking one shard against the manifest.

  file: the shard's path relative to the directory.
  ok: the file exists with the recorded size and SHA-256.
  problem: what is wrong ("" when ok).
  """

  file: str
  ok: bool
  problem: str


def check_shard(root: PathLike, shard: dict[str, Any]) -> ShardCheck:
  path = Path(root) / shard["file"]
  if not path.is_file():
    return ShardCheck(shard["file"], False, "missing")
  size = path.stat().st_size
  if size != shard["bytes"]:
    return ShardCheck(shard["file"], False, f"size {size} bytes, manifest says {shard['bytes']}")
  if sha256_file(path) != shard["sha256"]:
    return ShardCheck(shard["file"], False, "SHA-256 differs from the manifest")
  return ShardCheck(shard["file"], True, "")


def all_shards(manifest: dict[str, Any]) -> list[dict[str, Any]]:
  return [shard for split in SPLITS if split in manifest["splits"]
          for shard in manifest["splits"][split]["shards"]]


def verify(path: PathLike, manifest: dict[str, Any] | None = None, *,
           progress: bool = False) -> list[ShardCheck]:
  """Checks every shard's size and SHA-256 against the manifest."""
  manifest = read_manifest(path) if manifest is None else manifest
  shards = all_shards(manifest)
  if progress:
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    shards = tqdm(shards, desc="verify", unit="shard")
  return [check_shard(path, shard) for shard in shards]


def read_split(path: PathLike, split: str, manifest: dict[str, Any] | None = None, *,
               check: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Loads one split's shards.

  Args:
    path: the encrypted dataset directory.
    split: "train", "val" or "test" (must be in the manifest).
    manifest: the already-read manifest (read here when None).
    check: verify each shard's SHA-256 first.

  Returns:
    (images [N, H, W, C] ciphertexts as stored (uint8), labels [N] int32,
    indices [N] int64 per-image key indices), in index order.

  Raises:
    ValueError: a shard is missing, damaged or disagrees with the manifest.
  """
  manifest = read_manifest(path) if manifest is None else manifest
  entry = manifest["splits"][split]
  shape = tuple(manifest["image_shape"])
  images, labels, indices = [], [], []
  for shard in entry["shards"]:
    if check:
      result = check_shard(path, shard)
      if not result.ok:
        raise ValueError(f"{Path(path) / shard['file']}: {result.problem}; the encrypted "
                         "dataset is damaged (run `lie-jax inspect` on it)")
    with np.load(Path(path) / shard["file"], allow_pickle=False) as archive:
      part = archive["images"], archive["labels"], archive["indices"]
    if part[0].shape[1:] != shape or len(part[0]) != shard["count"]:
      raise ValueError(f"{shard['file']} holds images {part[0].shape}, the manifest says "
                       f"{shard['count']} of {list(shape)}")
    for acc, array in zip((images, labels, indices), part):
      acc.append(array)
  if not images:
    return (np.zeros((0, *shape), np.dtype(manifest.get("dtype", "uint8"))),
            np.zeros((0,), np.int32), np.zeros((0,), np.int64))
  return (np.concatenate(images), np.concatenate(labels).astype(np.int32),
          np.concatenate(indices).astype(np.int64))
