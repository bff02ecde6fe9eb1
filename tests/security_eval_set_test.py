"""benchmarks/security.py --eval-set: the victim/known split, each scheme's block size, and one
real run on a tiny eval set file (per-image keys, every applicable attack)."""

import json
import sys
import types

import numpy as np
import pytest

from benchmarks import eval_set as es
from benchmarks import security


def _write_eval_set(tmp_path, n, size=32):
  rng = np.random.default_rng(0)
  gray = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
  rgb = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
  subsets = {"gray": es.Subset(gray, np.array([f"s{i % 3}" for i in range(n)]),
                               np.array([f"t{i}" for i in range(n)])),
             "rgb": es.Subset(rgb, np.array(["r", "r"]), np.array(["a", "b"]))}
  return es.save(str(tmp_path / "eval_set"), subsets, {"test": True}), gray


def test_split_is_disjoint_and_covers_every_tile(tmp_path):
  path, gray = _write_eval_set(tmp_path, 10)
  victims, known, described = security.eval_set_split(path)
  assert len(victims) == 4 and len(known) == 6  # tiles 0, 3, 6, 9 are victims
  np.testing.assert_array_equal(victims, gray[[0, 3, 6, 9]])
  np.testing.assert_array_equal(known, gray[[1, 4, 7, 2, 5, 8]])
  assert "4 victims" in described and "6 tiles" in described


def test_split_refuses_too_few_tiles(tmp_path):
  path, _ = _write_eval_set(tmp_path, 5)
  with pytest.raises(ValueError, match="5 grayscale tiles; at least 6"):
    security.eval_set_split(path)


def test_each_scheme_gets_its_block_size_and_per_image_keys(monkeypatch):
  calls = []

  def fake_report(victims, known, *, seed, block_size, steps, schemes, key_modes, skipped,
                  attacks):
    calls.append((schemes, block_size, steps, key_modes))
    assert attacks is None
    return []

  monkeypatch.setattr(security.report, "security_report", fake_report)
  args = types.SimpleNamespace(schemes=["etc", "huang2022", "pe"], block_size=None, steps=None,
                               seed=0, attacks=None)
  security._eval_set_report(None, None, args=args, skipped=[])
  # Huang 2022 keeps its own 2x2 filter; block schemes use 16x16 (the ViT setting); PE has no
  # block size (the argument is unused).
  assert calls == [(["etc"], 16, 100, [True]), (["huang2022"], 2, 100, [True]),
                   (["pe"], 16, 100, [True])]
  args.block_size, args.steps = 8, 7
  calls.clear()
  security._eval_set_report(None, None, args=args, skipped=[])
  assert [c[1:3] for c in calls] == [(8, 7), (2, 7), (8, 7)]


def test_a_real_run_writes_per_image_rows(tmp_path, monkeypatch):
  path, _ = _write_eval_set(tmp_path, 9)
  out = tmp_path / "security_224.json"
  monkeypatch.setattr(sys, "argv", ["security", "--eval-set", path, "--schemes", "pe",
                                    "--steps", "2", "--out", str(out)])
  security.main()
  result = json.loads(out.read_text())
  assert result["size"] == 32 and result["learned_attack_steps"] == 2
  assert result["command"] == "python -m benchmarks.security --eval-set NPZ --schemes pe"
  rows = result["results"]
  assert {r["scheme"] for r in rows} == {"pe"} and all(r["per_image_keys"] for r in rows)
  assert {r["attack"] for r in rows} >= {"fr_basic", "inverse_network", "gan"}
  assert all(r["num_images"] == 3 and r["reid_chance_top1"] == pytest.approx(1 / 3)
             for r in rows)


def test_schemes_without_eval_set_is_refused(monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["security", "--schemes", "pe"])
  with pytest.raises(SystemExit):
    security.main()
  assert "--schemes needs --eval-set" in capsys.readouterr().err


def test_a_second_run_keeps_the_other_schemes_rows(tmp_path, monkeypatch):
  path, _ = _write_eval_set(tmp_path, 9)
  out = tmp_path / "security_224.json"
  described = security.eval_set_split(path)[2]
  earlier = {"data": described, "learned_attack_steps": 2,
             "results": [{"scheme": "huang2022", "attack": "fr_basic"},
                         {"scheme": "pe", "attack": "stale"}],
             "not_run": ["huang2022 (per-image keys) / x: not run", "pe (per-image keys) / y"]}
  out.write_text(json.dumps(earlier))
  monkeypatch.setattr(security.report, "security_report",
                      lambda *a, schemes, **k: [])
  monkeypatch.setattr(security.report, "json_row", lambda r: r)
  monkeypatch.setattr(security.report, "markdown_table", lambda rows: "")
  monkeypatch.setattr(sys, "argv", ["security", "--eval-set", path, "--schemes", "pe",
                                    "--steps", "2", "--out", str(out)])
  security.main()
  result = json.loads(out.read_text())
  # pe was run again (its old rows and lines dropped), huang2022's are kept.
  assert result["results"] == [{"scheme": "huang2022", "attack": "fr_basic"}]
  assert result["not_run"] == ["huang2022 (per-image keys) / x: not run"]
  assert result["command"] == ("python -m benchmarks.security --eval-set NPZ "
                               "--schemes huang2022 pe")
  # Another step cap: the earlier file is not mixed in.
  out.write_text(json.dumps({**earlier, "learned_attack_steps": 50}))
  security.main()
  assert json.loads(out.read_text())["results"] == []
  out.write_text("not json")  # an unreadable earlier file is overwritten
  security.main()
  assert json.loads(out.read_text())["results"] == []


def test_the_224_px_table_in_security_md_matches_the_results_file():
  """docs/SECURITY.md's table of the 224 px run quotes benchmarks/results/security_224.json:
  each row's best top-1 re-identification, the attack's or the ciphertext's own."""
  import pathlib
  import re

  root = pathlib.Path(__file__).resolve().parents[1]
  result = json.loads((root / "benchmarks" / "results" / "security_224.json").read_text())
  best, linked = {}, {}
  for r in result["results"]:
    if r["attack"] == "linkage":  # its own column, by block size
      linked[(r["scheme"], r["options"].get("block_size"))] = r["reid_top1"]
      continue
    best[r["scheme"]] = max(best.get(r["scheme"], 0.0), r["reid_top1"], r["cipher_reid_top1"])
  text = (root / "docs" / "SECURITY.md").read_text()
  section = text.split("## Every attack at 224x224 with per-image keys", 1)[1].split("\n## ")[0]
  names = {"PE": "pe", "Huang 2022, B=2 (the default)": "huang2022",
           "block-wise shuffling": "blockwise", "LE": "le", "ViT cipher": "vit", "ELE": "ele",
           "EtC": "etc"}
  quoted = {}
  for name, reid in re.findall(r"^\| (?:\*\*)?([^|*]+?)(?:\*\*)? \| (?:\*\*)?([\d.]+)", section,
                               re.M):
    quoted[names[name]] = float(reid)
  assert set(quoted) == set(best) == set(security.PER_IMAGE_SCHEMES)
  for scheme, reid in quoted.items():
    assert reid == pytest.approx(100 * best[scheme], abs=0.05), scheme
  # The last column: linkage at the row's block size, and in 2x2 blocks for block schemes.
  for name, cell in re.findall(r"^\| (?:\*\*)?([^|*]+?)(?:\*\*)? \|.*\| ([\d.]+(?: / [\d.]+)?) \|$",
                               section, re.M):
    scheme = names[name]
    own = 2 if scheme == "huang2022" else None if scheme == "pe" else security.EVAL_SET_BLOCK
    values = [float(v) for v in cell.split(" / ")]
    assert values[0] == pytest.approx(100 * linked[(scheme, own)], abs=0.05), scheme
    if len(values) > 1:
      assert values[1] == pytest.approx(100 * linked[(scheme, 2)], abs=0.05), scheme
  assert len(linked) == len(quoted) + 5  # every scheme, and 2x2 blocks for the five block ones
  assert f"1/{result['results'][0]['num_images']}" in section


def test_attacks_replaces_only_those_rows_and_adds_up_the_time(tmp_path, monkeypatch):
  """`--attacks linkage` at 28 px: the other attacks' rows and lines of the earlier run stay,
  in table order (shared keys first), its linkage rows are replaced, the times add up."""
  out = tmp_path / "security.json"
  described = "pneumoniamnist test[:3] (victims), train[:4] (known plaintexts)"
  row = lambda scheme, attack, per_image, tag: {
      "scheme": scheme, "attack": attack, "per_image_keys": per_image, "tag": tag,
      "options": {"block_size": 4} if scheme != "pe" else {}}
  earlier = {"data": described, "learned_attack_steps": None, "seconds": 100.0,
             "block_size": 4,
             "results": [row("etc", "jigsaw", False, "old"), row("etc", "linkage", False, "old"),
                         row("pe", "gan", True, "old")],
             "not_run": ["pe (per-image keys) / known_plaintext_exact: not run: x",
                         "etc / linkage: not run: y"]}
  out.write_text(json.dumps(earlier))
  seen = {}

  def fake_report(victims, known, *, attacks, **kwargs):
    seen["attacks"] = attacks
    return [row("pe", "linkage", True, "new"), row("etc", "linkage", False, "new")]

  monkeypatch.setattr(security.report, "security_report", fake_report)
  monkeypatch.setattr(security.report, "json_row", lambda r: r)
  monkeypatch.setattr(security.report, "markdown_table", lambda rows: "")
  monkeypatch.setattr(sys, "argv", ["security", "--num-images", "3", "--train-images", "4",
                                    "--attacks", "linkage", "--out", str(out)])
  security.main()
  result = json.loads(out.read_text())
  assert seen["attacks"] == ["linkage"]
  assert [(r["scheme"], r["attack"], r["per_image_keys"], r["tag"]) for r in result["results"]] == [
      ("etc", "jigsaw", False, "old"), ("etc", "linkage", False, "new"),
      ("pe", "gan", True, "old"), ("pe", "linkage", True, "new")]
  assert result["not_run"] == ["pe (per-image keys) / known_plaintext_exact: not run: x"]
  assert result["seconds"] >= 100.0 and result["block_size"] == 4


def test_a_run_at_another_block_size_keeps_the_first_ones_rows(tmp_path, monkeypatch):
  path, _ = _write_eval_set(tmp_path, 9)
  out = tmp_path / "security_224.json"
  described = security.eval_set_split(path)[2]
  old = {"scheme": "etc", "attack": "linkage", "per_image_keys": True,
         "options": {"block_size": 16}}
  out.write_text(json.dumps({"data": described, "learned_attack_steps": 100, "seconds": 5.0,
                             "block_size": 16, "results": [old], "not_run": []}))
  new = {**old, "options": {"block_size": 2}}
  monkeypatch.setattr(security.report, "security_report", lambda *a, **k: [new])
  monkeypatch.setattr(security.report, "json_row", lambda r: r)
  monkeypatch.setattr(security.report, "markdown_table", lambda rows: "")
  monkeypatch.setattr(sys, "argv", ["security", "--eval-set", path, "--schemes", "etc",
                                    "--attacks", "linkage", "--block-size", "2",
                                    "--out", str(out)])
  security.main()
  result = json.loads(out.read_text())
  assert result["results"] == [old, new] and result["block_size"] == 16


def test_the_converged_224_px_runs_in_security_md_match_their_results_file():
  """docs/SECURITY.md's account of the 600-step reruns quotes security_224_long.json: Huang
  2022's converged re-identification, and ELE's and EtC's learned attacks never beating their
  start (best step 0) with the SSIM and re-identification quoted."""
  import pathlib

  root = pathlib.Path(__file__).resolve().parents[1]
  result = json.loads((root / "benchmarks" / "results" / "security_224_long.json").read_text())
  assert result["learned_attack_steps"] == 600
  rows = {(r["scheme"], r["attack"]): r for r in result["results"]}
  text = " ".join((root / "docs" / "SECURITY.md").read_text().split())
  section = text.split("- Converged, not capped:", 1)[1].split("## ", 1)[0]
  assert f"{100 * rows['huang2022', 'inverse_network']['reid_top1']:.1f}% is its converged" in section
  block = [rows[s, a] for s in ("ele", "etc") for a in ("inverse_network", "gan")]
  assert all(r["details"]["best_step"] == 0 and r["details"]["stopped_early"] for r in block)
  assert {r["details"]["steps"] for r in block} == {500}
  assert "stopped at step 500 with the start as their best" in section
  (ssim,) = {f"{r['ssim_mean']:.3f}" for r in block}
  (prior,) = {f"{r['prior_ssim_mean']:.3f}" for r in block}
  (reid,) = {f"{100 * r['reid_top1']:.1f}" for r in block}
  assert f"SSIM {ssim} against the mean tile's {prior}; re-identification {reid}%" in section
  gan = sorted(f"{rows[s, 'gan']['details']['gen_mse']:.3f}" for s in ("ele", "etc"))
  assert f"training MSE {gan[0]}-{gan[1]}" in section
  capped = json.loads((root / "benchmarks" / "results" / "security_224.json").read_text())
  (etc,) = [r for r in capped["results"] if r["scheme"] == "etc"
            and r["attack"] == "inverse_network" and r["options"]["block_size"] == 16]
  assert (f"to SSIM {etc['ssim_mean']:.3f} and {100 * etc['reid_top1']:.1f}%" in section
          and not etc["breaks"])


def test_key_views_on_the_eval_set_uses_its_split_configs_and_step_cap(tmp_path, monkeypatch,
                                                                        capsys):
  from benchmarks import key_views

  path, gray = _write_eval_set(tmp_path, 9)
  calls = []

  def fake_measure(victims, known, *, views, seed, configs, steps):
    calls.append((victims, known, views, configs, steps))
    return [{"scheme": s, "key_views": k, "block_size": b, "ssim_mean": 0.5,
             "prior_ssim_mean": 0.4, "reid_chance_top1": 1 / 3, "reid_top1": 0.5,
             "reid_top5": 1.0, "steps": steps} for s, b in configs for k in (1, views)]

  monkeypatch.setattr(key_views, "measure", fake_measure)
  out = tmp_path / "kv.json"
  monkeypatch.setattr(sys, "argv", ["key_views", "--eval-set", path, "--views", "4",
                                    "--out", str(out)])
  key_views.main()
  (victims, known, views, configs, steps), = calls
  np.testing.assert_array_equal(victims, gray[::3])
  np.testing.assert_array_equal(known, np.concatenate([gray[1::3], gray[2::3]]))
  assert (views, configs, steps) == (4, key_views.CONFIGS_224, key_views.STEPS_224)
  result = json.loads(out.read_text())
  assert result["command"] == "python -m benchmarks.key_views --views 4 --eval-set NPZ"
  assert result["steps_cap"] == key_views.STEPS_224 and "3 victims" in result["data"]
  assert "| pe | 4 | 0.500 | 0.400 | 50.0 (33.3) | 100.0 |" in capsys.readouterr().out
  # Another cap is recorded in the command.
  monkeypatch.setattr(sys, "argv", ["key_views", "--eval-set", path, "--steps", "7",
                                    "--out", str(out)])
  key_views.main()
  assert calls[-1][4] == 7
  assert json.loads(out.read_text())["command"] == (
      "python -m benchmarks.key_views --eval-set NPZ --steps 7")
  # Without --eval-set: the PneumoniaMNIST split, the 28 px configurations, no cap.
  monkeypatch.setattr(sys, "argv", ["key_views", "--num-images", "4", "--train-images", "6",
                                    "--out", str(out)])
  key_views.main()
  victims, known, views, configs, steps = calls[-1]
  assert (len(victims), len(known), views, configs, steps) == (
      4, 6, key_views.DEFAULT_VIEWS, key_views.CONFIGS, None)
  assert json.loads(out.read_text())["command"] == "python -m benchmarks.key_views"
  capsys.readouterr()
  del calls[:]
  corrupt = tmp_path / "corrupt.npz"
  corrupt.write_bytes(b"PK\x03\x04 not a zip")
  # A bad file is one line naming it; bad arguments are refused before any work.
  for argv, message in ((["--eval-set", str(tmp_path / "missing.npz")], "missing.npz"),
                        (["--eval-set", str(corrupt)], "corrupt.npz"),
                        (["--eval-set", path, "--steps", "0"], "--steps must be positive"),
                        (["--eval-set", path, "--num-images", "5"], "the eval set has its own"),
                        (["--eval-set", path, "--out", str(tmp_path / "no" / "kv.json")],
                         "its folder does not exist")):
    monkeypatch.setattr(sys, "argv", ["key_views", *argv])
    with pytest.raises(SystemExit):
      key_views.main()
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # argparse's usage, then one line of error
    assert last.startswith("key_views: error:") and message in last and err.count("error") == 1
  assert not calls


def test_pneumonia_split_is_the_first_test_and_train_images():
  from lie_jax import data

  splits = data.load_dataset("pneumoniamnist")
  victims, known, described = security.pneumonia_split(5, 7)
  np.testing.assert_array_equal(victims, splits.test.images[:5])
  np.testing.assert_array_equal(known, splits.train.images[:7])
  assert described == ("pneumoniamnist test[:5] (victims), train[:7] (known plaintexts)")
