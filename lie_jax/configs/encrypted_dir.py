r"""Train on an encrypted dataset directory written by the data owner: the server has no key.

Commands::

  lie-jax keygen --out hospital.key
  lie-jax encrypt --key hospital.key --scheme le --block-size 4 \
      --in lie_jax/data/pneumoniamnist.npz --out workdir/xray-le
  python -m lie_jax.train --config encrypted_dir --workdir workdir/encrypted_dir \
      --config.data.path=workdir/xray-le

The images in the directory are already encrypted, so nothing is encrypted
again: the scheme and block size for the adaptation layer come from its
manifest.json (`cipher.name = "manifest"`), and no key file is configured.
With LE 4x4 on the bundled PneumoniaMNIST this is the quickstart's run on
the owner's ciphertexts instead of on-device ones: expected test accuracy
>= 0.80, as lie_jax/configs/quickstart.py.
"""

from lie_jax.configs import default


def get_config():
  config = default.get_config()
  config.data.source = "encrypted"
  config.data.path = "workdir/xray-le"
  config.cipher.name = "manifest"  # scheme, block size, key fingerprint: from the manifest
  config.model.adaptation = "block"  # "pixel" for PE, "ele" for ELE
  config.model.backbone = "small_resnet"
  config.train.num_epochs = 6
  config.train.batch_size = 64
  config.optim.warmup_steps = 30
  return config
