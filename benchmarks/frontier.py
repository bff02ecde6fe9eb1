"""The security/utility frontier: every trainable configuration, its accuracy against its best attack.

For every scheme x {shared key, per-image keys} x block size that trains
(`configurations`), puts side by side
  - its test accuracy with its adaptation layer (benchmarks/results/accuracy.json, made by
    `python -m benchmarks.accuracy`: mean and spread over the seeds), next to plain images;
  - its best attack (benchmarks/results/frontier_security.json): the highest top-1
    re-identification rate over every attack that applies (with chance 1/N), the best
    SSIM against the mean-image SSIM, and the number of known (and chosen) plaintexts
    that recover the key exactly where an exact attack applies,
and writes a table with one verdict sentence per configuration (docs/FRONTIER.md) and one
plot (docs/frontier.png). `--measure` first runs what is missing (each training run and
each configuration's attacks are minutes on 2 CPU cores; the whole grid with 3 seeds takes
hours: run it on an idle machine or a GPU, it resumes where it stopped).

  python -m benchmarks.frontier --measure             # measure what is missing, then write
  python -m benchmarks.frontier                       # write from the results files
  python -m benchmarks.frontier --measure --block-sizes 2 7 --seeds 0 1 2

`--block-sizes` adds block sizes to each block scheme's own (4; huang2022's filter: 2), so
the table keeps the schemes' defining rows and sets the others beside them; the ViT cipher's
plain baseline is a plain ViT with the same patch size.

A configuration "holds" when it is within ACCURACY_MARGIN of plain accuracy, its best attack
identifies no more than chance + REID_MARGIN, stays below the mean-image SSIM, and no exact
attack recovers its key (issue 18's target), and the ciphertext-only jigsaw solver at
realistic resolution does not restore it: 28x28 images in 4x4 blocks (49 pieces) are too
small for any jigsaw, so the frontier also reads benchmarks/results/jigsaw.json (224x224 real
scans in 16x16 blocks, `python -m benchmarks.jigsaw`) and counts a scheme broken there when
the solver keeps at least JIGSAW_BREAK of the plain image's block adjacencies (mean over the
images, up to the whole image's symmetry); for the ViT cipher the solver first reads the
pixel shuffle off the ciphertext (`lie_jax.attacks.pixel_layout`). That applies to any key
mode: the solver needs no key and no other image. It also reads
benchmarks/results/security_224.json (`python -m benchmarks.security --eval-set`: every
attack on 224x224 real scans with per-image keys; shared keys fall to a few known pairs at
any size) and counts a per-image configuration broken there when an attack re-identifies
more than chance + REID_MARGIN (Huang 2022 at the same filter size; block schemes at 16x16
blocks, as the jigsaw).

Linkage (`lie_jax.attacks.linkage`, `suite.GALLERY_ATTACKS`) names which of the attacker's
candidate scans a ciphertext encrypts instead of reconstructing it; it has its own column (28
px from frontier_security.json, 224 px from security_224.json) and a configuration it links
beyond chance + REID_MARGIN does not hold, but it neither counts as the best attack nor ranks
(it links every configuration measured).

With per-image keys the learned attacks of frontier_security.json see each known image under
one key; benchmarks/results/key_views.json (`python -m benchmarks.key_views`) trains the
inverse network on each known image under many keys (an attacker may draw as many as it
likes), and its rows count among those configurations' attacks (`key_views_attacks`); at 224 px
benchmarks/results/key_views_224.json (`--eval-set`, the same tiles as security_224.json) does
the same for the 224 px column.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Sequence

from benchmarks import accuracy
from benchmarks import security
from benchmarks.encrypt_throughput import machine
from lie_jax import ciphers
from lie_jax.attacks import pixel_layout
from lie_jax.attacks import suite
from lie_jax.configs import pneumoniamnist

RESULTS = os.path.join(os.path.dirname(__file__), "results")
SECURITY_OUT = os.path.join(RESULTS, "frontier_security.json")
JIGSAW_OUT = os.path.join(RESULTS, "jigsaw.json")
SCALE_SECURITY_OUT = os.path.join(RESULTS, "security_224.json")
KEY_VIEWS_OUT = os.path.join(RESULTS, "key_views.json")
KEY_VIEWS_224_OUT = os.path.join(RESULTS, "key_views_224.json")
# A jigsaw that keeps a quarter of the adjacencies restores large readable regions (chance,
# placing 196 pieces at random, keeps under 1%).
JIGSAW_BREAK = 0.25
# The plainest attack: rank the candidates by their correlation with the ciphertext itself
# (every run reports it as cipher_reid_top1); it counts when it beats every attack's output.
CIPHERTEXT = "the ciphertext itself"
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
ACCURACY_MARGIN = 0.02
REID_MARGIN = suite.REID_MARGIN  # the suite's verdict margin, one number
# Block sizes the frontier sets beside each block scheme's own (28x28 PneumoniaMNIST: block
# sizes must divide 28; 14 and 28 leave 4 and 1 blocks, nothing to scramble).
DEFAULT_BLOCK_SIZES = (2, 7)
IMAGE_SIZE = 28
PLAIN_RUN = "none,none"
# The plain baseline of each scheme: the same backbone on plain images (the ViT cipher trains a
# ViT, whose plain accuracy differs from the small ResNet's; `plain_run` gives it the cipher's
# patch size); the best plain model is reported next to it.
PLAIN_RUNS = {"vit": "none,none,vit"}
# Huang 2022's block filter is defined for these sizes (lie_jax.ciphers.huang2022).
HUANG2022_BLOCKS = (2, 4, 7)
# Schemes the frontier trains: every scheme, with its own adaptation layer.
ADAPTATION = pneumoniamnist.NATIVE_ADAPTATION


def _defining_mode(scheme: str) -> bool:
  """Whether a scheme is defined with per-image keys (PE and Huang 2022: "no key management")."""
  return bool(pneumoniamnist.get_config(f"{scheme},{ADAPTATION[scheme]}").cipher.per_image_keys)


def plain_run(scheme: str, block_size: int | None) -> str:
  """The run a configuration's accuracy is compared with: the same backbone on plain images
  (for the ViT cipher a plain ViT whose patches are the cipher's blocks)."""
  run = PLAIN_RUNS.get(scheme, PLAIN_RUN)
  own = ciphers.SCHEMES[scheme].options.get("block_size") if scheme in ciphers.SCHEMES else None
  if scheme in PLAIN_RUNS and block_size is not None and block_size != own:
    run += f",block={block_size}"
  return run


def configurations(block_sizes: Sequence[int] | None = DEFAULT_BLOCK_SIZES
                   ) -> list[dict[str, Any]]:
  """Every (scheme, key mode, block size) of the frontier, with its accuracy run spec.

  Each block scheme at its own block size and at every size of `block_sizes` that divides the
  image (None or empty: its own only). A spec names a key mode or block size only where it
  differs from the scheme's defining one (lie_jax/configs/pneumoniamnist.py), so `le,block` is
  the same run in benchmarks/accuracy.py and here.
  """
  extra = tuple(block_sizes or ())
  for b in extra:
    if b < 1 or IMAGE_SIZE % b:
      raise ValueError(f"block size {b} does not divide the {IMAGE_SIZE}x{IMAGE_SIZE} images")
  out = []
  for name, record in ciphers.SCHEMES.items():
    modes = (False, True) if record.per_image_keys else (False,)
    own = record.options.get("block_size")
    sizes = (None,) if own is None else tuple(dict.fromkeys((own,) + extra))
    for per_image in modes:
      for block in sizes:
        if name == "huang2022" and block is not None and block not in HUANG2022_BLOCKS:
          continue
        spec = f"{name},{ADAPTATION[name]}"
        if per_image != _defining_mode(name):
          spec += f",keys={'per_image' if per_image else 'shared'}"
        if block is not None and block != own:
          spec += f",block={block}"
        out.append({"scheme": name, "per_image_keys": per_image, "block_size": block,
                    "run": spec})
  return out


def _key(scheme: str, per_image: bool, block: int | None) -> str:
  return f"{scheme}|{'per_image' if per_image else 'shared'}|{block}"


def measure_accuracy(configs, seeds: Sequence[int], workdir: str) -> None:
  """Trains every (configuration, seed) missing from accuracy.json, saving after each."""
  rows = accuracy.load(accuracy.OUT)
  plains = [PLAIN_RUN] + sorted({plain_run(c["scheme"], c["block_size"]) for c in configs
                                  if c["scheme"] in PLAIN_RUNS})
  for run in plains + [c["run"] for c in configs]:
    for seed in seeds:
      spec = accuracy.with_seed(run, seed)
      if spec not in rows:
        rows[spec] = accuracy.train_one(spec, workdir)
        print(json.dumps(rows[spec]), flush=True)
        accuracy.save(accuracy.OUT, rows)


def measure_security(configs, *, num_images: int, train_images: int, seed: int,
                     out: str = SECURITY_OUT) -> None:
  """Runs every attack on every configuration missing from frontier_security.json."""
  from lie_jax import data
  from lie_jax.attacks import report

  done = _load(out).get("results", []) if os.path.exists(out) else []
  have: dict[str, set[str]] = {}  # configuration -> the attacks run or not run on it
  for r in done:
    name = r.get("attack") or report.not_run_key(r.get("not_run", ""))[2]
    have.setdefault(_key(r["scheme"], r["per_image_keys"], r.get("block_size")),
                    set()).add(name)
  splits = data.load_dataset("pneumoniamnist")
  victims, known = splits.test.images[:num_images], splits.train.images[:train_images]
  for c in configs:
    missing = [a for a in suite.applicable_attacks(c["scheme"])
               if a not in have.get(_key(c["scheme"], c["per_image_keys"], c["block_size"]),
                                    ())]
    if not missing:
      continue
    start = time.perf_counter()
    skipped: list[str] = []
    results = report.security_report(
        victims, known, seed=seed, block_size=c["block_size"] or 4, schemes=[c["scheme"]],
        key_modes=(c["per_image_keys"],), progress=True, skipped=skipped, attacks=missing)
    for r in results:
      row = report.json_row(r)
      row["block_size"] = c["block_size"]
      done.append(row)
    for line in skipped:
      done.append({"scheme": c["scheme"], "per_image_keys": c["per_image_keys"],
                   "block_size": c["block_size"], "attack": None, "not_run": line})
    print(f"{c['run']}: {len(results)} attacks in {time.perf_counter() - start:.0f} s",
          flush=True)
    with open(out, "w") as f:
      json.dump({"benchmark": "frontier_security", "machine": machine(),
                 "data": f"pneumoniamnist test[:{len(victims)}] (victims), "
                         f"train[:{len(known)}] (known plaintexts)",
                 "seed": seed, "results": done}, f, indent=1, allow_nan=False)


def _load(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def best_attack(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
  """The strongest of a configuration's attack rows that learn about the image from the
  ciphertext (not `suite.GALLERY_ATTACKS`, which name a scan the attacker already holds and
  are reported as linkage): exact recovery first, then the highest top-1
  re-identification, then the highest SSIM."""
  rows = [r for r in rows if r.get("attack") and r["attack"] not in suite.GALLERY_ATTACKS]
  if not rows:
    return None
  return max(rows, key=lambda r: (r.get("exact_fraction") or 0.0, r.get("reid_top1") or 0.0,
                                  r.get("ssim_mean") or -1.0))


def jigsaw_at_scale(jigsaw_result: dict | None) -> dict[str, dict[str, Any]]:
  """{scheme: {"neighbour": mean kept adjacencies, "images": n, "size", "block_size"}} for the
  schemes whose own ciphertexts the 224 px jigsaw benchmark scrambled (its cells named after
  a scheme, e.g. "etc"), from benchmarks/results/jigsaw.json."""
  if not jigsaw_result:
    return {}
  out: dict[str, dict[str, Any]] = {}
  for m in jigsaw_result.get("means", []):
    if m["scramble"] in ciphers.SCHEMES:
      out.setdefault(m["scramble"], []).append(m["neighbour_comparison_global"])
  return {scheme: {"neighbour": sum(v) / len(v), "images": len(v),
                   "size": jigsaw_result.get("image_size"),
                   "block_size": jigsaw_result.get("block_size")}
          for scheme, v in out.items()}


def reid_at_scale(scale_result: dict | None, *, linkage: bool = False,
                  key_views_result: dict | None = None
                  ) -> dict[tuple[str, bool, int | None], dict]:
  """{(scheme, per_image_keys, block size): the best top-1 re-identification there} from the
  224 px security run (benchmarks/results/security_224.json, `python -m benchmarks.security
  --eval-set`): "attack", "reid", "chance", "images", "size", "block_size", "steps" (the
  security run's cap on its learned attacks, or the steps a key-views run took), and
  "attacks" (every attack measured there, sorted). Over the attacks that reconstruct (and the
  ciphertext itself), or with `linkage` over `suite.GALLERY_ATTACKS` alone. The rows of
  `key_views_result` (benchmarks/results/key_views_224.json) with several keys per known tile
  join the attacks when that run attacked the same tiles (its "data" is the security run's)."""
  out: dict[tuple[str, bool, int | None], dict] = {}
  ran: dict[tuple[str, bool, int | None], set[str]] = {}
  rows = list((scale_result or {}).get("results", []))
  if not linkage and same_tiles(scale_result, key_views_result):
    rows += key_views_attacks(key_views_result)
  for r in rows:
    if (r.get("reid_top1") is None or not r.get("attack")
        or (r["attack"] in suite.GALLERY_ATTACKS) != linkage):
      continue
    block = (r.get("options") or {}).get("block_size")
    key = (r["scheme"], bool(r["per_image_keys"]), block)
    ran.setdefault(key, set()).add(r["attack"])
    candidates = [(r["attack"], r["reid_top1"])]
    if not linkage:
      candidates.append((CIPHERTEXT, r.get("cipher_reid_top1") or 0.0))
    for attack, reid in candidates:
      if key not in out or reid > out[key]["reid"]:
        out[key] = {"attack": attack, "reid": reid,
                    "chance": r["reid_chance_top1"], "images": r.get("num_images"),
                    "size": scale_result.get("size"), "block_size": block,
                    "steps": (r.get("steps") if r.get("key_views")
                              else scale_result.get("learned_attack_steps"))}
  for key, attacks in ran.items():
    out[key]["attacks"] = sorted(attacks)
  return out


def same_tiles(scale_result: dict | None, key_views_result: dict | None) -> bool:
  """Whether a 224 px key-views run attacked the security run's victims with its known tiles."""
  return bool(scale_result and key_views_result and scale_result.get("data")
              and key_views_result.get("data") == scale_result.get("data"))


def _linkage(rows: Sequence[dict[str, Any]]) -> dict | None:
  """The best linkage row of a configuration at 28 px: {"reid", "chance"}, or None."""
  found = [r for r in rows if r.get("attack") in suite.GALLERY_ATTACKS]
  best = max(found, key=lambda r: r.get("reid_top1") or 0.0, default=None)
  return best and {"reid": best["reid_top1"], "chance": best["reid_chance_top1"]}


def _scale_reid_for(at_scale: dict, config: dict[str, Any]) -> dict | None:
  """The 224 px re-identification that speaks for a configuration: same scheme and key mode;
  for schemes run at their own block size there (Huang 2022's filter) the same block size,
  for block schemes any (the 224 px run uses the realistic 16x16 blocks, as the jigsaw)."""
  found = [v for (scheme, per_image, block), v in at_scale.items()
           if scheme == config["scheme"] and per_image == config["per_image_keys"]
           and (scheme not in security.OWN_BLOCK or block == config["block_size"])]
  return max(found, key=lambda v: v["reid"], default=None)


def key_views_attacks(key_views_result: dict | None) -> list[dict[str, Any]]:
  """The learned attacks of benchmarks/results/key_views.json that saw each known image under
  several keys, as attack rows named after that ("inverse_network, 32 keys per known image");
  their one-key rows repeat frontier_security.json's and are left out."""
  return [{**r, "attack": f"{r['attack']}, {r['key_views']} keys per known image"}
          for r in (key_views_result or {}).get("results", [])
          if isinstance(r, dict) and isinstance(r.get("key_views"), int)
          and not isinstance(r["key_views"], bool) and r["key_views"] > 1 and r.get("attack")]


def frontier_rows(accuracy_result: dict, security_result: dict,
                  block_sizes: Sequence[int] = DEFAULT_BLOCK_SIZES,
                  jigsaw_result: dict | None = None,
                  scale_result: dict | None = None,
                  key_views_result: dict | None = None,
                  scale_key_views_result: dict | None = None) -> list[dict[str, Any]]:
  """One row per configuration: accuracy (mean, spread, seeds), its attacks' best scores
  (with `key_views_attacks`), the ciphertext-only jigsaw at 224 px where it applies
  (`jigsaw_at_scale`) and the best re-identification at 224 px (`reid_at_scale`)."""
  from benchmarks import report

  groups = {g["config"]: g for g in report.accuracy_groups(accuracy_result)}
  at_scale = jigsaw_at_scale(jigsaw_result)
  reid_scale = reid_at_scale(scale_result, key_views_result=scale_key_views_result)
  link_scale = reid_at_scale(scale_result, linkage=True)
  best_plain = groups.get(PLAIN_RUN)
  by_config: dict[str, list[dict]] = {}
  for r in [*security_result.get("results", []), *key_views_attacks(key_views_result)]:
    by_config.setdefault(_key(r["scheme"], r["per_image_keys"], r.get("block_size")),
                         []).append(r)
  out = []
  for c in configurations(block_sizes):
    g = groups.get(c["run"])
    plain = groups.get(plain_run(c["scheme"], c["block_size"]))
    attacks = by_config.get(_key(c["scheme"], c["per_image_keys"], c["block_size"]), [])
    best = best_attack(attacks)
    exact = [r for r in attacks if r.get("known_pairs_needed") is not None]
    best_name, best_reid = best and best["attack"], best and best.get("reid_top1")
    cipher_reid = max((r.get("cipher_reid_top1") or 0.0 for r in attacks if r.get("attack")),
                      default=0.0)
    if best and not best.get("exact_fraction") and cipher_reid > (best_reid or 0.0):
      best_name, best_reid = CIPHERTEXT, cipher_reid
    row = {**c,
           "accuracy_mean": g and g["test_accuracy_mean"], "accuracy_std": g and
           g["test_accuracy_std"], "seeds": g and g["n"],
           "plain_run": plain_run(c["scheme"], c["block_size"]),
           "plain_accuracy_mean": plain and plain["test_accuracy_mean"],
           "best_plain_accuracy_mean": best_plain and best_plain["test_accuracy_mean"],
           "best_attack": best_name,
           "reid_top1": best_reid,
           "reid_chance_top1": best and best.get("reid_chance_top1"),
           "best_ssim": max((r["ssim_mean"] for r in attacks if r.get("attack")
                             and r["attack"] not in suite.GALLERY_ATTACKS), default=None),
           "prior_ssim": best and best.get("prior_ssim_mean"),
           "known_pairs_needed": min((r["known_pairs_needed"] for r in exact), default=None),
           # Chosen plaintexts recover a shared key; with a key per image there is none.
           "chosen_plaintexts_needed": None if c["per_image_keys"] else min(
               (r["chosen_plaintexts_needed"] for r in attacks
                if r.get("chosen_plaintexts_needed") is not None), default=None),
           "exact": bool(best and (best.get("exact_fraction") or 0.0) > 0.0),
           "exact_fraction": best and best.get("exact_fraction")}
    scale = at_scale.get(c["scheme"])
    row["jigsaw_scale"] = scale
    reid = _scale_reid_for(reid_scale, c)
    row["reid_scale"] = reid
    # Block schemes: the 224 px evidence above may come from other blocks (16x16, the ViT
    # setting); what the run measured in this configuration's own blocks is kept beside it.
    row["reid_scale_own"] = reid_scale.get((c["scheme"], c["per_image_keys"], c["block_size"]))
    # Broken at realistic resolution: the jigsaw puts the blocks back, or an attack on 224 px
    # real scans tells whose scan it is beyond chance + REID_MARGIN.
    row["jigsaw_broken"] = bool(scale and scale["neighbour"] >= JIGSAW_BREAK)
    row["broken_at_scale"] = row["jigsaw_broken"] or bool(
        reid and reid["reid"] > reid["chance"] + REID_MARGIN)
    # Linkage: an attacker who holds the scan tells which ciphertext is it (28 px; 224 px).
    row["linkage"] = _linkage(attacks)
    row["linkage_scale"] = _scale_reid_for(link_scale, c)
    row["linked"] = any(v and v["reid"] > v["chance"] + REID_MARGIN
                        for v in (row["linkage"], row["linkage_scale"]))
    row["verdict"] = verdict(row)
    out.append(row)
  return out


def _label(row: dict[str, Any]) -> str:
  keys = "per-image keys" if row["per_image_keys"] else "shared key"
  block = f", B={row['block_size']}" if row["block_size"] else ""
  return f"{row['scheme']} ({keys}{block})"


def holds(row: dict[str, Any]) -> bool | None:
  """Issue 18's target, None while a number is missing."""
  needed = ("accuracy_mean", "plain_accuracy_mean", "reid_top1", "best_ssim", "prior_ssim")
  if any(row.get(k) is None for k in needed):
    return None
  return (row["plain_accuracy_mean"] - row["accuracy_mean"] <= ACCURACY_MARGIN
          and row["reid_top1"] <= row["reid_chance_top1"] + REID_MARGIN
          and row["best_ssim"] < row["prior_ssim"] and not row["exact"]
          and not row.get("broken_at_scale") and not row.get("linked"))


def strongest(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
  """The configuration with the weakest best attack among those within ACCURACY_MARGIN of plain
  accuracy (no exact recovery first, then not restored by the jigsaw at 224 px, then the lowest
  top-1 re-identification at 28 px, then the lowest best SSIM): what `lie-jax encrypt` and the
  README's first command default to. Linkage does not rank: it links every configuration
  measured to the scans the attacker holds (100%), so it says none holds, not which is
  strongest against an attacker without them. Re-identification at 224 px (`reid_scale`) is measured
  for per-image keys and a few block sizes only, so it decides whether a configuration holds
  but does not rank: a row it was not run on would otherwise win by not being measured."""
  fit = [r for r in rows if None not in (r["accuracy_mean"], r["plain_accuracy_mean"],
                                         r["reid_top1"], r["best_ssim"])
         and r["plain_accuracy_mean"] - r["accuracy_mean"] <= ACCURACY_MARGIN]
  return min(fit, key=lambda r: (r["exact"], bool(r.get("jigsaw_broken")), r["reid_top1"],
                                 r["best_ssim"]), default=None)


def verdict(row: dict[str, Any]) -> str:
  """One sentence: why a configuration breaks (or holds), from its numbers."""
  if row["best_attack"] is None:
    return f"{_label(row)}: attacks not measured yet."
  parts = []
  if row["exact"] and (row["known_pairs_needed"] is not None
                       or row["chosen_plaintexts_needed"] is not None):
    how = (f"{row['known_pairs_needed']} known images" if row["known_pairs_needed"] is not None
           else "known images")
    if row["chosen_plaintexts_needed"] is not None:
      how += f" (or {row['chosen_plaintexts_needed']} chosen ones)"
    parts.append(f"{how} recover the key and decrypt every other image exactly")
  elif row["exact"]:  # no key recovered: an attack rebuilt some images byte for byte
    parts.append(f"{row['best_attack']} rebuilds {100 * (row['exact_fraction'] or 0):.0f}% of "
                 f"the images exactly and tells whose scan it is "
                 f"{100 * (row['reid_top1'] or 0):.0f}% of the time (chance "
                 f"{100 * (row['reid_chance_top1'] or 0):.1f}%)")
  elif row["reid_top1"] is not None and row["reid_top1"] > row["reid_chance_top1"] + REID_MARGIN:
    parts.append(f"{row['best_attack']} tells whose scan it is {100 * row['reid_top1']:.0f}% of "
                 f"the time (chance {100 * row['reid_chance_top1']:.1f}%)")
  scale = row.get("jigsaw_scale")
  if row.get("jigsaw_broken"):
    solver = ("the pixel-layout attack and the jigsaw solver put back"
              if row["scheme"] in pixel_layout.SCHEMES else "the jigsaw solver puts back")
    parts.append(f"at {scale['size']}x{scale['size']} ({scale['block_size']}x"
                 f"{scale['block_size']} blocks) {solver} "
                 f"{100 * scale['neighbour']:.0f}% of the block adjacencies of real scans from "
                 "the ciphertext alone")
  reid = row.get("reid_scale")
  if reid and reid["reid"] > reid["chance"] + REID_MARGIN:
    blocks = (f", {reid['block_size']}x{reid['block_size']} blocks" if reid["block_size"]
              else "")
    parts.append(f"at {reid['size']}x{reid['size']} ({reid['images']} real tiles{blocks}) "
                 f"{reid['attack']} tells whose scan it is {100 * reid['reid']:.0f}% of the time "
                 f"(chance {100 * reid['chance']:.1f}%)")
  own = row.get("reid_scale_own")
  broken_in = set()  # the block sizes whose 224 px measurements broke it
  if row.get("jigsaw_broken"):
    broken_in.add(scale["block_size"])
  if reid and reid["reid"] > reid["chance"] + REID_MARGIN:
    broken_in.add(reid["block_size"])
  if own and broken_in - {own["block_size"]} and own["reid"] <= own["chance"] + REID_MARGIN:
    b = own["block_size"]
    ran = ", ".join(own["attacks"])
    parts.append(f"in its own {b}x{b} blocks at {own['size']}x{own['size']} the attacks run "
                 f"there ({ran}{'' if 'jigsaw' in own['attacks'] else '; not the jigsaw'}) "
                 f"tell whose scan it is no better than chance + {100 * REID_MARGIN:.0f} "
                 f"points (best {100 * own['reid']:.1f}%, chance {100 * own['chance']:.1f}%)")
  linked = [(v, size) for v, size in ((row.get("linkage"), IMAGE_SIZE),
                                       (row.get("linkage_scale"), None))
            if v and v["reid"] > v["chance"] + REID_MARGIN]
  if linked:
    parts.append("an attacker who holds the scans links " + " and ".join(
        f"{100 * v['reid']:.0f}%{' of the ciphertexts to them' if not i else ''} at "
        f"{size or v['size']}x{size or v['size']} (chance {100 * v['chance']:.1f}%)"
        for i, (v, size) in enumerate(linked)) + ", from the ciphertext alone (linkage)")
  if row["best_ssim"] is not None and row["prior_ssim"] is not None and (
      row["best_ssim"] >= row["prior_ssim"]) and not row["exact"]:
    parts.append(f"reconstructions beat the mean image (SSIM {row['best_ssim']:.2f} vs "
                 f"{row['prior_ssim']:.2f})")
  if row["accuracy_mean"] is not None and row["plain_accuracy_mean"] is not None:
    drop = row["plain_accuracy_mean"] - row["accuracy_mean"]
    if drop > ACCURACY_MARGIN:
      parts.append(f"it costs {100 * drop:.1f} points of accuracy")
  if not parts:
    return f"{_label(row)}: holds against every attack run here."
  broken = [p for p in parts if not p.startswith("it costs")]
  lead = "breaks" if broken else "holds against the attacks, but"
  return f"{_label(row)} {lead}: {'; '.join(parts)}."


def _pct(v: float | None, spread: float | None = None) -> str:
  if v is None:
    return "–"
  return f"{100 * v:.1f}" + (f" ± {100 * spread:.1f}" if spread else "")


def markdown(rows: Sequence[dict[str, Any]], accuracy_result: dict,
             security_result: dict) -> str:
  lines = ["| configuration | accuracy % (seeds) | same backbone, plain % | best attack | "
           "top-1 re-id % (chance) | best SSIM (mean image) | known pairs for exact recovery | "
           "chosen | jigsaw at 224 px, adjacencies % | top-1 re-id at 224 px % (chance) | "
           "linkage top-1 %, 28 / 224 px | holds? |",
           "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
  for r in rows:
    acc = f"{_pct(r['accuracy_mean'], r['accuracy_std'])} ({r['seeds'] or 0})"
    base = f"{_pct(r.get('plain_accuracy_mean'))} (`{r.get('plain_run', PLAIN_RUN)}`)"
    reid = ("–" if r["reid_top1"] is None
            else f"{_pct(r['reid_top1'])} ({_pct(r['reid_chance_top1'])})")
    ssim = ("–" if r["best_ssim"] is None
            else f"{r['best_ssim']:.2f} ({r['prior_ssim']:.2f})")
    h = holds(r)
    lines.append(f"| {_label(r)} | {acc} | {base} | {r['best_attack'] or '–'} | {reid} | {ssim} | "
                 f"{r['known_pairs_needed'] if r['known_pairs_needed'] is not None else '–'} | "
                 f"{r['chosen_plaintexts_needed'] if r['chosen_plaintexts_needed'] is not None else '–'} | "
                 f"{_pct(r['jigsaw_scale']['neighbour']) if r.get('jigsaw_scale') else '–'} | "
                 f"{_scale_cell(r.get('reid_scale'))} | "
                 f"{_linkage_cell(r)} | "
                 f"{'–' if h is None else ('**yes**' if h else 'no')} |")
  plain = next((r.get("best_plain_accuracy_mean") for r in rows
                if r.get("best_plain_accuracy_mean")), None)
  return ("# The security/utility frontier\n\nGenerated by `python -m benchmarks.frontier` from "
          "benchmarks/results/accuracy.json and frontier_security.json; do not edit by hand.\n\n"
          f"Best plain-image accuracy (`{PLAIN_RUN}`, small ResNet): {_pct(plain)}%; each "
          f"configuration is compared with the same backbone on plain images (the cost of the "
          f"encryption; the ViT cipher trains a ViT). Data: "
          f"{security_result.get('data', '–')}. "
          f"Holds: within {100 * ACCURACY_MARGIN:.0f} points of plain accuracy, top-1 "
          f"re-identification at most chance + {100 * REID_MARGIN:.0f} points, best SSIM below "
          f"the mean image's, no exact recovery, and the jigsaw solver at 224 px keeps under "
          f"{100 * JIGSAW_BREAK:.0f}% of the block adjacencies (schemes it applies to, "
          f"benchmarks/results/jigsaw.json), and no attack on 224 px real scans "
          f"(benchmarks/results/security_224.json and key_views_224.json, per-image keys) "
          f"re-identifies more than chance + {100 * REID_MARGIN:.0f} points, and linkage (an "
          f"attacker who holds the candidate scans names the one a ciphertext encrypts, from "
          f"what no key changes) "
          f"stays within chance + {100 * REID_MARGIN:.0f} points. Linkage is shown apart and "
          f"does not rank: the best attack and re-identification columns are what an attacker "
          f"learns from the ciphertext without holding the scan."
          f"\n\n{_strongest_line(rows)}\n\n"
          f"![accuracy against the best attack]"
          f"(frontier.png)\n\n" + "\n".join(lines) + "\n\n## Verdicts\n\n"
          + "".join(f"- {r['verdict']}\n" for r in rows))


def _linkage_cell(row: dict[str, Any]) -> str:
  return " / ".join("–" if not v else _pct(v["reid"])
                    for v in (row.get("linkage"), row.get("linkage_scale")))


def _scale_cell(reid: dict | None) -> str:
  return "–" if not reid else f"{_pct(reid['reid'])} ({_pct(reid['chance'])})"


def _strongest_line(rows: Sequence[dict[str, Any]]) -> str:
  best = strongest(rows)
  if best is None:
    return "Strongest within the accuracy margin: not measured yet."
  gap = ""
  if best.get("best_plain_accuracy_mean") is not None and best["plain_run"] != PLAIN_RUN:
    gap = (f" (the best plain model, `{PLAIN_RUN}`, reaches "
           f"{_pct(best['best_plain_accuracy_mean'])}%)")
  return (f"Strongest within {100 * ACCURACY_MARGIN:.0f} points of plain accuracy (the default "
          f"of `lie-jax encrypt` and the README's first command): **{_label(best)}**, "
          f"`{best['run']}`: {_pct(best['accuracy_mean'])}% against "
          f"{_pct(best['plain_accuracy_mean'])}% for the same backbone on plain images{gap}; it "
          f"{'holds' if holds(best) else 'does not hold'} the target.")


def figure(rows: Sequence[dict[str, Any]], path: str) -> None:
  """Accuracy (y) against the best attack's top-1 re-identification (x), one point each."""
  from matplotlib.figure import Figure

  fig = Figure(figsize=(8, 5.5), layout="constrained")
  ax = fig.subplots()
  for r in rows:
    if r["accuracy_mean"] is None or r["reid_top1"] is None:
      continue
    marker = "o" if r["per_image_keys"] else "s"
    color = ("tab:red" if r["exact"] else "tab:orange" if r.get("broken_at_scale")
             else "tab:blue")
    ax.errorbar(100 * r["reid_top1"], 100 * r["accuracy_mean"],
                yerr=100 * (r["accuracy_std"] or 0), fmt=marker, color=color, capsize=2)
    ax.annotate(_label(r), (100 * r["reid_top1"], 100 * r["accuracy_mean"]), fontsize=6,
                xytext=(3, 3), textcoords="offset points")
  plain = next((r.get("best_plain_accuracy_mean") for r in rows
                if r.get("best_plain_accuracy_mean")), None)
  if plain:
    ax.axhline(100 * plain, color="gray", linestyle="--", linewidth=1)
    ax.axhline(100 * (plain - ACCURACY_MARGIN), color="gray", linestyle=":", linewidth=1)
  chance = next((r["reid_chance_top1"] for r in rows if r["reid_chance_top1"]), None)
  if chance:
    ax.axvline(100 * (chance + REID_MARGIN), color="gray", linestyle=":", linewidth=1)
  ax.set_xlabel("best attack: top-1 re-identification (%)  [red: images recovered exactly; "
                "orange: broken at 224 px]")
  ax.set_ylabel("test accuracy with adaptation (%)")
  ax.set_title("PneumoniaMNIST: utility against the strongest attack (square: shared key, "
               "circle: per-image keys)", fontsize=9)
  fig.savefig(path, dpi=120, metadata={"Software": None})


def rows_from_results(block_sizes: Sequence[int] = DEFAULT_BLOCK_SIZES
                      ) -> tuple[list[dict[str, Any]], dict, dict]:
  """(frontier rows, accuracy result, security result) from the results files in
  benchmarks/results (those present; accuracy.json is required)."""
  def optional(path):  # a results file that is absent or not one is left out, with a line
    if not os.path.exists(path):
      return None
    try:
      found = _load(path)
    except (OSError, ValueError) as e:
      print(f"{path}: not a results file ({type(e).__name__}); not used")
      return None
    if not isinstance(found, dict) or not isinstance(found.get("results", []), list):
      print(f"{path}: not a results file (no list of results); not used")
      return None
    return found

  acc = _load(accuracy.OUT)
  sec = optional(SECURITY_OUT) or {"results": []}
  scale, views_224 = optional(SCALE_SECURITY_OUT), optional(KEY_VIEWS_224_OUT)
  if views_224 is not None and not same_tiles(scale, views_224):
    print(f"{KEY_VIEWS_224_OUT}: " + (f"no {SCALE_SECURITY_OUT} to join" if scale is None else
                                      f"attacked other tiles than {SCALE_SECURITY_OUT}")
          + "; not used")
    views_224 = None
  rows = frontier_rows(acc, sec, block_sizes, optional(JIGSAW_OUT), scale,
                       optional(KEY_VIEWS_OUT), views_224)
  return rows, acc, sec


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--measure", action="store_true", help="run what is missing first")
  parser.add_argument("--block-sizes", nargs="+", type=int, default=DEFAULT_BLOCK_SIZES,
                      help="block sizes set beside each block scheme's own "
                           f"(default: {' '.join(map(str, DEFAULT_BLOCK_SIZES))})")
  parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
  parser.add_argument("--num-images", type=int, default=security.NUM_VICTIMS)
  parser.add_argument("--train-images", type=int, default=security.NUM_KNOWN)
  parser.add_argument("--workdir", default="workdir/accuracy")
  parser.add_argument("--schemes", nargs="+", default=None,
                      help="limit --measure to these schemes")
  args = parser.parse_args()
  configs = [c for c in configurations(args.block_sizes)
             if args.schemes is None or c["scheme"] in args.schemes]
  if args.measure:
    measure_security(configs, num_images=args.num_images, train_images=args.train_images,
                     seed=0)
    measure_accuracy(configs, args.seeds, args.workdir)
  rows, acc, sec = rows_from_results(args.block_sizes)
  with open(os.path.join(RESULTS, "frontier.json"), "w") as f:
    json.dump({"benchmark": "frontier", "machine": machine(), "rows": rows}, f, indent=1)
  text = markdown(rows, acc, sec)
  with open(os.path.join(DOCS, "FRONTIER.md"), "w") as f:
    f.write(text)
  figure(rows, os.path.join(DOCS, "frontier.png"))
  print(text)


if __name__ == "__main__":
  main()
