"""Quickstart: train on encrypted real chest X-rays, on a CPU.

  python -m lie_jax.train --config quickstart --workdir workdir/quickstart

PneumoniaMNIST (bundled), encrypted with the configuration docs/FRONTIER.md shows
strongest within 2 points of plain accuracy (`lie_jax.owner.DEFAULT_SCHEME` with
per-image keys: Huang et al. 2022, PE followed by a lossy block filter, a fresh
key for every image), its pixel-wise adaptation layer, a small ResNet and the
settings of lie_jax/configs/pneumoniamnist.py, cut to 6 epochs. Expected: test accuracy
>= 0.80 (README and docs/RESULTS.md have the measured numbers). It is the least
bad configuration measured, not a safe one: docs/SECURITY.md.
"""

from lie_jax.configs import pneumoniamnist
from lie_jax import owner


def get_config():
  keys = "per_image" if owner.DEFAULT_PER_IMAGE_KEYS else "shared"
  config = pneumoniamnist.get_config(f"{owner.DEFAULT_SCHEME},keys={keys}")
  config.train.num_epochs = 6
  return config
