"""The encrypted dataset directory: manifest, shards, checksums, atomic writes.

Layout of a directory written by `lie-jax encrypt` (`lie_jax.owner.dataset`):

  DIR/manifest.json                 what the directory holds (below)
  DIR/shards/<split>-<k:05d>.npz    images [n, H, W, C] uint8 (ciphertexts),
                                    labels [n] int32, indices [n] int64
                                    (each image's position in its split, the
                                    per-image key index)

Shards are zip files of .npy members written with fixed member dates and no
compression, so the same inputs give byte-identical files (numpy's own
`np.savez` stamps the current time into every member). `np.load` reads them.

The manifest (JSON, keys sorted; `make_manifest`) holds the format marker
and version, the scheme and its options, the key's public fingerprint (never
the key), image shape and dtype, label names, counts per split and class,
every shard's file name, count, first index, size and SHA-256, the
preprocessing applied (resize, DICOM window), and the inputs that could not
be read, with reasons.

Reading needs no key and no cipher code: `lie_jax.data.load_dataset(path=DIR)`
trains on the directory as it is.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lie_jax import __version__

FORMAT = "lie-jax-encrypted-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
SPLITS = ("train", "val", "test")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------
# Bytes on disk: deterministic archives, checksums, atomic writes.


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
  """A deterministic .npz: same arrays, same bytes (fixed member dates, stored, no pickles).

  Args:
    arrays: name -> array, written in the mapping's order as `<name>.npy`.

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


def json_bytes(payload: Any) -> bytes:
  """Canonical JSON text (sorted keys, one-space indent, trailing newline)."""
  return (json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def sha256_bytes(data: bytes) -> str:
  """Hex SHA-256 of `data`."""
  return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike) -> str:
  """Hex SHA-256 of a file's contents, read in chunks."""
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
  """Whether a file name is one of `atomic_write`'s temporary names."""
  return name.startswith(".") and ".tmp-" in name


def atomic_write(path: PathLike, data: bytes, *, mode: int = 0o644,
                 before_rename: Callable[[], None] | None = None) -> None:
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


# ---------------------------------------------------------------------------
# Writing: shards and the manifest.


def shard_name(split: str, k: int) -> str:
  """Relative path of shard k of a split: 'shards/train-00000.npz'."""
  return f"{SHARD_DIR}/{split}-{k:05d}.npz"


def shard_bytes(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> bytes:
  """One shard's file contents (deterministic).

  Args:
    images: [n, H, W, C] uint8 ciphertexts.
    labels: [n] int32 class indices.
    indices: [n] int64 positions of the images in their split.
  """
  return npz_bytes({"images": images, "labels": labels, "indices": indices})


def shard_record(file: str, *, first_index: int, count: int, size: int,
                 sha256: str) -> dict[str, Any]:
  """The manifest's entry for one shard (file relative to the directory, size in bytes)."""
  return {"file": file, "count": int(count), "first_index": int(first_index),
          "bytes": int(size), "sha256": sha256}


def split_record(labels: np.ndarray, label_names: Sequence[str],
                 shards: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """The manifest's entry for one split: its count, count per class and shards."""
  counts = np.bincount(np.asarray(labels, np.int64), minlength=len(label_names))
  return {"count": int(len(labels)),
          "per_class": {name: int(c) for name, c in zip(label_names, counts)},
          "shards": list(shards)}


def make_manifest(*, name: str, source_kind: str, cipher: Mapping[str, Any],
                  image_shape: Sequence[int], label_names: Sequence[str],
                  splits: Mapping[str, dict[str, Any]], preprocessing: Mapping[str, Any],
                  failed_inputs: Sequence[Mapping[str, str]], shard_size: int,
                  run_digest: str) -> dict[str, Any]:
  """The manifest of a directory (see the module docstring); JSON-serialisable.

  Args:
    name: the dataset's name.
    source_kind: what the plain data were ("npz" or "folder").
    cipher: scheme, options, per_image_keys, key_fingerprint, invertible.
    image_shape: (H, W, C) of every image.
    label_names: class names; label i means label_names[i].
    splits: split -> `split_record`.
    preprocessing: what was done to the pixels before encryption.
    failed_inputs: inputs left out, each {"path", "split", "reason"}.
    shard_size: images per shard.
    run_digest: the writer's digest of its inputs and options (resumption).
  """
  return {
      "format": FORMAT,
      "format_version": FORMAT_VERSION,
      "lie_jax_version": __version__,
      "name": name,
      "source_kind": source_kind,
      "cipher": dict(cipher),
      "image_shape": [int(s) for s in image_shape],
      "dtype": "uint8",
      "num_classes": len(label_names),
      "label_names": list(label_names),
      "splits": dict(splits),
      "preprocessing": dict(preprocessing),
      "failed_inputs": [dict(f) for f in failed_inputs],
      "shard_size": int(shard_size),
      "run_digest": run_digest,
  }


def write_manifest(path: PathLike, manifest: Mapping[str, Any]) -> None:
  """Writes DIR/manifest.json atomically (last: its presence marks a finished directory)."""
  atomic_write(Path(path) / MANIFEST, json_bytes(manifest))


# ---------------------------------------------------------------------------
# Reading and checking.


def is_encrypted_dir(path: PathLike | None) -> bool:
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


def check_shard(root: PathLike, shard: Mapping[str, Any]) -> ShardCheck:
  """Checks one shard's presence, size and SHA-256 against its manifest entry."""
  path = Path(root) / shard["file"]
  if not path.is_file():
    return ShardCheck(shard["file"], False, "missing")
  size = path.stat().st_size
  if size != shard["bytes"]:
    return ShardCheck(shard["file"], False, f"size {size} bytes, manifest says {shard['bytes']}")
  if sha256_file(path) != shard["sha256"]:
    return ShardCheck(shard["file"], False, "SHA-256 differs from the manifest")
  return ShardCheck(shard["file"], True, "")


def all_shards(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
  """Every shard entry of the manifest, split by split."""
  return [shard for split in SPLITS if split in manifest["splits"]
          for shard in manifest["splits"][split]["shards"]]


def verify(path: PathLike, manifest: Mapping[str, Any] | None = None, *,
           progress: bool = False) -> list[ShardCheck]:
  """Checks every shard's size and SHA-256 against the manifest (read here when None)."""
  manifest = read_manifest(path) if manifest is None else manifest
  shards = all_shards(manifest)
  if progress:
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    shards = tqdm(shards, desc="verify", unit="shard")
  return [check_shard(path, shard) for shard in shards]


def read_split(path: PathLike, split: str, manifest: Mapping[str, Any] | None = None, *,
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
