"""The data owner's tools through the real `python -m lie_jax` command, on small local data.

Real chest X-rays (a slice of the bundled PneumoniaMNIST), generated PNG
trees with broken files, and generated DICOM files. The full keygen -> encrypt
-> train -> predict -> decrypt workflow is in owner_e2e_test.py (slow).
"""

import base64
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lie_jax import data
from lie_jax import keys
from lie_jax import owner
from lie_jax.data import encrypted_dir
from lie_jax.owner import OwnerError
from lie_jax.owner import dataset

ROOT = str(Path(__file__).resolve().parents[1])
SIZES = {"train": 200, "val": 60, "test": 60}


def lie_jax(*args, env=None, check_rc=None):
  """Runs `python -m lie_jax ARGS`; returns the CompletedProcess (text)."""
  env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
  proc = subprocess.run([sys.executable, "-m", "lie_jax", *map(str, args)], env=env,
                        capture_output=True, text=True, timeout=300)
  if check_rc is not None:
    assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
  return proc


def write_xray_npz(path: Path) -> dict[str, np.ndarray]:
  """A small MedMNIST-layout .npz of real X-rays (the first images of each bundled split)."""
  with np.load(data.bundled_path()) as bundled:
    arrays = {}
    for split, n in SIZES.items():
      arrays[f"{split}_images"] = bundled[f"{split}_images"][:n]
      arrays[f"{split}_labels"] = bundled[f"{split}_labels"][:n]
  np.savez(path, **arrays)
  return arrays


def secret_forms(key_path: Path) -> list[bytes]:
  """Every encoding of the key file's secret that must never appear in an output."""
  raw = bytes.fromhex(json.loads(key_path.read_text())["secret"])
  hex_ = raw.hex().encode()
  return [raw, hex_, hex_.upper(), base64.b64encode(raw), base64.urlsafe_b64encode(raw),
          base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def assert_no_secret(key_path: Path, roots, texts=()):
  forms = secret_forms(key_path)
  blobs = [(f"output text {i}", t.encode() if isinstance(t, str) else t)
           for i, t in enumerate(texts)]
  for root in roots:
    root = Path(root)
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    blobs += [(str(p), p.read_bytes()) for p in files if p.resolve() != key_path.resolve()]
  assert blobs
  for where, blob in blobs:
    for form in forms:
      assert form not in blob, f"key material in {where}"


def tree_bytes(root: Path) -> dict[str, bytes]:
  return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
          if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  """A key file, the X-ray npz, and its LE encryption made through the command."""
  tmp = tmp_path_factory.mktemp("owner")
  key = tmp / "hospital.key"
  gen = lie_jax("keygen", "--out", key, check_rc=0)
  arrays = write_xray_npz(tmp / "xray.npz")
  enc = lie_jax("encrypt", "--key", key, "--scheme", "le", "--block-size", 4, "--in",
                tmp / "xray.npz", "--out", tmp / "enc", "--shard-size", 64, check_rc=0)
  return {"tmp": tmp, "key": key, "arrays": arrays, "enc": tmp / "enc",
          "texts": [gen.stdout, gen.stderr, enc.stdout, enc.stderr]}


def test_encrypt_says_how_many_known_images_recover_a_shared_key(world):
  # LE pools every in-place block: one known X-ray fixes its map (measured independently
  # by tests/known_plaintext_exact_test.py against brute force).
  stdout = world["texts"][2]
  assert ("security: shared key: 1 known (plain, encrypted) image(s) recover this key and "
          "decrypt every other image of the dataset exactly (measured on 40 of its images"
          in stdout)
  assert_no_secret(world["key"], [], [stdout])


def test_encrypt_without_a_scheme_uses_the_frontier_default(world, tmp_path):
  proc = lie_jax("encrypt", "--key", world["key"], "--in", world["tmp"] / "xray.npz", "--out",
                 tmp_path / "enc", "--quiet", check_rc=0)
  cipher = json.loads((tmp_path / "enc" / "manifest.json").read_text())["cipher"]
  assert (cipher["scheme"], cipher["per_image_keys"]) == (owner.DEFAULT_SCHEME,
                                                          owner.DEFAULT_PER_IMAGE_KEYS)
  assert "security: per-image keys" in proc.stdout
  assert "can tell which ciphertext it is (linkage" in proc.stdout  # not a promise of safety


def test_keygen_mode_0600_prints_only_fingerprint_and_never_overwrites(world):
  key = world["key"]
  assert stat.S_IMODE(key.stat().st_mode) == 0o600
  fingerprint = keys.read_key_file(key).fingerprint
  assert fingerprint in world["texts"][0]
  before = key.read_bytes()
  again = lie_jax("keygen", "--out", key, check_rc=2)
  assert "already exists" in again.stderr and "Traceback" not in again.stderr
  assert len(again.stderr.strip().splitlines()) == 1
  assert key.read_bytes() == before
  assert_no_secret(key, [], world["texts"] + [again.stdout, again.stderr])


def test_manifest_states_scheme_counts_checksums_and_no_key(world):
  manifest = encrypted_dir.read_manifest(world["enc"])
  nonce = manifest["cipher"]["nonce"]
  assert len(bytes.fromhex(nonce)) == 16
  assert manifest["cipher"] == {"scheme": "le", "options": {"block_size": 4},
                                "per_image_keys": False, "invertible": True,
                                "key_fingerprint": keys.read_key_file(world["key"]).fingerprint,
                                "nonce": nonce, "kdf_version": keys.KDF_VERSION}
  secret = keys.read_key_file(world["key"])
  assert keys.verify_manifest_mac(secret, encrypted_dir.signed_bytes(manifest), manifest["mac"])
  import jax
  assert manifest["jax_version"] == jax.__version__
  assert manifest["image_shape"] == [28, 28, 1] and manifest["failed_inputs"] == []
  for split, n in SIZES.items():
    entry = manifest["splits"][split]
    labels = world["arrays"][f"{split}_labels"][:, 0]
    assert entry["count"] == n
    assert entry["per_class"] == {"0": int((labels == 0).sum()), "1": int((labels == 1).sum())}
    assert sum(s["count"] for s in entry["shards"]) == n
  assert len(manifest["splits"]["train"]["shards"]) == 4  # 64 + 64 + 64 + 8
  assert all(c.ok for c in encrypted_dir.verify(world["enc"]))
  # Ciphertexts, not the plain images.
  images, labels, indices = encrypted_dir.read_split(world["enc"], "train")
  assert not np.array_equal(images[..., 0], world["arrays"]["train_images"])
  np.testing.assert_array_equal(labels, world["arrays"]["train_labels"][:, 0])
  np.testing.assert_array_equal(indices, np.arange(SIZES["train"]))
  assert_no_secret(world["key"], [world["enc"]], world["texts"])


def test_inspect_reports_and_detects_a_damaged_shard(world, tmp_path):
  out = lie_jax("inspect", world["enc"], "--quiet", check_rc=0)
  assert "le" in out.stdout and "train: 200 images" in out.stdout
  assert "all 6 shard(s) OK" in out.stdout
  # Damage one byte of a copy.
  copy = tmp_path / "copy"
  for name, blob in tree_bytes(world["enc"]).items():
    (copy / name).parent.mkdir(parents=True, exist_ok=True)
    (copy / name).write_bytes(blob)
  shard = copy / "shards" / "train-00001.npz"
  blob = bytearray(shard.read_bytes())
  blob[-100] ^= 1
  shard.write_bytes(bytes(blob))
  bad = lie_jax("inspect", copy, "--quiet", check_rc=1)
  assert "train-00001.npz" in bad.stdout and "BAD" in bad.stdout
  with pytest.raises(ValueError, match="damaged"):
    data.load_dataset(path=copy)
  assert_no_secret(world["key"], [], [out.stdout, out.stderr, bad.stdout, bad.stderr])


def test_decrypt_gives_back_the_original_arrays_and_refuses_a_wrong_key(world, tmp_path):
  out = lie_jax("decrypt", "--key", world["key"], "--in", world["enc"], "--out",
                tmp_path / "plain", check_rc=0)
  with np.load(tmp_path / "plain" / "xray.npz") as plain:
    assert sorted(plain.files) == sorted(world["arrays"])
    for name, original in world["arrays"].items():
      assert plain[name].dtype == original.dtype and plain[name].shape == original.shape
      assert plain[name].tobytes() == original.tobytes(), name
  other = tmp_path / "other.key"
  lie_jax("keygen", "--out", other, check_rc=0)
  wrong = lie_jax("decrypt", "--key", other, "--in", world["enc"], "--out", tmp_path / "w",
                  check_rc=2)
  assert "wrong key" in wrong.stderr and "Traceback" not in wrong.stderr
  assert keys.read_key_file(other).fingerprint in wrong.stderr
  assert not (tmp_path / "w").exists()
  assert_no_secret(world["key"], [tmp_path / "plain"], [out.stdout, out.stderr, wrong.stderr])
  assert_no_secret(other, [], [wrong.stdout, wrong.stderr])


def test_loader_reads_the_directory_without_a_key(world):
  splits = data.load_dataset(path=world["enc"])  # auto-detected by its manifest
  assert splits.image_shape == (28, 28, 1) and splits.name == "xray"
  assert [len(getattr(splits, s).labels) for s in SIZES] == list(SIZES.values())
  images, _, _ = encrypted_dir.read_split(world["enc"], "test")
  np.testing.assert_array_equal(splits.test.images, images)
  with pytest.raises(ValueError, match="cannot be resized"):
    data.load_dataset(path=world["enc"], source="encrypted", image_size=32)


@pytest.mark.parametrize("scheme,per_image_keys", [("le", False), ("pe", True)])
def test_offline_encryption_equals_on_device_encryption_with_the_same_key_file(
    world, tmp_path, scheme, per_image_keys):
  from lie_jax.configs import default
  from lie_jax.training import encryption
  secret = keys.read_key_file(world["key"])
  out = tmp_path / "enc"
  dataset.encrypt_dataset(world["tmp"] / "xray.npz", out, secret=secret, scheme=scheme,
                          per_image_keys=per_image_keys, shard_size=100, progress=False)
  from lie_jax.data import encryption as data_encryption
  config = default.get_config().cipher
  config.name, config.per_image_keys, config.secret_file = scheme, per_image_keys, str(world["key"])
  manifest = encrypted_dir.read_manifest(out)
  nonce = bytes.fromhex(manifest["cipher"]["nonce"])
  # The trainer's on-device encryption under the dataset's nonce gives the stored bytes; under
  # its own per-run nonce (what train_and_evaluate draws) it gives unrelated ones.
  encoder = encryption.make_input_encoder(config, image_shape=(28, 28, 1), seed=0, nonce=nonce)
  run_encoder = encryption.make_input_encoder(config, image_shape=(28, 28, 1), seed=0,
                                              nonce=keys.new_nonce())
  options = manifest["cipher"]["options"]
  stored_cipher = data_encryption.key_file_cipher(
      secret, scheme, image_shape=(28, 28, 1), options=options, per_image_keys=per_image_keys,
      nonce=bytes.fromhex(manifest["cipher"]["nonce"]))
  for split in ("train", "test"):
    stored, _, indices = encrypted_dir.read_split(out, split)
    plain = world["arrays"][f"{split}_images"][..., None]
    np.testing.assert_array_equal(
        np.asarray(stored_cipher.encrypt(plain, indices, split)), stored)
    on_device = np.asarray(encoder.encode(plain, indices.astype(np.int32), split))
    np.testing.assert_array_equal(np.rint(on_device * 255).astype(np.uint8), stored)
    own_run = np.asarray(run_encoder.encode(plain, indices.astype(np.int32), split))
    assert not np.array_equal(np.rint(own_run * 255).astype(np.uint8), stored)


def test_rerun_is_a_no_op_and_another_command_on_the_same_dir_is_refused(world):
  secret = keys.read_key_file(world["key"])
  before = tree_bytes(world["enc"])
  result = dataset.encrypt_dataset(world["tmp"] / "xray.npz", world["enc"], secret=secret,
                                   scheme="le", block_size=4, shard_size=64, progress=False)
  assert result.written == 0 and result.kept == 6
  assert tree_bytes(world["enc"]) == before
  with pytest.raises(OwnerError, match="different command"):
    dataset.encrypt_dataset(world["tmp"] / "xray.npz", world["enc"], secret=secret,
                            scheme="le", block_size=2, shard_size=64, progress=False)
  assert tree_bytes(world["enc"]) == before


@pytest.mark.slow
def test_sigkill_during_encrypt_then_rerun_gives_byte_identical_output(world, tmp_path):
  args = ["encrypt", "--key", world["key"], "--scheme", "etc", "--per-image-keys", "--in",
          world["tmp"] / "xray.npz", "--shard-size", 16, "--quiet"]
  killed = tmp_path / "killed"
  env = {**os.environ, "PYTHONPATH": ROOT, "LIE_JAX_TEST_SHARD_DELAY_S": "0.5"}
  proc = subprocess.Popen([sys.executable, "-m", "lie_jax", *map(str, args), "--out", killed],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  shards = killed / "shards"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if shards.is_dir() and len([p for p in shards.iterdir() if p.suffix == ".npz"]) >= 3:
      break
    time.sleep(0.05)
  assert proc.poll() is None, "encrypt finished before it could be killed"
  time.sleep(0.1)  # inside the next shard's write: its temporary file exists
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not (killed / "manifest.json").exists()
  assert (killed / dataset.STATE).exists()
  assert any(encrypted_dir.is_tmp_name(p.name) for p in shards.iterdir())
  resumed = lie_jax(*args, "--out", killed, check_rc=0)
  assert "kept from an earlier run 0" not in resumed.stdout
  manifest = encrypted_dir.read_manifest(killed)
  # An uninterrupted run under the same nonce (each run draws a fresh one) gives the same bytes.
  full = tmp_path / "full"
  dataset.encrypt_dataset(world["tmp"] / "xray.npz", full, secret=keys.read_key_file(world["key"]),
                          scheme="etc", per_image_keys=True, shard_size=16, progress=False,
                          nonce=bytes.fromhex(manifest["cipher"]["nonce"]))
  assert tree_bytes(killed) == tree_bytes(full)
  for split, n in SIZES.items():
    _, _, indices = encrypted_dir.read_split(killed, split)
    np.testing.assert_array_equal(indices, np.arange(n))  # no duplicates, no losses
  assert manifest["splits"]["train"]["count"] == 200
  assert_no_secret(world["key"], [killed], [resumed.stdout, resumed.stderr])


def _png_bytes(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, "PNG")
  return buffer.getvalue()


def _class_folders(root, classes, names, write):
  """root/<class>/<name> for every class and name; returns {"class/name": write(path)}."""
  written = {}
  for cls in classes:
    (root / cls).mkdir(parents=True)
    for name in names:
      written[f"{cls}/{name}"] = write(root / cls / name)
  return written


def test_corrupt_inputs_are_listed_never_dropped_and_strict_makes_them_fatal(world, tmp_path):
  rng = np.random.default_rng(0)
  src = tmp_path / "scans"

  def write_png(path):
    image = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    path.write_bytes(_png_bytes(image))
    return image

  good = _class_folders(src, ("normal", "pneumonia"), [f"{i}.png" for i in range(3)], write_png)
  full_png = _png_bytes(rng.integers(0, 256, (16, 16), dtype=np.uint8))
  (src / "normal" / "truncated.png").write_bytes(full_png[:len(full_png) // 2])
  (src / "pneumonia" / "notes.txt").write_text("not an image\n")
  (src / "pneumonia" / "big.png").write_bytes(_png_bytes(np.zeros((20, 16), np.uint8)))
  out = tmp_path / "enc"
  proc = lie_jax("encrypt", "--key", world["key"], "--scheme", "pe", "--in", src, "--out", out,
                 check_rc=1)
  bad = {"normal/truncated.png": "truncated", "pneumonia/notes.txt": "not an image",
         "pneumonia/big.png": "wrong size 20x16"}
  for path, reason in bad.items():
    assert any(path in line and reason in line for line in proc.stderr.splitlines()), path
  manifest = encrypted_dir.read_manifest(out)
  listed = {f["path"]: f["reason"] for f in manifest["failed_inputs"]}
  assert set(listed) == set(bad) and all(bad[p] in listed[p] for p in bad)
  assert str(tmp_path) not in json.dumps(manifest)  # relative paths only
  assert manifest["splits"]["train"]["per_class"] == {"normal": 3, "pneumonia": 3}
  # Every good image is there (decrypted back, in sorted file order).
  plain = tmp_path / "plain"
  lie_jax("decrypt", "--key", world["key"], "--in", out, "--out", plain, "--format", "png",
          check_rc=0)
  for i, name in enumerate(sorted(good)):
    cls = name.split("/")[0]
    decoded = np.asarray(Image.open(plain / "train" / cls / f"{i:06d}.png"))
    np.testing.assert_array_equal(decoded, good[name])
  strict = lie_jax("encrypt", "--key", world["key"], "--scheme", "pe", "--strict", "--in", src,
                   "--out", tmp_path / "strict", check_rc=1)
  assert "--strict" in strict.stderr and "notes.txt" in strict.stderr
  assert not (tmp_path / "strict").exists()
  assert_no_secret(world["key"], [out, plain], [proc.stdout, proc.stderr, strict.stderr])


def test_user_errors_are_one_line_and_exit_2(world, tmp_path, capsys):
  from lie_jax import cli
  npz = world["tmp"] / "xray.npz"
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "scan.png").write_bytes(b"x")
  cases = [
      (["encrypt", "--key", world["key"], "--scheme", "nope", "--in", npz, "--out",
        tmp_path / "a"], "unknown scheme"),
      (["encrypt", "--key", world["key"], "--scheme", "le", "--block-size", 5, "--in", npz,
        "--out", tmp_path / "b"], "--resize"),
      (["encrypt", "--key", world["key"], "--scheme", "morph", "--in", npz, "--out",
        tmp_path / "c"], "cannot be stored"),
      (["encrypt", "--key", tmp_path / "missing.key", "--scheme", "le", "--in", npz, "--out",
        tmp_path / "d"], "does not exist"),
      (["decrypt", "--key", world["key"], "--in", world["enc"], "--out", tmp_path / "full"],
       "not empty"),
      (["decrypt", "--key", world["key"], "--in", world["enc"], "--out", world["tmp"]],
       "lies inside --out"),
      (["predict", "--checkpoint", tmp_path, "--in", world["enc"], "--out", tmp_path / "p.csv"],
       "not a finished training workdir"),
  ]
  for args, message in cases:
    assert cli.main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
  # And through a real process: no traceback.
  proc = lie_jax("inspect", tmp_path, check_rc=2)
  assert "not an encrypted dataset" in proc.stderr and "Traceback" not in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _write_dicom(path: Path, pixels: np.ndarray | None, *, center=None, width=None):
  pydicom = pytest.importorskip("pydicom")
  from pydicom.dataset import FileMetaDataset
  from pydicom.uid import ExplicitVRLittleEndian, generate_uid
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
  meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[path.name])
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = pydicom.Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = meta.MediaStorageSOPClassUID
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.Modality = "DX"
  ds.PatientName = "Test^Synthetic"
  if pixels is not None:
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    if center is not None:
      ds.WindowCenter, ds.WindowWidth = center, width
  ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("in_memory", [True, False])  # False: decoded per batch (lazy)
def test_training_loader_reads_dicom_folders_with_the_same_window(tmp_path, in_memory):
  pytest.importorskip("pydicom")
  from lie_jax import data
  rng = np.random.default_rng(2)
  pixels = {cls: rng.integers(0, 4096, (2, 12, 12), dtype=np.uint16) for cls in ("a", "b")}
  for cls, images in pixels.items():
    (tmp_path / cls).mkdir()
    for i, image in enumerate(images):
      _write_dicom(tmp_path / cls / f"img{i}.dcm", image, center=1000, width=2000)
  splits = data.load_image_folder(tmp_path, in_memory=in_memory)
  assert isinstance(splits.train.images, np.ndarray) is in_memory
  # Independent oracle: the DICOM linear VOI function with centre c, width w
  # (PS3.3 C.11.2.1.2.1), mapped to 0..255 and rounded.
  c, w = 1000.0, 2000.0
  x = np.concatenate([pixels["a"], pixels["b"]]).astype(float)
  y = np.clip(np.rint(((x - (c - 0.5)) / (w - 1) + 0.5) * 255), 0, 255)
  np.testing.assert_array_equal(splits.train.images[..., 0], y.astype(np.uint8))
  assert splits.train.labels.tolist() == [0, 0, 1, 1] and splits.image_shape == (12, 12, 1)
  (tmp_path / "a" / "img0.dcm").write_bytes(b"not a dicom file")
  with pytest.raises(ValueError, match="img0.dcm"):
    data.load_image_folder(tmp_path, in_memory=in_memory)


def test_dicom_folder_is_windowed_as_the_manifest_states(world, tmp_path):
  pytest.importorskip("pydicom")
  from lie_jax.data import images
  rng = np.random.default_rng(1)
  src = tmp_path / "dicom"

  def write_dicom(path):
    pixels = rng.integers(0, 4096, (16, 16), dtype=np.uint16)
    _write_dicom(path, pixels, center=2048, width=4096)
    return images.window_to_uint8(pixels.astype(float), 2048, 4096)

  expected = _class_folders(src, ("a", "b"), ["img0.dcm", "img1.dcm"], write_dicom)
  _write_dicom(src / "a" / "no_pixels.dcm", None)
  out = tmp_path / "enc"
  proc = lie_jax("encrypt", "--key", world["key"], "--scheme", "le", "--block-size", 4, "--in",
                 src, "--out", out, check_rc=1)
  assert "no_pixels.dcm" in proc.stderr and "without pixel data" in proc.stderr
  manifest = encrypted_dir.read_manifest(out)
  assert manifest["preprocessing"]["dicom"]["files_using_tags"] == 4
  plain = tmp_path / "plain"
  lie_jax("decrypt", "--key", world["key"], "--in", out, "--out", plain, check_rc=0)
  with np.load(plain / "dicom.npz") as decrypted:
    np.testing.assert_array_equal(decrypted["train_images"],
                                  np.stack([expected[k] for k in sorted(expected)]))
  # Window endpoints (PS3.3 C.11.2.1.2): below the window 0, above 255, centre mid-grey.
  assert images.window_to_uint8(np.array([0.0, 2047.5, 5000.0]), 2048, 4096).tolist() == [
      0, 128, 255]
  assert_no_secret(world["key"], [out, plain], [proc.stdout, proc.stderr])
