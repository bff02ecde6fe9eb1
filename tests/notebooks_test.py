"""The notebooks in notebooks/: committed clean, and executed top to bottom.

The structural checks run in the default suite. Executing the notebooks takes
minutes, so those tests carry the `notebooks` marker and run only when it is
selected (tests/conftest.py skips them otherwise):

  python -m pip install -e ".[test,notebooks]"
  python -m pytest -m notebooks

Every notebooks/*.ipynb is collected, so a new notebook is tested as soon as
it is added. Each runs in a fresh kernel on the interpreter running pytest
(whatever kernel specs the machine has), with a temporary working directory,
so nothing is written into the repository.
"""

import json
import pathlib
import sys
import time

import pytest

import lie_jax

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/lie-jax/lie_jax/blob/main/notebooks/"
CELL_TIMEOUT_S = 600
NOTEBOOK_BUDGET_S = 600  # "a few minutes on 2 CPU cores", with room for a loaded machine


def _ids(paths):
  return [p.stem for p in paths]


def _cells(path: pathlib.Path) -> list[dict]:
  with open(path) as f:
    return json.load(f)["cells"]


def _source(cell: dict) -> str:
  source = cell["source"]
  return source if isinstance(source, str) else "".join(source)


def test_notebooks_exist():
  assert {"01_encryption_tour", "02_train_on_encrypted"} <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
  """Outputs and execution counts stay out of git: diffs show only what was written."""
  dirty = [i for i, cell in enumerate(_cells(path)) if cell["cell_type"] == "code"
           and (cell.get("outputs") or cell.get("execution_count") is not None)]
  assert not dirty, (f"{path.name}: cells {dirty} hold outputs; clear them before committing "
                     f"(jupyter nbconvert --clear-output --inplace {path})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_colab_badge_and_pinned_install(path):
  """Each notebook opens with its Colab badge, then installs lie_jax where missing: from the
  checkout it sits in, else the release pinned to the package version."""
  cells = _cells(path)
  assert cells[0]["cell_type"] == "markdown" and COLAB + path.name in _source(cells[0]), (
      f"{path.name}: the first cell must hold the Colab badge linking to {COLAB + path.name}")
  install = next((_source(c) for c in cells if c["cell_type"] == "code"), "")
  assert f'RELEASE = "lie-jax[notebooks]=={lie_jax.__version__}"' in install, (
      f"{path.name}: the install cell must pin lie-jax {lie_jax.__version__}")
  assert 'importlib.util.find_spec("lie_jax") is None' in install, (
      f"{path.name}: the install must be skipped where lie_jax is already importable")


def _install_commands(source: str, cwd: pathlib.Path, monkeypatch) -> list[str]:
  """What the install cell would %pip install, run as Python with lie_jax missing."""
  import importlib.util
  import os
  import re
  commands = []
  code = re.sub(r'%pip install --quiet "(.*)"', r'_commands.append(f"\1")', source)
  code = code.replace("import lie_jax\n", "").replace(
      'print("lie_jax", lie_jax.__version__)', "")
  monkeypatch.chdir(cwd)
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
  exec(compile(code, "install-cell", "exec"), {"_commands": commands, "os": os})  # noqa: S102
  return commands


def test_the_install_cell_installs_the_checkout_or_the_release(tmp_path, monkeypatch):
  import subprocess
  import sys
  source = next(_source(c) for c in _cells(NOTEBOOKS[0]) if c["cell_type"] == "code")
  checkout = NOTEBOOK_DIR.parent
  [from_checkout] = _install_commands(source, NOTEBOOK_DIR, monkeypatch)
  assert from_checkout == f"{checkout}[notebooks]"
  [from_release] = _install_commands(source, tmp_path, monkeypatch)
  assert from_release == f"lie-jax[notebooks]=={lie_jax.__version__}"
  # pip accepts the checkout's command (resolving it without installing anything).
  subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                  "--quiet", from_checkout], check=True, cwd=tmp_path,
                 capture_output=True, timeout=300)


def _this_interpreters_kernel(tmp_path: pathlib.Path):
  """A kernel manager for an ipykernel on sys.executable, ignoring installed kernel specs.

  A user-level "python3" spec can point at another interpreter (without
  lie_jax); a private spec in tmp_path cannot.
  """
  from jupyter_client import KernelManager
  from jupyter_client.kernelspec import KernelSpecManager

  spec_dir = tmp_path / "kernels" / "lie_jax_test"
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "lie_jax test", "language": "python"}))
  specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False)
  return KernelManager(kernel_name="lie_jax_test", kernel_spec_manager=specs)


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path, tmp_path):
  try:
    import nbclient
    import nbformat
  except ImportError as e:  # selected on purpose: a missing extra is an error, not a skip
    raise ImportError(f"{e}; install the extra: pip install -e '.[notebooks]'") from e

  notebook = nbformat.read(path, as_version=4)
  workdir = tmp_path / "cwd"
  workdir.mkdir()
  kernel = _this_interpreters_kernel(tmp_path)
  client = nbclient.NotebookClient(notebook, km=kernel, timeout=CELL_TIMEOUT_S,
                                   resources={"metadata": {"path": str(workdir)}})
  start = time.perf_counter()
  try:
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
  finally:
    if kernel.has_kernel:  # nbclient leaves a kernel manager it was handed running
      kernel.shutdown_kernel(now=True)
  elapsed = time.perf_counter() - start
  print(f"{path.name}: {elapsed:.0f} s")
  assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.0f} s; keep notebooks small"
