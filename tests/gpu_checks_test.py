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
[gpu_checks +60s] start throughput_resnet18 (480s left)
2 passed in 1.0s
[gpu_checks +90s] end throughput_resnet18: exit 1
[gpu_checks +90s] skip throughput_vit: 56s left, needs 120s
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
                                         "failed": 0, "errors": 0, "exit": 0}
  failed = LOG.replace("103 passed", "2 failed, 101 passed").replace("kat: exit 0", "kat: exit 1")
  assert gpu_checks.kat_summary(failed) == {"command": gpu_checks.KAT_COMMAND, "passed": 101,
                                            "failed": 2, "errors": 0, "exit": 1}
  # Every test failing: the later stage's "2 passed" is not read as the known answers'.
  all_failed = LOG.replace("103 passed", "103 failed").replace("kat: exit 0", "kat: exit 1")
  assert gpu_checks.kat_summary(all_failed)["passed"] == 0
  assert gpu_checks.kat_summary(all_failed)["failed"] == 103
  errors = LOG.replace("103 passed", "100 passed, 3 errors")
  assert gpu_checks.kat_summary(errors)["errors"] == 3
  for broken in ("[gpu_checks +3s] start kat\nTerminated\n",  # killed: no end line
                 LOG.replace("103 passed in 47.35s\n", "")):  # ended without a summary
    with pytest.raises(ValueError, match="did not finish"):
      gpu_checks.kat_summary(broken)
  # A summary with no "start kat" before it is another stage's: the known answers did not run.
  assert gpu_checks.kat_summary("103 passed in 4s\n") is None


def test_stages_lists_every_outcome_in_order():
  assert gpu_checks.stages(LOG) == [
      {"name": "kat", "outcome": "ok"},
      {"name": "throughput_resnet18", "outcome": "exit 1"},
      {"name": "throughput_vit", "outcome": "skipped: 56s left, needs 120s"}]


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


STUB_PYTHON = r"""#!/usr/bin/env bash
# python3 for gpu_checks.sh: fakes every stage's program; the collector runs for real.
echo "python3 $*" >> "$STUBS/calls.txt"
case "$*" in
  "-c "*) echo "jax 0.0 stub" ;;
  *"-m pytest"*) echo "3 passed in 0.1s" ;;
  *"--pneumonia-folder"*) mkdir -p "${@: -1}" ;;
  *"-m lie_jax.train"*)
    for arg in "$@"; do
      [[ $prev == --workdir ]] && workdir=$arg
      prev=$arg
    done
    mkdir -p "$workdir"
    [[ ${STUB_TRAIN_EXIT:-0} == 0 ]] || exit "$STUB_TRAIN_EXIT"
    cp "$STUBS/results.json" "$workdir/results.json"; echo '{}' > "$workdir/metrics.jsonl" ;;
  *"-m benchmarks.train_throughput"*) cp "$STUBS/throughput.json" "${@: -1}" ;;
  *"-m benchmarks.gpu_checks"*) exec "$REAL_PYTHON" "$@" ;;
  *) echo "stub python3: unexpected $*" >&2; exit 9 ;;
esac
"""


def _run_script(tmp_path, only, **env):
  stubs = tmp_path / "stubs"
  stubs.mkdir(exist_ok=True)
  (stubs / "python3").write_text(STUB_PYTHON)
  (stubs / "nvidia-smi").write_text("#!/bin/sh\necho stub GPU\n")
  for name in ("python3", "nvidia-smi"):
    (stubs / name).chmod(0o755)
  (stubs / "results.json").write_text(json.dumps(_results("huang2022", "pixel", 0.85)))
  (stubs / "throughput.json").write_text(json.dumps(_throughput("densenet121", "le")))
  script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "gpu_checks.sh")
  out = tmp_path / "out"
  proc = subprocess.run(
      ["bash", script, str(out), "600"], capture_output=True, text=True,
      cwd=os.path.join(os.path.dirname(__file__), ".."),
      env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "STUBS": str(stubs),
           "REAL_PYTHON": sys.executable, "GPU_CHECKS_ONLY": only,
           "GPU_CHECKS_WORK": str(tmp_path / "work"), "PYTHONPATH": os.getcwd(), **env})
  assert proc.returncode == 0, proc.stderr
  return out, (stubs / "calls.txt").read_text()


def test_the_script_runs_the_selected_stages_and_keeps_their_results(tmp_path):
  out, calls = _run_script(tmp_path, "kat huang256 densenet121")
  checks = json.loads((out / "results" / "gpu_checks.json").read_text())
  ran = [s["name"] for s in checks["stages"] if s["outcome"] == "ok"]
  assert ran == ["kat", "huang256_folder", "train_huang256_densenet121",
                 "train_huang256_densenet121_plain", "throughput_densenet121"]
  assert all(s["outcome"] == "skipped: not in GPU_CHECKS_ONLY" for s in checks["stages"]
             if s["name"] not in ran)
  assert checks["kat"]["passed"] == 3 and "-m lie_jax.train --config medmnist" not in calls
  assert sorted(r["command"].split("--workdir ")[1] for r in checks["runs"]) == [
      "workdir/huang256_densenet121", "workdir/huang256_densenet121_plain"]
  assert "--config.cipher.allow_seed_keys=True" in checks["runs"][0]["command"]
  assert (out / "results" / "train_throughput_gpu.json").exists()
  assert (out / "results.tgz").stat().st_size > 0


def test_a_failed_run_reports_nothing_not_an_earlier_calls_results(tmp_path):
  """A run that fails must not leave the previous call's results.json to be reported."""
  _run_script(tmp_path, "huang256")  # a first call: results in work/ and out/
  stale = tmp_path / "work" / "runs" / "huang256_densenet121" / "results.json"
  assert stale.exists()
  out, _ = _run_script(tmp_path, "huang256", STUB_TRAIN_EXIT="3")
  assert not (out / "runs" / "huang256_densenet121").exists() and not stale.exists()
  checks = json.loads((out / "results" / "gpu_checks.json").read_text())
  assert checks["runs"] == [] and checks["kat"] is None
  assert {s["name"]: s["outcome"] for s in checks["stages"]}[
      "train_huang256_densenet121"] == "exit 3"
  log = (out / "log.txt").read_text()
  assert log.count("start train_huang256_densenet121 ") == 1  # this call's log only
