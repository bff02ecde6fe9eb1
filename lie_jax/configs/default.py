r"""Default configuration: every field, with the values most runs start from.

Variants import this file and override a few fields (see quickstart.py and
pneumoniamnist.py). Any field can also be overridden on the command line:

  python -m lie_jax.train --config default --workdir workdir/default \
      --config.cipher.name=pe --config.model.adaptation=pixel
"""

import ml_collections

placeholder = ml_collections.config_dict.placeholder


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "pneumoniamnist"  # bundled real chest X-rays (CC BY 4.0)
  config.data.source = "auto"          # auto | npz | folder | tfds | encrypted
  config.data.path = ml_collections.config_dict.placeholder(str)  # None: the bundled file
  config.data.data_dir = ml_collections.config_dict.placeholder(str)  # tfds data_dir
  config.data.image_size = ml_collections.config_dict.placeholder(int)
  # Without a validation split, this share of train (seeded by `seed`) becomes one: the
  # checkpoint is never selected on the test split.
  config.data.val_fraction = 0.1
  config.data.augment = False          # owner side: flips/shifts of plain images, then encrypt
  # Server side: flips/shifts of the ciphertexts inside the train step (PE with per-image keys
  # only: refused, with the reason, for block ciphers and shared keys).
  config.data.augment_ciphertexts = False
  # None: splits over data.IN_MEMORY_BYTES (256 MiB) are read per batch, never materialised;
  # True / False: always in memory / always read per batch.
  config.data.in_memory = ml_collections.config_dict.placeholder(bool)
  config.data.download = False         # fetch a missing MedMNIST data.path (NAME_SIZE.npz)

  config.cipher = ml_collections.ConfigDict()
  # none | a scheme of lie_jax.ciphers.SCHEMES (le, ele, etc, pe, huang2022, vit, morph,
  # blockwise) | manifest (an encrypted dataset directory: the scheme from its manifest)
  config.cipher.name = "le"
  config.cipher.block_size = 4
  config.cipher.per_image_keys = False
  # Key file from `lie_jax.keys.write_key_file`; None derives an experiment key
  # from `seed` (public data only). Only the path is stored, never key material.
  config.cipher.secret_file = ml_collections.config_dict.placeholder(str)
  # Seed keys are refused on anything but the bundled public dataset unless this says the
  # data are public (anyone with the config can repeat a seed key).
  config.cipher.allow_seed_keys = False
  # Further generate_key options of the schemes (lie_jax.ciphers.SCHEMES[name].options), settable
  # from the command line, e.g. --config.cipher.options.copies=64; None: the scheme's default.
  config.cipher.options = ml_collections.ConfigDict({
      "layout": placeholder(str),           # le, ele, vit, blockwise: hwc | chw
      "pixel_shuffling": placeholder(bool),  # vit: False = block scrambling alone
      "statistic": placeholder(str),        # huang2022: median | mean
      "copies": placeholder(int),           # morph: copies of the core (one per image row: H)
      "transforms": placeholder(tuple),     # blockwise
  })

  config.model = ml_collections.ConfigDict()
  # small_resnet | resnet18 | densenet121 | vgg16 | vit | xception
  config.model.backbone = "small_resnet"
  config.model.adaptation = "block"       # none | block | ele | pixel | morph
  # Every backbone's options (lie_jax.models.option_defaults), settable from the command line,
  # e.g. --config.model.options.imagenet_stem=True; None keeps the backbone's default, and
  # an option the chosen backbone does not take is refused by name.
  config.model.options = ml_collections.ConfigDict({
      "imagenet_stem": placeholder(bool),   # resnet18, small_resnet, densenet121, xception
      "dropout_rate": placeholder(float),   # every backbone
      "widths": placeholder(tuple),         # small_resnet
      "stage_sizes": placeholder(tuple),    # small_resnet
      "growth_rate": placeholder(int),      # densenet121
      "block_sizes": placeholder(tuple),    # densenet121
      "bn_size": placeholder(int),          # densenet121
      "compression": placeholder(float),    # densenet121
      "middle_blocks": placeholder(int),    # xception
      "patch_size": placeholder(int),       # vit (default: the cipher's block size)
      "dim": placeholder(int),              # vit
      "depth": placeholder(int),            # vit
      "num_heads": placeholder(int),        # vit
      "mlp_dim": placeholder(int),          # vit
      "pool": placeholder(str),             # vit: cls | mean
  })

  # Options of the adaptation layer (None: the layer's default): out_channels of the
  # full-resolution output of block / pixel / morph (default 32, 32, 16; ele keeps the image's
  # channels and none has no layer: both ignore it).
  config.model.adaptation_options = ml_collections.ConfigDict({
      "out_channels": placeholder(int),
  })

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "adamw"          # adamw | sgd (with Nesterov momentum)
  config.optim.learning_rate = 3e-3
  config.optim.momentum = 0.9
  config.optim.weight_decay = 1e-4
  config.optim.warmup_steps = 100

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128
  config.train.eval_batch_size = 256
  config.train.num_epochs = 20
  config.train.num_steps = -1          # > 0 overrides num_epochs
  config.train.eval_every_steps = 0    # 0: once per epoch
  config.train.checkpoint_every_steps = 0  # 0: at every evaluation
  config.train.tensorboard = True      # event files in workdir/tensorboard (tensorboardX)
  config.train.log_every_steps = 10
  config.train.progress_bar = True
  return config
