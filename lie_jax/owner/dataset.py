"""Encrypting a dataset into an encrypted dataset directory, and decrypting it back.

`encrypt_dataset` reads the owner's plain images (`inputs.read_source`),
builds the cipher from the key file exactly as the trainer's on-device
encryption does (`lie_jax.data.encryption.key_file_cipher`: image i of a
split is its i-th readable input, and per-image keys use (split, i)), and
writes fixed-size shards in the format of `lie_jax.data.encrypted_dir`, each
atomically (temporary file, fsync, rename), then the manifest last.

Resumption. Before the first shard it records a run digest (an HMAC, keyed
from the secret, over the decoded inputs and every option) in a state file,
and after each shard that shard's SHA-256. Run again after an interruption
(even SIGKILL), the same command finds the state file, keeps the shards
whose bytes match what it recorded, writes the others, and ends with output
byte-identical to an uninterrupted run. A different command on the same
directory is refused, and a finished directory is left as it is.

Nonce and MAC. Every encryption draws a fresh 128-bit dataset nonce
(`lie_jax.keys.new_nonce`, kept in the state file so a resumed run reuses
it) that goes into every key, so two datasets under one key file never share
per-image keys. The manifest records it with the key-derivation version, a
keyed digest of each shard's plain images (`plain_digest`), and a MAC over
everything (`sign_manifest`). `decrypt_dataset` verifies the MAC, the shard
checksums and, after decrypting, the plain digests before it writes anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lie_jax import ciphers
from lie_jax import keys
from lie_jax.data import encrypted_dir
from lie_jax.data import encryption
from lie_jax.owner import OwnerError
from lie_jax.owner import inputs

STATE = ".encrypt-state.json"
DEFAULT_SHARD_SIZE = 1024
_BATCH = 256  # images per cipher call (bounds device memory)
_DIGEST_PURPOSE = "lie-jax/owner/run-digest/v1"
_PLAIN_PURPOSE = "lie-jax/owner/plain-digest/v1"
_PARTIAL = ".decrypt-partial-"


class StrictError(OwnerError):
  """--strict and some inputs failed: nothing was written."""

  def __init__(self, failures: list[inputs.FailedInput]):
    super().__init__(f"{len(failures)} input(s) could not be used and --strict is set; "
                     "nothing was written")
    self.failures = failures


SAMPLE_SIZE = 40


class EncryptResult(NamedTuple):
  """What `encrypt_dataset` did.

  Attributes:
    manifest: the manifest written (or found).
    failures: inputs left out.
    written: shards written by this call.
    kept: shards kept from an interrupted run (or a finished one).
    sample: up to SAMPLE_SIZE plain images of the largest split, in memory only
      (never written), for measuring what known images reveal
      (`lie_jax.attacks.known_plaintext_exact.known_images_to_recover`).
  """

  manifest: dict[str, Any]
  failures: list[inputs.FailedInput]
  written: int
  kept: int
  sample: np.ndarray | None = None


def progress_factory(enabled: bool):
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  def make(total: int, desc: str):
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True,
                smoothing=0.1)
  return make


@contextlib.contextmanager
def _locked(directory: Path):
  """Holds an exclusive lock on `directory` (two writers on one directory are refused)."""
  fd = os.open(directory, os.O_RDONLY)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise OwnerError(f"another lie-jax command is writing {directory}; wait for it") from None
    yield
  finally:
    os.close(fd)


def _remove_tmp_files(directory: Path) -> None:
  for folder in (directory, directory / encrypted_dir.SHARD_DIR):
    if folder.is_dir():
      for entry in folder.iterdir():
        if encrypted_dir.is_tmp_name(entry.name) and entry.is_file():
          entry.unlink()


def manifest_cipher(manifest: dict[str, Any], secret: keys.SecretKey,
                    where: str | os.PathLike) -> encryption.Cipher:
  """The cipher an encrypted directory's manifest records, under the owner's key and the
  directory's nonce (call `verify_manifest` first).

  Raises:
    OwnerError: the manifest's cipher cannot be rebuilt.
  """
  info = manifest["cipher"]
  try:
    return encryption.key_file_cipher(secret, info["scheme"],
                                      image_shape=tuple(manifest["image_shape"]),
                                      options=info.get("options") or {},
                                      per_image_keys=info.get("per_image_keys", False),
                                      nonce=bytes.fromhex(info["nonce"]))
  except (ValueError, TypeError) as e:
    raise OwnerError(f"{where}: cannot rebuild the cipher from the manifest ({e})") from None


def storable_schemes() -> tuple[str, ...]:
  """The schemes `encrypt_dataset` can store: those whose ciphertexts are images (not morph)."""
  return tuple(name for name, record in ciphers.SCHEMES.items() if record.storable)


def check_scheme(scheme: str, *, block_size: int | None, options: dict[str, Any] | None,
                 per_image_keys: bool) -> dict[str, Any]:
  """The `generate_key` options for storing `scheme` ciphertexts, as JSON values.

  Block schemes always name their block size (the scheme's default when not
  given), as the trainer's config does (`lie_jax.data.encryption.scheme_options`).

  Raises:
    OwnerError: unknown scheme or option, a scheme whose ciphertexts are not
      uint8 images, a block size for a scheme without blocks, or per-image
      keys for a scheme without them.
  """
  if scheme not in ciphers.SCHEMES:
    raise OwnerError(f"unknown scheme {scheme!r}; an encrypted dataset can hold one of "
                     f"{', '.join(storable_schemes())}")
  record = ciphers.get_scheme(scheme)
  if not record.storable:
    raise OwnerError(f"scheme {scheme!r} cannot be stored as an encrypted dataset: its "
                     "ciphertexts are not images (and a model on them needs the key); train "
                     "on it with on-device encryption instead")
  if block_size is not None and "block_size" not in record.options:
    raise OwnerError(f"scheme {scheme!r} has no block size (drop --block-size)")
  if per_image_keys and not record.per_image_keys:
    raise OwnerError(f"scheme {scheme!r} has no per-image keys")
  for name, value in (options or {}).items():
    default = record.options.get(name)
    if name in record.options and not _same_kind(value, default):
      raise OwnerError(f"--option {name}={json.dumps(value)[:40]}: {scheme} takes "
                       f"{type(default).__name__} values for {name} (default "
                       f"{json.dumps(default)})")
  if "block_size" in (options or {}) and options["block_size"] < 1:
    raise OwnerError(f"--option block_size must be >= 1, got {options['block_size']}")
  try:
    resolved = encryption.scheme_options(scheme, block_size=block_size, options=options)
    dtype = np.dtype(record.cipher_dtype(**resolved))
  except (ValueError, TypeError) as e:
    raise OwnerError(f"{scheme}: bad options {options}: {e}") from None
  if dtype != np.uint8:
    raise OwnerError(f"{scheme} with options {resolved} gives {dtype} ciphertexts, not uint8 "
                     "images; the encrypted dataset format stores uint8 images only")
  return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(resolved.items())}


def _same_kind(value: Any, default: Any) -> bool:
  """Whether an --option value has the type of the option's default (JSON lists for tuples)."""
  if isinstance(default, bool) or default is None:
    return isinstance(value, bool) or default is None
  if isinstance(default, int):
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(default, str):
    return isinstance(value, str)
  if isinstance(default, (tuple, list)):
    return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
  return isinstance(value, type(default))


def apply_cipher(fn: encryption.SplitCipherFn, images: np.ndarray, indices: np.ndarray,
                 split: str) -> np.ndarray:
  """`fn` (a `Cipher`'s encrypt or decrypt) over numpy arrays, in batches of bounded size."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  out = [np.asarray(fn(jnp.asarray(images[i:i + _BATCH]), jnp.asarray(indices[i:i + _BATCH]),
                       split)) for i in range(0, len(images), _BATCH)]
  return np.concatenate(out) if out else images


def _run_digest(secret: keys.SecretKey, params: dict[str, Any], data: inputs.SourceData) -> str:
  content = hashlib.sha256(encrypted_dir.json_bytes(params))
  content.update(encrypted_dir.json_bytes({"label_names": list(data.label_names),
                                           "failures": [f.as_dict() for f in data.failures],
                                           "preprocessing": data.preprocessing,
                                           "name": data.name}))
  for split, (images, labels) in data.splits.items():
    content.update(split.encode() + repr(images.shape).encode())
    content.update(np.ascontiguousarray(images).tobytes())
    content.update(np.ascontiguousarray(labels, np.int32).tobytes())
  mac_key = secret.derive_bytes(_DIGEST_PURPOSE, 32)
  return hmac.new(mac_key, content.digest(), hashlib.sha256).hexdigest()


def _sample(data: inputs.SourceData) -> np.ndarray | None:
  """The first SAMPLE_SIZE images of the largest split (None when there are none)."""
  images = max((images for images, _ in data.splits.values()), key=len, default=None)
  return None if images is None or not len(images) else np.array(images[:SAMPLE_SIZE])


def _check_out_dir(out: Path) -> None:
  allowed = {encrypted_dir.MANIFEST, encrypted_dir.SHARD_DIR, STATE}
  strays = sorted(e.name for e in out.iterdir()
                  if e.name not in allowed and not encrypted_dir.is_tmp_name(e.name))
  if strays:
    raise OwnerError(f"{out} is not empty and holds no encrypted dataset (found "
                     f"{', '.join(strays[:3])}{', ...' if len(strays) > 3 else ''}); choose a "
                     "new --out")


def encrypt_dataset(src: str | os.PathLike, out: str | os.PathLike, *, secret: keys.SecretKey,
                    scheme: str, block_size: int | None = None,
                    options: dict[str, Any] | None = None, per_image_keys: bool = False,
                    resize_to: tuple[int, int] | None = None,
                    window: tuple[float, float] | None = None, strict: bool = False,
                    shard_size: int = DEFAULT_SHARD_SIZE, progress: bool = True,
                    nonce: bytes | None = None,
                    before_rename: Callable[[], None] | None = None) -> EncryptResult:
  """Encrypts a plain dataset into an encrypted dataset directory (resumable).

  Args:
    src: a MedMNIST-layout .npz, or a folder of class folders (PNG/JPEG/DICOM,
      optionally under train/ val/ test/).
    out: the directory to write (created; must be new, or hold an interrupted
      or finished run of the same command).
    secret: the owner's key (`lie_jax.keys.read_key_file`).
    scheme: cipher name (not "morph").
    block_size: B for block schemes (default: the scheme's default).
    options: further `generate_key` options.
    per_image_keys: image i of each split gets its own key from (split, i).
    resize_to: (H, W) to resize every image to first (bilinear).
    window: (center, width) for DICOM inputs (default: each file's tags).
    strict: any unusable input is fatal (raises `StrictError`, writes nothing).
    shard_size: images per shard.
    progress: show tqdm progress bars (images/s) on stderr.
    nonce: the dataset nonce (default: a fresh `lie_jax.keys.new_nonce()`, or
      the one an interrupted run of the same command recorded). Passing one
      is for tests and known-answer checks only: two datasets under one key
      and one nonce share their keys.
    before_rename: test hook, see `lie_jax.data.encrypted_dir.atomic_write`.

  Returns:
    An `EncryptResult`.

  Raises:
    OwnerError: unusable arguments or source, or an `out` that holds something else.
  """
  if shard_size < 1:
    raise OwnerError(f"--shard-size must be >= 1, got {shard_size}")
  options = check_scheme(scheme, block_size=block_size, options=options,
                         per_image_keys=per_image_keys)
  out = Path(out)
  if out.is_symlink() or (out.exists() and not out.is_dir()):
    raise OwnerError(f"{out} exists and is not a directory")
  check_separate(src, out)
  inputs.check_resize(resize_to)
  make_bar = progress_factory(progress)
  data = inputs.read_source(src, resize_to=resize_to, window=window, progress_factory=make_bar)
  if data.failures and strict:
    raise StrictError(data.failures)
  try:
    encrypted_dir.check_plain_name(data.name, "the dataset name")
    for i, name in enumerate(data.label_names):
      encrypted_dir.check_label_name(name, f"class name {i}")
  except ValueError as e:
    raise OwnerError(f"{e} (rename the file or folder)") from None
  empty = [split for split, (_, labels) in data.splits.items() if not len(labels)]
  if empty:
    raise OwnerError(f"the {empty[0]} split holds no usable image; nothing to encrypt")
  shape = data.image_shape
  b = options.get("block_size", 1)
  if shape[0] % b or shape[1] % b:
    raise OwnerError(f"image size {shape[0]}x{shape[1]} is not divisible by block size {b}; "
                     f"pass --resize H W with multiples of {b}")
  try:  # a bad option value surfaces here, once, before any work
    encryption.key_file_cipher(secret, scheme, image_shape=shape, options=options,
                               nonce=bytes(keys.MIN_NONCE_BYTES))
  except (ValueError, TypeError) as e:
    raise OwnerError(f"{scheme} does not take the options {options}: {e}") from None
  params = {"format_version": encrypted_dir.FORMAT_VERSION, "scheme": scheme, "options": options,
            "per_image_keys": per_image_keys, "shard_size": shard_size,
            "key_fingerprint": secret.fingerprint}
  digest = _run_digest(secret, params, data)

  out.mkdir(parents=True, exist_ok=True)
  if out.is_symlink():
    raise OwnerError(f"{out} is a symbolic link")
  with _locked(out):
    done: dict[str, str] = {}
    manifest_path, state_path = out / encrypted_dir.MANIFEST, out / STATE
    if manifest_path.exists():
      try:
        found = encrypted_dir.read_manifest(out)
      except (ValueError, FileNotFoundError) as e:
        raise OwnerError(f"{out} holds a damaged manifest ({e}); choose a new --out") from None
      if found.get("run_digest") != digest:
        raise OwnerError(f"{out} already holds an encrypted dataset made by a different command "
                         "(other source, key, scheme or options); choose a new --out")
      checks = {c.file: c.ok for c in encrypted_dir.verify(out, found)}
      done = {s["file"]: s["sha256"] for s in encrypted_dir.all_shards(found)
              if checks[s["file"]]}
      if all(checks.values()):
        return EncryptResult(found, data.failures, 0, len(done), _sample(data))
      if not found["cipher"].get("nonce"):
        raise OwnerError(f"{out} holds a manifest without a dataset nonce; choose a new --out")
      nonce = bytes.fromhex(found["cipher"]["nonce"])
    elif state_path.exists():
      try:
        state = json.loads(state_path.read_text())
      except (ValueError, OSError):
        state = {}
      if state.get("run_digest") != digest:
        raise OwnerError(f"{out} holds an interrupted encrypt of a different command (other "
                         "source, key, scheme or options); rerun that command, or choose a new "
                         "--out")
      done = dict(state.get("done", {}))
      try:
        nonce = bytes.fromhex(state["nonce"])
      except (KeyError, TypeError, ValueError):
        raise OwnerError(f"{out} holds a damaged encrypt state; choose a new --out") from None
    else:
      _check_out_dir(out)
      nonce = keys.new_nonce() if nonce is None else bytes(nonce)
    if len(nonce) < keys.MIN_NONCE_BYTES:
      raise OwnerError(f"a dataset nonce must be >= {keys.MIN_NONCE_BYTES} bytes")
    cipher = encryption.key_file_cipher(secret, scheme, image_shape=shape, options=options,
                                        per_image_keys=per_image_keys, nonce=nonce)
    _remove_tmp_files(out)
    shard_dir = out / encrypted_dir.SHARD_DIR
    if shard_dir.is_symlink():
      raise OwnerError(f"{shard_dir} is a symbolic link")
    shard_dir.mkdir(exist_ok=True)

    def save_state():
      encrypted_dir.atomic_write(state_path, encrypted_dir.json_bytes(
          {"run_digest": digest, "done": done, "nonce": nonce.hex()}), mode=0o600)

    save_state()

    total = sum(len(labels) for _, labels in data.splits.values())
    bar = make_bar(total, f"encrypt {scheme}")
    written = kept = 0
    split_entries = {}
    for split, (images, labels) in data.splits.items():
      shards = []
      for k, start in enumerate(range(0, len(labels), shard_size)):
        name = encrypted_dir.shard_name(split, k)
        path = out / name
        stop = min(start + shard_size, len(labels))
        plain_sha = plain_digest(secret, images[start:stop], labels[start:stop])
        if (not path.is_symlink() and path.is_file()
            and done.get(name) == encrypted_dir.sha256_file(path)):
          payload_sha, size = done[name], path.stat().st_size
          kept += 1
        else:
          indices = np.arange(start, stop, dtype=np.int64)
          encrypted = apply_cipher(cipher.encrypt, images[start:stop], indices, split)
          payload = encrypted_dir.shard_bytes(encrypted, labels[start:stop], indices)
          encrypted_dir.atomic_write(path, payload, before_rename=before_rename)
          payload_sha, size = encrypted_dir.sha256_bytes(payload), len(payload)
          done[name] = payload_sha
          save_state()
          written += 1
        shards.append(encrypted_dir.shard_record(name, first_index=start, count=stop - start,
                                                 size=size, sha256=payload_sha,
                                                 plain_sha256=plain_sha))
        bar.update(stop - start)
      split_entries[split] = encrypted_dir.split_record(labels, data.label_names, shards)
    bar.close()
    manifest = encrypted_dir.make_manifest(
        name=data.name, source_kind=data.kind,
        cipher={"scheme": scheme, "options": options, "per_image_keys": per_image_keys,
                "key_fingerprint": secret.fingerprint,
                "invertible": scheme in ciphers.INVERTIBLE, "nonce": nonce.hex(),
                "kdf_version": keys.KDF_VERSION},
        image_shape=shape, label_names=data.label_names, splits=split_entries,
        preprocessing=data.preprocessing, failed_inputs=[f.as_dict() for f in data.failures],
        shard_size=shard_size, run_digest=digest)
    manifest = sign_manifest(manifest, secret)
    encrypted_dir.write_manifest(out, manifest)
    state_path.unlink()
    encrypted_dir.fsync_dir(out)
  return EncryptResult(manifest, data.failures, written, kept, _sample(data))


def _check_key(manifest: dict[str, Any], secret: keys.SecretKey, where: Path) -> None:
  expected = manifest["cipher"].get("key_fingerprint")
  if expected != secret.fingerprint:
    raise OwnerError(f"wrong key: the key file's fingerprint is {secret.fingerprint}, but {where} "
                     f"was encrypted under the key with fingerprint "
                     f"{encrypted_dir.printable(expected)}")


def plain_digest(secret: keys.SecretKey, images: np.ndarray, labels: np.ndarray) -> str:
  """Keyed digest (HMAC-SHA256) of a shard's plain images and labels, as stored in its manifest.

  Keyed, not a bare SHA-256, so that the public manifest cannot be used to
  confirm a guess of the plain images.
  """
  mac = hmac.new(secret.derive_bytes(_PLAIN_PURPOSE, 32), digestmod=hashlib.sha256)
  mac.update(repr(tuple(images.shape)).encode())
  mac.update(np.ascontiguousarray(images, np.uint8).tobytes())
  mac.update(np.ascontiguousarray(labels, "<i4").tobytes())
  return mac.hexdigest()


def sign_manifest(manifest: dict[str, Any], secret: keys.SecretKey) -> dict[str, Any]:
  """The manifest with its "mac": `keys.manifest_mac` over `encrypted_dir.signed_bytes`."""
  return {**manifest, "mac": keys.manifest_mac(secret, encrypted_dir.signed_bytes(manifest))}


def verify_manifest(manifest: dict[str, Any], secret: keys.SecretKey, where: Path) -> None:
  """Refuses a manifest made under another key, or edited since it was written.

  Raises:
    OwnerError: another key's fingerprint, no MAC, or a MAC that does not
      match (a field, a shard digest or the fingerprint was changed).
  """
  _check_key(manifest, secret, where)
  if "mac" not in manifest:
    raise OwnerError(f"{where}/{encrypted_dir.MANIFEST} carries no MAC: it was not written by "
                     "this lie_jax's encrypt, or was edited; refusing to trust it")
  if not keys.verify_manifest_mac(secret, encrypted_dir.signed_bytes(manifest), manifest["mac"]):
    raise OwnerError(f"{where}/{encrypted_dir.MANIFEST} fails its MAC check under this key: it "
                     "was edited after encryption (or damaged); refusing to use it")
  nonce = manifest["cipher"].get("nonce")
  if nonce is None:
    raise OwnerError(f"{where}/{encrypted_dir.MANIFEST} records no dataset nonce")


def _within(inner: Path, outer: Path) -> bool:
  inner, outer = inner.resolve(), outer.resolve()
  return inner == outer or outer in inner.parents


def check_separate(src: str | os.PathLike, out: str | os.PathLike) -> None:
  """Refuses an output that lies inside the input tree, or an input inside the output."""
  src, out = Path(src), Path(out)
  if src.is_dir() and _within(out, src):
    raise OwnerError(f"--out {out} lies inside the input {src}; choose a folder outside it")
  if out.exists() and _within(src, out):
    raise OwnerError(f"the input {src} lies inside --out {out}; choose another --out")


def _clear_partial(out: Path) -> None:
  """Removes what an interrupted decrypt left in `out` (its hidden staging folders)."""
  import shutil  # pylint: disable=g-import-not-at-top
  for entry in out.iterdir():
    if entry.name.startswith(_PARTIAL) and entry.is_dir() and not entry.is_symlink():
      shutil.rmtree(entry)


def decrypt_dataset(src: str | os.PathLike, out: str | os.PathLike, *, secret: keys.SecretKey,
                    fmt: str = "npz", progress: bool = True) -> dict[str, Any]:
  """Decrypts an encrypted dataset directory back to plain images.

  Before any output is written the manifest's MAC is verified under
  `secret`, every shard's SHA-256 is checked, and after decryption every
  shard's plain digest; a mismatch anywhere writes nothing. Files are
  written into a hidden staging folder inside `out` and moved into place
  at the end; a failed run (disk full) removes it, and can be rerun.

  Args:
    src: the encrypted dataset directory.
    out: a new (or empty) directory. fmt="npz" writes `<name>.npz` in the
      MedMNIST layout (`<split>_images` [N, H, W] uint8 for grayscale, else
      [N, H, W, 3]; `<split>_labels` [N, 1] uint8, or int32 past 256
      classes) and `label_names.json`; fmt="png" writes
      `<split>/<class>/<index:06d>.png`. Names come from the (checked)
      manifest and every path stays inside `out`.
    secret: the key the dataset was encrypted with (checked by fingerprint and MAC).
    fmt: "npz" or "png".
    progress: tqdm progress bars.

  Returns:
    {"files": [written paths], "counts": {split: N}}.

  Raises:
    OwnerError: wrong key, edited manifest, lossy scheme, damaged shards, a
      plain digest mismatch, or a non-empty `out`.
  """
  src, out = Path(src), Path(out)
  if fmt not in ("npz", "png"):
    raise OwnerError(f"--format must be npz or png, got {fmt!r}")
  try:
    manifest = encrypted_dir.read_manifest(src)
  except (ValueError, FileNotFoundError) as e:
    raise OwnerError(str(e)) from None
  verify_manifest(manifest, secret, src)
  cipher_info = manifest["cipher"]
  scheme = cipher_info["scheme"]
  if scheme not in ciphers.INVERTIBLE:
    raise OwnerError(f"{scheme} is lossy: its ciphertexts cannot be decrypted (keep the "
                     "plain originals)")
  check_separate(src, out)
  if out.is_symlink() or (out.exists() and not out.is_dir()):
    raise OwnerError(f"{out} exists and is not a directory")
  if out.exists():
    _clear_partial(out)
    if any(out.iterdir()):
      raise OwnerError(f"{out} exists and is not empty; decrypt writes into a new directory")
  bad = [c for c in encrypted_dir.verify(src, manifest, progress=progress) if not c.ok]
  if bad:
    raise OwnerError(f"{len(bad)} shard(s) of {src} are damaged ({bad[0].file}: "
                     f"{bad[0].problem}); run `lie-jax inspect {src}`")
  shape = tuple(manifest["image_shape"])
  cipher = manifest_cipher(manifest, secret, src)
  make_bar = progress_factory(progress)
  label_names = manifest["label_names"]
  plain: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
  total = sum(manifest["splits"][s]["count"] for s in manifest["splits"])
  bar = make_bar(total, f"decrypt {scheme}")
  for split in encrypted_dir.SPLITS:
    if split not in manifest["splits"]:
      continue
    parts = []
    for shard in manifest["splits"][split]["shards"]:
      try:
        images, labels, indices = encrypted_dir.read_shard(
            encrypted_dir.shard_path(src, shard), shard, shape=shape,
            num_classes=len(label_names))
      except ValueError as e:
        raise OwnerError(f"{src}: {e}") from None
      decrypted = apply_cipher(cipher.decrypt, images, indices, split)
      expected = shard.get("plain_sha256")
      if expected is None or not hmac.compare_digest(
          plain_digest(secret, decrypted, labels), expected):
        raise OwnerError(f"{src}/{shard['file']}: the decrypted images do not match the digest "
                         "recorded at encryption; nothing was written")
      parts.append((decrypted, labels, indices))
      bar.update(len(labels))
    plain[split] = (tuple(np.concatenate(a) for a in zip(*parts)) if parts else
                    (np.zeros((0, *shape), np.uint8), np.zeros((0,), np.int32),
                     np.zeros((0,), np.int64)))
  bar.close()
  out.mkdir(parents=True, exist_ok=True)
  staging = Path(tempfile.mkdtemp(prefix=_PARTIAL, dir=out))
  try:
    written = _write_plain(staging, manifest, plain, fmt)
    files = []
    for relative in written:  # all checked, staged: now move into place
      target = encrypted_dir.resolve_inside(out, relative, "output file")
      target.parent.mkdir(parents=True, exist_ok=True)
      os.replace(staging / relative, target)
      files.append(target)
    encrypted_dir.fsync_dir(out)
  finally:
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(staging, ignore_errors=True)
  return {"files": files, "counts": {s: len(v[1]) for s, v in plain.items()}}


def _write_plain(root: Path, manifest: dict[str, Any],
                 plain: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                 fmt: str) -> list[str]:
  """Writes the decrypted splits under `root`; returns the relative paths written."""
  label_names = manifest["label_names"]
  written = []
  if fmt == "npz":
    arrays = {}
    label_dtype = np.uint8 if len(label_names) <= 256 else np.int32
    for split, (images, labels, _) in plain.items():
      arrays[f"{split}_images"] = images[..., 0] if images.shape[-1] == 1 else images
      arrays[f"{split}_labels"] = labels.astype(label_dtype)[:, None]
    name = encrypted_dir.check_plain_name(f"{manifest['name']}.npz", "field 'name'")
    for relative, payload in ((name, encrypted_dir.npz_bytes(arrays)),
                              ("label_names.json", encrypted_dir.json_bytes(label_names))):
      encrypted_dir.atomic_write(encrypted_dir.resolve_inside(root, relative, "output file"),
                                 payload, mode=0o600)
      written.append(relative)
    return written
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for split, (images, labels, indices) in plain.items():
    for image, label, index in zip(images, labels, indices):
      relative = f"{split}/{label_names[label]}/{index:06d}.png"
      path = encrypted_dir.resolve_inside(root, relative, "output file")
      path.parent.mkdir(parents=True, exist_ok=True)
      buffer = io.BytesIO()
      Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "PNG")
      encrypted_dir.atomic_write(path, buffer.getvalue(), mode=0o600)
      written.append(relative)
  return written
