"""`lie-jax keygen | encrypt | decrypt | predict | key-model | inspect`: the data owner's tools.

  lie-jax keygen --out KEYFILE
  lie-jax encrypt --key KEYFILE [--scheme NAME] [--block-size B] [--per-image-keys]
                  [--resize H W] [--window CENTER WIDTH] [--strict] [--shard-size N]
                  --in SRC --out DIR
  lie-jax decrypt --key KEYFILE --in DIR --out DIR [--format npz|png]
  lie-jax predict --checkpoint WORKDIR --in DIR|FILES... --out predictions.csv [--key KEYFILE]
  lie-jax key-model --model WORKDIR --key KEYFILE --out DIR      (a plain ViT -> keyed ViT)
  lie-jax inspect DIR [--montage PNG [--count N] [--split S] [--key KEYFILE]]

Without --scheme, encrypt uses `lie_jax.owner.DEFAULT_SCHEME` with per-image keys (the
strongest configuration within 2 points of plain accuracy in docs/FRONTIER.md).

Exit status: 0 success; 1 some inputs could not be used (each listed, with
the reason, in the summary and the manifest) or, for inspect, a shard fails
its checksum; 2 a usage error (a one-line message on stderr, no traceback).
Progress bars (images/s) go to stderr; --quiet turns them off. No command
prints, logs or writes key material: only the key's public fingerprint.
A key file that other users can read is refused unless
--allow-insecure-key-permissions is given. What these commands guarantee
against crafted inputs: docs/SECURITY.md, "What the owner tools guarantee".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

# Exit statuses.
OK, INPUTS_FAILED, USAGE = 0, 1, 2
MIN_KEY_BITS, MAX_KEY_BITS = 128, 8192


def _err(command: str, message: str) -> None:
  print(f"lie-jax {command}: error: {message}", file=sys.stderr)


def _handled(command: str, run: Callable[[argparse.Namespace], int]):
  """Turns the user's errors into one line on stderr and exit status 2."""

  def wrapped(args: argparse.Namespace) -> int:
    from lie_jax.owner import OwnerError  # pylint: disable=g-import-not-at-top
    _quiet_logs()
    try:
      return run(args)
    except OwnerError as e:
      _err(command, str(e))
      return USAGE
    except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
            NotADirectoryError) as e:
      _err(command, str(e) if e.filename is None or str(e.filename) in str(e)
           else f"{e.strerror}: {e.filename}")
      return USAGE
    except OSError as e:  # disk full, I/O errors: not a bug, but nothing the command can fix
      _err(command, f"{type(e).__name__}: {e}")
      return USAGE
    except ValueError as e:  # the library's malformed-input errors (data files, arrays)
      _err(command, _one_line(str(e)))
      return USAGE
    except KeyboardInterrupt:
      _err(command, "interrupted (rerun the same command to resume)")
      return 130

  return wrapped


def _one_line(text: str) -> str:
  from lie_jax.data import encrypted_dir  # pylint: disable=g-import-not-at-top
  return encrypted_dir.printable(" ".join(text.split()))


def _quiet_logs() -> None:
  import logging  # pylint: disable=g-import-not-at-top
  logging.getLogger("absl").setLevel(logging.WARNING)
  logging.getLogger("jax").setLevel(logging.WARNING)


def _read_key(path: str, args: argparse.Namespace | None = None):
  from lie_jax import keys  # pylint: disable=g-import-not-at-top
  from lie_jax.owner import OwnerError  # pylint: disable=g-import-not-at-top
  allow = bool(getattr(args, "allow_insecure_key_permissions", False))
  try:
    return keys.read_key_file(path, allow_insecure_permissions=allow)
  except (ValueError, PermissionError) as e:  # the messages never contain key material
    raise OwnerError(str(e)) from None


def _option(text: str) -> tuple[str, Any]:
  name, sep, value = text.partition("=")
  if not sep or not name:
    raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
  try:
    return name, json.loads(value)
  except json.JSONDecodeError:
    return name, value


def _positive(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
  return value


def _report_failures(failures, *, limit: int = 50) -> None:
  if not failures:
    return
  print(f"{len(failures)} input(s) could not be used:", file=sys.stderr)
  from lie_jax.data import encrypted_dir  # pylint: disable=g-import-not-at-top
  for f in failures[:limit]:
    print(f"  {encrypted_dir.printable(f.path)}: {encrypted_dir.printable(f.reason)}",
          file=sys.stderr)
  if len(failures) > limit:
    print(f"  ... and {len(failures) - limit} more (all listed in the manifest)", file=sys.stderr)


# ---------------------------------------------------------------------------


def keygen(args: argparse.Namespace) -> int:
  from lie_jax import keys  # pylint: disable=g-import-not-at-top
  from lie_jax.owner import OwnerError  # pylint: disable=g-import-not-at-top
  if args.bits % 8 or not MIN_KEY_BITS <= args.bits <= MAX_KEY_BITS:
    raise OwnerError(f"--bits must be a multiple of 8 in {MIN_KEY_BITS}..{MAX_KEY_BITS}, "
                     f"got {args.bits}")
  try:
    secret = keys.write_key_file(args.out, keys.generate_secret(args.bits // 8))
  except FileExistsError as e:
    raise OwnerError(str(e)) from None
  print(f"wrote {args.out} ({secret.bits}-bit secret, mode 0600)")
  print(f"key fingerprint: {secret.fingerprint}")
  print("Keep this file private and backed up: without it the data cannot be decrypted.")
  return OK


def _known_images_line(cipher: dict[str, Any], sample: Any) -> str:
  """One line: how many known images recover the key of the dataset just written."""
  from lie_jax.attacks import known_plaintext  # pylint: disable=g-import-not-at-top
  from lie_jax.attacks import known_plaintext_exact  # pylint: disable=g-import-not-at-top
  scheme, options = cipher["scheme"], dict(cipher.get("options") or {})
  if cipher.get("per_image_keys"):
    return ("security: per-image keys: a leaked (plain, encrypted) image reveals only its own "
            "key, not another image's; but anyone holding a plain copy of an image can tell "
            "which ciphertext it is (linkage, docs/SECURITY.md)")
  if scheme == "morph" and sample is not None:
    k = known_plaintext.pairs_needed(tuple(sample.shape[1:]), copies=options.get("copies", 1))
    return (f"security: {k} known (plain, encrypted) images recover this key by least squares "
            f"and decrypt every image of the dataset (docs/SECURITY.md)")
  if scheme not in known_plaintext_exact.SCHEMES or sample is None or len(sample) < 2:
    return ("security: shared key; see docs/SECURITY.md for what known images reveal of "
            f"{scheme}")
  est = known_plaintext_exact.known_images_to_recover(sample, scheme=scheme, options=options)
  count = f"{est.pairs}" if est.pairs is not None else f"more than {est.pool}"
  return (f"security: shared key: {count} known (plain, encrypted) image(s) recover this key "
          f"and decrypt every other image of the dataset exactly (measured on {len(sample)} of "
          f"its images; docs/SECURITY.md)")


def encrypt(args: argparse.Namespace) -> int:
  from lie_jax.owner import dataset  # pylint: disable=g-import-not-at-top
  from lie_jax.data import encrypted_dir  # pylint: disable=g-import-not-at-top
  from lie_jax.owner import OwnerError  # pylint: disable=g-import-not-at-top
  from lie_jax import owner  # pylint: disable=g-import-not-at-top
  secret = _read_key(args.key, args)
  scheme = args.scheme or owner.DEFAULT_SCHEME
  per_image_keys = args.per_image_keys or (args.scheme is None and owner.DEFAULT_PER_IMAGE_KEYS)
  options = dict(args.option or [])
  if args.block_size is not None and options.get("block_size", args.block_size) != args.block_size:
    raise OwnerError(f"--option block_size={options['block_size']} contradicts --block-size "
                     f"{args.block_size}")
  # Test aid: pause after each shard's temporary file is written, before its rename, so that a
  # test can SIGKILL the command mid-write and check that rerunning it resumes exactly.
  delay = float(os.environ.get("LIE_JAX_TEST_SHARD_DELAY_S", "0") or 0)
  try:
    result = dataset.encrypt_dataset(
        args.src, args.out, secret=secret, scheme=scheme, block_size=args.block_size,
        options=options, per_image_keys=per_image_keys,
        resize_to=tuple(args.resize) if args.resize else None,
        window=tuple(args.window) if args.window else None, strict=args.strict,
        shard_size=args.shard_size, progress=not args.quiet,
        before_rename=(lambda: time.sleep(delay)) if delay > 0 else None)
  except dataset.StrictError as e:
    _report_failures(e.failures)
    _err("encrypt", str(e))
    return INPUTS_FAILED
  manifest = result.manifest
  splits = {s: manifest["splits"][s] for s in encrypted_dir.SPLITS if s in manifest["splits"]}
  counts = ", ".join(f"{s} {e['count']}" for s, e in splits.items())
  cipher = manifest["cipher"]
  print(f"encrypted {sum(e['count'] for e in manifest['splits'].values())} images ({counts}) "
        f"of {manifest['image_shape']} with {cipher['scheme']} {cipher['options']}"
        f"{' (per-image keys)' if cipher['per_image_keys'] else ''} into {args.out}")
  print(f"key fingerprint: {cipher['key_fingerprint']}; shards written {result.written}, "
        f"kept from an earlier run {result.kept}")
  print(_known_images_line(cipher, result.sample))
  converted = manifest.get("preprocessing", {}).get("grayscale_converted_to_rgb")
  if converted:
    print(f"note: grayscale and RGB inputs were mixed; {converted} grayscale image(s) were "
          "converted to RGB (recorded in the manifest)", file=sys.stderr)
  _report_failures(result.failures)
  return INPUTS_FAILED if result.failures else OK


def decrypt(args: argparse.Namespace) -> int:
  from lie_jax.owner import dataset  # pylint: disable=g-import-not-at-top
  secret = _read_key(args.key, args)
  summary = dataset.decrypt_dataset(args.src, args.out, secret=secret, fmt=args.format,
                                    progress=not args.quiet)
  counts = ", ".join(f"{s} {n}" for s, n in summary["counts"].items())
  print(f"decrypted {sum(summary['counts'].values())} images ({counts}) into {args.out}")
  return OK


def _print_clinical(m: dict[str, Any], names: list[str], out: str) -> None:
  """The labelled inputs' scores: accuracy, AUC, sensitivity, specificity, confusion matrix."""
  from lie_jax.training import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
  which = f" (positive class: {names[1]})" if len(names) == 2 else " (mean over classes)"
  print(f"accuracy {pct(m['accuracy'])}, AUC {m['auc']:.3f}, sensitivity "
        f"{pct(m['sensitivity'])}, specificity {pct(m['specificity'])}{which}")
  width = max(len(n) for n in names) + 2
  print("confusion matrix (rows: true, columns: predicted):")
  print(" " * width + "".join(f"{n:>{width}}" for n in names))
  for name, row in zip(names, m["confusion_matrix"]):
    print(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
  for name, c in m["per_class"].items():
    print(f"  {name}: precision {pct(c['precision'])}, recall {pct(c['recall'])}, "
          f"specificity {pct(c['specificity'])}, {c['support']} images")
  figure = os.path.splitext(out)[0] + "_confusion.png"
  if metrics_lib.confusion_figure(m["confusion_matrix"], names, figure, title="predictions"):
    print(f"wrote {figure}")


def predict(args: argparse.Namespace) -> int:
  from lie_jax.owner import predict as predict_lib  # pylint: disable=g-import-not-at-top
  from lie_jax.data import encrypted_dir  # pylint: disable=g-import-not-at-top
  from lie_jax.owner import OwnerError  # pylint: disable=g-import-not-at-top
  trained = predict_lib.load_trained_model(args.checkpoint)
  if len(args.inputs) == 1 and encrypted_dir.is_encrypted_dir(args.inputs[0]):
    if args.resize:
      raise OwnerError("--resize applies to plain images, not to an encrypted dataset directory")
    secret = _read_key(args.key, args) if args.key else None
    result = predict_lib.predict_encrypted_dir(trained, args.inputs[0], splits=args.split,
                                               secret=secret, progress=not args.quiet)
  else:
    if args.split:
      raise OwnerError("--split applies to an encrypted dataset directory only")
    secret = _read_key(args.key, args) if args.key else None
    result = predict_lib.predict_files(
        trained, args.inputs, secret=secret, resize_to=tuple(args.resize) if args.resize else None,
        window=tuple(args.window) if args.window else None, progress=not args.quiet)
  predict_lib.write_csv(args.out, result)
  print(f"wrote {len(result.rows)} predictions to {args.out} (model step {trained.step}, "
        f"{trained.results['encryption']['scheme']})")
  if result.metrics is not None:
    _print_clinical(result.metrics, trained.results["label_names"], args.out)
  _report_failures(result.failures)
  return INPUTS_FAILED if result.failures else OK


def key_model(args: argparse.Namespace) -> int:
  from lie_jax.owner import keyed  # pylint: disable=g-import-not-at-top
  secret = _read_key(args.key, args)
  out = keyed.key_vit_model(args.model, args.out, secret=secret)
  print(f"wrote the keyed ViT to {out} (key {secret.fingerprint}); serve it with `lie-jax "
        f"predict --checkpoint {out} --key KEYFILE` on plain scans, or on a directory from "
        "`lie-jax encrypt --scheme vit` with this key; keep the plain model to yourself")
  return OK


def inspect(args: argparse.Namespace) -> int:
  from lie_jax.data import encrypted_dir  # pylint: disable=g-import-not-at-top
  from lie_jax.owner import OwnerError  # pylint: disable=g-import-not-at-top
  try:
    manifest = encrypted_dir.read_manifest(args.dir)
  except (ValueError, FileNotFoundError) as e:
    raise OwnerError(str(e)) from None
  checks = encrypted_dir.verify(args.dir, manifest, progress=not args.quiet)
  bad = [c for c in checks if not c.ok]
  if args.montage and not bad:
    from lie_jax.owner import montage as montage_lib  # pylint: disable=g-import-not-at-top
    secret = _read_key(args.key, args) if args.key else None
    made = montage_lib.montage(args.dir, args.montage, count=args.count, split=args.split,
                               secret=secret)
    print(f"wrote {args.montage}: {made['count']} {made['split']} images"
          f"{' | decrypted' if made['decrypted'] else ''}"
          f"{'; ' + made['note'] if made['note'] else ''}", file=sys.stderr)
  if args.json:  # JSON escapes every control character itself
    print(json.dumps({"manifest": manifest, "shards_ok": not bad,
                      "bad_shards": [c._asdict() for c in bad]}, indent=1, sort_keys=True,
                     ensure_ascii=True))
    return INPUTS_FAILED if bad else OK
  text = encrypted_dir.printable  # nothing from the manifest reaches the terminal unescaped
  cipher = manifest["cipher"]
  print(f"{text(args.dir)}: encrypted dataset {text(manifest['name'])!r} (format "
        f"v{manifest['format_version']}, lie_jax {text(manifest.get('lie_jax_version', '?'))}, "
        f"jax {text(manifest.get('jax_version', '?'))})")
  print(f"  cipher: {text(cipher['scheme'])} {text(cipher.get('options') or {})}"
        f"{', per-image keys' if cipher.get('per_image_keys') else ''}"
        f"{'' if cipher.get('invertible', True) else ' (lossy: no decrypt)'}"
        f"; key derivation v{text(cipher.get('kdf_version', '?'))}")
  print(f"  key fingerprint: {text(cipher.get('key_fingerprint'))}"
        f"{'' if manifest.get('mac') else ' (manifest carries no MAC)'}")
  print(f"  images: {manifest['image_shape']} {manifest.get('dtype', 'uint8')}; classes "
        f"{text(manifest['label_names'])}")
  for split in [s for s in encrypted_dir.SPLITS if s in manifest["splits"]]:
    entry = manifest["splits"][split]
    per_class = ", ".join(f"{text(n)} {c}" for n, c in entry.get("per_class", {}).items())
    print(f"  {split}: {entry['count']} images ({per_class}) in {len(entry['shards'])} shard(s)")
  prep = manifest.get("preprocessing") or {}
  print(f"  resize: {text(prep.get('resize') or 'none')}"
        + (f"; DICOM: {json.dumps(prep['dicom'], sort_keys=True)}" if prep.get("dicom") else ""))
  failed = manifest.get("failed_inputs") or []
  print(f"  failed inputs at encryption: {len(failed)}")
  for f in failed[:20]:
    print(f"    {text(f['split'])}: {text(f['path'])}: {text(f['reason'])}")
  if len(failed) > 20:
    print(f"    ... and {len(failed) - 20} more")
  if bad:
    print(f"  checksums: {len(bad)} of {len(checks)} shard(s) BAD")
    for c in bad:
      print(f"    {text(c.file)}: {text(c.problem)}")
    return INPUTS_FAILED
  print(f"  checksums: all {len(checks)} shard(s) OK (the server cannot check the MAC: "
        "`lie-jax decrypt` does, with the key)")
  return OK


# ---------------------------------------------------------------------------


KEY_HELP = "the owner's secret key file (from `lie-jax keygen`)"


def register(subparsers) -> None:
  """Adds the data owner's subcommands to `subparsers`."""
  from lie_jax.owner import dataset  # pylint: disable=g-import-not-at-top

  def add(name: str, run, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(func=_handled(name, run))
    return p

  def quiet(p):
    p.add_argument("--quiet", action="store_true", help="no progress bars")

  def insecure(p):
    p.add_argument("--allow-insecure-key-permissions", action="store_true",
                   help="read a key file that other users can read (refused by default)")

  def window(p):
    p.add_argument("--window", nargs=2, type=float, metavar=("CENTER", "WIDTH"),
                   help="DICOM window applied before scaling to 0..255 (default: each file's "
                        "WindowCenter/WindowWidth tags, else its min..max)")

  def resize(p):
    p.add_argument("--resize", nargs=2, type=_positive, metavar=("H", "W"),
                   help="resize every image to H x W (bilinear) before encryption")

  p = add("keygen", keygen, "Create a new secret key file (mode 0600; never overwrites).")
  p.add_argument("--out", required=True, metavar="KEYFILE", help="the key file to create")
  p.add_argument("--bits", type=int, default=256,
                 help=f"secret size in bits, {MIN_KEY_BITS}..{MAX_KEY_BITS} (default 256)")

  p = add("encrypt", encrypt,
          "Encrypt a dataset (MedMNIST .npz, or class folders of PNG/JPEG/DICOM) into an "
          "encrypted dataset directory that a server can train on without the key.")
  p.add_argument("--key", required=True, metavar="KEYFILE", help=KEY_HELP)
  p.add_argument("--scheme", metavar="NAME",
                 help=f"{', '.join(dataset.storable_schemes())} (default: huang2022 "
                      "with per-image keys, the strongest configuration within 2 points of "
                      "plain accuracy in docs/FRONTIER.md; no scheme is safe: docs/SECURITY.md)")
  p.add_argument("--block-size", type=_positive, metavar="B",
                 help="block size of block schemes (default: the scheme's)")
  p.add_argument("--per-image-keys", action="store_true",
                 help="a different key for every image (derived from its split and position)")
  p.add_argument("--option", type=_option, action="append", metavar="NAME=VALUE",
                 help="another generate_key option, VALUE as JSON (e.g. layout=\"chw\")")
  resize(p)
  window(p)
  p.add_argument("--strict", action="store_true",
                 help="any unusable input is fatal (nothing is written)")
  p.add_argument("--shard-size", type=_positive, default=1024, metavar="N",
                 help="images per shard (default 1024)")
  p.add_argument("--in", dest="src", required=True, metavar="SRC",
                 help="the plain dataset: a MedMNIST-layout .npz, or a folder of class folders "
                      "(PNG/JPEG/TIFF/DICOM, optionally under train/ val/ test/)")
  p.add_argument("--out", required=True, metavar="DIR",
                 help="the encrypted dataset directory to write (new, or an interrupted run of "
                      "this same command, which resumes)")
  insecure(p)
  quiet(p)

  p = add("decrypt", decrypt, "Decrypt an encrypted dataset directory (invertible schemes).")
  p.add_argument("--key", required=True, metavar="KEYFILE", help=KEY_HELP)
  p.add_argument("--in", dest="src", required=True, metavar="DIR",
                 help="the encrypted dataset directory (from `lie-jax encrypt`)")
  p.add_argument("--out", required=True, metavar="DIR",
                 help="a new directory for the decrypted images")
  p.add_argument("--format", choices=("npz", "png"), default="npz",
                 help="npz: <name>.npz in the MedMNIST layout (default); png: "
                      "<split>/<class>/<index>.png")
  insecure(p)
  quiet(p)

  p = add("predict", predict,
          "Classify an encrypted dataset directory, or plain images encrypted with --key, with "
          "a model trained by train.py.")
  p.add_argument("--checkpoint", required=True, metavar="WORKDIR",
                 help="the training run's --workdir (results.json and best/)")
  p.add_argument("--in", dest="inputs", nargs="+", required=True, metavar="DIR|FILE",
                 help="an encrypted dataset directory, or image files / folders")
  p.add_argument("--out", required=True, metavar="CSV",
                 help="the predictions (one row per image: id, class, probabilities)")
  p.add_argument("--key", metavar="KEYFILE",
                 help="the owner's key file: encrypts plain images like the training data "
                      "(not needed for an encrypted dataset directory)")
  p.add_argument("--split", action="append", choices=("train", "val", "test"),
                 help="splits of an encrypted directory to predict (default: all)")
  resize(p)
  window(p)
  insecure(p)
  quiet(p)

  p = add("key-model", key_model,
          "Transform a ViT trained on plain images with the key, so that it classifies "
          "vit-encrypted images as the plain model classifies plain ones (no retraining).")
  p.add_argument("--model", required=True, metavar="WORKDIR",
                 help="the plain ViT's training --workdir (backbone vit, adaptation none)")
  p.add_argument("--key", required=True, metavar="KEYFILE", help=KEY_HELP)
  p.add_argument("--out", required=True, metavar="DIR",
                 help="a new directory for the keyed model")
  insecure(p)

  p = add("inspect", inspect, "Show what an encrypted dataset holds; verify its checksums.")
  p.add_argument("dir", metavar="DIR", help="the encrypted dataset directory")
  p.add_argument("--montage", metavar="PNG",
                 help="also write a PNG grid of its images (with --key: each next to its "
                      "decryption)")
  p.add_argument("--count", type=_positive, default=16, metavar="N",
                 help="images in the montage (default 16)")
  p.add_argument("--split", choices=("train", "val", "test"),
                 help="split of the montage (default: the first present)")
  p.add_argument("--key", metavar="KEYFILE",
                 help="the owner's key file: the montage shows decrypted images too")
  p.add_argument("--json", action="store_true", help="print the manifest and checks as JSON")
  insecure(p)
  quiet(p)
