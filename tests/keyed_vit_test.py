"""The keyed ViT end to end: train a plain ViT, key it with the owner's key file
(`lie-jax key-model`), predict on encrypted images: the plain model's predictions on the
plain images, no retraining."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from lie_jax.configs import pneumoniamnist
from lie_jax import cli
from lie_jax import data
from lie_jax import keys
from lie_jax.owner import OwnerError
from lie_jax.owner import keyed
from lie_jax.owner import predict
from tests import tiny


@pytest.fixture(scope="module")
def plain_vit(tmp_path_factory):
  from lie_jax.training import train_and_evaluate
  workdir = tmp_path_factory.mktemp("plain_vit")
  config = pneumoniamnist.get_config("none,none,vit")
  tiny.shrink(config, num_steps=8, eval_every_steps=8, eval_batch_size=256, warmup_steps=2)
  train_and_evaluate(config, str(workdir))
  return workdir


def _pngs(folder, count=12):
  test = data.load_dataset("pneumoniamnist").test
  folder.mkdir()
  for i in range(count):
    Image.fromarray(test.images[i, ..., 0]).save(folder / f"scan{i:02d}.png")
  return folder


def _probabilities(path):
  with open(path) as f:
    rows = list(csv.DictReader(f))
  return np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])


def test_a_keyed_plain_vit_gives_the_plain_predictions_on_encrypted_images(plain_vit, tmp_path):
  scans = _pngs(tmp_path / "scans")
  keys.write_key_file(tmp_path / "owner.key")
  out = tmp_path / "keyed"
  assert cli.main(["key-model", "--model", str(plain_vit), "--key", str(tmp_path / "owner.key"),
                   "--out", str(out)]) == 0
  results = json.loads((out / "results.json").read_text())
  secret = keys.read_key_file(tmp_path / "owner.key")
  assert results["encryption"]["scheme"] == "vit"
  assert results["encryption"]["key_fingerprint"] == secret.fingerprint
  raw = (tmp_path / "owner.key").read_bytes()  # the key file; none of its secret may leak
  assert secret._secret.hex() not in (out / "results.json").read_text() and raw not in b"".join(
      p.read_bytes() for p in out.rglob("*") if p.is_file())
  for name, model, key in (("plain", plain_vit, None), ("keyed", out, tmp_path / "owner.key")):
    argv = ["predict", "--checkpoint", str(model), "--in", str(scans), "--out",
            str(tmp_path / f"{name}.csv"), "--quiet"]
    assert cli.main(argv + (["--key", str(key)] if key else [])) == 0
  plain, keyed_p = _probabilities(tmp_path / "plain.csv"), _probabilities(tmp_path / "keyed.csv")
  assert plain.shape == (12, 2)
  np.testing.assert_allclose(keyed_p, plain, atol=2e-5)
  # The control: the keyed model on the plain images is another function (logits move by
  # far more than the tolerance above, even for this briefly trained model).
  batch = np.stack([np.asarray(Image.open(p))[..., None] for p in sorted(scans.iterdir())])
  logits = {name: predict._logits(predict.load_trained_model(model).model, batch, progress=False)
            for name, model in (("plain", plain_vit), ("keyed", out))}
  assert np.abs(logits["keyed"] - logits["plain"]).max() > 1e-3


def test_key_model_refuses_what_it_cannot_key(plain_vit, tmp_path):
  secret = keys.write_key_file(tmp_path / "owner.key")
  (tmp_path / "exists").mkdir()
  with pytest.raises(OwnerError, match="already exists"):
    keyed.key_vit_model(plain_vit, tmp_path / "exists", secret=secret)
  results = json.loads((plain_vit / "results.json").read_text())
  other = tmp_path / "le_model"
  shutil.copytree(plain_vit, other)
  (other / "results.json").write_text(json.dumps(
      {**results, "encryption": {**results["encryption"], "scheme": "le"}}))
  with pytest.raises(OwnerError, match="trained on le-encrypted images"):
    keyed.key_vit_model(other, tmp_path / "new", secret=secret)
  assert not (tmp_path / "new").exists()
