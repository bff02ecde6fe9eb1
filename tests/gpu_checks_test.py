"""benchmarks/gpu_checks.py: collects a GPU run's outputs; files from the other machine are
untrusted (malformed ones are one-line errors)."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import gpu_checks

LOG = """[gpu_checks +3s] start kat (537s left)
........
103 passed in 47.35s
[gpu_checks +53s] end kat: exit 0
[gpu_checks +60s] start throughput_resnet18
2 passed in 1.0s
"""
MACHINE = {"jax_backend": "gpu", "jax_device": "NVIDIA H200", "cpu_count": 16}


def _results(scheme, adaptation, accuracy, per_image=True):
  return {"test_accuracy": accuracy, "test_auc": 0.95, "test_sensitivity": 0.97,
          "test_specificity": 0.64, "best_val_accuracy": 0.96, "steps": 730,
          "train_time_s_this_run": 40.2, "image_shape": [224, 224, 1],
          "config": {"cipher": {"name": scheme, "per_image_keys": per_image},
                     "model": {"backbone": "resnet18", "adaptation": adaptation},
                     "train": {"num_epochs": 10}}}


def _throughput(backbone, scheme):
  return {"benchmark": "train_throughput", "machine": MACHINE, "target": 1.15,
          "image_shape": [224, 224, 3],
          "command": f"python -m benchmarks.train_throughput --backbones {backbone} --steps 5",
          "results": [{"backbone": backbone, "scheme": "none"}, {"backbone": backbone,
                                                                  "scheme": scheme}],
          "checks": [f"PASS {backbone} + {scheme}"]}


@pytest.fixture
def out_dir(tmp_path):
  (tmp_path / "log.txt").write_text(LOG)
  (tmp_path / "versions.txt").write_text("3.12.3\njax 0.11.2 jaxlib 0.11.2 flax 0.12.10\n")
  for name, result in (("med224_b", _results("huang2022", "pixel", 0.853)),
                       ("med224_a", _results("none", "none", 0.857, per_image=False))):
    (tmp_path / "runs" / name).mkdir(parents=True)
    (tmp_path / "runs" / name / "results.json").write_text(json.dumps(result))
    (tmp_path / "runs" / name / "command.txt").write_text(
        f"python -m lie_jax.train --config medmnist:x --workdir workdir/{name}\n")
  (tmp_path / "results").mkdir()
  for backbone, scheme in (("vit", "pe"), ("resnet18", "le")):  # written in the wrong order
    (tmp_path / "results" / f"train_throughput_{backbone}.json").write_text(
        json.dumps(_throughput(backbone, scheme)))
  return tmp_path


def test_kat_summary_reads_the_known_answer_tests_line():
  assert gpu_checks.kat_summary(LOG) == {"command": gpu_checks.KAT_COMMAND, "passed": 103,
                                         "failed": 0}
  failed = LOG.replace("103 passed", "2 failed, 101 passed")
  assert gpu_checks.kat_summary(failed)["failed"] == 2
  with pytest.raises(ValueError, match="did not finish"):
    gpu_checks.kat_summary("[gpu_checks +3s] start kat\nTerminated\n")
  # A summary with no "start kat" before it is another stage's: the known answers did not run.
  assert gpu_checks.kat_summary("103 passed in 4s\n") is None


def test_collect_gathers_runs_kat_and_throughput_in_order(out_dir):
  checks, tput = gpu_checks.collect(str(out_dir), MACHINE)
  assert checks["kat"]["passed"] == 103 and checks["machine"] == MACHINE
  assert checks["packages"] == "jax 0.11.2 jaxlib 0.11.2 flax 0.12.10"
  assert [r["run"] for r in checks["runs"]] == ["none,none", "huang2022,pixel"]
  assert [r["per_image_keys"] for r in checks["runs"]] == [None, True]
  assert checks["runs"][1]["command"] == ("python -m lie_jax.train --config medmnist:x "
                                         "--workdir workdir/med224_b")
  assert checks["runs"][1]["image_shape"] == [224, 224, 1]
  assert [r["backbone"] for r in tput["results"]] == ["resnet18"] * 2 + ["vit"] * 2
  assert tput["checks"] == ["PASS resnet18 + le", "PASS vit + pe"]
  assert "--backbones resnet18 vit " in tput["command"]


@pytest.mark.parametrize("bad", [
    {"config": "x"}, "[1, 2]",
    {**_results("le", "block", 0.8), "test_accuracy": "0.9"},
    {**_results("le", "block", 0.8), "steps": True},
    {**_results("../x", "block", 0.8)},
    {**_results("le", "block", 0.8), "image_shape": [224, "224", 1]},
])
def test_a_malformed_results_file_is_refused(out_dir, bad):
  path = out_dir / "runs" / "med224_b" / "results.json"
  path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
  with pytest.raises(ValueError, match="results.json"):
    gpu_checks.collect(str(out_dir), MACHINE)


@pytest.mark.parametrize("command", ["rm -rf /", "python -m lie_jax.train \x1b[2J",
                                     "python -m lie_jax.train " + "x" * 2000])
def test_a_run_whose_command_is_not_a_training_command_is_refused(out_dir, command):
  (out_dir / "runs" / "med224_b" / "command.txt").write_text(command)
  with pytest.raises(ValueError, match="command.txt: not a lie_jax.train command line"):
    gpu_checks.collect(str(out_dir), MACHINE)


def test_stages_that_did_not_run_are_left_out(out_dir):
  (out_dir / "log.txt").write_text("[gpu_checks +0s] skip kat: not in GPU_CHECKS_ONLY\n")
  for path in (out_dir / "results").iterdir():
    path.unlink()
  checks, tput = gpu_checks.collect(str(out_dir), MACHINE)
  assert checks["kat"] is None and tput is None and len(checks["runs"]) == 2


def test_the_pneumonia_folder_holds_every_image_under_its_label(tmp_path):
  import numpy as np
  from lie_jax.data import sources
  assert gpu_checks.write_pneumonia_folder(str(tmp_path)) == 5856
  data = np.load(os.path.join(os.path.dirname(sources.__file__), "pneumoniamnist.npz"))
  splits = sources.load_image_folder(tmp_path)
  assert list(splits.label_names) == ["normal", "pneumonia"]
  for split in ("train", "val", "test"):
    read = getattr(splits, split)
    pairs = lambda images, labels: sorted(
        (int(l), bytes(np.asarray(i).reshape(-1))) for i, l in zip(images, labels))
    assert pairs(read.images, read.labels) == pairs(data[f"{split}_images"],
                                                    data[f"{split}_labels"].reshape(-1))


def test_main_is_a_one_line_error_on_a_broken_run(out_dir):
  (out_dir / "results" / "train_throughput_vit.json").write_text('{"benchmark": "other"}')
  proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_checks", str(out_dir)],
                        capture_output=True, text=True)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      f"gpu_checks: {out_dir / 'results' / 'train_throughput_vit.json'}: not a "
      "train_throughput results file"]


def test_main_writes_both_results_files(out_dir):
  proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_checks", str(out_dir)],
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  checks = json.loads((out_dir / "results" / "gpu_checks.json").read_text())
  assert checks["benchmark"] == "gpu_checks" and len(checks["runs"]) == 2
  tput = json.loads((out_dir / "results" / "train_throughput_gpu.json").read_text())
  assert len(tput["results"]) == 4
  # Collecting again does not read its own output as a backbone's results.
  assert gpu_checks.collect(str(out_dir), MACHINE)[1]["results"] == tput["results"]


def test_the_script_parses():
  script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "gpu_checks.sh")
  assert subprocess.run(["bash", "-n", script]).returncode == 0
