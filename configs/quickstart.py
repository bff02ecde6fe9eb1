"""Quickstart: train on LE-encrypted real chest X-rays, on a CPU.

  python train.py --config configs/quickstart.py --workdir workdir/quickstart

PneumoniaMNIST (bundled), LE with 4x4 blocks, Tanaka's block-wise adaptation
network and a small ResNet. Expected: test accuracy >= 0.80 (docs/RESULTS.md
has the measured number).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.cipher.name = "le"
  config.model.adaptation = "block"
  config.model.backbone = "small_resnet"
  config.train.num_epochs = 6
  config.train.batch_size = 64
  config.optim.warmup_steps = 30
  return config
