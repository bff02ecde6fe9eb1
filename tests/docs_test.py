"""Issue 21: the API reference (docs/api, Sphinx autodoc) builds from the docstrings with
warnings as errors, one page per public package, as CI runs it."""

import pathlib
import pkgutil
import re
import subprocess
import sys

import lie_jax

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def _documented_modules() -> dict[str, set[str]]:
  """{page: modules its automodule directives name}."""
  return {page.stem: set(re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), re.M))
          for page in API.glob("*.rst")}


def test_every_public_package_has_its_page_in_the_toctree():
  packages = {m.name for m in pkgutil.iter_modules(lie_jax.__path__)
              if m.ispkg and not m.name.startswith("_")} - {"cli", "configs"}
  assert packages == {"attacks", "ciphers", "data", "models", "owner", "training"}
  pages = _documented_modules()
  toctree = (API / "index.rst").read_text()
  for package in packages:
    assert f"lie_jax.{package}" in pages[package], package
    assert re.search(rf"^   {package}$", toctree, re.M), package
  # The command line and its configs, and the key file module.
  assert {"lie_jax.train", "lie_jax.configs.quickstart"} <= pages["train"]
  assert "lie_jax.keys" in pages["keys"]


def test_the_api_reference_builds_without_a_warning(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(API),
       str(tmp_path / "html")], capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-4000:]
  # Autodoc found the members, not only the module docstrings.
  ciphers = (tmp_path / "html" / "ciphers.html").read_text()
  assert 'id="lie_jax.ciphers.get_scheme"' in ciphers
  assert 'id="lie_jax.training.train_and_evaluate"' in (
      tmp_path / "html" / "training.html").read_text()


def test_security_md_main_table_quotes_the_security_results_file():
  """docs/SECURITY.md's main table is benchmarks/results/security.json, rendered."""
  import json

  from lie_jax.attacks import report

  rows = json.loads((ROOT / "benchmarks" / "results" / "security.json").read_text())["results"]
  text = (ROOT / "docs" / "SECURITY.md").read_text()
  assert report.markdown_table(rows).strip() in text
