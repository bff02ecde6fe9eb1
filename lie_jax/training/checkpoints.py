"""Orbax checkpoints of NNX objects (model, optimizer), restorable into live objects.

States are saved as pure dicts of arrays; JAX PRNG keys (dropout streams) are
stored as their key data and re-wrapped on restore. Cipher keys are never part
of a model or optimizer, so no key material reaches a checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx


def _is_prng_key(x: Any) -> bool:
  return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree: Any) -> Any:
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_prng_key(x) else x, tree)


def _from_saveable(tree: Any, template: Any) -> Any:
  def restore_leaf(saved, like):
    if _is_prng_key(like):
      return jax.random.wrap_key_data(saved, impl=jax.random.key_impl(like))
    return saved
  return jax.tree.map(restore_leaf, tree, template)


class Checkpoints:
  """Numbered checkpoints of named NNX objects in one directory."""

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self.directory = os.path.abspath(os.fspath(directory))
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, objects: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Saves the objects' states at `step`, with JSON-serialisable metadata."""
    state = {name: _to_saveable(nnx.to_pure_dict(nnx.state(obj))) for name, obj in objects.items()}
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    metadata=ocp.args.JsonSave(metadata)),
                      force=True)
    self.manager.wait_until_finished()

  def metadata(self, step: int) -> dict[str, Any]:
    """The JSON metadata saved at `step`, without reading any array."""
    restored = self.manager.restore(step, args=ocp.args.Composite(
        metadata=ocp.args.JsonRestore()))
    return dict(restored.metadata or {})

  def restore(self, step: int, objects: dict[str, Any]) -> dict[str, Any]:
    """Restores the objects in place from `step`; returns the saved metadata."""
    templates = {name: nnx.to_pure_dict(nnx.state(obj)) for name, obj in objects.items()}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _to_saveable(templates))
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), metadata=ocp.args.JsonRestore()))
    for name, obj in objects.items():
      state = nnx.state(obj)
      nnx.replace_by_pure_dict(state, _from_saveable(restored.state[name], templates[name]))
      nnx.update(obj, state)
    return dict(restored.metadata or {})

  def close(self) -> None:
    self.manager.close()
