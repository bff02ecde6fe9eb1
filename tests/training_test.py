"""train_and_evaluate end to end on tiny configs: smoke, resume after SIGKILL, sharding."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lie_jax.configs import default
from lie_jax.training import metrics as metrics_lib
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(cipher="le", adaptation="block", **train):
  config = default.get_config()
  config.cipher.name = cipher
  config.model.adaptation = adaptation
  config.model.backbone = "small_resnet"
  tiny.shrink(config, num_steps=6, eval_every_steps=3, eval_batch_size=128, warmup_steps=2)
  for k, v in train.items():
    setattr(config.train, k, v)
  return config


@pytest.mark.parametrize("cipher,adaptation", [("le", "block"), ("pe", "pixel")])
def test_train_and_evaluate_smoke(tmp_path, cipher, adaptation):
  from lie_jax.training import train_and_evaluate
  results = train_and_evaluate(tiny_config(cipher, adaptation), str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["test_accuracy"] == results["test_accuracy"]
  assert 0.0 <= results["test_accuracy"] <= 1.0 and 0.0 <= results["test_auc"] <= 1.0
  assert results["cipher"] == cipher and results["steps"] == 6
  assert ("test_accuracy_plain_inputs" in results) == (cipher == "pe")
  cm = np.array(results["test_clinical"]["confusion_matrix"])
  assert cm.sum() == 624 and np.trace(cm) / cm.sum() == pytest.approx(results["test_accuracy"])
  assert results["test_sensitivity"] == pytest.approx(cm[1, 1] / cm[1].sum())  # pneumonia
  assert results["test_specificity"] == pytest.approx(cm[0, 0] / cm[0].sum())
  assert set(results["test_clinical"]["per_class"]) == {"normal", "pneumonia"}
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  evals = [l for l in lines if "val_accuracy" in l]
  train = [l for l in lines if "val_accuracy" not in l]
  assert [l["step"] for l in evals] == [3, 6]
  # The training loss every log_every_steps (tiny_config logs every step), before each eval.
  assert [l["step"] for l in train] == [1, 2, 3, 4, 5, 6]
  assert all(np.isfinite(l["train_loss"]) and 0 <= l["train_accuracy"] <= 1 for l in train)
  assert [l["step"] for l in lines] == [1, 2, 3, 3, 4, 5, 6, 6]
  assert train[2]["train_loss"] == evals[0]["train_loss"]
  # No key material anywhere in the outputs: the experiment key is derived
  # from the seed, and only its origin ("seed") is recorded.
  assert results["key_fingerprint"] == "seed"


def test_binary_auc_matches_pairwise_definition():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 5, 200).astype(float)  # many ties
  labels = rng.integers(0, 2, 200).astype(bool)
  pos, neg = scores[labels], scores[~labels]
  pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
      len(pos) * len(neg))
  assert metrics_lib.binary_auc(scores, labels) == pytest.approx(pairwise)


def _write_config(path, **overrides):
  lines = ["from tests.training_test import tiny_config", "def get_config():",
           f"  c = tiny_config(**{overrides!r})", "  return c"]
  path.write_text("\n".join(lines) + "\n")


def _train_cmd(config_path, workdir):
  return [sys.executable, "-m", "lie_jax.train", f"--config={config_path}",
          f"--workdir={workdir}"]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
  config_path = tmp_path / "cfg.py"
  _write_config(config_path, num_steps=8, eval_every_steps=2)
  env = {**os.environ, "PYTHONPATH": ROOT}
  full, killed = tmp_path / "full", tmp_path / "killed"
  subprocess.run(_train_cmd(config_path, full), check=True, env=env, cwd=ROOT,
                 capture_output=True)
  proc = subprocess.Popen(_train_cmd(config_path, killed), env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  ckpt_dir = killed / "checkpoints"
  while time.time() < deadline and proc.poll() is None:
    steps = [d for d in os.listdir(ckpt_dir)] if ckpt_dir.exists() else []
    if any(d.isdigit() and int(d) >= 4 for d in steps):
      break
    time.sleep(0.2)
  assert proc.poll() is None, "training finished before it could be killed"
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not (killed / "results.json").exists()
  subprocess.run(_train_cmd(config_path, killed), check=True, env=env, cwd=ROOT,
                 capture_output=True)
  a = json.loads((full / "results.json").read_text())
  b = json.loads((killed / "results.json").read_text())
  for k in ("test_accuracy", "test_auc", "test_loss", "steps", "best_step", "best_val_accuracy"):
    assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-6), k
  metrics_a = (full / "metrics.jsonl").read_text().splitlines()
  metrics_b = (killed / "metrics.jsonl").read_text().splitlines()
  assert len(metrics_a) == len(metrics_b)


@pytest.mark.slow
def test_four_devices_give_the_same_loss_as_one(tmp_path):
  code = (
      "import json, sys; sys.path.insert(0, %r)\n"
      "from tests.training_test import tiny_config\n"
      "from lie_jax.training import train_and_evaluate\n"
      "c = tiny_config(num_steps=3, eval_every_steps=3)\n"
      "r = train_and_evaluate(c, sys.argv[1])\n"
      "print(json.dumps({'n': r['num_devices'], 'loss': r['test_loss']}))\n") % ROOT
  out = {}
  for devices in (1, 4):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "PYTHONPATH": ROOT}
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"d{devices}")], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT)
    out[devices] = json.loads(res.stdout.strip().splitlines()[-1])
  assert out[1]["n"] == 1 and out[4]["n"] == 4
  assert out[4]["loss"] == pytest.approx(out[1]["loss"], rel=1e-4)


def test_resuming_with_another_config_is_refused(tmp_path):
  from lie_jax.training import train_and_evaluate
  train_and_evaluate(tiny_config(num_steps=3, eval_every_steps=3), str(tmp_path))
  with pytest.raises(ValueError, match="another config"):
    train_and_evaluate(tiny_config("etc", num_steps=3, eval_every_steps=3), str(tmp_path))


def test_steps_check_the_batch_they_are_handed():
  import chex
  import jax.numpy as jnp
  from flax import nnx
  from lie_jax import models
  from lie_jax.training import encryption
  from lie_jax.training import trainer
  config = tiny_config()
  encoder = encryption.make_input_encoder(config.cipher, image_shape=(8, 8, 1), seed=0)
  model = models.build_model(backbone="small_resnet", adaptation="block", num_classes=2,
                             image_shape=(8, 8, 1), block_size=4, rngs=nnx.Rngs(0))
  _, eval_step = trainer.make_steps(encoder)
  images, indices = np.zeros((2, 8, 8, 1), np.uint8), np.arange(2, dtype=np.int32)
  logits = eval_step(model, images, indices, "test")
  chex.assert_shape(logits, (2, 2))
  chex.assert_type(logits, jnp.float32)
  with pytest.raises(AssertionError, match="uint8"):  # already scaled: would be scaled twice
    eval_step(model, images.astype(np.float32), indices, "test")
  with pytest.raises(AssertionError):  # one index per image
    eval_step(model, images, np.arange(3, dtype=np.int32), "test")


def test_key_file_runs_draw_a_nonce_kept_for_resume_and_unique_per_run(tmp_path):
  """On-device keys from a key file are mixed with a per-run nonce: two runs never share keys,
  a resumed run keeps its own, and the owner can rebuild them from results.json's nonce."""
  from lie_jax import keys
  from lie_jax.data import encryption as data_encryption
  from lie_jax.training import encryption
  from lie_jax.training import train_and_evaluate
  key_file = tmp_path / "owner.key"
  secret = keys.write_key_file(key_file)
  runs = {}
  for run in ("a", "b"):
    config = tiny_config("pe", "pixel", num_steps=2, eval_every_steps=2)
    config.cipher.secret_file, config.cipher.per_image_keys = str(key_file), True
    results = train_and_evaluate(config, str(tmp_path / run))
    nonce = (tmp_path / run / "encryption_nonce").read_text().strip()
    assert len(bytes.fromhex(nonce)) >= keys.MIN_NONCE_BYTES
    assert results["encryption"]["nonce"] == nonce
    runs[run] = (config, nonce)
  assert runs["a"][1] != runs["b"][1]
  # Resume keeps the nonce (a later run with more steps would otherwise change its keys).
  train_and_evaluate(runs["a"][0], str(tmp_path / "a"))
  assert (tmp_path / "a" / "encryption_nonce").read_text().strip() == runs["a"][1]
  # The encoder with a run's nonce equals the owner's cipher under that nonce; two runs differ.
  images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), np.uint8)
  indices = np.arange(4, dtype=np.int32)
  encoded = {}
  for run, (config, nonce) in runs.items():
    encoder = encryption.make_input_encoder(config.cipher, image_shape=(28, 28, 1), seed=0,
                                            nonce=bytes.fromhex(nonce))
    owner = data_encryption.key_file_cipher(secret, "pe", image_shape=(28, 28, 1),
                                            options=encoder.options, per_image_keys=True,
                                            nonce=bytes.fromhex(nonce))
    encoded[run] = np.rint(np.asarray(encoder.encode(images, indices, "train")) * 255)
    np.testing.assert_array_equal(encoded[run], np.asarray(owner.encrypt(images, indices,
                                                                         "train")))
  assert not np.array_equal(encoded["a"], encoded["b"])
  with pytest.raises(ValueError, match="nonce"):
    encryption.make_input_encoder(runs["a"][0].cipher, image_shape=(28, 28, 1), seed=0)
  (tmp_path / "a" / "encryption_nonce").write_text("not hex")
  with pytest.raises(ValueError, match="encryption_nonce"):
    train_and_evaluate(runs["a"][0], str(tmp_path / "a"))


def _free_port():
  import socket
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _two_processes(config_path, workdir, env_base):
  """Starts `python -m lie_jax.train --distributed` as 2 processes x 2 fake CPU devices (README's recipe)."""
  port = _free_port()
  procs = []
  for i in range(2):
    env = {**env_base, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
           "JAX_PROCESS_ID": str(i)}
    procs.append(subprocess.Popen(_train_cmd(config_path, workdir) + ["--distributed"], env=env,
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True))
  return procs


def _reference_run(tmp_path, **overrides):
  """A config file and its 1-process, 4-device run: (config path, env, its workdir)."""
  config_path = tmp_path / "cfg.py"
  _write_config(config_path, **overrides)
  env = {**os.environ, "PYTHONPATH": ROOT}
  single = tmp_path / "single"
  subprocess.run(_train_cmd(config_path, single), check=True, cwd=ROOT, capture_output=True,
                 env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  return config_path, env, single


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_four_devices(tmp_path):
  """Issue 19: multi-host training on this machine, 2 processes x 2 devices == 1 x 4."""
  config_path, env, single = _reference_run(tmp_path, num_steps=6, eval_every_steps=3)
  multi = tmp_path / "multi"
  procs = _two_processes(config_path, multi, env)
  for p in procs:
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  a = json.loads((single / "results.json").read_text())
  b = json.loads((multi / "results.json").read_text())
  assert a["num_devices"] == b["num_devices"] == 4 and b["num_processes"] == 2
  for k in ("test_accuracy", "best_val_accuracy", "best_step"):
    assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), k
  # Cross-process reductions add in another order: logits agree to float tolerance, and the
  # AUC (a ranking) moves only where two scores nearly tie.
  assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)
  assert b["test_auc"] == pytest.approx(a["test_auc"], abs=1e-3)
  curve = lambda d: [r for l in (d / "metrics.jsonl").read_text().splitlines()
                     if "val_loss" in (r := json.loads(l))]
  ca, cb = curve(single), curve(multi)
  assert [r["step"] for r in cb] == [r["step"] for r in ca] == [3, 6]  # written once
  for ra, rb in zip(ca, cb):
    assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)
    assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_a_killed_two_process_run_resumes(tmp_path):
  config_path, env, full = _reference_run(tmp_path, num_steps=8, eval_every_steps=2)
  killed = tmp_path / "killed"
  procs = _two_processes(config_path, killed, env)
  ckpt_dir = killed / "checkpoints"
  deadline = time.time() + 400
  while time.time() < deadline and all(p.poll() is None for p in procs):
    steps = os.listdir(ckpt_dir) if ckpt_dir.exists() else []
    if any(d.isdigit() and int(d) >= 4 for d in steps):
      break
    time.sleep(0.2)
  assert all(p.poll() is None for p in procs), "training finished before it could be killed"
  for p in procs:
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
  assert not (killed / "results.json").exists()
  for p in _two_processes(config_path, killed, env):
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  a = json.loads((full / "results.json").read_text())
  b = json.loads((killed / "results.json").read_text())
  assert b["steps"] == 8 and b["num_processes"] == 2
  assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=1e-6)
  assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)
  steps = [r["step"] for l in (killed / "metrics.jsonl").read_text().splitlines()
           if "val_loss" in (r := json.loads(l))]
  assert steps == [2, 4, 6, 8]


def test_a_run_resumes_longer_but_refuses_other_changes_naming_them(tmp_path):
  from lie_jax.training import train_and_evaluate
  config = tiny_config("le", "block")
  config.train.num_steps = 3
  train_and_evaluate(config, str(tmp_path))
  longer = tiny_config("le", "block")  # 6 steps, evaluated every 3, logged every 2
  longer.train.log_every_steps = 2
  results = train_and_evaluate(longer, str(tmp_path))
  assert results["steps"] == 6
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "val_accuracy" in l] == [3, 6]
  assert [l["step"] for l in lines if "val_accuracy" not in l] == [1, 2, 3, 4, 6]
  other = tiny_config("le", "block")
  other.optim.learning_rate = 0.01
  other.cipher.block_size = 7
  with pytest.raises(ValueError, match=r"cipher\.block_size \(4 -> 7\); optim\.learning_rate "
                                       r"\(0\.003 -> 0\.01\)\. A resumed run may change only"):
    train_and_evaluate(other, str(tmp_path))
  shorter = tiny_config("le", "block")
  shorter.train.num_steps = 4
  with pytest.raises(ValueError, match="checkpoints at step 6, beyond this config's 4 steps"):
    train_and_evaluate(shorter, str(tmp_path))


def test_train_py_prints_the_results_as_json(tmp_path):
  config_path = tmp_path / "cfg.py"
  _write_config(config_path, num_steps=2, eval_every_steps=2)
  out = subprocess.run(_train_cmd(config_path, tmp_path / "work"), check=True, cwd=ROOT,
                       capture_output=True, text=True).stdout
  printed = json.loads(out[out.index("{"):])
  on_disk = json.loads((tmp_path / "work" / "results.json").read_text())
  assert printed == {k: v for k, v in on_disk.items() if k != "config"}


def test_a_run_saved_before_a_field_existed_resumes_while_the_field_is_off():
  from lie_jax.training import trainer
  config = tiny_config("pe", "pixel")
  saved = trainer._public_config(config)
  del saved["data"]["augment_ciphertexts"]  # a checkpoint written before the field existed
  assert trainer._changed_fields(saved, config) == []
  config.data.augment_ciphertexts = True
  assert trainer._changed_fields(saved, config) == [
      "data.augment_ciphertexts (None -> True)"]
