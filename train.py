"""Train a classifier on encrypted images.

  python train.py --config configs/quickstart.py --workdir workdir/quickstart

Flags: --config (an ml_collections config file; fields overridable as
--config.train.num_epochs=10) and --workdir (checkpoints, metrics.jsonl,
results.json; rerun the same command to resume). --distributed calls
jax.distributed.initialize() for multi-host runs: on a cluster it finds the
coordinator itself (SLURM, Cloud TPU); elsewhere set JAX_COORDINATOR_ADDRESS
(host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process:

  JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \
      python train.py --config ... --workdir shared/dir --distributed     # on host 0
  JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 \
      python train.py --config ... --workdir shared/dir --distributed     # on host 1

The workdir must be one directory every process sees (checkpoints are written
together); process 0 writes metrics.jsonl and results.json.
"""

import json
import os

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


def initialize_distributed() -> None:
  """jax.distributed.initialize(), with the coordinator from JAX_* variables where set."""
  env = os.environ
  kwargs = {}
  if env.get("JAX_COORDINATOR_ADDRESS"):
    kwargs["coordinator_address"] = env["JAX_COORDINATOR_ADDRESS"]
  for name, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
    if env.get(name):
      try:
        kwargs[arg] = int(env[name])
      except ValueError:
        raise app.UsageError(f"{name} must be an integer, got {env[name]!r}") from None
  # Collectives between CPU processes (tests, CPU clusters); GPUs and TPUs ignore it.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
  if _DISTRIBUTED.value:
    initialize_distributed()
  results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=1))


if __name__ == "__main__":
  app.run(main)
