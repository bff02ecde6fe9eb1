"""Crafted directories, manifests, checkpoints and key files against the data owner's tools.

Each case ends in a clear refusal (one line on stderr, exit 2, no traceback) or a correct
result, and nothing outside --out changes. The numbered items are those of
docs/SECURITY.md, "What the owner tools guarantee".
"""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lie_jax import data
from lie_jax import keys
from lie_jax.data import encrypted_dir
from lie_jax.data import encryption
from lie_jax.owner import OwnerError
from lie_jax.owner import dataset
from lie_jax.owner import predict as predict_lib

ROOT = str(Path(__file__).resolve().parents[1])
SIZES = {"train": 24, "val": 8, "test": 8}


def run_cli(capsys, *args):
  """`lie_jax.cli.main(args)` in process: (exit status, stdout, stderr)."""
  from lie_jax import cli
  capsys.readouterr()
  try:
    rc = cli.main([str(a) for a in args])
  except SystemExit as e:  # argparse usage errors
    rc = e.code
  out = capsys.readouterr()
  return rc, out.out, out.err


def assert_refused(capsys, *args, match: str):
  if args[0] != "keygen" and "--quiet" not in args:
    args = (*args, "--quiet")  # progress bars would be more stderr lines
  rc, out, err = run_cli(capsys, *args)
  assert rc == 2, (rc, out, err)
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  assert match in err, err
  return err


def snapshot(root: Path) -> dict[str, bytes]:
  """Every file under `root` (symlinks as their target text), to prove nothing changed."""
  found = {}
  for p in sorted(root.rglob("*")):
    if p.is_symlink():
      found[p.relative_to(root).as_posix()] = os.readlink(p).encode()
    elif p.is_file():
      found[p.relative_to(root).as_posix()] = p.read_bytes()
  return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("trust")
  key = tmp / "hospital.key"
  secret = keys.write_key_file(key)
  with np.load(data.bundled_path()) as bundled:
    arrays = {f"{s}_{k}": bundled[f"{s}_{k}"][:n] for s, n in SIZES.items()
              for k in ("images", "labels")}
  np.savez(tmp / "xray.npz", **arrays)
  enc = tmp / "enc"
  dataset.encrypt_dataset(tmp / "xray.npz", enc, secret=secret, scheme="le", block_size=4,
                          shard_size=8, progress=False)
  return {"tmp": tmp, "key": key, "secret": secret, "arrays": arrays, "enc": enc}


def crafted(world, tmp_path, edit=None, *, sign=True, name="crafted") -> Path:
  """A copy of the encrypted directory with its manifest edited (and, by default, re-signed
  under the owner's key: path checks must hold even for a manifest with a valid MAC)."""
  copy = tmp_path / name
  shutil.copytree(world["enc"], copy)
  manifest = json.loads((copy / "manifest.json").read_text())
  manifest.pop("mac", None)
  if edit is not None:
    edit(manifest)
  if sign:
    manifest = dataset.sign_manifest(manifest, world["secret"])
  (copy / "manifest.json").write_text(json.dumps(manifest))
  return copy


# ---------------------------------------------------------------------------
# 1. Nothing read from a directory, manifest or results.json is used as a path.


def _set(path, value):
  def edit(manifest):
    target = manifest
    for key in path[:-1]:
      target = target[key]
    target[path[-1]] = value
  return edit


PATH_CASES = [
    (("name",), "../../escaped", "'name'"),
    (("name",), "/tmp/absolute", "'name'"),
    (("name",), "sub/dir", "'name'"),
    (("name",), "..", "'name'"),
    (("name",), "x\x00y", "'name'"),
    (("name",), "evil\\name", "'name'"),
    (("splits", "train", "shards", 0, "file"), "../../outside.npz", "shards[0].file"),
    (("splits", "train", "shards", 0, "file"), "/etc/passwd", "shards[0].file"),
    (("splits", "train", "shards", 0, "file"), "shards/../../x.npz", "shards[0].file"),
    (("splits", "train", "shards", 0, "file"), "shards/sub/x.npz", "shards[0].file"),
    (("label_names", 0), "../../x", "label_names[0]"),
    (("label_names", 1), "a/b", "label_names[1]"),
]


@pytest.mark.parametrize("path,value,field", PATH_CASES, ids=lambda v: repr(v)[:20])
def test_paths_in_a_manifest_are_refused_and_nothing_outside_out_changes(
    world, tmp_path, capsys, path, value, field):
  src = crafted(world, tmp_path, _set(path, value))
  before = snapshot(tmp_path)
  for fmt in ("npz", "png"):
    assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                   tmp_path / "out", "--format", fmt, match=field)
  assert_refused(capsys, "inspect", src, "--quiet", match=field)
  with pytest.raises(ValueError, match=field.split(".")[-1].split("[")[0]):
    data.load_dataset(path=src)
  assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_symlinked_shard_is_refused_by_every_reader(world, tmp_path, capsys):
  src = crafted(world, tmp_path)
  outside = tmp_path / "elsewhere.npz"
  shard = src / "shards" / "train-00000.npz"
  shutil.copy(shard, outside)  # identical bytes: only the link itself is wrong
  shard.unlink()
  shard.symlink_to(outside)
  rc, out, _ = run_cli(capsys, "inspect", src, "--quiet")
  assert rc == 1 and "symbolic link" in out
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                 tmp_path / "out", match="symbolic link")
  with pytest.raises(ValueError, match="symbolic link"):
    data.load_dataset(path=src)
  # A symlinked shards/ folder too.
  src2 = crafted(world, tmp_path, name="crafted2")
  shutil.move(src2 / "shards", tmp_path / "real_shards")
  (src2 / "shards").symlink_to(tmp_path / "real_shards")
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src2, "--out",
                 tmp_path / "out2", match="symbolic link")


def test_decrypt_writes_only_inside_out(world, tmp_path, capsys):
  before = snapshot(world["tmp"])
  out = tmp_path / "plain"
  rc, _, err = run_cli(capsys, "decrypt", "--key", world["key"], "--in", world["enc"], "--out",
                       out, "--format", "png", "--quiet")
  assert rc == 0, err
  files = [p for p in out.rglob("*") if p.is_file()]
  assert len(files) == sum(SIZES.values())
  assert all(out.resolve() in p.resolve().parents for p in files)
  assert not [p for p in out.rglob(".*")]  # no staging folder or temporary file left
  assert snapshot(world["tmp"]) == before


# ---------------------------------------------------------------------------
# 9. Malformed files: one line, exit 2, never a traceback.


def _text(text):
  def write(copy):
    (copy / "manifest.json").write_text(text)
  return write


MALFORMED = {
    "not json": _text("{not json"),
    "truncated": _text('{"format": "lie-jax-encrypted-dataset", "format_version": 1, "na'),
    "a list": _text("[1, 2, 3]"),
    "deeply nested": _text("[" * 100000 + "]" * 100000),
    "image_shape text": _set(("image_shape",), "28x28"),
    "image_shape 2 channels": _set(("image_shape",), [28, 28, 2]),
    "image_shape huge": _set(("image_shape",), [10 ** 9, 28, 1]),
    "split not an object": _set(("splits", "train"), 5),
    "unknown split": _set(("splits", "holdout"), {"count": 0, "shards": []}),
    "count disagrees": _set(("splits", "train", "count"), 23),
    "shard count negative": _set(("splits", "train", "shards", 0, "count"), -1),
    "sha256 not hex": _set(("splits", "train", "shards", 0, "sha256"), "zz"),
    "bytes a string": _set(("splits", "train", "shards", 0, "bytes"), "12"),
    "no label names": _set(("label_names",), []),
    "duplicate label names": _set(("label_names",), ["a", "a"]),
    "label name not a string": _set(("label_names",), [0, 1]),
    "num_classes wrong": _set(("num_classes",), 3),
    "failed_inputs not a list": _set(("failed_inputs",), "x"),
    "cipher not an object": _set(("cipher",), "le"),
    "nonce not hex": _set(("cipher", "nonce"), "nope"),
    "nonce short": _set(("cipher", "nonce"), "00" * 8),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifests_give_one_line_and_exit_2(world, tmp_path, capsys, case):
  edit = MALFORMED[case]
  if edit.__name__ == "write":
    src = crafted(world, tmp_path)
    edit(src)
  else:
    src = crafted(world, tmp_path, edit)
  assert_refused(capsys, "inspect", src, "--quiet", match="manifest.json")
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                 tmp_path / "out", match="manifest.json")
  assert not (tmp_path / "out").exists()


def _replace_shard(world, tmp_path, arrays: dict, *, sign=True) -> Path:
  """A copy whose first train shard holds `arrays`, with size and SHA-256 updated."""
  def edit(manifest):
    payload = encrypted_dir.npz_bytes(arrays)
    (tmp_path / "payload").write_bytes(payload)
    shard = manifest["splits"]["train"]["shards"][0]
    shard["bytes"], shard["sha256"] = len(payload), encrypted_dir.sha256_bytes(payload)
  src = crafted(world, tmp_path, edit, sign=sign)
  shutil.copy(tmp_path / "payload", src / "shards" / "train-00000.npz")
  return src


def test_a_shard_holding_an_object_array_is_refused_unread(world, tmp_path, capsys):
  images, labels, indices = encrypted_dir.read_split(world["enc"], "train")
  buffer = io.BytesIO()
  np.savez(buffer, images=np.array([object()] * 8, dtype=object), labels=labels[:8],
           indices=indices[:8])
  src = crafted(world, tmp_path)
  payload = buffer.getvalue()

  def edit(manifest):
    shard = manifest["splits"]["train"]["shards"][0]
    shard["bytes"], shard["sha256"] = len(payload), encrypted_dir.sha256_bytes(payload)
  src = crafted(world, tmp_path, edit, name="objects")
  (src / "shards" / "train-00000.npz").write_bytes(payload)
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                 tmp_path / "out", match="not a readable shard")
  with pytest.raises(ValueError, match="not a readable shard"):
    data.load_dataset(path=src)


@pytest.mark.parametrize("change,match", [
    ({"labels": np.full(8, 7, np.int32)}, "labels outside"),
    ({"indices": np.arange(100, 108)}, "indices other than"),
    ({"images": np.zeros((8, 28, 28, 1), np.float32)}, "uint8"),
])
def test_shard_arrays_that_disagree_with_the_manifest_are_refused(world, tmp_path, capsys,
                                                                  change, match):
  images, labels, indices = encrypted_dir.read_split(world["enc"], "train")
  arrays = {"images": images[:8], "labels": labels[:8], "indices": indices[:8], **change}
  src = _replace_shard(world, tmp_path, arrays)
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                 tmp_path / "out", match=match)
  with pytest.raises(ValueError, match=match):
    data.load_dataset(path=src)


def _results(backbone="small_resnet", **changes):
  from lie_jax.configs import default
  config = default.get_config()
  config.model.backbone = backbone
  results = {"encryption": {"scheme": "le", "options": {"block_size": 4},
                            "per_image_keys": False, "key_fingerprint": "seed"},
             "num_classes": 2, "image_shape": [28, 28, 1], "block_size": 4,
             "label_names": ["normal", "pneumonia"],
             "config": json.loads(config.to_json_best_effort())}
  results.update(changes)
  return results


@pytest.mark.parametrize("content,match", [
    ('{"encryption": {"scheme": "le"', "not valid JSON"),
    ("[]", "not a training results object"),
    (json.dumps(_results(backbone="no_such_net")), "cannot rebuild the model"),
    (json.dumps(_results(num_classes="2")), "num_classes"),
    (json.dumps(_results(image_shape=[28, 28])), "image_shape"),
    (json.dumps(_results(label_names=["=HYPERLINK(1)", "b"])), "label_names[0]"),
    (json.dumps(_results(label_names=["../x", "b"])), "label_names[0]"),
])
def test_bad_results_json_gives_one_line_and_exit_2(world, tmp_path, capsys, content, match):
  workdir = tmp_path / "workdir"
  workdir.mkdir()
  (workdir / "results.json").write_text(content)
  assert_refused(capsys, "predict", "--checkpoint", workdir, "--in", world["enc"], "--out",
                 tmp_path / "p.csv", match=match)
  assert not (tmp_path / "p.csv").exists()


def test_empty_split_and_bad_option_values_give_one_line_and_exit_2(world, tmp_path, capsys):
  arrays = dict(world["arrays"])
  arrays["val_images"], arrays["val_labels"] = arrays["val_images"][:0], arrays["val_labels"][:0]
  np.savez(tmp_path / "empty_val.npz", **arrays)
  base = ["encrypt", "--key", world["key"], "--quiet"]
  assert_refused(capsys, *base, "--scheme", "le", "--in", tmp_path / "empty_val.npz", "--out",
                 tmp_path / "e", match="val")
  npz = world["tmp"] / "xray.npz"
  for option, match in [("block_size=\"x\"", "block_size"), ("block_size=0", "block_size"),
                        ("layout=5", "layout"), ("layout=\"diagonal\"", "layout"),
                        ("nonsense=1", "nonsense")]:
    assert_refused(capsys, *base, "--scheme", "le", "--option", option, "--in", npz, "--out",
                   tmp_path / "o", match=match)
  assert_refused(capsys, *base, "--scheme", "le", "--block-size", "4", "--option",
                 "block_size=2", "--in", npz, "--out", tmp_path / "o", match="contradicts")
  assert not (tmp_path / "e").exists() and not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------
# 2. Per-image keys are never reused across datasets or calls.


def test_every_encryption_draws_a_fresh_nonce_and_records_the_versions(world, tmp_path, capsys):
  import jax
  outs = [tmp_path / "a", tmp_path / "b"]
  for out in outs:
    rc, _, err = run_cli(capsys, "encrypt", "--key", world["key"], "--scheme", "pe",
                         "--per-image-keys", "--in", world["tmp"] / "xray.npz", "--out", out,
                         "--quiet")
    assert rc == 0, err
  manifests = [encrypted_dir.read_manifest(o) for o in outs]
  nonces = [m["cipher"]["nonce"] for m in manifests]
  assert nonces[0] != nonces[1] and all(len(bytes.fromhex(n)) == 16 for n in nonces)
  assert all(m["cipher"]["kdf_version"] == keys.KDF_VERSION for m in manifests)
  assert all(m["jax_version"] == jax.__version__ for m in manifests)
  # The same image i under two datasets: PE ciphertexts differ beyond what one key would give
  # (with a shared key, |cA - cB| == |pA - pB| holds pixel for pixel, here for two copies of
  # the same plain image: cA == cB).
  a, _, _ = encrypted_dir.read_split(outs[0], "train")
  b, _, _ = encrypted_dir.read_split(outs[1], "train")
  assert (a != b).mean() > 0.3
  # The nonce is what the keys were derived under: an independent rebuild from the manifest.
  plain = world["arrays"]["train_images"][..., None]
  for out, m in zip(outs, manifests):
    cipher = encryption.key_file_cipher(world["secret"], "pe", image_shape=(28, 28, 1),
                                        options={}, per_image_keys=True,
                                        nonce=bytes.fromhex(m["cipher"]["nonce"]))
    stored, _, indices = encrypted_dir.read_split(out, "train")
    np.testing.assert_array_equal(np.asarray(cipher.encrypt(plain, indices, "train")), stored)


class _FakeModel:
  """Stands in for a restored model: `_logits` is patched to record what it is fed."""


def _fake_trained(world, *, per_image_keys, nonce=None):
  enc = {"scheme": "pe" if per_image_keys else "le",
         "options": {} if per_image_keys else {"block_size": 4},
         "per_image_keys": per_image_keys, "key_fingerprint": world["secret"].fingerprint,
         "nonce": nonce}
  return predict_lib.TrainedModel(_FakeModel(), {"encryption": enc, "image_shape": [28, 28, 1],
                                                 "label_names": ["normal", "pneumonia"]}, 1)


def test_predict_with_a_key_never_reuses_the_test_splits_per_image_keys(world, tmp_path,
                                                                        monkeypatch):
  fed = []
  monkeypatch.setattr(predict_lib, "_logits",
                      lambda model, images, progress=True: fed.append(images) or
                      np.zeros((len(images), 2)))
  scans = tmp_path / "scans"
  scans.mkdir()
  plain = world["arrays"]["test_images"][:3]
  for i, image in enumerate(plain):
    Image.fromarray(image).save(scans / f"scan{i}.png")
  trained = _fake_trained(world, per_image_keys=True, nonce="ab" * 16)
  for _ in range(2):
    predict_lib.predict_files(trained, [scans], secret=world["secret"], progress=False)
  assert not np.array_equal(fed[0], fed[1])  # a fresh nonce per call
  for nonce in (None, bytes.fromhex("ab" * 16)):  # never the test split's keys i = 0, 1, 2
    test_keys = encryption.key_file_cipher(world["secret"], "pe", image_shape=(28, 28, 1),
                                           options={}, per_image_keys=True, nonce=nonce)
    reused = np.asarray(test_keys.encrypt(plain[..., None], np.arange(3), "test"))
    assert not np.array_equal(fed[0], reused) and not np.array_equal(fed[1], reused)


def test_predict_with_a_shared_key_uses_the_training_datasets_nonce(world, tmp_path,
                                                                   monkeypatch):
  fed = []
  monkeypatch.setattr(predict_lib, "_logits",
                      lambda model, images, progress=True: fed.append(images) or
                      np.zeros((len(images), 2)))
  nonce = encrypted_dir.read_manifest(world["enc"])["cipher"]["nonce"]
  scans = tmp_path / "scans"
  scans.mkdir()
  Image.fromarray(world["arrays"]["test_images"][0]).save(scans / "scan0.png")
  predict_lib.predict_files(_fake_trained(world, per_image_keys=False, nonce=nonce), [scans],
                            secret=world["secret"], progress=False)
  stored, _, _ = encrypted_dir.read_split(world["enc"], "test")
  np.testing.assert_array_equal(fed[0][0], stored[0])  # what the model was trained on


def test_the_cipher_rejects_indices_outside_32_bits(world):
  cipher = encryption.key_file_cipher(world["secret"], "pe", image_shape=(28, 28, 1),
                                      options={}, per_image_keys=True, nonce=keys.new_nonce())
  images = world["arrays"]["train_images"][:1, ..., None]
  with pytest.raises((ValueError, OverflowError)):
    np.asarray(cipher.encrypt(images, np.array([2 ** 32], np.int64), "train"))


# ---------------------------------------------------------------------------
# 4. The manifest is authenticated.


def test_an_edited_shard_with_recomputed_checksums_fails_the_mac(world, tmp_path, capsys):
  images, labels, indices = encrypted_dir.read_split(world["enc"], "train")
  flipped = {"images": images[:8], "labels": 1 - labels[:8], "indices": indices[:8]}
  src = _replace_shard(world, tmp_path, flipped, sign=False)  # attacker: no key, no MAC
  rc, out, _ = run_cli(capsys, "inspect", src, "--quiet")  # the server: checksums only
  assert rc == 0 and "all" in out
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                 tmp_path / "out", match="MAC")
  assert not (tmp_path / "out").exists()
  with pytest.raises(OwnerError, match="MAC"):
    predict_lib.predict_encrypted_dir(_fake_trained(world, per_image_keys=False), src,
                                      secret=world["secret"], progress=False)
  # Without recomputed checksums even the server notices.
  src2 = crafted(world, tmp_path, name="raw")
  shutil.copy(tmp_path / "payload", src2 / "shards" / "train-00000.npz")
  rc, out, _ = run_cli(capsys, "inspect", src2, "--quiet")
  assert rc == 1 and "BAD" in out


def test_a_manifest_claiming_another_keys_fingerprint_is_refused(world, tmp_path, capsys):
  other = tmp_path / "other.key"
  other_secret = keys.write_key_file(other)
  src = crafted(world, tmp_path, _set(("cipher", "key_fingerprint"), other_secret.fingerprint),
                sign=False)
  assert_refused(capsys, "decrypt", "--key", other, "--in", src, "--out", tmp_path / "out",
                 match="MAC")
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                 tmp_path / "out", match="wrong key")
  unsigned = crafted(world, tmp_path, sign=False, name="unsigned")
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", unsigned, "--out",
                 tmp_path / "out", match="no MAC")
  assert not (tmp_path / "out").exists()


def test_a_plain_digest_mismatch_is_never_reported_as_success(world, tmp_path, capsys):
  src = crafted(world, tmp_path, _set(("splits", "test", "shards", 0, "plain_sha256"),
                                      "0" * 64))
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", src, "--out",
                 tmp_path / "out", match="do not match the digest")
  assert not [p for p in (tmp_path / "out").rglob("*")] if (tmp_path / "out").exists() else True


def test_the_plain_digest_is_keyed_and_matches_the_originals(world):
  manifest = encrypted_dir.read_manifest(world["enc"])
  shard = manifest["splits"]["val"]["shards"][0]
  images = world["arrays"]["val_images"][:8, ..., None]
  labels = world["arrays"]["val_labels"][:8, 0].astype(np.int32)
  assert dataset.plain_digest(world["secret"], images, labels) == shard["plain_sha256"]
  assert encrypted_dir.sha256_bytes(images.tobytes() + labels.tobytes()) != shard["plain_sha256"]
  assert dataset.plain_digest(keys.generate_secret(), images, labels) != shard["plain_sha256"]


# ---------------------------------------------------------------------------
# 5. Writes cannot be hijacked or left half-done.


def test_atomic_write_never_follows_a_planted_symlink(tmp_path):
  victim = tmp_path / "victim"
  victim.write_bytes(b"original scans")
  folder = tmp_path / "out"
  folder.mkdir()
  # The old writer's predictable temporary name, and a symlink at the destination itself.
  (folder / f".x.tmp-{os.getpid()}").symlink_to(victim)
  (folder / "y").symlink_to(victim)
  encrypted_dir.atomic_write(folder / "x", b"new")
  encrypted_dir.atomic_write(folder / "y", b"new")
  assert victim.read_bytes() == b"original scans"
  assert (folder / "x").read_bytes() == b"new" and not (folder / "y").is_symlink()


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
  (tmp_path / "x").write_bytes(b"old")

  def fail():
    raise OSError(28, "No space left on device")
  with pytest.raises(OSError):
    encrypted_dir.atomic_write(tmp_path / "x", b"new", before_rename=fail)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
  assert (tmp_path / "x").read_bytes() == b"old"


def test_a_failed_decrypt_removes_its_files_and_can_be_rerun(world, tmp_path, monkeypatch,
                                                            capsys):
  real = encrypted_dir.atomic_write
  calls = []

  def disk_full(path, payload, **kwargs):
    calls.append(path)
    if len(calls) == 5:
      raise OSError(28, "No space left on device")
    return real(path, payload, **kwargs)
  monkeypatch.setattr(encrypted_dir, "atomic_write", disk_full)
  out = tmp_path / "plain"
  rc, _, err = run_cli(capsys, "decrypt", "--key", world["key"], "--in", world["enc"], "--out",
                       out, "--format", "png", "--quiet")
  assert rc == 2 and "No space left" in err and len(err.strip().splitlines()) == 1
  assert list(out.rglob("*")) == []
  monkeypatch.setattr(encrypted_dir, "atomic_write", real)
  rc, _, err = run_cli(capsys, "decrypt", "--key", world["key"], "--in", world["enc"], "--out",
                       out, "--format", "png", "--quiet")
  assert rc == 0, err
  assert len([p for p in out.rglob("*.png")]) == sum(SIZES.values())


# ---------------------------------------------------------------------------
# 6. Outputs are safe to open.


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(tmp_path):
  ids = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "scan0.png"]
  rows = [{"id": i, "predicted_label": 0, "predicted_name": "normal", "p_normal": "1.000000",
           "label": ""} for i in ids]
  path = tmp_path / "p.csv"
  predict_lib.write_csv(path, predict_lib.Predictions(
      rows, [], ["id", "predicted_label", "predicted_name", "p_normal", "label"]))
  with open(path, newline="") as f:
    read = list(csv.DictReader(f))
  assert [r["id"] for r in read] == ["'" + i for i in ids[:4]] + ["'\\tx", "'\\rx",
                                                                   "scan0.png"]
  assert all(r["p_normal"] == "1.000000" and r["predicted_label"] == "0" for r in read)


@pytest.mark.parametrize("name", ["=cmd", "a,b", "+x", "@x", "-x", "x" * 65, "a;b"])
def test_unsafe_class_names_are_refused_at_encryption(world, tmp_path, capsys, name):
  src = tmp_path / "scans"
  for cls in ("normal", name):
    (src / cls).mkdir(parents=True)
    Image.fromarray(world["arrays"]["train_images"][0]).save(src / cls / "0.png")
  assert_refused(capsys, "encrypt", "--key", world["key"], "--scheme", "le", "--in", src,
                 "--out", tmp_path / "enc", "--quiet", match="class name")
  assert not (tmp_path / "enc").exists()


def test_control_characters_from_a_manifest_are_escaped_on_the_terminal(world, tmp_path,
                                                                        capsys):
  src = crafted(world, tmp_path, _set(("failed_inputs",), [
      {"path": "scan\x1b[2J.png", "split": "train", "reason": "bad\x07\u202e"}]))
  rc, out, _ = run_cli(capsys, "inspect", src, "--quiet")
  assert rc == 0 and "\x1b" not in out and "\x07" not in out and "\u202e" not in out
  assert "\\x1b[2J" in out


# ---------------------------------------------------------------------------
# 7. Experiment keys never protect real data by accident; key files.


def test_keygen_bits_are_bounded(tmp_path, capsys):
  for bits in ("64", "100", "16384"):
    assert_refused(capsys, "keygen", "--out", tmp_path / f"k{bits}", "--bits", bits,
                   match="--bits")
    assert not (tmp_path / f"k{bits}").exists()
  rc, _, _ = run_cli(capsys, "keygen", "--out", tmp_path / "big", "--bits", "8192")
  assert rc == 0 and keys.read_key_file(tmp_path / "big").bits == 8192


def test_a_key_file_readable_by_others_is_refused_unless_allowed(world, tmp_path, capsys):
  key = tmp_path / "shared.key"
  keys.write_key_file(key)
  os.chmod(key, 0o644)
  args = ["encrypt", "--key", key, "--scheme", "le", "--in", world["tmp"] / "xray.npz",
          "--quiet"]
  err = assert_refused(capsys, *args, "--out", tmp_path / "a", match=str(key))
  assert "readable" in err or "permission" in err.lower()
  assert not (tmp_path / "a").exists()
  rc, _, err = run_cli(capsys, *args, "--out", tmp_path / "b", "--allow-insecure-key-permissions")
  assert rc == 0, err


def test_a_fifo_as_key_file_is_refused_without_blocking(world, tmp_path):
  fifo = tmp_path / "key.fifo"
  os.mkfifo(fifo)
  proc = subprocess.run([sys.executable, "-m", "lie_jax", "decrypt", "--key", str(fifo), "--in",
                         str(world["enc"]), "--out", str(tmp_path / "out")],
                        env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert not (tmp_path / "out").exists()


def test_seed_keys_are_refused_on_anything_but_the_bundled_dataset(world, tmp_path):
  from lie_jax.configs import default
  from lie_jax.training import train_and_evaluate
  config = default.get_config()
  config.data.path = str(world["tmp"] / "xray.npz")  # "real" data, no key file
  with pytest.raises(ValueError, match="allow_seed_keys"):
    train_and_evaluate(config, str(tmp_path / "w"))
  assert not (tmp_path / "w" / "checkpoints").exists()


# ---------------------------------------------------------------------------
# 8. Careless input is caught before work starts.


def test_out_inside_the_input_tree_is_refused(world, tmp_path, capsys):
  src = tmp_path / "scans"
  for cls in ("a", "b"):
    (src / cls).mkdir(parents=True)
    Image.fromarray(world["arrays"]["train_images"][0]).save(src / cls / "0.png")
  before = snapshot(src)
  assert_refused(capsys, "encrypt", "--key", world["key"], "--scheme", "le", "--in", src,
                 "--out", src / "a" / "enc", "--quiet", match="inside the input")
  assert snapshot(src) == before
  assert_refused(capsys, "decrypt", "--key", world["key"], "--in", world["enc"], "--out",
                 world["enc"] / "plain", match="inside the input")
  assert not (world["enc"] / "plain").exists()


def test_empty_class_folders_and_mixed_channels_are_reported(world, tmp_path, capsys):
  src = tmp_path / "scans"
  (src / "empty").mkdir(parents=True)
  (src / "gray").mkdir()
  (src / "rgb").mkdir()
  for i in range(2):
    Image.fromarray(world["arrays"]["train_images"][i]).save(src / "gray" / f"{i}.png")
    Image.fromarray(np.repeat(world["arrays"]["train_images"][i][..., None], 3, -1)).save(
        src / "rgb" / f"{i}.png")
  out = tmp_path / "enc"
  rc, _, err = run_cli(capsys, "encrypt", "--key", world["key"], "--scheme", "le", "--in", src,
                       "--out", out, "--quiet")
  assert rc == 1 and "empty/: empty class folder" in err
  assert "2 grayscale image(s) were converted to RGB" in err
  manifest = encrypted_dir.read_manifest(out)
  assert manifest["preprocessing"]["grayscale_converted_to_rgb"] == 2
  assert [f["path"] for f in manifest["failed_inputs"]] == ["empty/"]


def test_resize_is_bounded(world, tmp_path, capsys):
  for size in (("100000", "100000"), ("9000", "28")):
    assert_refused(capsys, "encrypt", "--key", world["key"], "--scheme", "le", "--resize", *size,
                   "--in", world["tmp"] / "xray.npz", "--out", tmp_path / "r", "--quiet",
                   match="--resize")
  assert not (tmp_path / "r").exists()
