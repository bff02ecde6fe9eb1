"""The install commands the README gives: the GPU extra pins the same JAX as the base install,
`import lie_jax` stays light (TensorFlow Datasets, JAX models load on use), and the built
package trains from its shipped configs with no checkout (`python -m lie_jax.train`)."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

try:
  import tomllib
except ImportError:  # Python 3.10
  tomllib = pytest.importorskip("tomli")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_gpu_extra_pins_the_base_jax_range():
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  base = next(d for d in project["dependencies"] if re.match(r"jax[><=]", d))
  [gpu] = project["optional-dependencies"]["gpu"]
  assert gpu == base.replace("jax", "jax[cuda12]", 1)
  assert 'pip install -e ".[test,gpu]"' in (ROOT / "README.md").read_text()


def test_import_lie_jax_loads_neither_tensorflow_datasets_nor_flax():
  code = ("import sys, lie_jax; print(sorted(m for m in ('tensorflow_datasets', 'tensorflow', "
          "'flax') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       text=True, cwd=ROOT).stdout.strip()
  assert out == "[]"


def test_config_names_resolve_to_the_shipped_files_and_paths_stay_paths(tmp_path):
  from absl import flags

  from lie_jax import train
  shipped = pathlib.Path(train.__file__).parent / "configs"
  assert train.shipped_configs() == ["default", "encrypted_dir", "huang2022", "medmnist",
                                     "pneumoniamnist", "quickstart"]
  assert train.resolve_config("quickstart") == str(shipped / "quickstart.py")
  assert train.resolve_config("pneumoniamnist:le,block") == f"{shipped / 'pneumoniamnist.py'}:le,block"
  # The checkout's old spelling, and a path under any folder named like a shipped config.
  assert train.resolve_config("configs/medmnist.py:pathmnist") == f"{shipped / 'medmnist.py'}:pathmnist"
  own = tmp_path / "quickstart.py"  # the user's own file wins over the shipped one of that name
  own.write_text("")
  assert train.resolve_config(f"{own}:x") == f"{own}:x"
  argv = train.resolve_config_argv(["prog", "--config", "default", "--config.seed=3",
                                    "--config=quickstart", "--workdir=w"])
  assert argv == ["prog", "--config", str(shipped / "default.py"), "--config.seed=3",
                  f"--config={shipped / 'quickstart.py'}", "--workdir=w"]
  # A missing path elsewhere is an error, never the shipped config of the same file name.
  with pytest.raises(flags.Error, match=r"^--config '/no/such/mount/pneumoniamnist.py': no such "
                     r"file$"):
    train.resolve_config("/no/such/mount/pneumoniamnist.py:le,block")
  with pytest.raises(flags.Error, match=r"--config 'nope': no such file and no shipped config "
                     r"of that name \(shipped: default, encrypted_dir, huang2022"):
    train.resolve_config("nope:le")


def test_the_checkout_train_py_is_the_same_command_and_errors_in_one_line():
  proc = subprocess.run([sys.executable, "train.py", "--config", "nope", "--workdir", "w"],
                        cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      "FATAL Flags parsing error: --config 'nope': no such file and no shipped config of that "
      "name (shipped: default, encrypted_dir, huang2022, medmnist, pneumoniamnist, quickstart)"]


def test_a_config_the_trainer_refuses_is_one_line_and_exit_2(tmp_path):
  """Seed-derived keys on a folder of scans (not the bundled public data) are refused before
  any work: one line naming the field, no traceback; LIE_JAX_TRACEBACK=1 shows where."""
  from PIL import Image
  for name in ("a", "b"):
    (tmp_path / "scans" / name).mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "scans" / name / "0.png")
  command = [sys.executable, "-m", "lie_jax.train", "--config", "huang2022:densenet121",
             f"--config.data.path={tmp_path / 'scans'}", "--workdir", str(tmp_path / "w")]
  proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("lie_jax.train: error: config.cipher."
                                                 "secret_file is not set"), proc.stderr
  assert "allow_seed_keys=True" in lines[0]
  proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                        env={**os.environ, "LIE_JAX_TRACEBACK": "1"})
  assert proc.returncode == 1 and "Traceback" in proc.stderr
  assert not (tmp_path / "w" / "results.json").exists()


@pytest.mark.slow
def test_the_built_package_ships_the_configs_and_trains_without_a_checkout(tmp_path):
  """Issue 21: big_vision-style `python -m lie_jax.train --config NAME` from the wheel alone,
  run outside any checkout (what a notebook on Colab has)."""
  src = tmp_path / "src"
  src.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(ROOT / name, src / name)
  shutil.copytree(ROOT / "lie_jax", src / "lie_jax",
                  ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--quiet", str(src), "-w", str(tmp_path / "dist")], check=True,
                 capture_output=True)
  [wheel] = (tmp_path / "dist").glob("lie_jax-*.whl")
  site = tmp_path / "site"
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    z.extractall(site)
  for config in ("default", "quickstart", "pneumoniamnist", "medmnist", "huang2022",
                 "encrypted_dir"):
    assert f"lie_jax/configs/{config}.py" in names
  run_dir = tmp_path / "elsewhere"  # neither the checkout nor the wheel's folder
  run_dir.mkdir()
  env = {**os.environ, "PYTHONPATH": str(site)}  # before the editable install's checkout
  where = subprocess.run([sys.executable, "-c", "import lie_jax.train as t; print(t.__file__)"],
                         cwd=run_dir, env=env, check=True, capture_output=True, text=True)
  assert pathlib.Path(where.stdout.strip()).is_relative_to(site)
  out = subprocess.run(
      [sys.executable, "-m", "lie_jax.train", "--config", "quickstart",
       "--config.train.num_steps=2", "--config.train.progress_bar=False",
       "--config.train.tensorboard=False", "--workdir", "work"],
      cwd=run_dir, env=env, check=True, capture_output=True, text=True).stdout
  printed = json.loads(out[out.index("{"):])
  assert printed["steps"] == 2 and printed["cipher"] == "huang2022"
  assert (run_dir / "work" / "results.json").is_file()
