"""The security suite: published attacks on learnable image encryption, and their scores.

Modules::

  metrics:                 SSIM and PSNR (JAX, batched).
  chosen_plaintext:        Chang & Case key recovery for shared-key block transforms.
  feature_reconstruction:  ciphertext-only FR attacks on PE (basic, advanced).
  known_plaintext_exact:   exact key-map recovery from known (plain, cipher) pairs for every
                           shared-key block and pixel scheme, and the fewest pairs it needs.
  inverse_network:         known-plaintext inverse network trained to convergence, with a
                           learnable block permutation (Flax NNX).
  gan:                     the same generator trained adversarially (SIA-GAN style).
  jigsaw:                  ciphertext-only jigsaw solver: rotation, flip, negative-positive
                           and colour per piece, global placement; placement and neighbour
                           comparison scores.
  pixel_layout:            ciphertext-only recovery of a pixel shuffle shared by an image's
                           blocks (the ViT cipher, any key mode), then the jigsaw.
  known_plaintext:         known-plaintext least-squares recovery of morph's matrix.
  reidentification:        top-k re-identification of reconstructions among candidates.
  linkage:                 ciphertext-only linkage to candidate scans: key-invariant
                           features, or the exact likelihood under random keys (Huang 2022).
  learned_linkage:         the same features with a learned metric (DeepSets, InfoNCE),
                           for copies that are not the encrypted file (re-acquisitions).
  suite:                   the registry ATTACKS and `run_attack`.
  report:                  every attack against every scheme: rows, markdown, figures.

Every experiment uses keys drawn from a seed (`jax.random.key(seed)`), never
a data owner's key; results hold images and scores, never key material.

Example:
  >>> import jax
  >>> from lie_jax import attacks, data
  >>> x = data.load_dataset("pneumoniamnist").test.images[:4]
  >>> r = attacks.run_attack("chosen_plaintext", "le", x, key=jax.random.key(0))
  >>> r.exact_fraction, round(r.ssim_mean, 3)
  (1.0, 1.0)
"""

from lie_jax.attacks import chosen_plaintext
from lie_jax.attacks import feature_reconstruction
from lie_jax.attacks import gan
from lie_jax.attacks import inverse_network
from lie_jax.attacks import jigsaw
from lie_jax.attacks import known_plaintext
from lie_jax.attacks import known_plaintext_exact
from lie_jax.attacks import learned_linkage
from lie_jax.attacks import linkage
from lie_jax.attacks import metrics
from lie_jax.attacks import pixel_layout
from lie_jax.attacks import reidentification
from lie_jax.attacks import report
from lie_jax.attacks import suite
from lie_jax.attacks.metrics import psnr
from lie_jax.attacks.metrics import ssim
from lie_jax.attacks.suite import applicable_attacks
from lie_jax.attacks.suite import ATTACKS
from lie_jax.attacks.suite import AttackResult
from lie_jax.attacks.suite import run_attack

__all__ = [
    "ATTACKS", "AttackResult", "run_attack", "applicable_attacks", "ssim", "psnr", "metrics",
    "chosen_plaintext", "feature_reconstruction", "gan", "inverse_network", "jigsaw",
    "known_plaintext", "known_plaintext_exact", "learned_linkage", "linkage", "pixel_layout",
    "reidentification",
    "report", "suite",
]
