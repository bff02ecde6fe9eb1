"""benchmarks/train_throughput.py: scheme specs, paired timing order and the miss breakdown."""

import argparse
import json
import pathlib

import pytest

from benchmarks import train_throughput


def test_check_scheme_accepts_settings_and_refuses_unknown_schemes():
  assert train_throughput.check_scheme("ele,block=16") == "ele,block=16"
  assert train_throughput.check_scheme("none") == "none"
  with pytest.raises(argparse.ArgumentTypeError, match="unknown scheme 'rot13'"):
    train_throughput.check_scheme("rot13,block=4")


def test_paired_alternates_which_step_runs_first():
  calls = []
  first = lambda: calls.append("a")
  second = lambda: calls.append("b")
  pairs = train_throughput._paired(first, second, 3)
  assert len(pairs) == 3 and all(a >= 0 and b >= 0 for a, b in pairs)
  assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b"]  # compile calls, then pairs


def test_checks_break_a_miss_down_into_its_parts():
  rows = [{"backbone": "resnet18", "scheme": "none", "input_grad_s": 0.1},
          {"backbone": "resnet18", "scheme": "pe", "ratio": 1.25, "step_s": 1.25,
           "plain_step_s": 1.0, "encode_s": 0.05, "adaptation_s": 0.02},
          {"backbone": "resnet18", "scheme": "vit", "ratio": 1.05, "step_s": 1.05,
           "plain_step_s": 1.0, "encode_s": 0.01},
          {"backbone": "resnet18", "scheme": "morph", "skipped": "too large"}]
  # pe: 0.25 s more = encrypt 0.05 + adaptation 0.02 + input gradient 0.1 + rest 0.08.
  assert train_throughput.checks(rows) == [
      "MISS resnet18 + pe: 1.25x the plain step (target <= 1.15); of the plain step: "
      "encrypt +5%, adaptation +2%, input gradient +10%, rest +8%",
      "PASS resnet18 + vit: 1.05x the plain step (target <= 1.15)"]


def test_a_run_of_some_backbones_keeps_the_others(tmp_path):
  import json

  out = tmp_path / "train_throughput.json"
  rows = [{"backbone": b, "scheme": s} for b in ("resnet18", "vit") for s in ("none", "pe")]
  out.write_text(json.dumps({"benchmark": "train_throughput", "results": rows,
                             "command": "python -m benchmarks.train_throughput --schemes pe "
                                        "--batch-size 8 --steps 5"}))
  args = argparse.Namespace(backbones=["resnet18"], schemes=["pe"], batch_size=8, steps=5)
  assert train_throughput.earlier_rows(str(out), args) == rows[2:]
  for other in ({"steps": 3}, {"schemes": ["pe", "le"]}):
    assert train_throughput.earlier_rows(str(out), argparse.Namespace(**{**vars(args),
                                                                         **other})) == []
  out.write_text("{not json")
  assert train_throughput.earlier_rows(str(out), args) == []


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_paragraph(start: str) -> str:
  text = (ROOT / "README.md").read_text()
  begin = text.index(start)
  return " ".join(text[begin:text.index("\n\n", begin)].split())


def _measured(name: str) -> list[dict]:
  path = ROOT / "benchmarks" / "results" / name
  return [r for r in json.loads(path.read_text())["results"] if "ratio" in r]


def test_readme_quotes_the_cpu_throughput_results():
  """README's 224 px CPU paragraph: the ratio range (ELE in 4x4 blocks apart) and the number
  of rows meeting the target, from benchmarks/results/train_throughput.json."""
  rows = _measured("train_throughput.json")
  ele4 = [r["ratio"] for r in rows if r["scheme"] == "ele"]
  rest = [r["ratio"] for r in rows if r["scheme"] != "ele"]
  text = _readme_paragraph("At 224x224x3 (`python -m benchmarks.train_throughput`")
  assert (f"costs {min(rest):.2f}-{max(rest):.2f}x the plain step on this CPU, except ELE with "
          f"4x4 blocks ({min(ele4):.1f}-{max(ele4):.1f}x)") in text
  passed = sum(r["ratio"] <= train_throughput.TARGET for r in rows)
  assert f"{passed} of the {len(rows)} measured rows meet the 1.15x target" in text


def test_readme_quotes_the_gpu_throughput_results():
  """README's H200 paragraph: rows of the first run meeting the target, and ELE 4x4's range."""
  rows = _measured("train_throughput_gpu.json")
  passed = sum(r["ratio"] <= train_throughput.TARGET for r in rows)
  ele4 = [r["ratio"] for r in rows if r["scheme"] == "ele"]
  text = _readme_paragraph("On an NVIDIA H200")
  assert f"{passed} of the {len(rows)} rows of the first run meet 1.15x" in text
  assert f"ELE in 4x4 blocks {min(ele4):.2f}-{max(ele4):.2f}x" in text
