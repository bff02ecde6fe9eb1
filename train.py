"""Train a classifier on encrypted images.

  python train.py --config configs/quickstart.py --workdir workdir/quickstart

Flags: --config (an ml_collections config file; fields overridable as
--config.train.num_epochs=10) and --workdir (checkpoints, metrics.jsonl,
results.json; rerun the same command to resume). --distributed calls
jax.distributed.initialize() for multi-host runs.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from lie_jax.training import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Configuration file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and results.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (multi-host runs).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print({k: v for k, v in results.items() if k != "config"})


if __name__ == "__main__":
  app.run(main)
