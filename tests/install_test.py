"""The install commands the README gives: the GPU extra pins the same JAX as the base install,
and `import lie_jax` stays light (TensorFlow Datasets, JAX models load on use)."""

import pathlib
import re
import subprocess
import sys

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
