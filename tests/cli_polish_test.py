"""Small things users trip over on the command line (issue 21): help texts, the scheme list
encrypt offers, predict's order of complaints, attack names with hyphens."""

import json

import numpy as np
import pytest
from PIL import Image

from lie_jax import cli
from lie_jax import data
from lie_jax.owner import OwnerError
from lie_jax.owner import dataset
from lie_jax.owner import predict
from tests.training_test import tiny_config


def test_every_owner_flag_has_help(capsys):
  for command in ("encrypt", "decrypt", "predict", "key-model"):
    with pytest.raises(SystemExit):
      cli.main([command, "--help"])
    text = capsys.readouterr().out
    for flag in ("--key", "--in", "--out", "--model"):
      if f"{flag} " not in text:
        continue
      block = text[text.index(f"  {flag} "):].split("\n  -")[0]
      assert len(block.split(None, 2)) > 2, f"{command} {flag} has no help: {block!r}"


def test_encrypt_offers_only_schemes_it_can_store(capsys):
  assert "morph" not in dataset.storable_schemes() and "le" in dataset.storable_schemes()
  with pytest.raises(OwnerError) as e:
    dataset.check_scheme("nope", block_size=None, options=None, per_image_keys=False)
  assert "morph" not in str(e.value) and "huang2022" in str(e.value)
  with pytest.raises(SystemExit):
    cli.main(["encrypt", "--help"])
  assert "morph" not in capsys.readouterr().out


def test_predict_says_seed_keys_before_asking_for_a_key(tmp_path):
  from lie_jax.training import train_and_evaluate
  config = tiny_config("le", "block")
  config.train.num_steps = 2
  train_and_evaluate(config, str(tmp_path / "run"))
  Image.fromarray(data.load_dataset("pneumoniamnist").test.images[0, ..., 0]).save(
      tmp_path / "scan.png")
  trained = predict.load_trained_model(tmp_path / "run")
  with pytest.raises(OwnerError, match="derived from the run's seed"):
    predict.predict_files(trained, [tmp_path / "scan.png"], secret=None, progress=False)


def test_attack_names_take_hyphens_or_underscores(tmp_path):
  reports = []
  for name in ("chosen-plaintext", "chosen_plaintext"):
    out = tmp_path / f"{name}.json"
    assert cli.main(["attack", "--scheme", "le", "--attack", name, "--data", "pneumoniamnist",
                     "--num-images", "2", "--train-images", "0", "--out", str(out)]) == 0
    reports.append(json.loads(out.read_text()))
  assert reports[0]["attack"] == reports[1]["attack"] == "chosen_plaintext"
  assert np.isclose(reports[0]["ssim_mean"], reports[1]["ssim_mean"])


def test_attack_key_views_reach_the_learned_attack_and_bad_values_are_one_line(
    tmp_path, capsys, monkeypatch):
  from lie_jax.attacks import inverse_network as itn

  seen = {}

  def fake_train(cipher, plain, **kwargs):  # records what the attack trains on, then stops
    seen["rows"] = len(plain)
    raise SystemExit(0)
  monkeypatch.setattr(itn, "train", fake_train)
  out = str(tmp_path / "r.json")
  base = ["attack", "--scheme", "pe", "--attack", "inverse-network", "--data", "pneumoniamnist",
          "--num-images", "2", "--train-images", "5", "--out", out]
  with pytest.raises(SystemExit):
    cli.main(base + ["--per-image-keys", "--key-views", "3"])
  assert seen["rows"] == 15  # 5 known images x 3 keys
  capsys.readouterr()
  for bad in (["--per-image-keys", "--key-views", "0"], ["--key-views", "2"]):
    assert cli.main(base + bad) == 2
    err = capsys.readouterr().err.strip()
    assert "key_views" in err and len(err.splitlines()) == 1
