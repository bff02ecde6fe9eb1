r"""MedMNIST+ at 224x224 (any single-label 2D dataset), with any scheme, adaptation and backbone.

  python -m lie_jax.train --workdir workdir/NAME \
      --config medmnist:DATASET,SCHEME[,ADAPTATION[,BACKBONE]][,NAME=VALUE...]

DATASET: pathmnist | dermamnist | octmnist | pneumoniamnist | retinamnist | breastmnist |
bloodmnist | tissuemnist | organamnist | organcmnist | organsmnist (ChestMNIST is
multi-label: not supported). Label names come from the MedMNIST metadata
(`lie_jax.data.sources.MEDMNIST_LABEL_NAMES`).

SCHEME, ADAPTATION, keys=, block=, seed=: as lie_jax/configs/pneumoniamnist.py. BACKBONE: resnet18
(default; with the 224 px stem), densenet121, xception, vgg16 or vit (ViT-S/16: patch 16,
dim 384, depth 12, 6 heads; also the default for the vit scheme, whose blocks are 16x16).

size=S: the MedMNIST+ size, 224 (default), 128, 64 or 28.

The file {DATASET}_{S}.npz is read from ~/.medmnist (MedMNIST's own default folder) and
downloaded from Zenodo on first use (`config.data.download`); offline, copy it there or pass
--config.data.path=/path/to/file.npz. Splits over 256 MiB are read per batch (at 224 px
PathMNIST's train split is 4.2 GB), never loaded whole. Examples::

  python -m lie_jax.train --config medmnist:dermamnist,none,none --workdir workdir/derma_plain
  python -m lie_jax.train --config medmnist:pathmnist,etc,block,block=16 \
      --workdir workdir/path_etc
  python -m lie_jax.train --config medmnist:bloodmnist,vit,none --workdir workdir/blood_vit

Expected, measured on 2 CPU cores (ResNet-18, 2 epochs instead of 10, warmup 20 steps:
MedMNIST v2's "(224)" protocol, the bundled 28 px PneumoniaMNIST upsampled to 224; 27-57 min a
run, depending on what else ran)::

  python -m lie_jax.train --config medmnist:pneumoniamnist,none,none \
      --config.data.path=lie_jax/data/pneumoniamnist.npz --config.data.image_size=224 \
      --config.data.download=False --config.train.num_epochs=2 \
      --config.optim.warmup_steps=20 --workdir workdir/med224_none_none
  seed 0: test accuracy 0.862, AUC 0.960 (sensitivity 0.992, specificity 0.645)
  seed 1 (medmnist:pneumoniamnist,none,none,seed=1): 0.845, AUC 0.941 (0.974, 0.628)

The same with lie_jax's default scheme, Huang 2022 with a fresh key for every image and its
pixel-wise adaptation (medmnist:pneumoniamnist,huang2022,pixel[,seed=1], same flags)::

  seed 0: test accuracy 0.806, AUC 0.924 (sensitivity 0.982, specificity 0.513)
  seed 1: 0.856, AUC 0.943 (sensitivity 0.964, specificity 0.675)

Mean over the two seeds 0.831 against 0.854 plain: 2.3 points below, with 5 points between
its two seeds (at 28 px, 12 epochs, it matches plain: 0.847 against 0.843 over 3 seeds).

EtC with a fresh key per image in 2x2 blocks and its block adaptation (no attack but linkage
re-identifies it at 28 px, nor, in its own blocks at 224 px, the learned attacks capped at 100
steps; docs/SECURITY.md) (medmnist:pneumoniamnist,etc,block,keys=per_image,block=2, same
flags)::

  seed 0: test accuracy 0.764, AUC 0.858 (sensitivity 0.900, specificity 0.538)

9 points below plain: 2x2 blocks scrambled over a 224 px image leave a bag of 4-pixel
pieces (at 28 px, 12 epochs, it is 2.7 points below plain over 3 seeds: 0.816 against 0.843).
The full 10 epochs, on an NVIDIA H200 (`bash benchmarks/gpu_checks.sh OUTDIR`, the commands
above without the epoch and warmup flags; 40 s of training each; docs/RESULTS.md)::

  medmnist:pneumoniamnist,none,none          seed 0: 0.857, AUC 0.973 (0.997, 0.624)
  medmnist:pneumoniamnist,huang2022,pixel    seed 0: 0.853, AUC 0.952 (0.977, 0.645)

Not measured: the native MedMNIST+ 224 files (no download here), the other schemes at 224 px
and more seeds (a 224 px step takes about 10 s at batch 64 on a 2-core CPU, 20 ms on the H200).
"""

import os

from lie_jax.configs import pneumoniamnist
from lie_jax.data import sources

DATASETS = tuple(sorted(sources.MEDMNIST_LABEL_NAMES))
SIZES = (28, 64, 128, 224)
# ViT-S/16 (Dosovitskiy et al. 2021; Touvron et al. 2021) for 224 px inputs.
VIT_S16 = {"patch_size": 16, "dim": 384, "depth": 12, "num_heads": 6, "mlp_dim": 1536}


def get_config(arg: str = "dermamnist,none,none"):
  dataset, _, rest = arg.partition(",")
  if dataset not in DATASETS:
    raise ValueError(f"unknown MedMNIST dataset {dataset!r}; choose one of {list(DATASETS)} "
                     "(chestmnist is multi-label: not supported)")
  fields = rest.split(",") if rest else ["none"]
  pneumoniamnist.reject_data_settings(fields, "medmnist")
  size = 224
  for field in [f for f in fields if f.startswith("size=")]:
    fields.remove(field)
    size = int(field[len("size="):]) if field[len("size="):].isdigit() else -1
    if size not in SIZES:
      raise ValueError(f"size= is one of {SIZES}, got {field!r}")
  positional = [f for f in fields if "=" not in f]
  scheme = positional[0]
  if len(positional) < 3:  # the backbone: resnet18, or the ViT for the vit scheme
    positional = (positional + [""])[:2] + ["vit" if scheme == "vit" else "resnet18"]
  if scheme == "vit" and not any(f.startswith("block=") for f in fields):
    fields.append("block=16")
  config = pneumoniamnist.get_config(",".join(positional + [f for f in fields if "=" in f]))
  config.data.name = dataset
  config.data.source = "npz"
  config.data.path = os.path.join(os.path.expanduser("~/.medmnist"),
                                  f"{dataset}.npz" if size == 28 else f"{dataset}_{size}.npz")
  config.data.download = True
  config.data.augment = False  # owner-side flips and shifts are a choice per dataset (laterality)
  backbone = config.model.backbone
  if backbone in ("resnet18", "densenet121", "xception"):
    config.model.options.imagenet_stem = size >= 128
  if backbone == "vit" and size == 224:
    for name, value in VIT_S16.items():
      setattr(config.model.options, name, value)
    if config.cipher.name == "vit":
      config.model.options.patch_size = None  # the cipher's block size (block=, default 16)
  # The papers' adaptation networks keep the image's channels; a 32-channel full-resolution
  # output would multiply the cost of a 224 px ImageNet stem by about 10.
  config.model.adaptation_options.out_channels = 3
  config.train.batch_size = 64
  config.train.eval_batch_size = 128
  config.train.num_epochs = 10
  config.optim.name = "sgd"
  config.optim.learning_rate = 0.05
  config.optim.warmup_steps = 500
  return config
