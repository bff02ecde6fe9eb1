"""The security report: every applicable attack against every scheme: rows, markdown, figures.

`security_report` runs `run_attack` for every (scheme, attack) pair in
`ATTACKS` with one shared experiment key per scheme, plus per-image-key PE
as the negative control for the key-dependent attacks. `markdown_table`
renders the rows; `image_grid` draws plain | encrypted | recovered strips
with PIL.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import jax
import numpy as np
from jax.typing import ArrayLike
from PIL import Image, ImageDraw

from lie_jax import ciphers
from lie_jax.attacks import known_plaintext
from lie_jax.attacks import suite

# The negative control: the same attacks against PE keyed per image.
PER_IMAGE_CONTROLS = (("pe", "chosen_plaintext"), ("pe", "known_plaintext_exact"),
                      ("pe", "inverse_network"), ("pe", "gan"), ("pe", "fr_basic"),
                      ("pe", "fr_advanced"))
# Linkage needs no key, so per-image keys do not stop it: every scheme it covers, per image.
PER_IMAGE_LINKAGE = tuple((s, "linkage") for s in suite.ATTACKS["linkage"]
                          if ciphers.get_scheme(s).per_image_keys)


def planned_runs(schemes: Sequence[str] | None = None,
                 key_modes: Sequence[bool] | None = None,
                 attacks: Sequence[str] | None = None) -> list[tuple[str, str, bool]]:
  """(scheme, attack, per_image_keys) of the report, in table order.

  Default (key_modes None): every applicable attack with a shared key, then
  PER_IMAGE_CONTROLS and PER_IMAGE_LINKAGE. With key_modes (e.g. (False, True)): every
  applicable attack in each mode, per-image keys only for schemes that have them.
  `attacks`: only these attacks (default all).
  """
  schemes = list(ciphers.SCHEMES) if schemes is None else list(schemes)
  if key_modes is None:
    runs = [(s, a, False) for s in schemes for a in suite.applicable_attacks(s)]
    runs += [(s, a, True) for s, a in PER_IMAGE_CONTROLS + PER_IMAGE_LINKAGE if s in schemes]
  else:
    runs = [(s, a, mode) for s in schemes for mode in key_modes
            if not mode or ciphers.get_scheme(s).per_image_keys
            for a in suite.applicable_attacks(s)]
  unknown = sorted(set(attacks or ()) - set(suite.ATTACKS))
  if unknown:
    raise ValueError(f"unknown attack(s) {unknown}; choose from {sorted(suite.ATTACKS)}")
  return [r for r in runs if attacks is None or r[1] in attacks]


def experiment_key(seed: int, scheme: str) -> jax.Array:
  """The experiment key `security_report` encrypts `scheme` with (never a data owner's)."""
  return jax.random.fold_in(jax.random.key(seed), list(ciphers.SCHEMES).index(scheme))


def security_report(images: ArrayLike, train_images: ArrayLike, *, seed: int = 0,
                    block_size: int = 4, steps: int | None = None,
                    schemes: Sequence[str] | None = None,
                    key_modes: Sequence[bool] | None = None, progress: bool = True,
                    skipped: list[str] | None = None,
                    attacks: Sequence[str] | None = None) -> list[suite.AttackResult]:
  """Runs every planned attack.

  Args:
    images: [N, H, W, C] uint8 victim images.
    train_images: [M, H, W, C] uint8 images disjoint from `images` (known
      plaintexts, prior baseline).
    seed: the experiment key is `jax.random.key(seed)`, folded in per scheme.
    block_size: B for block schemes.
    steps: the learned attacks' step cap (None: their defaults).
    schemes: the schemes to cover (default every scheme).
    key_modes: see `planned_runs`.
    progress: tqdm progress bars.
    skipped: if given, runs that need more known plaintexts than
      `train_images` holds, and attacks that do not apply to per-image keys,
      are left out and described here (one line each); if None, they raise.
    attacks: only these attacks (default every applicable one).

  Returns:
    The `AttackResult`s in `planned_runs` order.
  """
  runs = planned_runs(schemes, key_modes, attacks)
  if progress:
    from tqdm.auto import tqdm
    runs = tqdm(runs, desc="security report")
  results = []
  step_args = {} if steps is None else {"steps": steps}
  for scheme, attack, per_image in runs:
    if progress:
      runs.set_postfix_str(f"{scheme} / {attack}{' (per-image keys)' if per_image else ''}")
    key = experiment_key(seed, scheme)
    try:
      results.append(suite.run_attack(attack, scheme, images, key=key, block_size=block_size,
                                      per_image_keys=per_image, train_images=train_images,
                                      progress=progress, **step_args))
    except (known_plaintext.TooFewKnownPlaintexts, suite.NotApplicable) as e:
      if skipped is None:
        raise
      keys = " (per-image keys)" if per_image else ""
      skipped.append(f"{scheme}{keys} / {attack}: not run: {e}")
  return results


def not_run_key(line: str) -> tuple[str, bool, str]:
  """(scheme, per_image_keys, attack) of a `security_report` skipped line
  ("scheme[ (per-image keys)] / attack: not run: ..."); empty names for other text."""
  head = line.split(":", 1)[0] if isinstance(line, str) else ""
  scheme_part, _, attack = head.partition(" / ")
  return scheme_part.split(" ", 1)[0], "(per-image keys)" in scheme_part, attack.strip()


JSON_FIELDS = ("scheme", "attack", "per_image_keys", "num_images", "ssim_mean", "psnr_mean",
               "placement_accuracy", "neighbour_comparison", "exact_fraction", "reid_top1",
               "reid_top5", "reid_chance_top1", "reid_chance_top5", "cipher_reid_top1",
               "known_pairs_needed", "chosen_plaintexts_needed", "cipher_ssim_mean",
               "cipher_psnr_mean", "prior_ssim_mean", "prior_psnr_mean", "key_space_bits",
               "nominal_key_space_bits", "breaks", "options", "details")


def json_row(result: suite.AttackResult) -> dict[str, Any]:
  """A result's scores for a strict-JSON results file (infinite key spaces as null)."""
  summary = result.summary()
  return {k: None if summary.get(k) == float("inf") else summary.get(k) for k in JSON_FIELDS}


def uncovered_schemes(schemes: Sequence[str] | None = None) -> list[str]:
  """Schemes no attack of the suite applies to."""
  schemes = list(ciphers.SCHEMES) if schemes is None else list(schemes)
  return [s for s in schemes if not suite.applicable_attacks(s)]


def _fmt(value: float | None, digits: int = 3) -> str:
  return "–" if value is None else f"{value:.{digits}f}"


def _bits(value: float | None) -> str:
  """Key-space bits; infinite (morph's continuous core; null in strict JSON) as ∞."""
  return "∞" if value is None or value == float("inf") else f"{value:.0f}"


def _pair(value: float | None, chance: float | None) -> str:
  if value is None:
    return "–"
  return f"{100 * value:.1f}" + ("" if chance is None else f" ({100 * chance:.1f})")


def _count(value: int | None) -> str:
  return "–" if value is None else str(value)


def markdown_table(rows: Iterable[dict[str, Any]]) -> str:
  """A markdown table of `AttackResult.summary()` (or `json_row`) dicts."""
  lines = [
      "| scheme | keys | attack | SSIM | PSNR dB | top-1 re-id % (chance) | top-5 % (chance) | "
      "exact | known pairs | chosen | placement | neighbours | cipher SSIM | cipher top-1 % | "
      "prior SSIM | key-space bits (nominal) | breaks? |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    keys = "per image" if r["per_image_keys"] else "shared"
    lines.append(
        f"| {r['scheme']} | {keys} | {r['attack']} | {_fmt(r['ssim_mean'])} | "
        f"{_fmt(r['psnr_mean'], 1)} | {_pair(r.get('reid_top1'), r.get('reid_chance_top1'))} | "
        f"{_pair(r.get('reid_top5'), r.get('reid_chance_top5'))} | "
        f"{_fmt(r.get('exact_fraction'), 2)} | {_count(r.get('known_pairs_needed'))} | "
        f"{_count(r.get('chosen_plaintexts_needed'))} | {_fmt(r.get('placement_accuracy'))} | "
        f"{_fmt(r.get('neighbour_comparison'))} | {_fmt(r['cipher_ssim_mean'])} | "
        f"{_pair(r.get('cipher_reid_top1'), None)} | {_fmt(r.get('prior_ssim_mean'))} | "
        f"{_bits(r['key_space_bits'])} ({_bits(r.get('nominal_key_space_bits'))}) | "
        f"{'**yes**' if r['breaks'] else 'no'} |")
  return "\n".join(lines) + "\n"


VERDICT_RULE = (f"breaks? = yes when the attack recovers any image exactly, when its mean SSIM "
                f"exceeds the better of two baselines by at least {suite.BREAK_MARGIN} (the "
                f"ciphertext's own SSIM to the plain image, and the SSIM of the mean training "
                f"image to every plain image: what knowing only the kind of image gives), or "
                f"when its top-1 re-identification rate (each reconstruction ranks the N "
                f"victims' plain images by normalised cross-correlation) exceeds chance (1/N) "
                f"by more than {100 * suite.REID_MARGIN:.0f} points and a blind guesser would do "
                f"as well with probability below {suite.REID_ALPHA} (exact binomial tail). "
                f"Known pairs: the fewest "
                f"known (plain, cipher) pairs whose recovered map decrypts every victim exactly; "
                f"chosen: the chosen plaintexts that do. PSNR is capped at "
                f"{suite.PSNR_CAP_DB:.0f} dB (exact recovery).")


def _to_rgb(images: np.ndarray) -> np.ndarray:
  images = np.asarray(images, np.uint8)
  return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def image_grid(rows: Sequence[np.ndarray], labels: Sequence[str] | None = None, *,
               scale: int = 3, gap: int = 2, label_width: int = 0) -> Image.Image:
  """Draws image rows as one PIL image.

  Args:
    rows: R arrays [K, H, W, C] uint8 (C = 1 or 3), all of one shape.
    labels: optional R strings written left of the rows.
    scale: nearest-neighbour upscaling factor.
    gap: pixels between images.
    label_width: width of the label column (default: fitted to the labels).

  Returns:
    An RGB `PIL.Image.Image`.
  """
  k, h, w, _ = rows[0].shape
  hs, ws = h * scale, w * scale
  if labels and not label_width:
    label_width = 8 + 6 * max(len(s) for s in labels)
  canvas = Image.new("RGB", (label_width + k * (ws + gap) + gap, len(rows) * (hs + gap) + gap),
                     "white")
  draw = ImageDraw.Draw(canvas)
  for r, row in enumerate(rows):
    y = gap + r * (hs + gap)
    if labels:
      draw.text((4, y + hs // 2 - 5), labels[r], fill="black")
    for i, image in enumerate(_to_rgb(row)):
      tile = Image.fromarray(image).resize((ws, hs), Image.NEAREST)
      canvas.paste(tile, (label_width + gap + i * (ws + gap), y))
  return canvas


def result_grid(result: suite.AttackResult, *, count: int = 8, scale: int = 4) -> Image.Image:
  """plain | encrypted | recovered rows of the first `count` images of one result."""
  k = min(count, result.num_images)
  return image_grid([result.plain[:k], result.encrypted[:k], result.recovered[:k]],
                    ["plain", "encrypted", "recovered"], scale=scale)


def report_figure(results: Sequence[suite.AttackResult], *, count: int = 4,
                  scale: int = 2) -> Image.Image:
  """One row per result: its first `count` ciphertexts, then their recoveries; plain on top."""
  k = min(count, results[0].num_images)
  rows = [np.concatenate([results[0].plain[:k], results[0].plain[:k]])]
  labels = ["plain | plain"]
  for r in results:
    rows.append(np.concatenate([r.encrypted[:k], r.recovered[:k]]))
    labels.append(f"{r.scheme}{'*' if r.per_image_keys else ''} {r.attack}")
  return image_grid(rows, labels, scale=scale)
