"""Cipher keys as JAX pytrees whose repr never shows key material.

A cipher key is a frozen dataclass: its array fields (permutations, masks,
matrices) are pytree leaves, so keys pass through `jax.jit` and `jax.vmap`
(a batch of per-image keys is one key whose leaves have a leading axis); its
structural fields (block shape, layout, image shape) are static pytree
metadata, so a change of structure recompiles while a change of key does not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax


def static_field(**kwargs: Any) -> Any:
  """A dataclass field stored as static pytree metadata (must be hashable)."""
  return dataclasses.field(metadata={"static": True}, **kwargs)


def _safe_repr(self: Any) -> str:
  parts = []
  for field in dataclasses.fields(self):
    value = getattr(self, field.name)
    if field.metadata.get("static"):
      parts.append(f"{field.name}={value!r}")
    else:
      shape = getattr(value, "shape", None)
      what = type(value).__name__ if shape is None else f"{value.dtype}{list(shape)}"
      parts.append(f"{field.name}=<{what} hidden>")
  return f"{type(self).__name__}({', '.join(parts)})"


def cipher_key(cls: type) -> type:
  """Class decorator: frozen dataclass + pytree registration + safe repr."""
  cls = dataclasses.dataclass(frozen=True, repr=False, eq=False)(cls)
  fields = dataclasses.fields(cls)
  meta = [f.name for f in fields if f.metadata.get("static")]
  data = [f.name for f in fields if not f.metadata.get("static")]
  jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)
  cls.__repr__ = _safe_repr
  cls.__str__ = _safe_repr
  return cls
