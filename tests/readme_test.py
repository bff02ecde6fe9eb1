"""The README's Python example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert blocks, "README has no Python example"
  monkeypatch.chdir(tmp_path)
  for block in blocks:
    exec(compile(block, str(README), "exec"), {})  # pylint: disable=exec-used
  assert (tmp_path / "hospital.key").exists()
