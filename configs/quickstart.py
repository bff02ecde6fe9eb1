"""Quickstart: train on encrypted real chest X-rays, on a CPU.

  python train.py --config configs/quickstart.py --workdir workdir/quickstart

PneumoniaMNIST (bundled), encrypted with the configuration docs/FRONTIER.md shows
strongest within 2 points of plain accuracy (`lie_jax.owner.DEFAULT_SCHEME` with
per-image keys: Huang 2022, PE followed by a lossy block filter, a fresh key per
image), its pixel-wise adaptation layer and a small ResNet. Expected: test
accuracy >= 0.80 (README and docs/RESULTS.md have the measured numbers). It is
the least bad configuration measured, not a safe one: docs/SECURITY.md.
"""

from configs import default
from lie_jax import ciphers
from lie_jax import owner


def get_config():
  config = default.get_config()
  record = ciphers.get_scheme(owner.DEFAULT_SCHEME)
  config.cipher.name = record.name
  config.cipher.per_image_keys = owner.DEFAULT_PER_IMAGE_KEYS
  config.cipher.block_size = record.options.get("block_size", config.cipher.block_size)
  config.model.adaptation = record.native_adaptation
  config.model.backbone = "small_resnet"
  config.train.num_epochs = 6
  config.train.batch_size = 64
  config.optim.warmup_steps = 30
  return config
