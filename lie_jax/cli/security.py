"""`lie-jax attack | security-report`: the security suite from the command line."""

from __future__ import annotations


def register(subparsers) -> None:
  """Adds the security suite's subcommands to `subparsers`."""
  del subparsers  # Filled by the security suite.
