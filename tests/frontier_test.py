"""benchmarks/frontier.py: configurations, the best attack, the target and one verdict each,
from hand-made results files."""

from benchmarks import frontier


def _acc(run, accuracy, seed=0):
  return {"run": run if not seed else f"{run},seed={seed}", "test_accuracy": accuracy,
          "test_auc": 0.9, "best_val_accuracy": 0.9, "steps": 10, "wall_s": 1.0, "seed": seed}


def _attack(scheme, attack, per_image, **scores):
  row = {"scheme": scheme, "attack": attack, "per_image_keys": per_image,
         "block_size": None if scheme == "pe" else 4, "ssim_mean": 0.3, "exact_fraction": 0.0,
         "reid_top1": 0.005, "reid_chance_top1": 0.005, "prior_ssim_mean": 0.62,
         "known_pairs_needed": None, "chosen_plaintexts_needed": None}
  return {**row, **scores}


ACCURACY = {"results": [_acc("none,none", 0.86), _acc("none,none", 0.84, seed=1),
                        _acc("le,block", 0.86), _acc("le,block", 0.86, seed=1),
                        _acc("pe,pixel", 0.85), _acc("pe,pixel", 0.83, seed=1),
                        _acc("le,block,keys=per_image", 0.60)]}
SECURITY = {"data": "test", "results": [
    _attack("le", "known_plaintext_exact", False, exact_fraction=1.0, ssim_mean=1.0,
            reid_top1=1.0, known_pairs_needed=1, chosen_plaintexts_needed=3),
    _attack("le", "inverse_network", False, ssim_mean=0.99, reid_top1=0.9),
    _attack("pe", "fr_basic", True, ssim_mean=0.2, reid_top1=0.01),
    _attack("pe", "gan", True, ssim_mean=0.55, reid_top1=0.02),
    _attack("le", "gan", True, ssim_mean=0.5, reid_top1=0.3)]}


def test_configurations_name_runs_as_the_accuracy_benchmark_does():
  runs = {(c["scheme"], c["per_image_keys"]): c["run"] for c in frontier.configurations(None)}
  assert runs[("le", False)] == "le,block"
  assert runs[("le", True)] == "le,block,keys=per_image"
  assert runs[("pe", True)] == "pe,pixel"  # PE is defined with per-image keys
  assert runs[("pe", False)] == "pe,pixel,keys=shared"
  assert ("morph", True) not in runs
  # Block sizes are set beside each scheme's own; the ViT's plain baseline follows the patch.
  sized = {c["run"] for c in frontier.configurations([7]) if c["scheme"] == "le"}
  assert sized == {"le,block", "le,block,block=7", "le,block,keys=per_image",
                   "le,block,keys=per_image,block=7"}
  huang = {c["block_size"] for c in frontier.configurations([7, 14])
           if c["scheme"] == "huang2022"}
  assert huang == {2, 7}  # its filter is defined for 2, 4 and 7 only
  assert frontier.plain_run("vit", 7) == "none,none,vit,block=7"
  assert frontier.plain_run("vit", 4) == "none,none,vit"
  assert frontier.plain_run("le", 7) == "none,none"
  assert frontier.configurations([2, 7]) == frontier.configurations()  # the default: 2 and 7
  import pytest
  with pytest.raises(ValueError, match="does not divide"):
    frontier.configurations([5])


def test_rows_pick_the_strongest_attack_and_judge_the_target():
  rows = {(r["scheme"], r["per_image_keys"]): r
          for r in frontier.frontier_rows(ACCURACY, SECURITY, None)}
  le = rows[("le", False)]
  assert le["best_attack"] == "known_plaintext_exact" and le["exact"]
  assert le["accuracy_mean"] == 0.86 and le["seeds"] == 2
  assert le["known_pairs_needed"] == 1 and le["chosen_plaintexts_needed"] == 3
  assert frontier.holds(le) is False
  assert le["verdict"] == ("le (shared key, B=4) breaks: 1 known images (or 3 chosen ones) "
                           "recover the key and decrypt every other image exactly.")
  pe = rows[("pe", True)]
  # Plain 0.85 (mean of 0.86, 0.84), PE 0.84: 1 point; re-id 2% against chance 0.5% + 5;
  # best SSIM 0.55 below the mean image's 0.62.
  assert pe["best_attack"] == "gan" and pe["best_ssim"] == 0.55
  assert frontier.holds(pe) is True
  assert "holds against every attack run here" in pe["verdict"]
  le_pi = rows[("le", True)]
  assert frontier.holds(le_pi) is False
  assert "tells whose scan it is 30% of the time (chance 0.5%)" in le_pi["verdict"]
  assert "it costs 25.0 points of accuracy" in le_pi["verdict"]
  assert frontier.holds(rows[("etc", False)]) is None  # nothing measured
  assert rows[("etc", False)]["verdict"].endswith("attacks not measured yet.")
  text = frontier.markdown(list(rows.values()), ACCURACY, SECURITY)
  assert ("| pe (per-image keys) | 84.0 ± 1.4 (2) | 85.0 (`none,none`) | gan | 2.0 (0.5) | "
          "0.55 (0.62) | – | – | – | – | – / – | **yes** |") in text


def test_each_configuration_is_compared_with_its_own_backbone_on_plain_images():
  accuracy = {"results": ACCURACY["results"] + [_acc("none,none,vit", 0.80),
                                                _acc("vit,none,keys=per_image", 0.79)]}
  security = {"results": SECURITY["results"] + [
      {**_attack("vit", "gan", True, ssim_mean=0.5, reid_top1=0.01), "block_size": 4}]}
  rows = {(r["scheme"], r["per_image_keys"]): r
          for r in frontier.frontier_rows(accuracy, security, None)}
  vit = rows[("vit", True)]
  assert vit["plain_run"] == "none,none,vit" and vit["plain_accuracy_mean"] == 0.80
  assert vit["best_plain_accuracy_mean"] == 0.85  # none,none: mean of 0.86 and 0.84
  assert frontier.holds(vit) is True  # 1 point below the plain ViT, 6 below the plain ResNet
  best = frontier.strongest(list(rows.values()))
  assert (best["scheme"], best["per_image_keys"]) == ("vit", True)  # re-id 1% beats pe's 2%
  assert "(the best plain model, `none,none`, reaches 85.0%)" in frontier.markdown(
      list(rows.values()), accuracy, security)


def test_strongest_is_the_weakest_best_attack_within_the_accuracy_margin():
  rows = frontier.frontier_rows(ACCURACY, SECURITY, None)
  best = frontier.strongest(rows)
  # le shared: exact; le per-image: 25 points down; pe per-image: 1 point down, no exact.
  assert (best["scheme"], best["per_image_keys"]) == ("pe", True)
  assert "Strongest within 2 points of plain accuracy" in frontier.markdown(rows, ACCURACY,
                                                                             SECURITY)
  assert ("**pe (per-image keys)**, `pe,pixel`: 84.0% against 85.0% for the same backbone on "
          "plain images; it holds the target.") in frontier.markdown(rows, ACCURACY, SECURITY)
  assert frontier.strongest([r for r in rows if r["scheme"] != "pe"])["scheme"] == "le"


def _jigsaw_mean(scramble, image, neighbour):
  return {"image": image, "scramble": scramble, "neighbour_comparison_global": neighbour}


JIGSAW = {"image_size": 224, "block_size": 16, "means": [
    _jigsaw_mean("etc", "ct", 0.9), _jigsaw_mean("etc", "mr", 0.5),
    _jigsaw_mean("scramble", "ct", 1.0)]}  # block scrambling alone: not a scheme's cell


def test_a_scheme_the_jigsaw_restores_at_224_px_never_holds_nor_becomes_the_default():
  accuracy = {"results": ACCURACY["results"] + [_acc("etc,block,keys=per_image", 0.85)]}
  security = {"results": SECURITY["results"] + [
      _attack("etc", "gan", True, ssim_mean=0.4, reid_top1=0.005)]}
  plain_rows = {(r["scheme"], r["per_image_keys"]): r
                for r in frontier.frontier_rows(accuracy, security, None)}
  # At 28x28 EtC with per-image keys looks best (re-id at chance, no accuracy cost) ...
  assert frontier.holds(plain_rows[("etc", True)]) is True
  assert frontier.strongest(list(plain_rows.values()))["scheme"] == "etc"
  rows = {(r["scheme"], r["per_image_keys"]): r
          for r in frontier.frontier_rows(accuracy, security, None, JIGSAW)}
  etc = rows[("etc", True)]
  # ... but the jigsaw keeps (0.9 + 0.5) / 2 = 70% of the adjacencies at 224 px, any key mode.
  assert etc["jigsaw_scale"]["neighbour"] == 0.7 and etc["broken_at_scale"]
  assert rows[("etc", False)]["broken_at_scale"] and not rows[("pe", True)]["broken_at_scale"]
  assert frontier.holds(etc) is False
  assert ("at 224x224 (16x16 blocks) the jigsaw solver puts back 70% of the block adjacencies "
          "of real scans from the ciphertext alone") in etc["verdict"]
  assert frontier.strongest(list(rows.values()))["scheme"] == "pe"
  assert "| 70.0 | – | – / – | no |" in frontier.markdown(list(rows.values()), accuracy, security)
  assert frontier.jigsaw_at_scale(None) == {}


def _scale_row(scheme, attack, reid, block_size, n=60):
  return {"scheme": scheme, "attack": attack, "per_image_keys": True, "num_images": n,
          "reid_top1": reid, "reid_chance_top1": 1 / n, "options": {"block_size": block_size}}


def test_re_identification_at_224_px_breaks_what_28_px_cannot_show():
  accuracy = {"results": ACCURACY["results"] + [_acc("huang2022,pixel", 0.85),
                                                _acc("huang2022,pixel,block=7", 0.75),
                                                _acc("etc,block,keys=per_image", 0.85)]}
  security = {"results": SECURITY["results"] + [
      {**_attack("huang2022", "fr_basic", True, reid_top1=0.01), "block_size": 2},
      {**_attack("huang2022", "fr_basic", True, reid_top1=0.01), "block_size": 7},
      _attack("etc", "gan", True, reid_top1=0.01)]}
  # 60 victims: chance 1/60 = 1.7%; the margin is 5 points, so 6.7% is the line.
  scale = {"size": 224, "learned_attack_steps": 100, "results": [
      _scale_row("huang2022", "fr_basic", 0.24, 2), _scale_row("huang2022", "gan", 0.30, 2),
      _scale_row("huang2022", "fr_advanced", 0.05, 2),
      _scale_row("etc", "gan", 0.06, 16), _scale_row("pe", "gan", 0.5, None),
      {"scheme": "pe", "attack": None, "per_image_keys": True, "not_run": "x"}]}
  rows = {(r["scheme"], r["per_image_keys"], r["block_size"]): r
          for r in frontier.frontier_rows(accuracy, security, [7], None, scale)}
  huang, huang7 = rows[("huang2022", True, 2)], rows[("huang2022", True, 7)]
  etc, etc7 = rows[("etc", True, 4)], rows[("etc", True, 7)]
  # The best of the three at 224 px, at the same filter size only.
  assert huang["reid_scale"]["attack"] == "gan" and huang["reid_scale"]["reid"] == 0.30
  assert huang["broken_at_scale"] and frontier.holds(huang) is False
  assert ("at 224x224 (60 real tiles, 2x2 blocks) gan tells whose scan it is 30% of the time "
          "(chance 1.7%)") in huang["verdict"]
  assert huang7["reid_scale"] is None and not huang7["broken_at_scale"]
  # A block scheme's 16x16 run speaks for every block size; 6% is within chance + 5 points.
  assert etc["reid_scale"]["reid"] == etc7["reid_scale"]["reid"] == 0.06
  assert not etc["broken_at_scale"] and frontier.holds(etc) is True
  assert "224x224" not in etc["verdict"]
  pe = rows[("pe", True, None)]
  assert pe["broken_at_scale"] and frontier.holds(pe) is False
  # 224 px decides "holds" but does not rank (most rows are not run there): at 28 px etc and
  # huang2022 B=2 tie (1% re-id, SSIM 0.3; etc comes first), pe is at 2%.
  assert frontier.strongest(list(rows.values()))["scheme"] == "etc"
  scale["results"][3]["reid_top1"] = 0.5  # etc broken at 224 px: still first by the ranking
  best = frontier.strongest(frontier.frontier_rows(accuracy, security, [7], None, scale))
  assert best["scheme"] == "etc" and frontier.holds(best) is False
  scale["results"][3]["reid_top1"] = 0.06
  assert rows[("pe", False, None)]["reid_scale"] is None  # shared keys: not run at 224 px
  text = frontier.markdown(list(rows.values()), accuracy, security)
  assert "| 30.0 (1.7) | – / – | no |" in text and "| 6.0 (1.7) | – / – | **yes** |" in text
  assert frontier.reid_at_scale(None) == {}


def test_a_block_schemes_own_blocks_at_224_px_are_reported_beside_the_16x16_break():
  accuracy = {"results": ACCURACY["results"] + [_acc("etc,block,keys=per_image", 0.85)]}
  security = {"results": SECURITY["results"] + [_attack("etc", "gan", True, reid_top1=0.01)]}
  scale = {"size": 224, "learned_attack_steps": 100, "results": [
      _scale_row("etc", "jigsaw", 0.5, 16), _scale_row("etc", "gan", 0.02, 4),
      _scale_row("etc", "inverse_network", 0.03, 4), _scale_row("etc", "linkage", 1.0, 4)]}
  rows = {(r["scheme"], r["per_image_keys"], r["block_size"]): r
          for r in frontier.frontier_rows(accuracy, security, [7], None, scale)}
  etc, etc7 = rows[("etc", True, 4)], rows[("etc", True, 7)]
  # Broken through the 16x16 run; its own 4x4 blocks, where only learned attacks ran, are
  # named with what ran there (linkage is not among them: it is reported apart).
  assert etc["broken_at_scale"] and etc["reid_scale"]["block_size"] == 16
  assert etc["reid_scale_own"]["attacks"] == ["gan", "inverse_network"]
  assert ("in its own 4x4 blocks at 224x224 the attacks run there (gan, inverse_network; not "
          "the jigsaw) tell whose scan it is no better than chance + 5 points (best 3.0%, "
          "chance 1.7%)") in etc["verdict"]
  assert etc7["reid_scale_own"] is None and "in its own" not in etc7["verdict"]
  # Own blocks above the line: no such clause (the row breaks there too).
  scale["results"][2]["reid_top1"] = 0.5
  etc = {(r["scheme"], r["per_image_keys"], r["block_size"]): r for r in
         frontier.frontier_rows(accuracy, security, [7], None, scale)}[("etc", True, 4)]
  assert etc["reid_scale_own"]["reid"] == 0.5 and "in its own" not in etc["verdict"]
  # Own blocks are the blocks that broke it: nothing to set beside the break.
  scale["results"] = [_scale_row("etc", "jigsaw", 0.5, 4), _scale_row("etc", "gan", 0.02, 4)]
  etc = {(r["scheme"], r["per_image_keys"], r["block_size"]): r for r in
         frontier.frontier_rows(accuracy, security, [7], None, scale)}[("etc", True, 4)]
  assert etc["broken_at_scale"] and "in its own" not in etc["verdict"]


def test_the_defaults_follow_the_measured_frontier():
  """Issue 18: `lie-jax encrypt`'s default and the README's first command (lie_jax/configs/quickstart.py)
  are the configuration the committed results show strongest within 2 points of plain."""
  from lie_jax.configs import quickstart
  from lie_jax import owner

  best = frontier.strongest(frontier.rows_from_results()[0])
  assert best is not None
  assert (owner.DEFAULT_SCHEME, owner.DEFAULT_PER_IMAGE_KEYS) == (best["scheme"],
                                                                   best["per_image_keys"])
  config = quickstart.get_config()
  assert (config.cipher.name, config.cipher.per_image_keys) == (best["scheme"],
                                                                best["per_image_keys"])
  assert config.model.adaptation == frontier.ADAPTATION[best["scheme"]]


def test_block_size_rows_sit_beside_the_own_ones_and_the_vit_cipher_is_judged_at_224_px():
  accuracy = {"results": ACCURACY["results"] + [
      _acc("none,none,vit", 0.80), _acc("none,none,vit,block=7", 0.82),
      _acc("vit,none,keys=per_image", 0.79), _acc("vit,none,keys=per_image,block=7", 0.70)]}
  security = {"results": SECURITY["results"] + [
      {**_attack("vit", "gan", True, reid_top1=0.01), "block_size": 4},
      {**_attack("vit", "jigsaw", True, reid_top1=0.01), "block_size": 7}]}
  jig = {"image_size": 224, "block_size": 16, "means": [_jigsaw_mean("vit", "ct", 1.0)]}
  rows = {(r["scheme"], r["per_image_keys"], r["block_size"]): r
          for r in frontier.frontier_rows(accuracy, security, [7], jig)}
  own, seven = rows[("vit", True, 4)], rows[("vit", True, 7)]
  assert (own["plain_run"], own["plain_accuracy_mean"]) == ("none,none,vit", 0.80)
  assert (seven["plain_run"], seven["plain_accuracy_mean"]) == ("none,none,vit,block=7", 0.82)
  assert seven["best_attack"] == "jigsaw" and own["best_attack"] == "gan"
  # At 28 px neither is re-identified, and B=4 is 1 point from its plain ViT: it would hold,
  # but one ciphertext at 224 px gives the ViT cipher away in any key mode.
  assert own["broken_at_scale"] and seven["broken_at_scale"]
  assert frontier.holds(own) is False
  assert ("the pixel-layout attack and the jigsaw solver put back 100% of the block "
          "adjacencies") in own["verdict"]
  assert "it costs 12.0 points of accuracy" in seven["verdict"]
  text = frontier.markdown(list(rows.values()), accuracy, security)
  assert "| vit (per-image keys, B=7) | 70.0 (1) | 82.0 (`none,none,vit,block=7`) |" in text


def test_an_exact_rebuild_without_a_key_is_not_called_key_recovery():
  accuracy = {"results": ACCURACY["results"] + [_acc("vit,none,keys=per_image,block=7", 0.7)]}
  security = {"results": SECURITY["results"] + [
      {**_attack("vit", "chosen_plaintext", True, ssim_mean=0.1, chosen_plaintexts_needed=3),
       "block_size": 7},
      {**_attack("vit", "jigsaw", True, exact_fraction=0.25, ssim_mean=0.7, reid_top1=0.6),
       "block_size": 7}]}
  row = next(r for r in frontier.frontier_rows(accuracy, security, [7])
             if (r["scheme"], r["per_image_keys"], r["block_size"]) == ("vit", True, 7))
  assert row["exact"] and row["chosen_plaintexts_needed"] is None  # no shared key to choose for
  assert "recover the key" not in row["verdict"]
  assert ("jigsaw rebuilds 25% of the images exactly and tells whose scan it is 60% of the "
          "time (chance 0.5%)") in row["verdict"]


def test_the_ciphertext_itself_counts_when_it_identifies_better_than_every_attack():
  accuracy = {"results": ACCURACY["results"] + [_acc("blockwise,block,keys=per_image", 0.85)]}
  security = {"results": SECURITY["results"] + [
      _attack("blockwise", "gan", True, reid_top1=0.3, cipher_reid_top1=0.9),
      _attack("blockwise", "inverse_network", True, reid_top1=0.2, cipher_reid_top1=0.9)]}
  scale = {"size": 224, "results": [
      {**_scale_row("blockwise", "gan", 0.1, 16), "cipher_reid_top1": 1.0},
      {**_scale_row("pe", "gan", 0.5, None), "cipher_reid_top1": 0.03}]}
  rows = {(r["scheme"], r["per_image_keys"]): r
          for r in frontier.frontier_rows(accuracy, security, None, None, scale)}
  block = rows[("blockwise", True)]
  assert (block["best_attack"], block["reid_top1"]) == ("the ciphertext itself", 0.9)
  assert block["reid_scale"]["attack"] == "the ciphertext itself"
  assert "the ciphertext itself tells whose scan it is 90% of the time" in block["verdict"]
  # Where an attack does better, it stays the best (pe: 2% at 28 px, 50% at 224 px).
  pe = rows[("pe", True)]
  assert (pe["best_attack"], pe["reid_top1"]) == ("gan", 0.02)
  assert (pe["reid_scale"]["attack"], pe["reid_scale"]["reid"]) == ("gan", 0.5)
  # An exact recovery is never replaced.
  assert rows[("le", False)]["best_attack"] == "known_plaintext_exact"


def test_linkage_is_reported_apart_breaks_the_target_and_does_not_rank():
  """A linkage row (the attacker names the scan it holds) never becomes the best attack, but
  a configuration it links beyond chance + 5 points does not hold, at 28 or 224 px."""
  security = {"data": "test", "results": SECURITY["results"] + [
      _attack("pe", "linkage", True, ssim_mean=1.0, reid_top1=1.0)]}
  scale = {"size": 224, "results": [
      {"scheme": "pe", "attack": "linkage", "per_image_keys": True, "reid_top1": 0.9,
       "reid_chance_top1": 0.016, "cipher_reid_top1": 0.0, "num_images": 62, "options": {}},
      {"scheme": "pe", "attack": "gan", "per_image_keys": True, "reid_top1": 0.02,
       "reid_chance_top1": 0.016, "cipher_reid_top1": 0.0, "num_images": 62, "options": {}}]}
  rows = {(r["scheme"], r["per_image_keys"]): r
          for r in frontier.frontier_rows(ACCURACY, security, None, scale_result=scale)}
  pe = rows[("pe", True)]
  assert pe["best_attack"] == "gan" and pe["reid_top1"] == 0.02  # linkage does not rank
  assert pe["linkage"] == {"reid": 1.0, "chance": 0.005}
  assert pe["linkage_scale"]["reid"] == 0.9 and pe["reid_scale"]["attack"] == "gan"
  assert pe["linked"] and not pe["broken_at_scale"] and frontier.holds(pe) is False
  assert ("an attacker who holds the scans links 100% of the ciphertexts to them at 28x28 "
          "(chance 0.5%) and 90% at 224x224 (chance 1.6%), from the ciphertext alone "
          "(linkage)") in pe["verdict"]
  assert pe["best_ssim"] == 0.55  # the scan linkage names is not a reconstruction
  text = frontier.markdown(list(rows.values()), ACCURACY, security)
  assert "| 100.0 / 90.0 | no |" in text
  # Without the linkage rows the same configuration holds: linkage alone decided.
  plain = frontier.frontier_rows(ACCURACY, SECURITY, None)
  assert frontier.holds(next(r for r in plain if r["scheme"] == "pe" and r["per_image_keys"]))


def test_many_keys_per_known_image_count_among_the_attacks():
  """benchmarks/key_views.py's rows with several keys per known image join the configuration's
  attacks (and can make it break); their one-key rows repeat frontier_security.json's."""
  views = {"results": [
      {**_attack("pe", "inverse_network", True, ssim_mean=0.9, reid_top1=0.9), "key_views": 1},
      {**_attack("pe", "inverse_network", True, ssim_mean=0.7, reid_top1=0.6), "key_views": 32}]}
  assert [r["attack"] for r in frontier.key_views_attacks(views)] == [
      "inverse_network, 32 keys per known image"]
  assert frontier.key_views_attacks(None) == []
  before = next(r for r in frontier.frontier_rows(ACCURACY, SECURITY, None)
                if (r["scheme"], r["per_image_keys"]) == ("pe", True))
  after = next(r for r in frontier.frontier_rows(ACCURACY, SECURITY, None,
                                                 key_views_result=views)
               if (r["scheme"], r["per_image_keys"]) == ("pe", True))
  assert frontier.holds(before) is True
  assert after["best_attack"] == "inverse_network, 32 keys per known image"
  assert after["reid_top1"] == 0.6 and after["best_ssim"] == 0.7
  assert frontier.holds(after) is False
  assert "inverse_network, 32 keys per known image tells whose scan it is 60%" in after["verdict"]


def test_frontier_md_is_what_the_committed_results_give():
  """docs/FRONTIER.md is `python -m benchmarks.frontier`'s rendering of the results files."""
  import os

  rows, acc, sec = frontier.rows_from_results()
  with open(os.path.join(frontier.DOCS, "FRONTIER.md")) as f:
    assert frontier.markdown(rows, acc, sec) == f.read()
  huang = next(r for r in rows if (r["scheme"], r["per_image_keys"], r["block_size"])
               == ("huang2022", True, 2))
  assert huang["reid_scale"]["attack"] == "inverse_network, 32 keys per known image"


def test_many_keys_per_known_tile_join_the_224_px_attacks_on_the_same_tiles():
  scale = {"data": "tiles A", "size": 224, "learned_attack_steps": 100, "results": [
      {**_attack("pe", "inverse_network", True, reid_top1=0.5), "reid_chance_top1": 0.02,
       "num_images": 50},
      {**_attack("pe", "linkage", True, reid_top1=1.0), "reid_chance_top1": 0.02}]}
  views = {"data": "tiles A", "results": [
      {**_attack("pe", "inverse_network", True, reid_top1=0.4), "reid_chance_top1": 0.02,
       "key_views": 1, "steps": 300},
      {**_attack("pe", "inverse_network", True, reid_top1=0.6), "reid_chance_top1": 0.02,
       "key_views": 32, "steps": 800}]}
  key = ("pe", True, None)
  merged = frontier.reid_at_scale(scale, key_views_result=views)[key]
  assert (merged["attack"], merged["reid"], merged["steps"], merged["size"]) == (
      "inverse_network, 32 keys per known image", 0.6, 800, 224)
  assert merged["attacks"] == ["inverse_network", "inverse_network, 32 keys per known image"]
  # Other tiles, or no security run to compare with: the key-views rows are not used.
  for other in ({**views, "data": "tiles B"}, {"results": views["results"]}):
    assert frontier.reid_at_scale(scale, key_views_result=other)[key]["reid"] == 0.5
  assert frontier.reid_at_scale(None, key_views_result=views) == {}
  # Linkage is its own column: the key-views rows do not enter it.
  assert frontier.reid_at_scale(scale, linkage=True, key_views_result=views)[key]["reid"] == 1.0
  row = next(r for r in frontier.frontier_rows(ACCURACY, SECURITY, None, scale_result=scale,
                                               scale_key_views_result=views)
             if (r["scheme"], r["per_image_keys"]) == ("pe", True))
  assert row["reid_scale"]["reid"] == 0.6 and row["broken_at_scale"]
  assert "inverse_network, 32 keys per known image tells whose scan it is 60%" in row["verdict"]


def test_results_files_that_are_not_results_are_left_out_with_a_line(tmp_path, monkeypatch,
                                                                     capsys):
  """Results files are untrusted input: a damaged optional one is named and left out."""
  garbled, listed = tmp_path / "garbled.json", tmp_path / "listed.json"
  garbled.write_text('{"results": [')
  listed.write_text("[1, 2]")
  monkeypatch.setattr(frontier, "KEY_VIEWS_224_OUT", str(garbled))
  rows = {(r["scheme"], r["per_image_keys"], r["block_size"]): r
          for r in frontier.rows_from_results()[0]}
  assert f"{garbled}: not a results file (JSONDecodeError); not used" in capsys.readouterr().out
  assert rows["huang2022", True, 2]["reid_scale"]["attack"] == "inverse_network"
  monkeypatch.setattr(frontier, "SCALE_SECURITY_OUT", str(listed))
  monkeypatch.setattr(frontier, "KEY_VIEWS_224_OUT", str(tmp_path / "absent.json"))
  rows = {(r["scheme"], r["per_image_keys"], r["block_size"]): r
          for r in frontier.rows_from_results()[0]}
  assert f"{listed}: not a results file (no list of results); not used" in (
      capsys.readouterr().out)
  assert rows["huang2022", True, 2]["reid_scale"] is None
  # Key-view rows that are not rows, or whose key count is not a count, are skipped.
  views = {"results": [None, {"attack": "inverse_network", "key_views": "32"},
                       {"attack": "inverse_network", "key_views": True},
                       {"scheme": "pe", "attack": "inverse_network", "key_views": 2}]}
  assert [r["key_views"] for r in frontier.key_views_attacks(views)] == [2]
