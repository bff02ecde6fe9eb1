"""The encrypted dataset directory: manifest, shards, checksums, atomic writes.

Layout of a directory written by `lie-jax encrypt` (`lie_jax.owner.dataset`)::

  DIR/manifest.json                 what the directory holds (below)
  DIR/shards/<split>-<k:05d>.npz    images [n, H, W, C] uint8 (ciphertexts),
                                    labels [n] int32, indices [n] int64
                                    (each image's position in its split, the
                                    per-image key index)

Shards are zip files of .npy members written with fixed member dates and no
compression, so the same inputs give byte-identical files (numpy's own
`np.savez` stamps the current time into every member). `np.load` reads them.

The manifest (JSON, keys sorted; `make_manifest`) holds the format marker
and version, the lie_jax and JAX versions, the scheme and its options, the
key's public fingerprint (never the key), the dataset nonce and key-derivation
version, image shape and dtype, label names, counts per split and class,
every shard's file name, count, first index, size, SHA-256 and keyed plain
digest, the preprocessing applied (resize, DICOM window), the inputs that
could not be read, with reasons, and a MAC under the owner's key over all of
it (`signed_bytes`; made and checked by `lie_jax.owner.dataset`).

Everything read back is distrusted: `read_manifest` checks every field
(`check_manifest`); names (dataset, shard files, classes) must be plain names,
never paths; shards are opened only inside the directory and never through a
symbolic link; `np.load` never unpickles; shard arrays must agree with the
manifest. Errors are ValueErrors that name the field.

Reading needs no key and no cipher code: `lie_jax.data.load_dataset(path=DIR)`
trains on the directory as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lie_jax import __version__
from lie_jax.data import lazy as lazy_lib

FORMAT = "lie-jax-encrypted-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
SPLITS = ("train", "val", "test")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20
MAX_LABEL_NAME = 64
MAX_NAME = 128
MAX_SIDE = 1 << 14  # image height / width a manifest may claim
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
# Characters that make a label name unsafe in a CSV column, a file name or a terminal.
_LABEL_FORBIDDEN = set('/\\,;"\'=+@|<>:*?`$')

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


def is_tmp_name(name: str) -> bool:
  """Whether a file name is one of `atomic_write`'s temporary names."""
  return name.startswith(".") and ".tmp-" in name


def atomic_write(path: PathLike, data: bytes, *, mode: int = 0o644,
                 before_rename: Callable[[], None] | None = None) -> None:
  """Writes `data` to `path` all or nothing: temporary file, fsync, rename, fsync of the folder.

  The temporary file is created exclusively (`tempfile.mkstemp`: O_CREAT |
  O_EXCL, so a symlink planted under its name is never followed) in the
  destination's folder, and removed if anything fails before the rename
  (disk full, interruption), so a failed write leaves nothing behind. A
  symlink at `path` itself is replaced, never written through.

  Args:
    path: destination (replaced if it exists).
    data: the bytes.
    mode: permission bits of the new file.
    before_rename: optional callable run after the temporary file is synced
      and before the rename (tests interrupt the writer there).
  """
  path = Path(path)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
  try:
    try:
      os.fchmod(fd, mode)
      view = memoryview(data)
      while view:
        view = view[os.write(fd, view):]
      os.fsync(fd)
    finally:
      os.close(fd)
    if before_rename is not None:
      before_rename()
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise
  fsync_dir(path.parent)


# ---------------------------------------------------------------------------
# Names read from files: plain names only, never paths.


def printable(text: Any) -> str:
  """`text` safe to print on a terminal: control and format characters escaped (\\x1b...)."""
  text = str(text)
  return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                 for c in text)


def check_plain_name(value: Any, field: str, *, max_len: int = MAX_NAME) -> str:
  """Returns `value` if it is a plain file name, else raises ValueError naming `field`.

  Plain: a non-empty string of printable characters, no path separator ('/'
  or '\\'), not '.' or '..', not starting with '.' or '-', at most `max_len`
  characters. Such a name joined to a folder stays inside it.
  """
  if not isinstance(value, str):
    raise ValueError(f"{field} must be a string, got {type(value).__name__}")
  bad = ("is empty" if not value else
         f"is longer than {max_len} characters" if len(value) > max_len else
         "holds a path separator" if "/" in value or "\\" in value else
         "holds a control character" if not value.isprintable() else
         "starts with '.' or '-'" if value[0] in ".-" else
         "ends with a space" if value != value.strip() else "")
  if bad:
    raise ValueError(f"{field} {printable(value)[:80]!r} {bad}: only plain names are accepted")
  return value


def check_label_name(value: Any, field: str) -> str:
  """Returns `value` if it is a usable class name (see below), else raises ValueError.

  Class names become CSV column names and folder names: printable, no path
  or CSV separators, no leading '-' or '.', at most 64 characters.
  """
  check_plain_name(value, field, max_len=MAX_LABEL_NAME)
  forbidden = sorted(set(value) & _LABEL_FORBIDDEN)
  if forbidden:
    raise ValueError(f"{field} {value!r} holds {''.join(forbidden)!r}: class names may not "
                     "contain separators or formula characters")
  return value


def resolve_inside(root: PathLike, relative: str, field: str) -> Path:
  """`root / relative`, refusing anything that would leave `root` or pass through a symlink."""
  root = Path(root)
  path = root / relative
  current = root
  for part in Path(relative).parts:
    current = current / part
    if current.is_symlink():
      raise ValueError(f"{field} {printable(relative)!r}: {current} is a symbolic link; "
                       "refusing to follow it")
  real_root = root.resolve()
  if os.path.commonpath([real_root, (real_root / relative).resolve()]) != str(real_root):
    raise ValueError(f"{field} {printable(relative)!r} points outside {root}")
  return path


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


def shard_record(file: str, *, first_index: int, count: int, size: int, sha256: str,
                 plain_sha256: str | None = None) -> dict[str, Any]:
  """The manifest's entry for one shard (file relative to the directory, size in bytes).

  `plain_sha256` is the owner's keyed digest of the plain images and labels
  (see `lie_jax.owner.dataset.plain_digest`): decryption checks against it.
  """
  record = {"file": file, "count": int(count), "first_index": int(first_index),
            "bytes": int(size), "sha256": sha256}
  if plain_sha256 is not None:
    record["plain_sha256"] = plain_sha256
  return record


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
      "jax_version": _jax_version(),
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


def _jax_version() -> str:
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    return metadata.version("jax")
  except Exception:  # pylint: disable=broad-except  (metadata missing: not fatal)
    return "unknown"


def signed_bytes(manifest: Mapping[str, Any]) -> bytes:
  """The bytes a manifest's MAC covers: its canonical JSON without the "mac" field.

  Shard digests (ciphertext and plain), the key fingerprint, the nonce and
  every other field are inside, so editing any of them breaks the MAC.
  """
  return json_bytes({k: v for k, v in manifest.items() if k != "mac"})


def write_manifest(path: PathLike, manifest: Mapping[str, Any]) -> None:
  """Writes DIR/manifest.json atomically (last: its presence marks a finished directory)."""
  atomic_write(Path(path) / MANIFEST, json_bytes(manifest))


# ---------------------------------------------------------------------------
# Reading and checking.


def is_encrypted_dir(path: PathLike | None) -> bool:
  """Whether `path` is a directory holding an encrypted dataset's manifest.json."""
  return path is not None and (Path(path) / MANIFEST).is_file()


def read_manifest(path: PathLike) -> dict[str, Any]:
  """Reads DIR/manifest.json and checks every field it holds (`check_manifest`).

  Raises:
    FileNotFoundError: no manifest in `path`.
    ValueError: not a lie_jax encrypted dataset manifest, an unknown version,
      or a malformed field (the message names it).
  """
  path = Path(path)
  manifest_path = path / MANIFEST
  if manifest_path.is_symlink():
    raise ValueError(f"{manifest_path} is a symbolic link; refusing to follow it")
  if not manifest_path.is_file():
    raise FileNotFoundError(f"{path} is not an encrypted dataset directory (no {MANIFEST}); "
                            "make one with `lie-jax encrypt`")
  try:
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{manifest_path} is not valid JSON ({e})") from None
  except RecursionError:
    raise ValueError(f"{manifest_path} is nested too deeply") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise ValueError(f"{manifest_path} is not a lie_jax encrypted dataset manifest (no "
                     f"format marker {FORMAT!r})")
  if manifest.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{manifest_path} has format version "
                     f"{printable(manifest.get('format_version'))[:40]!r}; this lie_jax reads "
                     f"version {FORMAT_VERSION}")
  try:
    check_manifest(manifest)
  except ValueError as e:
    raise ValueError(f"{manifest_path}: {e}") from None
  return manifest


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, field: str, what: str) -> None:
  if not ok:
    raise ValueError(f"field {field!r} must be {what}")


def check_manifest(manifest: Mapping[str, Any]) -> None:
  """Checks the structure and every value of a manifest; raises ValueError naming the field.

  Names read from it (dataset name, shard files, class names) must be plain
  names (`check_plain_name`, `check_label_name`): nothing in a manifest is
  ever used as a path. Shard files must be `shards/<plain name>.npz`.
  """
  for field in ("name", "cipher", "image_shape", "label_names", "splits"):
    _require(field in manifest, field, "present")
  check_plain_name(manifest["name"], "field 'name'")
  cipher = manifest["cipher"]
  _require(isinstance(cipher, dict), "cipher", "an object")
  _require(isinstance(cipher.get("scheme"), str) and cipher["scheme"].isidentifier(),
           "cipher.scheme", "a scheme name")
  _require(isinstance(cipher.get("options", {}), dict), "cipher.options", "an object")
  _require(isinstance(cipher.get("per_image_keys", False), bool), "cipher.per_image_keys",
           "true or false")
  _require(isinstance(cipher.get("invertible", True), bool), "cipher.invertible",
           "true or false")
  fingerprint = cipher.get("key_fingerprint")
  _require(fingerprint is None or (isinstance(fingerprint, str) and len(fingerprint) <= 64
                                   and fingerprint.isprintable()),
           "cipher.key_fingerprint", "a key fingerprint")
  nonce = cipher.get("nonce")
  if nonce is not None:
    _require(isinstance(nonce, str) and len(nonce) >= 32 and len(nonce) % 2 == 0
             and len(nonce) <= 256 and all(c in "0123456789abcdef" for c in nonce),
             "cipher.nonce", "at least 16 bytes as lowercase hex")
  shape = manifest["image_shape"]
  _require(isinstance(shape, list) and len(shape) == 3 and all(_is_int(s) for s in shape)
           and 0 < shape[0] <= MAX_SIDE and 0 < shape[1] <= MAX_SIDE and shape[2] in (1, 3),
           "image_shape", f"[H, W, C] with 1 <= H, W <= {MAX_SIDE} and C 1 or 3")
  _require(manifest.get("dtype", "uint8") == "uint8", "dtype", '"uint8"')
  names = manifest["label_names"]
  _require(isinstance(names, list) and names, "label_names", "a non-empty list")
  for i, name in enumerate(names):
    check_label_name(name, f"label_names[{i}]")
  _require(len(set(names)) == len(names), "label_names", "distinct names")
  _require(manifest.get("num_classes", len(names)) == len(names), "num_classes",
           "the number of label_names")
  splits = manifest["splits"]
  _require(isinstance(splits, dict) and splits and set(splits) <= set(SPLITS), "splits",
           f"an object with some of the splits {list(SPLITS)}")
  files = set()
  for split, entry in splits.items():
    where = f"splits.{split}"
    _require(isinstance(entry, dict), where, "an object")
    _require(_is_int(entry.get("count")) and entry["count"] >= 0, f"{where}.count",
             "an integer >= 0")
    per_class = entry.get("per_class", {})
    _require(isinstance(per_class, dict) and set(per_class) <= set(names)
             and all(_is_int(c) and c >= 0 for c in per_class.values()),
             f"{where}.per_class", "counts of the label_names")
    shards = entry.get("shards")
    _require(isinstance(shards, list), f"{where}.shards", "a list")
    expected_first = 0
    for k, shard in enumerate(shards):
      at = f"{where}.shards[{k}]"
      _require(isinstance(shard, dict), at, "an object")
      file = shard.get("file")
      _require(isinstance(file, str), f"{at}.file", "a string")
      folder, sep, base = file.partition("/")
      if folder != SHARD_DIR or not sep:
        raise ValueError(f"field {at + '.file'!r} {printable(file)[:80]!r} must be "
                         f"'{SHARD_DIR}/<name>.npz'")
      check_plain_name(base, f"field {at + '.file'!r}")
      _require(base.endswith(".npz") and file not in files, f"{at}.file",
               "a distinct '.npz' file name")
      files.add(file)
      for field in ("count", "first_index", "bytes"):
        _require(_is_int(shard.get(field)) and shard[field] >= 0, f"{at}.{field}",
                 "an integer >= 0")
      _require(shard["first_index"] == expected_first, f"{at}.first_index",
               f"{expected_first} (shards follow each other)")
      expected_first += shard["count"]
      _require(isinstance(shard.get("sha256"), str) and bool(_HEX64.fullmatch(shard["sha256"])),
               f"{at}.sha256", "64 lowercase hex digits")
      plain = shard.get("plain_sha256")
      _require(plain is None or (isinstance(plain, str) and bool(_HEX64.fullmatch(plain))),
               f"{at}.plain_sha256", "64 lowercase hex digits")
    _require(expected_first == entry["count"], f"{where}.count",
             f"the sum of its shards' counts ({expected_first})")
  failed = manifest.get("failed_inputs", [])
  _require(isinstance(failed, list) and all(
      isinstance(f, dict) and all(isinstance(f.get(k), str) for k in ("path", "split", "reason"))
      for f in failed), "failed_inputs", "a list of {path, split, reason} strings")
  _require(isinstance(manifest.get("preprocessing", {}), dict), "preprocessing", "an object")
  mac = manifest.get("mac")
  _require(mac is None or (isinstance(mac, str) and bool(_HEX64.fullmatch(mac))), "mac",
           "64 lowercase hex digits")


class ShardCheck(NamedTuple):
  """The result of checking one shard against the manifest.

  file: the shard's path relative to the directory.
  ok: the file exists with the recorded size and SHA-256.
  problem: what is wrong ("" when ok).
  """

  file: str
  ok: bool
  problem: str


def shard_path(root: PathLike, shard: Mapping[str, Any]) -> Path:
  """The path of a (checked) shard entry inside `root`; symlinks and escapes are refused."""
  return resolve_inside(root, shard["file"], "shard file")


def check_shard(root: PathLike, shard: Mapping[str, Any]) -> ShardCheck:
  """Checks one shard's presence, size and SHA-256 against its manifest entry.

  A shard that is a symbolic link (or lies under one) is reported, never read.
  """
  try:
    path = shard_path(root, shard)
  except ValueError as e:
    return ShardCheck(shard["file"], False, str(e))
  try:
    info = path.lstat()
  except FileNotFoundError:
    return ShardCheck(shard["file"], False, "missing")
  if not stat.S_ISREG(info.st_mode):
    return ShardCheck(shard["file"], False, "not a regular file")
  if info.st_size != shard["bytes"]:
    return ShardCheck(shard["file"], False,
                      f"size {info.st_size} bytes, manifest says {shard['bytes']}")
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


def _check_shard_arrays(name: str, shard: Mapping[str, Any], images: Any, labels: np.ndarray,
                        indices: np.ndarray, *, shape: tuple[int, ...], num_classes: int) -> None:
  """Raises ValueError unless a shard's arrays agree with its manifest entry."""
  if images.dtype != np.uint8 or tuple(images.shape) != (shard["count"], *shape):
    raise ValueError(f"{name} holds images {images.dtype} {list(images.shape)}, the manifest "
                     f"says {shard['count']} uint8 images of {list(shape)}")
  for what, array in (("labels", labels), ("indices", indices)):
    if array.dtype.kind not in "iu" or array.shape != (shard["count"],):
      raise ValueError(f"{name} holds {what} {array.dtype} {list(array.shape)}, expected "
                       f"{shard['count']} integers")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"{name} holds labels outside 0..{num_classes - 1}")
  first = shard["first_index"]
  if not np.array_equal(indices, np.arange(first, first + shard["count"])):
    raise ValueError(f"{name} holds indices other than {first}..{first + shard['count'] - 1}")


def read_shard(path: Path, shard: Mapping[str, Any], *, shape: tuple[int, ...],
               num_classes: int, lazy: bool = False) -> tuple[Any, np.ndarray, np.ndarray]:
  """Loads one shard file and checks its arrays against its manifest entry.

  With `lazy`, the images are not read: they come back as `lie_jax.data.lazy.NpyRows`
  over the shard file's stored (uncompressed) images member, read on indexing.

  Raises:
    ValueError: not a readable .npz of plain arrays (object arrays are never
      unpickled), wrong dtypes or shapes, labels outside [0, num_classes), or
      indices other than first_index, first_index + 1, ...
  """
  name = shard["file"]
  if path.is_symlink():
    raise ValueError(f"{name} is a symbolic link; refusing to follow it")
  try:
    with np.load(path, allow_pickle=False) as archive:
      if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError("a single array, not an .npz")
      labels, indices = archive["labels"], archive["indices"]
      images = lazy_lib.npz_member(path, "images.npy") if lazy else archive["images"]
      if images is None:
        raise ValueError("its images are compressed; the format stores them uncompressed")
  except _NPZ_ERRORS as e:
    raise ValueError(f"{name} is not a readable shard ({type(e).__name__}: "
                     f"{printable(e)[:200]})") from None
  _check_shard_arrays(name, shard, images, labels, indices, shape=shape, num_classes=num_classes)
  return images, labels.astype(np.int32), indices.astype(np.int64)


def read_split(path: PathLike, split: str, manifest: Mapping[str, Any] | None = None, *,
               check: bool = True, lazy: bool = False) -> tuple[Any, np.ndarray, np.ndarray]:
  """Loads one split's shards (with `lazy`, images read on indexing: `lie_jax.data.lazy`).

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
  num_classes = len(manifest["label_names"])
  images, labels, indices = [], [], []
  for shard in entry["shards"]:
    if check:
      result = check_shard(path, shard)
      if not result.ok:
        raise ValueError(f"{Path(path) / shard['file']}: {result.problem}; the encrypted "
                         "dataset is damaged (run `lie-jax inspect` on it)")
    part = read_shard(shard_path(path, shard), shard, shape=shape, num_classes=num_classes,
                      lazy=lazy)
    for acc, array in zip((images, labels, indices), part):
      acc.append(array)
  if not images:
    return (np.zeros((0, *shape), np.dtype(manifest.get("dtype", "uint8"))),
            np.zeros((0,), np.int32), np.zeros((0,), np.int64))
  if lazy:
    stacked = lazy_lib.Concatenated(images) if len(images) > 1 else images[0]
  else:
    stacked = np.concatenate(images)
  return (stacked, np.concatenate(labels).astype(np.int32),
          np.concatenate(indices).astype(np.int64))
