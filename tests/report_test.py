"""benchmarks/report.py: fails loudly on missing or stale results; renders sections and figures."""

import json

import pytest

import lie_jax
from benchmarks import report

MACHINE = {"platform": "Linux-test", "processor": "x86_64", "cpu_count": 2, "jax_backend": "cpu",
           "jax_device": "cpu", "jax_version": "0.10.2", "numpy_version": "2.4",
           "lie_jax_version": lie_jax.__version__}
MACHINE_TEXT = "2 CPU cores, Linux-test, JAX 0.10.2 on cpu (cpu), lie_jax " + lie_jax.__version__


def _run(run, accuracy, auc, **extra):
  return {"run": run, "test_accuracy": accuracy, "test_auc": auc, "best_val_accuracy": 0.9,
          "steps": 584, "wall_s": 120.0, "command": f"python train.py --config x:{run}", **extra}


ACCURACY = {"benchmark": "accuracy", "machine": MACHINE, "results": [
    _run("none,none", 0.744, 0.950), _run("le,block", 0.830, 0.922),
    _run("le,none", 0.811, 0.932), _run("pe,pixel", 0.825, 0.934, test_accuracy_plain_inputs=0.796),
    _run("blockwise,block", 0.838, 0.955)]}


def _throughput_row(shape, scheme, per_image):
  return {"shape": shape, "scheme": scheme, "options": {}, "jax_shared_images_per_s": 1.1e5,
          "jax_per_image_images_per_s": per_image, "numpy_images_per_s": 1.4e4,
          "jit_vs_numpy": 7.9}


THROUGHPUT = {"benchmark": "encrypt_throughput", "num_images": 10_000, "machine": MACHINE,
              "command": "python -m benchmarks.encrypt_throughput",
              "le_floors": {"32x32x3": 5.0, "28x28x1": 2.0},
              "floor_checks": ["PASS le 32x32x3: jit/NumPy 7.9x (floor >= 5x)"],
              "results": [_throughput_row([32, 32, 3], "le", 4.1e4),
                          _throughput_row([32, 32, 3], "morph", None),
                          _throughput_row([28, 28, 1], "le", 1.6e5)]}


def _overhead_row(scheme, adaptation, per_image_keys, in_step_ms, pre_ms, ratio):
  return {"scheme": scheme, "adaptation": adaptation, "backbone": "small_resnet",
          "per_image_keys": per_image_keys, "options": {}, "in_step_ms": in_step_ms,
          "pre_encrypted_ms": pre_ms, "ratio": ratio, "ratio_of_best": in_step_ms / pre_ms,
          "passes": ratio <= 1.05}


OVERHEAD = {"benchmark": "train_overhead", "batch_size": 64, "repeats": 20, "machine": MACHINE,
            "command": "python -m benchmarks.train_overhead", "floor": 1.05,
            "results": [_overhead_row("le", "block", False, 120.4, 118.0, 1.0104),
                        _overhead_row("pe", "pixel", True, 131.0, 118.5, 1.0734)],
            "floor_checks": ["PASS le: in-step / pre-encrypted 1.010 (floor <= 1.05)",
                             "MISS pe: in-step / pre-encrypted 1.073 (floor <= 1.05)"]}


def _attack(scheme, attack, ssim, breaks, placement=None):
  return {"scheme": scheme, "attack": attack, "per_image_keys": scheme == "pe", "num_images": 16,
          "ssim_mean": ssim, "psnr_mean": 21.04, "placement_accuracy": placement,
          "cipher_ssim_mean": 0.0123, "cipher_psnr_mean": 8.5, "key_space_bits": 64.0,
          "breaks": breaks}


SECURITY = {"benchmark": "security", "machine": MACHINE, "command": "python -m benchmarks.security",
            "results": [_attack("etc", "jigsaw", 0.871, True, placement=0.9375),
                        {**_attack("pe", "known_plaintext", 0.912, True), "exact_fraction": 0.25,
                         "prior_ssim_mean": 0.3},
                        _attack("ele", "jigsaw", 0.101, False, placement=0.05)]}

PIPELINE = {"machine": MACHINE, "command": "python -m benchmarks.data_pipeline", "scheme": "pe",
            "batch_size": 64, "dataset_images": 86000, "dataset_bytes": 86000 * 224 * 224,
            "budget_bytes": 1 << 30,
            "npz_pipeline": {"images_per_s": 600.0, "pipeline_rss_bytes": 100 << 20,
                             "peak_rss_bytes": 500 << 20},
            "png_folder_pipeline": {"images_per_s": 300.0, "pipeline_rss_bytes": 150 << 20},
            "model_step": {"images_per_s": 4.0, "backbone": "small_resnet",
                           "adaptation": "pixel"},
            "pipeline_rss_within_budget": True, "dataset_over_4x_budget": True,
            "bound_npz": "model", "bound_png_folder": "model"}

TRAIN_THROUGHPUT = {
    "machine": MACHINE, "command": "python -m benchmarks.train_throughput", "target": 1.15,
    "image_shape": [224, 224, 3],
    "results": [{"backbone": "resnet18", "scheme": "none", "adaptation": "none", "step_s": 1.0,
                 "images_per_s": 8.0, "input_grad_s": 0.1},
                {"backbone": "resnet18", "scheme": "le", "adaptation": "block", "step_s": 1.1,
                 "images_per_s": 7.3, "ratio": 1.1, "encode_s": 0.002, "adaptation_s": 0.04,
                 "adaptation_params": 2_500_000},
                {"backbone": "resnet18", "scheme": "morph", "skipped": "24 GiB"}],
    "checks": ["PASS resnet18 + le: 1.10x the plain step (target <= 1.15)"]}

ALL = {"accuracy.json": ACCURACY, "encrypt_throughput.json": THROUGHPUT,
       "train_overhead.json": OVERHEAD, "data_pipeline.json": PIPELINE,
       "train_throughput.json": TRAIN_THROUGHPUT, "security.json": SECURITY}


def test_train_throughput_section():
  text = report.train_throughput_section(TRAIN_THROUGHPUT)
  assert "## Training throughput at 224x224x3" in text
  assert "| resnet18 | le | block | 1100 | 7.3 | 1.10 | 2 | 40 | 2.50 | PASS |" in text
  assert "| resnet18 | morph | – | – | – | – | – | – | – | skipped: 24 GiB |" in text
  assert "- resnet18: backpropagating into the input adds 100 ms to the plain step (1000 ms)" in text


def test_overhead_section_lists_mole_at_scale():
  mole = {"64": {"image_shape": [64, 64, 1], "copies": 64, "batch_size": 16, "plain_ms": 1000.0,
                 "mole_ms": 1090.0, "ratio": 1.09, "layer_bytes": 48 << 20}}
  text = report.overhead_section({**OVERHEAD, "mole": mole})
  assert "| 64x64x1 | 64 | 48 MiB | 1000 | 1090 | +9.0% |" in text
  assert "MoLe at scale" not in report.overhead_section(OVERHEAD)


def test_overhead_section_lists_mole_trained_end_to_end():
  run = lambda acc, auc, secs: {"test_accuracy": acc, "test_auc": auc, "steps": 588,
                                "train_s": secs, "best_val_accuracy": 0.9}
  trained = {"64": {"image_shape": [64, 64, 1], "copies": 64, "batch_size": 16, "epochs": 2,
                    "plain": run(0.84, 0.93, 600.0), "mole": run(0.82, 0.91, 690.0),
                    "time_ratio": 1.15, "command": "python -m benchmarks.train_overhead "
                                                  "--mole-train 64"}}
  text = report.overhead_section({**OVERHEAD, "mole_training": trained})
  assert ("| 64x64x1 | 2 (588 steps) | 0.840 / 0.930 | 0.820 / 0.910 | 10.0 min | 11.5 min | "
          "`python -m benchmarks.train_overhead --mole-train 64` |") in text
  assert "MoLe trained end to end" not in report.overhead_section(OVERHEAD)


def test_accuracy_runs_on_other_data_get_their_own_table():
  rgb = "data=workdir/rgb_patches/ihc_dab.npz"
  rows = [_run("none,none", 0.85, 0.95), _run(f"etc,block,{rgb}", 0.70, 0.80),
          _run(f"etc,block,{rgb},seed=1", 0.72, 0.82)]
  text = report.accuracy_section({**ACCURACY, "results": rows})
  main, rgb_part = text.split("### Other data: workdir/rgb_patches/ihc_dab.npz")
  assert "| none,none |" in main and "etc,block" not in main
  assert f"| etc,block,{rgb} |  | 2 | 0.710 ± 0.014 | 0.810 ± 0.014 |" in rgb_part


def test_data_pipeline_section():
  text = report.data_pipeline_section(PIPELINE)
  assert "| .npz read + encrypt + batch | 600 | 100 MiB (process peak 500 MiB) |" in text
  assert "- PASS: pipeline peak RSS growth 100 MiB < 1024 MiB on a dataset 4.0x the budget" in text
  assert "bound by the model here: the pipeline delivers 150x" in text
  failing = {**PIPELINE, "pipeline_rss_within_budget": False}
  assert "- FAIL: pipeline peak RSS growth" in report.data_pipeline_section(failing)


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
  monkeypatch.setattr(report, "RESULTS", str(tmp_path / "results"))
  monkeypatch.setattr(report, "DOCS", str(tmp_path / "docs"))
  monkeypatch.setattr(report, "OUT", str(tmp_path / "docs" / "RESULTS.md"))
  (tmp_path / "results").mkdir()
  return tmp_path / "results"


def _write(results_dir, name, result):
  (results_dir / name).write_text(json.dumps(result))


def test_missing_file_exits_with_the_command_to_run(results_dir):
  with pytest.raises(SystemExit, match=r"accuracy\.json is missing; run `python -m "
                                       r"benchmarks\.accuracy` first"):
    report._load("accuracy.json")


def test_stale_version_exits(results_dir):
  _write(results_dir, "train_overhead.json",
         {**OVERHEAD, "machine": {**MACHINE, "lie_jax_version": "0.0.1"}})
  with pytest.raises(SystemExit, match=r"made by lie_jax 0\.0\.1, not .*rerun `python -m "
                                       r"benchmarks\.train_overhead`"):
    report._load("train_overhead.json")


def test_main_writes_nothing_when_one_file_is_missing(results_dir):
  _write(results_dir, "accuracy.json", ACCURACY)
  _write(results_dir, "encrypt_throughput.json", THROUGHPUT)
  with pytest.raises(SystemExit, match="train_overhead.json is missing"):
    report.main()
  assert not (results_dir.parent / "docs").exists()


def test_every_section_states_its_command_and_machine():
  for name, render in report.SECTIONS.items():
    if name in report.OPTIONAL_FILES:  # test_gpu_checks_section, test_gpu_throughput_...
      continue
    text = render(ALL[name])
    assert f"Machine: {MACHINE_TEXT}." in text, name
    command = "python -m benchmarks.accuracy" if name == "accuracy.json" else ALL[name]["command"]
    assert f"`{command}`" in text, name


def test_accuracy_section():
  text = report.accuracy_section(ACCURACY)
  backbone = next(r.get("backbone", "") for r in ACCURACY["results"] if r["run"] == "pe,pixel")
  assert f"| pe,pixel | {backbone} | 1 | 0.825 | 0.934 | 0.796 | 0.900 | 584 | 2.0 min | " in text
  assert "`python train.py --config x:le,none`" in text
  assert f"]({report.ACCURACY_FIGURE})" in text


def test_accuracy_section_gives_mean_and_spread_over_seeds():
  rows = [_run("le,block", 0.80, 0.90), _run("le,block,seed=1", 0.84, 0.92),
          _run("le,block,seed=2", 0.82, 0.94), _run("none,none", 0.85, 0.95)]
  text = report.accuracy_section({**ACCURACY, "results": rows})
  # Hand-computed: mean 0.82, sample std 0.02 for accuracy; mean 0.92, std 0.02 for AUC.
  assert "| le,block |  | 3 | 0.820 ± 0.020 | 0.920 ± 0.020 |" in text
  assert "| none,none |  | 1 | 0.850 | 0.950 |" in text


def test_throughput_section():
  text = report.throughput_section(THROUGHPUT)
  assert "| 32x32x3 | morph | 110,000 | n/a | n/a | 14,000 | 7.9x |" in text
  assert "| 28x28x1 | le | 110,000 | 160,000 | n/a | 14,000 | 7.9x |" in text
  assert "LE jitted over NumPy: >= 5x on 32x32x3, >= 2x on 28x28x1" in text
  assert "- PASS le 32x32x3: jit/NumPy 7.9x (floor >= 5x)" in text
  assert "memcpy" not in text
  assert f"]({report.THROUGHPUT_FIGURE})" in text


def test_overhead_section():
  text = report.overhead_section(OVERHEAD)
  assert "| le | block | small_resnet | shared | 120.4 | 118.0 | 1.010 | 1.020 | PASS |" in text
  assert "| pe | pixel | small_resnet | per image | 131.0 | 118.5 | 1.073 | 1.105 | MISS |" in text
  assert "ratio <= 1.05 for every scheme" in text and "in 20 back-to-back pairs" in text
  assert "- MISS pe: in-step / pre-encrypted 1.073 (floor <= 1.05)" in text


def test_security_section():
  text = report.security_section(SECURITY)
  # The rows are lie_jax.attacks.report.markdown_table's (one table, one place).
  assert ("| etc | shared | jigsaw | 0.871 | 21.0 | – | – | – | – | – | 0.938 | – | 0.012 | – | "
          "– | 64 (∞) | **yes** |" in text)
  assert ("| pe | per image | known_plaintext | 0.912 | 21.0 | – | – | 0.25 | – | – | – | – | "
          "0.012 | – | 0.300 |" in text)
  assert "| ele | shared | jigsaw | 0.101 | 21.0 | – | – | – | – | – | 0.050 |" in text
  assert "Broken by at least one attack: etc, pe." in text
  assert "Not broken by the attacks run here: ele." in text
  assert "Not run" not in text
  assert "- pe known_plaintext_exact: does not apply" in report.security_section(
      {**SECURITY, "not_run": ["pe known_plaintext_exact: does not apply"]})
  ruled = report.security_section({**SECURITY, "verdict_rule": "breaks? = yes when X.",
                                   "data": "pneumoniamnist test[:16]"})
  assert "breaks? = yes when X." in ruled and "Data: pneumoniamnist test[:16]." in ruled


def test_render_orders_sections_and_renders_only_given_files():
  text = report.render(ALL)
  headings = [line for line in text.splitlines() if line.startswith("## ")]
  assert [h.split()[1] for h in headings] == ["Accuracy", "Encryption", "Training-step",
                                              "Input", "Training", "Security:"]
  without_security = report.render({k: v for k, v in ALL.items() if k != "security.json"})
  assert "## Security" not in without_security


def test_main_writes_report_and_figures(results_dir, monkeypatch):
  pytest.importorskip("matplotlib", reason="figures need the notebooks extra")
  monkeypatch.setattr(report, "FILES", tuple(ALL))
  for name, result in ALL.items():
    _write(results_dir, name, result)
  report.main()
  docs = results_dir.parent / "docs"
  text = (docs / "RESULTS.md").read_text()
  assert text == report.render(ALL)
  for figure in (report.ACCURACY_FIGURE, report.THROUGHPUT_FIGURE):
    assert f"]({figure})" in text
    assert (docs / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


GPU_MACHINE = {**MACHINE, "cpu_count": 16, "jax_backend": "gpu", "jax_device": "NVIDIA H200"}


def test_gpu_throughput_names_the_device_and_renders_a_rerun():
  gpu = {**TRAIN_THROUGHPUT, "machine": GPU_MACHINE,
         "rerun": {"note": "Rerun after a change.", "results": TRAIN_THROUGHPUT["results"][:2],
                   "checks": ["MISS resnet18 + le: 1.20x"]}}
  text = report.train_throughput_section(gpu)
  assert text.startswith("## Training throughput at 224x224x3 on NVIDIA H200\n")
  rerun = text[text.index("Rerun after a change."):]
  assert "| resnet18 | le | block | 1100 |" in rerun and "- MISS resnet18 + le: 1.20x" in rerun
  assert "Rerun" not in report.train_throughput_section(TRAIN_THROUGHPUT)


def _gpu_checks(failed):
  run = {"run": "none,none", "per_image_keys": None, "backbone": "resnet18", "num_epochs": 10,
         "image_shape": [224, 224, 1],
         "test_accuracy": 0.8574, "test_auc": 0.9731, "test_sensitivity": 0.9974,
         "test_specificity": 0.6239, "best_val_accuracy": 0.9694, "steps": 730,
         "train_time_s_this_run": 38.8, "command": "python -m lie_jax.train x"}
  return {"benchmark": "gpu_checks", "machine": GPU_MACHINE, "command": "bash x.sh OUTDIR",
          "packages": "jax 0.11.2 flax 0.12.10", "runs": [run, {**run, "run": "pe,pixel",
                                                                "per_image_keys": True}],
          "kat": {"command": "pytest kat", "passed": 103 - failed, "failed": failed,
                  "errors": 0, "exit": int(bool(failed))},
          "stages": [{"name": "kat", "outcome": "ok"},
                     {"name": "throughput_vit", "outcome": "skipped: 56s left, needs 120s"}]}


def test_gpu_checks_section():
  text = report.gpu_checks_section(_gpu_checks(0))
  assert text.startswith("## GPU checks on NVIDIA H200\n")
  assert "Machine: 16 CPU cores, Linux-test, JAX 0.10.2 on gpu (NVIDIA H200)" in text
  assert "Packages: jax 0.11.2 flax 0.12.10. Command: `bash x.sh OUTDIR`" in text
  assert "103 passed, 0 failed" in text and "bit-identical on both" in text
  assert ("| none,none | – | resnet18 | 224x224x1 | 10 | 0.857 | 0.973 | 0.997 | 0.624 | 0.969 | 730 | "
          "39 s | `python -m lie_jax.train x` |") in text
  assert "| pe,pixel | per image |" in text
  assert "every scheme's ciphertexts (morph: its channel key) are bit-identical" in text
  assert "Stages not completed: throughput_vit (skipped: 56s left, needs 120s)." in text
  failed = report.gpu_checks_section(_gpu_checks(2))
  assert "101 passed, 2 failed" in failed and "bit-identical" not in failed
  broken = _gpu_checks(0)
  broken["kat"] = {**broken["kat"], "errors": 3, "passed": 100}  # errors, exit 0: not clean
  assert "3 errors" in report.gpu_checks_section(broken)
  assert "bit-identical" not in report.gpu_checks_section(broken)


def test_main_renders_the_gpu_files_only_when_present(results_dir, monkeypatch):
  monkeypatch.setattr(report, "FILES", ("train_throughput.json",))
  monkeypatch.setattr(report, "write_figures", lambda results, docs: [])
  _write(results_dir, "train_throughput.json", TRAIN_THROUGHPUT)
  report.main()
  assert "GPU checks" not in (results_dir.parent / "docs" / "RESULTS.md").read_text()
  _write(results_dir, "gpu_checks.json", _gpu_checks(0))
  report.main()
  text = (results_dir.parent / "docs" / "RESULTS.md").read_text()
  assert text.index("## Training throughput at 224x224x3") < text.index("## GPU checks")
