"""The attack registry and its one entry point, `run_attack`.

`run_attack(attack, scheme, images, key=...)` encrypts the plain images with
an experiment key, runs one attack as its threat model allows (chosen
plaintexts through an encryption oracle under the victim's key, known
(cipher, plain) training pairs under it, or ciphertexts only), and scores
what it recovers against the plain images. Key material never leaves this
function: results hold images and scores only.

Baselines that every result carries::

  cipher floor: SSIM / PSNR of the ciphertext itself to the plain image
    (morph, whose ciphertexts are float vectors: of `known_plaintext.cipher_view`,
    the vectors reshaped to the image and min-max rescaled per image to 0..255,
    which is also what `AttackResult.encrypted` holds and the figures show);
  prior baseline: SSIM / PSNR of the mean training image to every plain
    image (when training images are given): what an attacker gets by
    knowing only the kind of image. On PneumoniaMNIST this is high (the
    X-rays look alike), so a score must beat it to show recovered content.

Re-identification (`reidentification.identification_rates`): every
reconstruction ranks the N victims' plain images by normalised
cross-correlation; top-1 and top-5 identification rates are reported next to
chance (1/N, 5/N), for the attack's output and for the ciphertext itself.
GALLERY_ATTACKS (linkage) rank the candidates by their own scores instead and
answer with the candidate they name.
Verdict: an attack breaks a scheme when it recovers images exactly, when its
SSIM exceeds the better of the two baselines by at least BREAK_MARGIN, or when
its top-1 identification rate exceeds chance by more than REID_MARGIN and a
blind guesser would do as well with probability below REID_ALPHA (exact
binomial tail: on a handful of victims one lucky hit is not an identification).

Per-image keys: attacks that recover a key (exact known-plaintext) do not
apply, for the reason in NOT_APPLICABLE_PER_IMAGE; `check_applicable` raises
`NotApplicable` with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from lie_jax import chacha
from lie_jax import ciphers
from lie_jax.attacks import chosen_plaintext
from lie_jax.attacks import feature_reconstruction
from lie_jax.attacks import gan
from lie_jax.attacks import inverse_network
from lie_jax.attacks import jigsaw
from lie_jax.attacks import known_plaintext
from lie_jax.attacks import known_plaintext_exact
from lie_jax.attacks import linkage
from lie_jax.attacks import metrics
from lie_jax.attacks import pixel_layout
from lie_jax.attacks import reidentification

# What each attack needs of a scheme, read off its `ciphers.Scheme` record.
APPLIES_TO = {
    # A shared key is a value permutation plus an XOR mask (every invertible block or
    # pixel transform): chosen plaintexts read both off.
    "chosen_plaintext": lambda s: s.invertible and s.kind in ("block", "pixel"),
    # ... and so do known (plain, cipher) pairs, matched position by position.
    "known_plaintext_exact": lambda s: s.invertible and s.kind in ("block", "pixel"),
    "fr_basic": lambda s: s.kind == "pixel",
    "fr_advanced": lambda s: s.kind == "pixel",
    "inverse_network": lambda s: s.kind in ("block", "pixel"),
    "gan": lambda s: s.kind in ("block", "pixel"),
    "jigsaw": lambda s: s.scrambles_blocks,
    "known_plaintext_linear": lambda s: s.kind == "linear",
    # Ciphertext-only linkage to the candidates: what no key changes (or the likelihood).
    "linkage": lambda s: s.name in linkage.SCHEMES,
}
# Attacks that recover one shared key: with per-image keys there is none to recover.
NOT_APPLICABLE_PER_IMAGE = {
    "known_plaintext_exact": known_plaintext_exact.PER_IMAGE_REASON,
}
# attack -> the schemes it applies to, in `ciphers.SCHEMES` order.
ATTACKS = {attack: tuple(name for name, s in ciphers.SCHEMES.items() if applies(s))
           for attack, applies in APPLIES_TO.items()}
ATTACK_DESCRIPTIONS = {
    "chosen_plaintext": "chosen-plaintext key recovery (Chang & Case 2020)",
    "fr_basic": "ciphertext-only feature reconstruction, basic (fold values > 127)",
    "fr_advanced": "ciphertext-only feature reconstruction, advanced (neighbour prediction)",
    "known_plaintext_exact": "known-plaintext exact map recovery (position matching), "
                             "with the minimum number of known pairs",
    "inverse_network": "known-plaintext inverse-transformation network (Ito et al.), "
                       "block-position mixing, early stopping",
    "gan": "known-plaintext GAN inversion (SIA-GAN, Madono et al. 2020)",
    "jigsaw": "ciphertext-only jigsaw solver (rotation, flip, negative-positive; global "
              "placement; for the ViT cipher after reading its pixel shuffle off the blocks)",
    "known_plaintext_linear": "known-plaintext least-squares solve for morph's matrix, inverted",
    "linkage": "ciphertext-only linkage to the candidate scans: key-invariant features "
               "(Huang 2022: exact likelihood under random keys)",
}
# Attacks that answer with a candidate image instead of a reconstruction: their
# re-identification comes from their own scores, and their "recovered" image is the
# candidate they name (byte for byte the plain image when they name the right one).
GALLERY_ATTACKS = ("linkage",)
LEARNED_ATTACKS = ("inverse_network", "gan")  # trained on known pairs; see `key_views`
# Attacks that need the attacker's known plaintexts (train_images).
KNOWN_PLAINTEXT_ATTACKS = ("inverse_network", "gan", "known_plaintext_linear",
                           "known_plaintext_exact")
PIXEL_SCHEMES = tuple(name for name, s in ciphers.SCHEMES.items() if s.kind == "pixel")
BREAK_MARGIN = 0.1
REID_MARGIN = 0.05
REID_ALPHA = 0.01
PSNR_CAP_DB = 100.0
# Helper and training images get key indices from here on, apart from the victims'.
ORACLE_INDEX_OFFSET = 1 << 30


def applicable_attacks(scheme: str) -> list[str]:
  """The attacks in ATTACKS that apply to `scheme` (validated)."""
  ciphers.get_scheme(scheme)
  return [a for a, schemes in ATTACKS.items() if scheme in schemes]


class NotApplicable(ValueError):
  """The attack does not apply to this scheme or key mode; the message says why."""


def check_applicable(attack: str, scheme: str, *, options: dict[str, Any] | None = None,
                     per_image_keys: bool = False) -> None:
  """Raises ValueError for an unknown attack or scheme, `NotApplicable` (a ValueError) for an
  attack that does not apply to the scheme or to per-image keys, with the reason."""
  ciphers.get_scheme(scheme)
  if attack not in ATTACKS:
    raise ValueError(f"unknown attack {attack!r}; choose one of {sorted(ATTACKS)}")
  if scheme not in ATTACKS[attack]:
    fits = applicable_attacks(scheme)
    raise NotApplicable(f"attack {attack!r} does not apply to scheme {scheme!r}; it applies "
                        f"to {list(ATTACKS[attack])}. Attacks for {scheme!r}: {fits or 'none'}")
  if per_image_keys and attack in NOT_APPLICABLE_PER_IMAGE:
    raise NotApplicable(f"{attack} does not apply to per-image keys: "
                        f"{NOT_APPLICABLE_PER_IMAGE[attack]}")
  if scheme == "blockwise" and "ffx" in (options or {}).get("transforms", ()):
    raise ValueError("attacks on blockwise cover the 'shuffle' and 'flip' transforms, not "
                     "'ffx' (its uint16 codes are not a permutation of bytes)")


@dataclasses.dataclass
class AttackResult:
  """What one attack recovered, and its scores (no key material).

  Attributes:
    attack, scheme: names.
    per_image_keys: whether every image had its own key.
    plain: [N, H, W, C] uint8 plain images.
    encrypted: [N, H, W, C] uint8 ciphertexts (morph: `known_plaintext.cipher_view` of
      its float vectors, the image that is shown and scored as the cipher floor).
    recovered: [N, H, W, C] uint8 attack output.
    ssim_mean, psnr_mean: mean SSIM / PSNR (dB, capped at PSNR_CAP_DB) of
      recovered vs plain.
    cipher_ssim_mean, cipher_psnr_mean: the same for the ciphertext (floor).
    prior_ssim_mean, prior_psnr_mean: the same for the mean training image, or None.
    exact_fraction: share of images recovered byte for byte from the ciphertext (0 for
      GALLERY_ATTACKS: they name a candidate the attacker already holds; their hits are
      reid_top1).
    placement_accuracy: mean share of blocks placed right (jigsaw), else None.
    neighbour_comparison: mean share of plain adjacencies kept (jigsaw), else None.
    reid_top1, reid_top5: share of reconstructions whose own plain image is the most
      similar (among the 5 most similar) of the N victims' plain images.
    reid_chance_top1, reid_chance_top5: 1/N and 5/N.
    cipher_reid_top1: the top-1 rate of the ciphertexts themselves (floor).
    known_pairs_needed: known (plain, cipher) pairs that recover the key exactly
      (known_plaintext_exact; None when the pool did not suffice or for other attacks).
    chosen_plaintexts_needed: chosen plaintexts that do (chosen_plaintext,
      known_plaintext_exact; shared keys only), else None.
    details: attack-specific facts (training steps run, pool size, ...).
    key_space_bits: effective key-space bits (min of nominal and PRNG).
    nominal_key_space_bits: the scheme's nominal key space.
    breaks: the verdict (see the module docstring).
    options: the scheme options used (block size, ...).
  """

  attack: str
  scheme: str
  per_image_keys: bool
  plain: np.ndarray
  encrypted: np.ndarray
  recovered: np.ndarray
  ssim_mean: float
  psnr_mean: float
  cipher_ssim_mean: float
  cipher_psnr_mean: float
  prior_ssim_mean: float | None
  prior_psnr_mean: float | None
  exact_fraction: float
  placement_accuracy: float | None
  key_space_bits: float
  nominal_key_space_bits: float
  breaks: bool
  options: dict[str, Any]
  reid_top1: float = 0.0
  reid_top5: float = 0.0
  reid_chance_top1: float = 0.0
  reid_chance_top5: float = 0.0
  cipher_reid_top1: float = 0.0
  neighbour_comparison: float | None = None
  known_pairs_needed: int | None = None
  chosen_plaintexts_needed: int | None = None
  details: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def num_images(self) -> int:
    return int(self.plain.shape[0])

  def summary(self) -> dict[str, Any]:
    """The scores as a JSON-ready dict (no arrays, no keys)."""
    out = {"scheme": self.scheme, "attack": self.attack, "per_image_keys": self.per_image_keys,
           "num_images": self.num_images}
    for field in dataclasses.fields(self):
      if field.name not in ("plain", "encrypted", "recovered", "attack", "scheme",
                            "per_image_keys"):
        out[field.name] = getattr(self, field.name)
    out["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
    return out


def scheme_options(scheme: str, *, block_size: int, options: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
  """generate_key options for a scheme: its defaults, block_size where it takes one, `options`.

  Raises:
    ValueError: unknown scheme, or an option the scheme does not take.
  """
  record = ciphers.get_scheme(scheme)
  out = {"block_size": block_size} if "block_size" in record.options else {}
  out.update(options or {})
  return record.check_options(out)


def _mean_scores(recovered: np.ndarray, plain: np.ndarray) -> tuple[float, float]:
  s = np.asarray(metrics.ssim(recovered, plain))
  p = np.minimum(np.asarray(metrics.psnr(recovered, plain)), PSNR_CAP_DB)
  return float(s.mean()), float(p.mean())


def run_attack(attack: str, scheme: str, images: ArrayLike, *, key: jax.Array,
               block_size: int = 4, per_image_keys: bool = False,
               train_images: ArrayLike | None = None,
               options: dict[str, Any] | None = None, steps: int | None = None,
               key_views: int = 1, progress: bool = False) -> AttackResult:
  """Encrypts `images` with an experiment key, attacks them, and scores the result.

  Args:
    attack: a name in ATTACKS.
    scheme: a scheme name (`lie_jax.ciphers.SCHEMES`) the attack applies to.
    images: [N, H, W, C] uint8 plain (victim) images.
    key: JAX PRNG key of the experiment's cipher key(s).
    block_size: B, for schemes that take one.
    per_image_keys: encrypt image i under its own key (`encrypt_per_image`);
      helpers and training pairs then get keys of their own, as they would.
    train_images: [M, H, W, C] uint8 images disjoint from `images`: the
      attacker's known plaintexts (inverse network, known_plaintext_linear:
      required), the mean-image
      prior baseline, and the FR attack's polarity hint.
    options: further `generate_key` options of the scheme.
    steps: step cap of the learned attacks (inverse network, GAN); None: their
      defaults (they stop early on held-out pairs).
    key_views: with per-image keys, the learned attacks train on every known
      image encrypted under this many keys of its own (the key distribution is
      public: an attacker draws as many as it likes); 1: one key per image.
    progress: show progress bars.

  Returns:
    An `AttackResult`.

  Raises:
    ValueError: unknown names, an attack that does not apply, bad images.
  """
  check_applicable(attack, scheme, options=options, per_image_keys=per_image_keys)
  record = ciphers.get_scheme(scheme)
  plain = np.asarray(images)
  if plain.ndim != 4 or plain.dtype != np.uint8 or len(plain) == 0:
    raise ValueError(f"images must be a non-empty uint8 [N, H, W, C] batch, got {plain.dtype} "
                     f"{plain.shape}")
  train = None if train_images is None else np.asarray(train_images)
  if attack in KNOWN_PLAINTEXT_ATTACKS and (train is None or len(train) == 0):
    raise ValueError(f"the {attack} attack needs train_images (known plaintexts)")
  if per_image_keys and not record.per_image_keys:
    raise ValueError(f"scheme {scheme!r} has no per-image keys")
  if isinstance(key_views, bool) or not isinstance(key_views, int) or key_views < 1:
    raise ValueError(f"key_views must be a positive integer, got {key_views!r}")
  if key_views > 1 and not (per_image_keys and attack in LEARNED_ATTACKS):
    raise ValueError(f"key_views={key_views} applies to the learned attacks "
                     f"{list(LEARNED_ATTACKS)} with per-image keys (under one key every view "
                     f"of an image is the same ciphertext)")
  opts = scheme_options(scheme, block_size=block_size, options=options)
  image_shape = tuple(int(s) for s in plain.shape[1:])
  n = len(plain)

  if per_image_keys:
    def oracle(x, offset=ORACLE_INDEX_OFFSET):
      idx = np.arange(len(x), dtype=np.uint32) + np.uint32(offset)
      return np.asarray(record.encrypt_per_image(key, x, indices=idx, **opts))
    encrypted = np.asarray(record.encrypt_per_image(key, plain, indices=np.arange(n), **opts))
  else:
    cipher_key = record.generate_key(key, image_shape=image_shape, **opts)
    oracle = lambda x: np.asarray(record.encrypt(cipher_key, x))
    encrypted = oracle(plain)
  ciphertext = encrypted
  if encrypted.shape != plain.shape:  # morph: float vectors; show and score them as images
    encrypted = known_plaintext.cipher_view(encrypted, image_shape)

  extra: dict[str, Any] = {"details": {}}
  link_scores = None
  family = "pixel" if scheme in PIXEL_SCHEMES else "block"
  # The mean known image: the prior baseline, and the jigsaw's reference orientation.
  mean_image = (None if train is None or not len(train) else
                np.round(train.astype(np.float64).mean(0)).astype(np.uint8))
  if attack == "chosen_plaintext":
    recovered, _ = chosen_plaintext.attack(oracle, encrypted, scheme=scheme,
                                           block_size=block_size)
    if not per_image_keys:  # chosen images recover a shared key; per image there is none
      extra["chosen_plaintexts_needed"] = known_plaintext_exact.min_chosen_plaintexts(
          scheme, image_shape, opts)
  elif attack == "known_plaintext_exact":
    recovered, extra = _known_plaintext_exact(scheme, opts, oracle, train, plain, encrypted)
  elif attack == "fr_basic":
    recovered = feature_reconstruction.basic(encrypted)
  elif attack == "fr_advanced":
    hint = None if train is None else float(train.mean())
    recovered = feature_reconstruction.advanced(encrypted, mean_hint=hint)
  elif attack in LEARNED_ATTACKS:
    module = inverse_network if attack == "inverse_network" else gan
    # The oracle gives every row its own key: K copies of an image are K keys' views of it.
    views = train if key_views == 1 else np.concatenate([train] * key_views)
    net, history = module.train(oracle(views), views, family=family, block_size=block_size,
                                progress=progress,
                                **({} if steps is None else {"max_steps": steps}))
    recovered = module.reconstruct(net, encrypted)
    extra["details"] = {**_json_ready(history), **({"key_views": key_views}
                                                   if key_views > 1 else {})}
  elif attack == "known_plaintext_linear":
    recovered, _ = known_plaintext.attack(train, oracle(train), ciphertext,
                                          image_shape=image_shape, copies=opts.get("copies", 1))
    extra["known_pairs_needed"] = known_plaintext.pairs_needed(image_shape,
                                                               copies=opts.get("copies", 1))
  elif attack == "linkage":  # the victims' plain images are the candidates it ranks
    recovered, link_scores = linkage.attack(ciphertext, plain, scheme=scheme, options=opts,
                                            progress=progress)
    extra["details"] = {"candidates": int(n), "method": (
        "likelihood" if scheme in linkage.LIKELIHOOD_SCHEMES else "chunk norms"
        if scheme in linkage.NORM_SCHEMES else "key-invariant features")}
  else:  # jigsaw
    transforms = jigsaw.SCHEME_TRANSFORMS.get(scheme, ("shuffle",))
    if scheme in pixel_layout.SCHEMES and opts.get("pixel_shuffling", True):
      # One pixel shuffle for all blocks of an image: read it off and undo it first.
      recovered = pixel_layout.attack(encrypted, block_size=block_size, reference=mean_image,
                                      progress=progress)
      transforms = pixel_layout.SYMMETRY
    else:
      recovered = jigsaw.solve(encrypted, block_size=block_size, transforms=transforms,
                               reference=mean_image, progress=progress)
    scores = jigsaw.scores(recovered, plain, block_size=block_size, transforms=transforms)
    extra["placement_accuracy"] = scores["placement_accuracy"]
    extra["neighbour_comparison"] = scores["neighbour_comparison"]
    extra["details"] = {"transforms": list(transforms), **scores}
  recovered = np.asarray(recovered)

  ssim_mean, psnr_mean = _mean_scores(recovered, plain)
  cipher_ssim, cipher_psnr = _mean_scores(encrypted, plain)
  prior_ssim = prior_psnr = None
  if mean_image is not None:
    prior_ssim, prior_psnr = _mean_scores(np.broadcast_to(mean_image, plain.shape), plain)
  reid = (reidentification.rates_from_scores(link_scores, ks=(1, 5))
          if attack in GALLERY_ATTACKS else
          reidentification.identification_rates(recovered, plain, ks=(1, 5)))
  cipher_reid = reidentification.identification_rates(encrypted, plain, ks=(1,))
  baseline = max(cipher_ssim, prior_ssim if prior_ssim is not None else -1.0)
  exact = (0.0 if attack in GALLERY_ATTACKS else  # it names images, it does not decrypt
           float((recovered == plain).reshape(n, -1).all(1).mean()))
  space = ciphers.key_space_bits(scheme, image_shape=image_shape, prng_impl=chacha.impl_name(key),
                                 **opts)
  breaks = (exact > 0.0 or ssim_mean >= baseline + BREAK_MARGIN
            or (reid["top1"] > reid["chance_top1"] + REID_MARGIN
                and reid["p_top1"] < REID_ALPHA))
  return AttackResult(
      attack=attack, scheme=scheme, per_image_keys=bool(per_image_keys), plain=plain,
      encrypted=encrypted, recovered=recovered, ssim_mean=ssim_mean, psnr_mean=psnr_mean,
      cipher_ssim_mean=cipher_ssim, cipher_psnr_mean=cipher_psnr, prior_ssim_mean=prior_ssim,
      prior_psnr_mean=prior_psnr, exact_fraction=exact,
      placement_accuracy=extra.pop("placement_accuracy", None),
      key_space_bits=float(space.effective_bits),
      nominal_key_space_bits=float(space.nominal_bits), breaks=bool(breaks), options=opts,
      reid_top1=reid["top1"], reid_top5=reid["top5"], reid_chance_top1=reid["chance_top1"],
      reid_chance_top5=reid["chance_top5"], cipher_reid_top1=cipher_reid["top1"], **extra)


def _json_ready(history: dict[str, Any]) -> dict[str, Any]:
  """The scalar entries of a training history (steps run, best loss ...), as JSON types."""
  out = {}
  for k, v in (history or {}).items():
    if isinstance(v, (bool, int, float, str)) or v is None:
      out[k] = v
    elif np.ndim(v) == 0:
      out[k] = float(v)
  return out


def _known_plaintext_exact(scheme, opts, oracle, train, plain, encrypted):
  """The exact known-plaintext attack with the fewest known pairs that decrypt every victim.

  Returns (recovered victims, AttackResult fields): with the minimum K found,
  the victims decrypted from the first K known pairs; when the whole pool does
  not suffice, the victims decrypted from all of it (partly right) and
  known_pairs_needed None.
  """
  needed = known_plaintext_exact.min_known_pairs(oracle, train, plain, scheme=scheme,
                                                 options=opts, max_pairs=len(train))
  k = len(train) if needed is None else needed
  recovered, info = known_plaintext_exact.attack(train[:k], oracle(train[:k]), encrypted,
                                                 scheme=scheme, options=opts)
  details = {"pool": int(len(train)), "pairs_used": int(k)}
  details.update(_json_ready(info))
  return recovered, {
      "known_pairs_needed": needed, "details": details,
      "chosen_plaintexts_needed": known_plaintext_exact.min_chosen_plaintexts(
          scheme, tuple(plain.shape[1:]), opts)}
