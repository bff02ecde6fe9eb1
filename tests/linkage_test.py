"""lie_jax.attacks.linkage: key-invariant features are exact identities of every scheme's
encryption, Huang 2022's outcome tables match a brute force over keys and the library's own
ciphertexts, and the attack names planted victims (and cannot tell apart images one key maps
onto another)."""

import itertools

import jax
import numpy as np
import pytest

from lie_jax import ciphers
from lie_jax.attacks import learned_linkage
from lie_jax.attacks import linkage
from lie_jax.attacks import reidentification
from lie_jax.attacks import suite

OPTIONS = {
    "le": {"block_size": 4}, "ele": {"block_size": 4}, "etc": {"block_size": 4}, "pe": {},
    "vit": {"block_size": 4}, "blockwise": {"block_size": 4, "transforms": ("shuffle", "flip")},
}


def _images(n, channels, size=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scheme", linkage.INVARIANT_SCHEMES)
def test_features_are_the_same_for_every_key(scheme, channels):
  x = _images(6, channels)
  record = ciphers.get_scheme(scheme)
  plain = linkage.invariants(x, scheme=scheme, options=OPTIONS[scheme])
  for seed in range(3):
    per_image = record.encrypt_per_image(jax.random.key(seed), x, **OPTIONS[scheme])
    shared = record.encrypt(record.generate_key(jax.random.key(seed), image_shape=x.shape[1:],
                                                **OPTIONS[scheme]), x)
    for c in (per_image, shared):
      assert not np.array_equal(np.asarray(c), x)
      np.testing.assert_array_equal(linkage.invariants(np.asarray(c), scheme=scheme,
                                                       options=OPTIONS[scheme]), plain)
  # ... and they are not constant: different images, different features.
  assert len({plain[i].tobytes() for i in range(6)}) == 6


def test_etc_feature_by_hand():
  # One 2x2 block: sorted (10, 30, 40, 200) beats its negative's (55, 215, 225, 245);
  # sorted (5, 100, 200, 250) loses to its negative's (5, 55, 155, 250).
  a = np.array([10, 200, 30, 40], np.uint8).reshape(1, 2, 2, 1)
  b = np.array([250, 5, 100, 200], np.uint8).reshape(1, 2, 2, 1)
  f = lambda x: linkage.invariants(x, scheme="etc", options={"block_size": 2})[0].tolist()
  assert f(a) == [10, 30, 40, 200] and f(b) == [5, 55, 155, 250]
  assert f(255 - b) == f(b)  # negative-positive


def test_le_feature_by_hand():
  # One 1x2 block can't be; a 2x2 block of 0x12, 0xF0, 0x07, 0x88: nibbles (low, high)
  # 2,1 / 0,15 / 7,0 / 8,8 fold to 2,1,0,0,7,0,7,7 -> histogram over 0..7.
  x = np.array([0x12, 0xF0, 0x07, 0x88], np.uint8).reshape(1, 2, 2, 1)
  f = linkage.invariants(x, scheme="le", options={"block_size": 2})[0].tolist()
  assert f == [3, 1, 1, 0, 0, 0, 0, 3]


def _brute_force_median_2x2(block):
  """P(output) of one grey 2x2 block under every one of the 16 negation patterns."""
  out = np.zeros(256)
  for mask in itertools.product([0, 1], repeat=4):
    v = sorted(255 - b if m else b for b, m in zip(block, mask))
    out[(v[1] + v[2] + 1) // 2] += 1 / 16
  return out


def test_grey_2x2_median_table_is_the_brute_force_over_keys():
  x = _images(1, 1, size=4, seed=3)[0]
  table = linkage.outcome_table(x, block_size=2)
  blocks = np.asarray(ciphers.blockify(x[None], block_size=2))[0]
  for b, row in zip(blocks, table):
    np.testing.assert_allclose(row, _brute_force_median_2x2([int(v) for v in b]), atol=1e-12)


def _empirical(x, statistic, block_size, keys=3000):
  """Observed block values of the library's own Huang 2022 ciphertexts under `keys` keys."""
  many = np.repeat(x[None], keys, axis=0)
  c = np.asarray(ciphers.SCHEMES["huang2022"].encrypt_per_image(
      jax.random.key(7), many, block_size=block_size, statistic=statistic))
  obs = c[:, ::block_size, ::block_size, :].reshape(keys, -1)  # [keys, nb * C]
  return obs


@pytest.mark.parametrize("channels,statistic,block_size", [
    (1, "median", 2), (3, "median", 2), (1, "mean", 4), (1, "median", 4), (1, "max", 4)])
def test_tables_match_the_library_ciphertexts(channels, statistic, block_size):
  """Every value the cipher outputs is possible under the table, and over 3000 keys the
  observed distribution agrees with it (Kolmogorov-Smirnov distance below 0.05, about the
  0.1% critical value for 3000 draws against the sampled 4096-draw tables)."""
  x = _images(1, channels, size=8, seed=5)[0]
  table = linkage.outcome_table(x, block_size=block_size, statistic=statistic)
  obs = _empirical(x, statistic, block_size)
  for j in range(obs.shape[1]):
    block = j // channels
    freq = np.bincount(obs[:, j], minlength=256) / len(obs)
    assert table[block][freq > 0].min() > 0  # nothing observed is impossible
    assert np.abs(np.cumsum(freq) - np.cumsum(table[block])).max() < 0.05, j
  # A wrong image's table does not fit: the same test fails for a flat grey image.
  other = linkage.outcome_table(np.full_like(x, 120), block_size=block_size,
                                statistic=statistic)
  freq = np.bincount(obs[:, 0], minlength=256) / len(obs)
  assert np.abs(np.cumsum(freq) - np.cumsum(other[0])).max() > 0.05


def test_max_table_is_exact_beyond_enumeration():
  """4x4 grey blocks (65536 patterns) take the CDF path for max: brute force agrees."""
  x = _images(1, 1, size=4, seed=9)[0]
  table = linkage.outcome_table(x, block_size=4, statistic="max")[0]
  v = x.reshape(-1).astype(int)
  brute = np.zeros(256)
  for mask in itertools.product([0, 1], repeat=16):
    brute[max(255 - a if m else a for a, m in zip(v, mask))] += 1
  np.testing.assert_allclose(table, brute / brute.sum(), atol=1e-12)


def test_morph_keeps_every_chunk_norm():
  x = _images(5, 3, size=8)
  for copies in (1, 4, 64):
    key = ciphers.SCHEMES["morph"].generate_key(jax.random.key(copies), image_shape=x.shape[1:],
                                                copies=copies)
    c = np.asarray(ciphers.SCHEMES["morph"].encrypt(key, x))
    norms = linkage.chunk_norms(x, copies=copies)
    assert norms.shape == (5, copies)
    np.testing.assert_allclose(linkage.chunk_norms(c, copies=copies), norms, rtol=1e-5)
    # by hand: copies = 1 is the norm of the whole image / 255
    if copies == 1:
      np.testing.assert_allclose(norms[:, 0], np.sqrt(((x / 255.0) ** 2).sum(axis=(1, 2, 3))))
  with pytest.raises(ValueError, match="float vectors or"):
    linkage.chunk_norms(x.astype(np.float32), copies=1)


@pytest.mark.parametrize("scheme", linkage.SCHEMES)
def test_linkage_names_every_planted_victim(scheme):
  from lie_jax import data
  x = data.load_dataset("pneumoniamnist").test.images[:30]
  options = ({"block_size": 4} if scheme in ("huang2022",) else {"copies": 4}
             if scheme == "morph" else OPTIONS[scheme])
  record = ciphers.get_scheme(scheme)
  c = np.asarray(record.encrypt_per_image(jax.random.key(1), x, **options)
                 if record.per_image_keys else
                 record.encrypt(record.generate_key(jax.random.key(1), image_shape=x.shape[1:],
                                                    **options), x))
  recovered, scores = linkage.attack(c, x, scheme=scheme, options=options)
  assert scores.shape == (30, 30)
  ranks = reidentification.true_ranks(scores)
  assert (ranks == 1).all()
  np.testing.assert_array_equal(recovered, x)


def test_images_one_key_maps_onto_each_other_cannot_be_told_apart():
  """A candidate that is the victim with its blocks swapped is in the same orbit for the ViT
  cipher: a tie, counted against the attacker (rank 2), while LE (no block scrambling) tells
  them apart."""
  x = _images(3, 1, size=8, seed=2)
  swapped = x[0].copy()
  swapped[:4, :4], swapped[:4, 4:] = x[0][:4, 4:].copy(), x[0][:4, :4].copy()
  candidates = np.concatenate([x, swapped[None]])
  for scheme, rank in (("vit", 2), ("le", 1)):
    c = np.asarray(ciphers.get_scheme(scheme).encrypt_per_image(
        jax.random.key(0), x, block_size=4))
    scores = linkage.scores(c, candidates, scheme=scheme, options={"block_size": 4})
    assert reidentification.true_ranks(scores)[0] == rank, scheme


def test_the_suite_runs_linkage_with_per_image_keys():
  from lie_jax import data
  x = data.load_dataset("pneumoniamnist").test.images[:20]
  r = suite.run_attack("linkage", "huang2022", x, key=jax.random.key(0), per_image_keys=True)
  assert r.reid_top1 == 1.0 and r.reid_chance_top1 == 0.05 and r.breaks
  assert r.exact_fraction == 0.0  # it names scans, it does not decrypt them
  assert r.details == {"candidates": 20, "method": "likelihood"}
  assert "linkage" in suite.applicable_attacks("etc")
  assert "linkage" in suite.applicable_attacks("morph")


def test_rates_from_scores_by_hand():
  r = reidentification.rates_from_scores(np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]),
                                         ks=(1, 2))
  # Row 0: a wrong candidate scores higher (rank 2); row 1: a tie (rank 2, pessimistic).
  assert r["ranks"].tolist() == [2, 2]
  assert r["top1"] == 0.0 and r["top2"] == 1.0 and r["chance_top1"] == pytest.approx(1 / 3)


def test_bad_input_is_refused():
  x = _images(2, 1, size=8)
  with pytest.raises(ValueError, match="linkage covers"):
    linkage.scores(x, x, scheme="nope")
  with pytest.raises(ValueError, match="not 'ffx'"):
    linkage.scores(x, x, scheme="blockwise", options={"transforms": ("ffx",)})
  with pytest.raises(ValueError, match="differ in shape"):
    linkage.scores(x, _images(2, 1, size=4), scheme="pe")
  with pytest.raises(ValueError, match="not divisible by block_size=3"):
    linkage.scores(x, x, scheme="etc", options={"block_size": 3})
  with pytest.raises(ValueError, match="uint8"):
    linkage.scores(x.astype(np.float32), x, scheme="pe")
  with pytest.raises(ValueError, match="its likelihood"):
    linkage.invariants(x, scheme="huang2022")


@pytest.mark.slow
def test_the_benchmark_links_exact_and_altered_copies(tmp_path, monkeypatch):
  import json
  import sys

  from benchmarks import linkage as bench

  x = np.random.default_rng(1).integers(0, 256, (6, 8, 8, 1), np.uint8)
  versions = bench.copies(x)
  assert set(versions) == set(bench.COPIES)
  assert np.array_equal(versions["exact"], x)
  for name in ("noise_2", "jpeg_90", "shift_1", "resized_90", "reacquired"):
    diff = versions[name].astype(int) - x
    assert diff.any() and versions[name].shape == x.shape and versions[name].dtype == np.uint8
  assert np.abs(versions["noise_2"].astype(int) - x).max() <= 2
  # shift_1 by hand: pixel (i, j) of the copy is pixel (max(i-1, 0), max(j-1, 0)).
  rows = np.maximum(np.arange(8) - 1, 0)
  np.testing.assert_array_equal(versions["shift_1"], x[:, rows][:, :, rows])
  # resized_90 keeps a flat image flat and a left-right ramp increasing
  flat = np.full((1, 20, 20, 3), 77, np.uint8)
  np.testing.assert_array_equal(bench.resized(flat), flat)
  ramp = np.tile(np.arange(0, 200, 10, dtype=np.uint8)[None, None, :, None], (1, 20, 1, 1))
  assert (np.diff(bench.resized(ramp)[0, 10, :, 0].astype(int)) >= 0).all()
  from tests.security_eval_set_test import _write_eval_set
  path, _ = _write_eval_set(tmp_path, 5)  # 5 grey and 2 RGB 32x32 tiles
  out = tmp_path / "linkage.json"
  monkeypatch.setattr(sys, "argv", ["linkage", "--num-images", "12", "--eval-set", path,
                                    "--out", str(out)])
  bench.main()
  result = json.loads(out.read_text())
  rows = result["results"]
  assert [r["scheme"] for r in rows] == 3 * list(linkage.SCHEMES)
  assert result["command"] == "python -m benchmarks.linkage --eval-set NPZ"
  assert all(r["top1_exact"] == 1.0 for r in rows)
  assert [r["chance_top1"] for r in rows[::len(linkage.SCHEMES)]] == pytest.approx(
      [1 / 12, 1 / 5, 1 / 2])
  assert rows[len(linkage.SCHEMES) + 2]["options"] == {"block_size": 16}  # etc on the tiles
  # The fake tiles are no source's: no second views, and the file says which were tried.
  assert result["nearby"] == [name for name, _ in bench.NEARBY]
  assert result["nearby_results"] == []


def test_reacquired_copy_by_hand():
  from benchmarks import linkage as bench

  x = np.random.default_rng(2).integers(0, 256, (5, 16, 16, 3), np.uint8)
  # Nothing drawn: the images come back unchanged.
  still = bench.reacquired(x, crop=1.0, gamma=0.0, gain=0.0, offset=0.0, sigma=0.0)
  np.testing.assert_array_equal(still, x)
  # Offset alone: every pixel of an image moves by one constant, within +-offset, and the
  # images get different constants (one draw each).
  lifted = bench.reacquired(x, crop=1.0, gamma=0.0, gain=0.0, offset=8.0, sigma=0.0)
  inner = (x > 10) & (x < 245)  # not clipped
  means = []
  for a, b, m in zip(lifted.astype(int), x.astype(int), inner):
    d = np.unique((a - b)[m])
    assert len(d) <= 2 and np.abs(d).max() <= 8 and np.ptp(d) <= 1  # one offset, rounded
    means.append((a - b)[m].mean())
  assert np.abs(means).max() > 0.5 and np.ptp(means) > 0.5
  # Gamma alone keeps each image's pixel order and changes its values.
  curved = bench.reacquired(x, crop=1.0, gamma=0.2, gain=0.0, offset=0.0, sigma=0.0)
  for a, b in zip(curved, x):
    order = np.argsort(b.ravel(), kind="stable")
    assert (np.diff(a.ravel()[order].astype(int)) >= 0).all()
  assert not np.array_equal(curved, x)
  # Crop alone: a left-to-right ramp (0, 10, ..., 240) stays increasing, and a window that
  # starts inside it makes the first column brighter than 0 for some image.
  ramp = np.tile(np.arange(0, 250, 10, dtype=np.uint8)[None, None, :, None], (4, 25, 1, 1))
  zoomed = bench.reacquired(ramp, crop=0.8, gamma=0.0, gain=0.0, offset=0.0, sigma=0.0)
  assert (np.diff(zoomed[:, 12, :, 0].astype(int), axis=1) >= 0).all()
  assert (zoomed[:, 12, 0, 0] > 0).any() and not np.array_equal(zoomed, ramp)
  # Seeded.
  np.testing.assert_array_equal(bench.reacquired(x, 3), bench.reacquired(x, 3))
  assert not np.array_equal(bench.reacquired(x, 3), bench.reacquired(x, 4))


def test_nearby_views_are_linked_by_tile_name():
  from benchmarks import eval_set as es
  from benchmarks import linkage as bench

  rng = np.random.default_rng(5)
  gray = rng.integers(0, 256, (4, 16, 16, 1), np.uint8)
  rgb = rng.integers(0, 256, (3, 16, 16, 3), np.uint8)
  subsets = {"gray": es.Subset(gray, np.array(["s"] * 4), np.array(["g0", "g1", "g2", "g3"])),
             "rgb": es.Subset(rgb, np.array(["r"] * 3), np.array(["c0", "c1", "c2"]))}
  # Views of three grey tiles (exact copies, so every scheme links them all) and of one
  # RGB tile (under two tiles: that subset is skipped).
  views = {"same": {"g3": gray[3], "g0": gray[0], "g2": gray[2], "c1": rgb[1]}}
  rows = bench.measure_nearby(subsets, views, block_size=4)
  assert [r["scheme"] for r in rows] == list(linkage.SCHEMES)
  assert {r["data"] for r in rows} == {"eval set gray tiles (3)"}
  assert all(r["top1"] == 1.0 and r["chance_top1"] == pytest.approx(1 / 3) for r in rows)
  # Views swapped between g0 and g2 (one pixel changed, so no view is a copy of a tile):
  # only g3 is linked to its own view.
  def bump(x):
    y = x.copy()
    y[0, 0, 0] = (int(y[0, 0, 0]) + 1) % 256
    return y
  swapped = {"swap": {"g0": bump(gray[2]), "g2": bump(gray[0]), "g3": bump(gray[3])}}
  rows = bench.measure_nearby(subsets, swapped, block_size=4)
  assert len(rows) == len(linkage.SCHEMES) and rows[0]["left_out_identical"] == 0
  assert all(r["top1"] == pytest.approx(1 / 3) for r in rows if r["scheme"] != "morph")
  # Indistinguishable candidates are left out: g0 and g2 share a view, g3's view is g1 itself.
  twins = {"twins": {"g0": gray[1], "g2": gray[1], "g3": gray[1], "g1": 255 - gray[1]}}
  np.testing.assert_array_equal(bench.distinct_views(
      gray, np.stack([twins["twins"][n] for n in ("g0", "g1", "g2", "g3")])), [1])
  assert bench.measure_nearby(subsets, twins, block_size=4) == []  # one tile left: no row
  twins["twins"]["g3"] = gray[0]  # g3 -> a copy of g0 (left out), g1 -> distinct
  twins["twins"]["g0"] = gray[3] // 2
  rows = bench.measure_nearby(subsets, twins, block_size=4)
  assert {(r["data"], r["left_out_identical"]) for r in rows} == {("eval set gray tiles (2)", 2)}


def test_security_md_quotes_the_linkage_results_file():
  import json
  import pathlib
  import re

  from benchmarks import linkage as bench

  root = pathlib.Path(__file__).resolve().parents[1]
  rows = json.loads((root / "benchmarks" / "results" / "linkage.json").read_text())["results"]
  text = (root / "docs" / "SECURITY.md").read_text()
  section = text.split("## Linkage: the attacker who holds the scans", 1)[1].split("\n## ")[0]
  cells = len(bench.COPIES)
  quoted = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|" + r" ([\d.]+) \|" * cells + "$",
                      section, re.M)
  assert len(quoted) == len(rows) == 3 * len(linkage.SCHEMES)  # X-rays, gray and RGB tiles
  assert [q[1].split(" ")[0] for q in quoted[:len(linkage.SCHEMES)]] == [
      {"vit": "ViT", "blockwise": "block-wise", "huang2022": "Huang", "morph": "morph"}.get(
          s, s.upper() if s != "etc" else "EtC") for s in linkage.SCHEMES]
  for (_, _, *cells), row in zip(quoted, rows):
    assert [float(c) for c in cells] == pytest.approx(
        [100 * row[f"top1_{c}"] for c in bench.COPIES], abs=0.05)


def test_security_md_quotes_the_second_views_of_the_results_file():
  import json
  import pathlib
  import re

  from benchmarks import linkage as bench

  root = pathlib.Path(__file__).resolve().parents[1]
  result = json.loads((root / "benchmarks" / "results" / "linkage.json").read_text())
  assert result["nearby"] == [name for name, _ in bench.NEARBY]
  text = (root / "docs" / "SECURITY.md").read_text()
  section = text.split("## Linkage: the attacker who holds the scans", 1)[1].split("\n## ")[0]
  quoted = re.findall(r"^\| (template slice|framed)[^|]*\| (gray|RGB) \((\d+), chance ([\d.]+)\) \|"
                      + r" ([\d.]+) \|" * len(linkage.SCHEMES) + "$", section, re.M)
  groups: dict = {}
  for r in result["nearby_results"]:
    groups.setdefault((r["view"], r["data"]), {})[r["scheme"]] = r
  assert len(quoted) == len(groups) == 4  # slices 1 and 2 mm (gray), 8 px (gray, RGB)
  labels = {"slice_1mm": "template slice 1 mm further", "slice_2mm": "template slice 2 mm "
            "further", "crop_8px": "framed 8 px further"}
  quoted_labels = re.findall(r"^\| ((?:template slice|framed)[^|]*?) \|", section, re.M)
  assert quoted_labels == [labels[view] for view, _ in groups]
  for (_, subset, n, chance, *cells), ((view, data_name), by_scheme) in zip(quoted,
                                                                             groups.items()):
    assert data_name == f"eval set {subset.lower()} tiles ({n})"
    assert float(chance) == pytest.approx(100 / int(n), abs=0.05)
    assert [float(c) for c in cells] == pytest.approx(
        [100 * by_scheme[s]["top1"] for s in linkage.SCHEMES], abs=0.05)


def test_mean_table_is_exact_by_convolution():
  """Larger grey blocks' mean (beyond enumeration): the convolution equals a brute force
  over all 2**16 negation patterns of a 4x4 block."""
  x = _images(1, 1, size=4, seed=4)[0]
  table = linkage.outcome_table(x, block_size=4, statistic="mean")[0]
  v = x.reshape(-1).astype(int)
  brute = np.zeros(256)
  for mask in itertools.product([0, 1], repeat=16):
    total = sum(255 - a if m else a for a, m in zip(v, mask))
    brute[(2 * total + 16) // 32] += 1
  np.testing.assert_allclose(table, brute / brute.sum(), atol=1e-12)


def test_bad_option_values_are_refused_as_the_ciphers_refuse_them():
  x = _images(2, 1, size=8)
  with pytest.raises(ValueError, match="transforms"):
    linkage.scores(x, x, scheme="blockwise", options={"transforms": ("shufle",)})
  with pytest.raises(ValueError, match="statistic"):
    linkage.scores(x, x, scheme="huang2022", options={"statistic": "bogus"})
  with pytest.raises(ValueError, match="statistic"):
    linkage.outcome_table(x[0], block_size=2, statistic="bogus")
  with pytest.raises(ValueError, match="block_size"):
    linkage.outcome_table(x[0], block_size=0)
  with pytest.raises(ValueError):
    linkage.scores(x, x, scheme="etc", options={"block_size": 0})
  with pytest.raises(ValueError, match="copies must be a positive integer"):
    linkage.scores(np.zeros((2, 64), np.float32), x, scheme="morph", options={"copies": 0})
  with pytest.raises(ValueError, match=r"\[M, 64\] vectors"):
    linkage.scores(np.zeros((2, 256), np.float32), x, scheme="morph", options={"copies": 4})


def test_chunking_does_not_change_scores(monkeypatch):
  x = _images(7, 1, size=8)
  c = np.asarray(ciphers.SCHEMES["vit"].encrypt_per_image(jax.random.key(0), x, block_size=4))
  full = linkage.scores(c, x, scheme="vit", options={"block_size": 4})
  monkeypatch.setattr(linkage, "MAX_ELEMENTS", 37)
  np.testing.assert_array_equal(linkage.scores(c, x, scheme="vit", options={"block_size": 4}),
                                full)


def test_security_md_quotes_the_learned_linkage_results_file():
  import json
  import pathlib

  from benchmarks import learned_linkage as bench

  root = pathlib.Path(__file__).resolve().parents[1]
  result = json.loads((root / "benchmarks" / "results" / "learned_linkage.json").read_text())
  text = (root / "docs" / "SECURITY.md").read_text()
  section = text.split("## Linkage: the attacker who holds the scans", 1)[1].split("\n## ")[0]
  assert [r["scheme"] for r in result["results"]] == list(learned_linkage.SCHEMES)
  assert bench.HEADER in section
  # The same ciphertexts and copies as linkage.json's X-ray rows: the exact attack agrees.
  exact = {r["scheme"]: r for r in json.loads(
      (root / "benchmarks" / "results" / "linkage.json").read_text())["results"]
      if r["data"].startswith("pneumoniamnist")}
  for row in result["results"]:
    assert bench.format_row(row) in section
    for copy in bench.linkage_benchmark.COPIES:
      assert row[f"exact_{copy}"] == exact[row["scheme"]][f"top1_{copy}"], (row["scheme"], copy)


def test_security_md_quotes_the_learned_linkage_results_at_224():
  import json
  import pathlib

  from benchmarks import learned_linkage as bench

  root = pathlib.Path(__file__).resolve().parents[1]
  result = json.loads((root / "benchmarks" / "results" / "learned_linkage_224.json").read_text())
  text = (root / "docs" / "SECURITY.md").read_text()
  section = text.split("## Linkage: the attacker who holds the scans", 1)[1].split("\n## ")[0]
  assert bench.EVAL_SET_HEADER in section
  assert {r["scheme"] for r in result["results"]} == set(bench.EVAL_SET_SCHEMES)
  linkage_rows = json.loads((root / "benchmarks" / "results" / "linkage.json").read_text())
  near = {(r["view"], r["data"], r["scheme"]): r["top1"] for r in linkage_rows["nearby_results"]}
  copies = {(r["data"], r["scheme"]): r["top1_reacquired"] for r in linkage_rows["results"]}
  for row in result["results"]:  # the same ciphertexts and candidates as linkage.json's
    assert bench.format_eval_set_row(row) in section
    exact = (copies[(row["data"], row["scheme"])] if row["view"] == "reacquired" else
             near[(row["view"], row["data"], row["scheme"])])
    assert row["exact"] == exact, (row["view"], row["data"], row["scheme"])


def test_options_are_checked_with_a_key_once_per_setting(monkeypatch):
  """The throwaway key that checks a setting is drawn once per (scheme, options, shape); a
  refused setting is refused on every call."""
  drawn = []
  real_key = jax.random.key
  monkeypatch.setattr(jax.random, "key", lambda seed: drawn.append(seed) or real_key(seed))
  x = _images(2, 1, size=12)
  for _ in range(3):
    linkage.invariants(x, scheme="etc", options={"block_size": 6})
  assert len(drawn) == 1
  linkage.invariants(x, scheme="etc", options={"block_size": 4})  # another setting: checked
  assert len(drawn) == 2
  for _ in range(2):
    with pytest.raises(ValueError, match="block_size=5"):
      linkage.invariants(x, scheme="etc", options={"block_size": 5})
