"""The whole data-owner workflow, as in the README: keygen -> encrypt -> inspect -> train on the
encrypted directory (no key) -> predict -> decrypt == original. Real processes, real X-rays."""

import csv
import json

import numpy as np
import pytest

from lie_jax import keys
from lie_jax.data import encrypted_dir
from tests.owner_test import assert_no_secret
from tests.owner_test import lie_jax
from tests.owner_test import SIZES
from tests import tiny
from tests.owner_test import write_xray_npz


def tiny_encrypted_dir_config(path):
  from lie_jax.configs import encrypted_dir
  config = encrypted_dir.get_config()
  config.data.path = str(path)
  return tiny.shrink(config, num_steps=4, eval_every_steps=2, eval_batch_size=64,
                     warmup_steps=1)


@pytest.mark.slow
def test_keygen_encrypt_inspect_train_predict_decrypt(tmp_path):
  from PIL import Image
  from lie_jax.training import train_and_evaluate
  key, enc = tmp_path / "hospital.key", tmp_path / "xray-le"
  texts = []
  texts.append(lie_jax("keygen", "--out", key, check_rc=0))
  arrays = write_xray_npz(tmp_path / "xray.npz")
  texts.append(lie_jax("encrypt", "--key", key, "--scheme", "le", "--block-size", 4, "--in",
                       tmp_path / "xray.npz", "--out", enc, check_rc=0))
  texts.append(lie_jax("inspect", enc, check_rc=0))
  assert "all 3 shard(s) OK" in texts[-1].stdout

  # The server: no key anywhere in its config; scheme and block size from the manifest.
  workdir = tmp_path / "workdir"
  results = train_and_evaluate(tiny_encrypted_dir_config(enc), str(workdir))
  fingerprint = keys.read_key_file(key).fingerprint
  assert results["cipher"] == "le" and results["block_size"] == 4
  nonce = encrypted_dir.read_manifest(enc)["cipher"]["nonce"]
  assert results["encryption"] == {"scheme": "le", "options": {"block_size": 4},
                                   "per_image_keys": False, "key_fingerprint": fingerprint,
                                   "nonce": nonce, "encrypted_by": "data owner"}
  assert results["config"]["cipher"]["secret_file"] is None

  # Predictions on the encrypted test split equal the trainer's own evaluation.
  texts.append(lie_jax("predict", "--checkpoint", workdir, "--in", enc, "--split", "test",
                       "--out", tmp_path / "pred.csv", check_rc=0))
  rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
  assert [r["id"] for r in rows] == [f"test/{i}" for i in range(SIZES["test"])]
  accuracy = np.mean([int(r["predicted_label"]) == int(r["label"]) for r in rows])
  assert accuracy == pytest.approx(results["test_accuracy"], abs=1e-9)
  # With labels, predict reports what a clinician asks for: the trainer's own numbers.
  out = texts[-1].stdout
  sens = results["test_sensitivity"]
  assert f"sensitivity {100 * sens:.1f}%" in out and "confusion matrix" in out
  specificity = results["test_specificity"]
  positive = results["label_names"][1]
  assert f"specificity {100 * specificity:.1f}% (positive class: {positive})" in out
  assert (tmp_path / "pred_confusion.png").exists()

  # New plain scans: the owner encrypts them with the key; same predictions as stored ciphertexts.
  scans = tmp_path / "new_scans"
  scans.mkdir()
  for i in range(5):
    Image.fromarray(arrays["test_images"][i]).save(scans / f"scan{i}.png")
  texts.append(lie_jax("predict", "--checkpoint", workdir, "--in", scans, "--key", key,
                       "--out", tmp_path / "new.csv", check_rc=0))
  new_rows = list(csv.DictReader(open(tmp_path / "new.csv")))
  assert [r["id"] for r in new_rows] == [f"scan{i}.png" for i in range(5)]
  assert [r["predicted_label"] for r in new_rows] == [r["predicted_label"] for r in rows[:5]]
  other = tmp_path / "other.key"
  lie_jax("keygen", "--out", other, check_rc=0)
  wrong = lie_jax("predict", "--checkpoint", workdir, "--in", scans, "--key", other, "--out",
                  tmp_path / "x.csv", check_rc=2)
  assert "wrong key" in wrong.stderr

  texts.append(lie_jax("decrypt", "--key", key, "--in", enc, "--out", tmp_path / "plain",
                       check_rc=0))
  with np.load(tmp_path / "plain" / "xray.npz") as plain:
    for name, original in arrays.items():
      assert plain[name].tobytes() == original.tobytes() and plain[name].dtype == original.dtype

  manifest = encrypted_dir.read_manifest(enc)
  assert manifest["cipher"]["key_fingerprint"] == fingerprint
  assert_no_secret(key, [enc, workdir, tmp_path / "pred.csv", tmp_path / "new.csv",
                         tmp_path / "plain"],
                   [t for p in texts for t in (p.stdout, p.stderr)] + [json.dumps(results)])
