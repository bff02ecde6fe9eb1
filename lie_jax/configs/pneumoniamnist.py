"""PneumoniaMNIST (bundled real chest X-rays) with any scheme and adaptation.

  python -m lie_jax.train --config pneumoniamnist:SCHEME,ADAPTATION --workdir workdir/NAME

SCHEME: none | le | ele | etc | pe | huang2022 | vit | morph | blockwise.
ADAPTATION: none | block | ele | pixel | morph (default: the scheme's own).
BACKBONE (optional third field): small_resnet (default; vit for the vit scheme) | resnet18 |
densenet121 | vgg16 | vit, e.g. `none,none,vit` is the plain baseline of the ViT cipher.

Further fields NAME=VALUE (any order, after SCHEME): keys=shared|per_image (default: the
scheme's defining mode: per_image for pe and huang2022), block=B (block size, a divisor of
28), seed=S, e.g. `le,block,keys=per_image,block=7,seed=2` (what benchmarks.frontier runs);
augment=owner (default: flips and shifts of the plain images before encryption) | ciphertexts
(the server flips and shifts the ciphertexts: PE with per-image keys only, e.g.
`pe,pixel,augment=ciphertexts`, the setting of Sirichotedumrong et al. 2019) | none;
data=PATH: a MedMNIST-layout .npz in place of PneumoniaMNIST, e.g. the RGB patches of
`python -m benchmarks.rgb_patches` (`etc,block,data=workdir/rgb_patches/ihc_dab.npz`).

  python -m lie_jax.train --config pneumoniamnist:none,none   --workdir workdir/plain
  python -m lie_jax.train --config pneumoniamnist:le,block    --workdir workdir/le_block
  python -m lie_jax.train --config pneumoniamnist:le,none     --workdir workdir/le_none
  python -m lie_jax.train --config pneumoniamnist:pe,pixel    --workdir workdir/pe_pixel

Expected (measured by `python -m benchmarks.accuracy`, small ResNet, 12 epochs, 3 seeds: mean
and spread; docs/RESULTS.md has every run): test accuracy on encrypted test images::

  none,none 0.843 +- 0.022 | le,block 0.842 +- 0.026 | etc,block 0.848 +- 0.013
  ele,ele 0.851 +- 0.007 | pe,pixel 0.851 +- 0.017 | huang2022,pixel 0.847 +- 0.004
  blockwise,block 0.851 +- 0.007 | morph,morph 0.866 +- 0.005
  vit,none 0.827 +- 0.013 (its plain baseline none,none,vit 0.833 +- 0.004)
  one seed: le,none 0.848 | etc,none 0.841 | ele,none 0.833 | pe,none 0.808
  pe,pixel,augment=ciphertexts 0.863 +- 0.020 (plain test images: 0.861 +- 0.029)

The test split is shifted from val (a different hospital period), so single runs move by a
few points between seeds.
"""

import os

from lie_jax.configs import default
from lie_jax import ciphers

# Each scheme's own adaptation layer, from its record (block-wise for block ciphers,
# per-position sub-networks for ELE, pixel-wise for PE-style ciphers); none for plain images.
NATIVE_ADAPTATION = {"none": "none",
                     **{name: s.native_adaptation for name, s in ciphers.SCHEMES.items()}}


SETTINGS = ("keys", "block", "seed", "augment", "data")
# augment=: who flips and shifts the training images (owner: plain images, before encryption;
# ciphertexts: the server, after, PE with per-image keys only; none).
AUGMENT = {"owner": (True, False), "ciphertexts": (False, True), "none": (False, False)}


def parse(arg: str) -> tuple[str, str, str, dict[str, str]]:
  """`SCHEME[,ADAPTATION[,BACKBONE]][,NAME=VALUE...]` -> (scheme, adaptation, backbone,
  settings); empty strings for fields not given."""
  fields = arg.split(",")
  positional = [f for f in fields if "=" not in f]
  settings = dict(f.split("=", 1) for f in fields if "=" in f)
  unknown = sorted(set(settings) - set(SETTINGS))
  if unknown or len(positional) > 3 or not positional:
    raise ValueError(f"bad config argument {arg!r}: want SCHEME[,ADAPTATION[,BACKBONE]] then "
                     f"NAME=VALUE fields with NAME in {SETTINGS}")
  scheme, adaptation, backbone = (positional + ["", ""])[:3]
  return scheme, adaptation, backbone, settings


def reject_data_settings(fields: list[str], config_name: str) -> None:
  """For the configs built on this one that set their own data (medmnist, huang2022): data= and
  augment= would be overwritten, so they are refused, pointing at the config fields."""
  for field in fields:
    if field.startswith(("data=", "augment=")):
      raise ValueError(f"{field.split('=')[0]}= is not a setting of the {config_name} config "
                       "(it sets its own data and augmentation): use --config.data.path, "
                       "--config.data.augment or --config.data.augment_ciphertexts")


def _int_setting(settings: dict[str, str], name: str) -> int | None:
  if name not in settings:
    return None
  try:
    return int(settings[name])
  except ValueError:
    raise ValueError(f"{name}= wants an integer, got {settings[name]!r}") from None


def get_config(arg: str = "le,block"):
  scheme, adaptation, backbone, settings = parse(arg)
  if scheme not in NATIVE_ADAPTATION:
    raise ValueError(f"unknown scheme {scheme!r}; choose one of {sorted(NATIVE_ADAPTATION)}")
  config = default.get_config()
  config.cipher.name = scheme
  config.model.adaptation = adaptation or NATIVE_ADAPTATION[scheme]
  if scheme == "vit":
    config.model.backbone = "vit"
  if backbone:
    config.model.backbone = backbone
  if scheme != "none":  # the block size the scheme is defined with (its record's default)
    config.cipher.block_size = ciphers.SCHEMES[scheme].options.get("block_size",
                                                                    config.cipher.block_size)
  if scheme in ("pe", "huang2022"):
    # The schemes' defining mode: a fresh key for every image ("no key management").
    config.cipher.per_image_keys = True
  if settings.get("keys") not in (None, "shared", "per_image"):
    raise ValueError(f"keys= is 'shared' or 'per_image', got {settings['keys']!r}")
  if "keys" in settings:
    config.cipher.per_image_keys = settings["keys"] == "per_image"
  if _int_setting(settings, "block") is not None:
    config.cipher.block_size = _int_setting(settings, "block")
  if _int_setting(settings, "seed") is not None:
    config.seed = _int_setting(settings, "seed")
  if settings.get("data"):
    if not settings["data"].endswith(".npz"):
      raise ValueError(f"data= wants a MedMNIST-layout .npz file, got {settings['data']!r}")
    config.data.source, config.data.path = "npz", settings["data"]
    config.data.name = os.path.splitext(os.path.basename(settings["data"]))[0]
  # Flips and small shifts of the plain images (on-device encryption runs after
  # them: the owner-side augmentation of SCHEMES.md), 12 epochs.
  if settings.get("augment", "owner") not in AUGMENT:
    raise ValueError(f"augment= is one of {sorted(AUGMENT)}, got {settings['augment']!r}")
  config.data.augment, config.data.augment_ciphertexts = AUGMENT[settings.get("augment", "owner")]
  config.train.num_epochs = 12
  config.train.batch_size = 64
  config.optim.warmup_steps = 50
  return config
