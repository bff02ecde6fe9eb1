"""`lie-jax keygen | encrypt | decrypt | predict | inspect`: the data owner's tools."""

from __future__ import annotations


def register(subparsers) -> None:
  """Adds the data owner's subcommands to `subparsers`."""
  del subparsers  # Filled by the data-owner tools.
