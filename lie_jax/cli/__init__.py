"""The `lie-jax` command: the data owner's tools and the security suite.

Subcommands:
  keygen, encrypt, decrypt, predict, inspect   (the data owner's side; `owner`)
  attack, security-report                      (the security suite; `security`)

Each subcommand lives in the module named above, which exposes
`register(subparsers)`: it adds its parsers and sets `func` on them to a
function `func(args) -> int` that returns the exit status.

Run `lie-jax --help` or `python -m lie_jax --help`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lie_jax import __version__


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of the `lie-jax` command, with every subcommand."""
  # Imported here so that `import lie_jax.cli` stays cheap.
  from lie_jax.cli import owner, security

  parser = argparse.ArgumentParser(
      prog="lie-jax",
      description="Learnable image encryption: the data owner's tools and the security suite.")
  parser.add_argument("--version", action="version", version=f"lie-jax {__version__}")
  subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
  owner.register(subparsers)
  security.register(subparsers)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the `lie-jax` command; returns its exit status."""
  parser = build_parser()
  args = parser.parse_args(argv)
  return int(args.func(args))


if __name__ == "__main__":
  sys.exit(main())
