r"""Train a classifier on encrypted images.

  python -m lie_jax.train --config quickstart --workdir workdir/quickstart

Flags: --config (a shipped config by name: quickstart, pneumoniamnist:SCHEME,...,
medmnist:..., huang2022:..., encrypted_dir, default, the files in lie_jax/configs/;
or the path of your own ml_collections config file; fields overridable as
--config.train.num_epochs=10) and --workdir (checkpoints, metrics.jsonl,
results.json; rerun the same command to resume). Runs from an installed package
(no clone needed); `python train.py ...` in a checkout is the same command. --distributed calls
jax.distributed.initialize() for multi-host runs: on a cluster it finds the
coordinator itself (SLURM, Cloud TPU); elsewhere set JAX_COORDINATOR_ADDRESS
(host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process:

  JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \
      python -m lie_jax.train --config ... --workdir shared/dir --distributed   # on host 0
  JAX_COORDINATOR_ADDRESS=host0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 \
      python -m lie_jax.train --config ... --workdir shared/dir --distributed   # on host 1

The workdir must be one directory every process sees (checkpoints are written
together); process 0 writes metrics.jsonl and results.json.

A config, data or workdir that cannot be used (a ValueError or OSError before or during
training) ends the run with one line on stderr (naming the process on multi-host runs) and
exit status 2; LIE_JAX_TRACEBACK=1 shows the traceback instead (do so before reporting a bug:
an error inside a model is a ValueError too).
"""

import json
import os
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from lie_jax.training import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A shipped config's name (quickstart, pneumoniamnist:SCHEME,ADAPTATION, "
    "medmnist:..., huang2022:..., encrypted_dir, default) or a config file's path[:ARGS].",
    lock_config=True)
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


CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"


def shipped_configs() -> list[str]:
  """Names of the configs shipped in lie_jax/configs/ (what --config NAME accepts)."""
  return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def resolve_config(value: str) -> str:
  """--config's value with a shipped config's name (`quickstart`, `pneumoniamnist:le,block`,
  `configs/quickstart.py:...`) replaced by its file's path; an existing file is kept as it is."""
  path, sep, arg = value.partition(":")
  if os.path.isfile(path):
    return value
  # A bare name, or the checkout's old configs/NAME.py; any other missing path is an error
  # (never another experiment with the same file name).
  pure = pathlib.PurePath(path)
  name = pure.name.removesuffix(".py")
  if pure.parent in (pathlib.PurePath("."), pathlib.PurePath("configs")) and (
      name in shipped_configs()):
    return f"{CONFIG_DIR / (name + '.py')}{sep}{arg}"
  known = "" if pure.parent != pathlib.PurePath(".") else (
      f" and no shipped config of that name (shipped: {', '.join(shipped_configs())})")
  raise flags.IllegalFlagValueError(f"--config {path!r}: no such file{known}")


def resolve_config_argv(argv: list[str]) -> list[str]:
  """argv with --config's value resolved (resolve_config); overrides (--config.x=...) kept."""
  argv = list(argv)
  for i, arg in enumerate(argv):
    if arg in ("--config", "-config") and i + 1 < len(argv):
      argv[i + 1] = resolve_config(argv[i + 1])
    elif arg.startswith(("--config=", "-config=")):
      flag, _, value = arg.partition("=")
      argv[i] = f"{flag}={resolve_config(value)}"
  return argv


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    argv = resolve_config_argv(argv)
  except flags.Error as e:
    sys.exit(f"FATAL Flags parsing error: {e}")
  return app.parse_flags_with_usage(argv)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
  if _DISTRIBUTED.value:
    initialize_distributed()
  try:
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ValueError, OSError) as e:  # the config, the data or the workdir: one line, exit 2
    if os.environ.get("LIE_JAX_TRACEBACK") == "1":
      raise
    where = f" (process {jax.process_index()})" if jax.process_count() > 1 else ""
    print(f"lie_jax.train: error{where}: {str(e).replace(chr(10), ' ')}", file=sys.stderr)
    sys.exit(2)
  print(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=1))


def run() -> None:
  """The command line: `python -m lie_jax.train` (and train.py in a checkout)."""
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
