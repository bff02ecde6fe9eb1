"""The package's layout: data flows one way between subpackages, and nobody borrows private names.

Read from the source with `ast` (nothing is imported), every import counts,
including those inside functions. The nodes are lie_jax's subpackages and
top-level modules (`lie_jax.keys` is a node of its own; `lie_jax` itself,
which holds only `__version__`, is "root"). Allowed, per edge A -> B:

  ciphers -> data -> models -> training -> owner, attacks -> cli -> __main__

(each layer may import any layer to its left, never one to its right or its
own rank's neighbour), `keys` may be imported by anyone and imports ciphers
and chacha at most, `chacha` (a PRNG implementation) and root import nothing. No module may import a private name
(`_x`, as a module or as an attribute) of another node.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterable, Mapping

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lie_jax"

RANK = {"ciphers": 0, "data": 1, "models": 2, "training": 3, "owner": 4, "attacks": 4,
        "cli": 5, "configs": 5, "__main__": 6, "train": 6}
ANYONE_MAY_IMPORT = ("keys", "chacha", "root")
MAY_IMPORT = {"keys": {"ciphers", "chacha", "root"}, "chacha": set(), "root": set()}


def package_sources(package: pathlib.Path = PACKAGE) -> dict[str, str]:
  """Dotted module name -> source, for every .py file of the package."""
  sources = {}
  for path in sorted(package.rglob("*.py")):
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts.pop()
    sources[".".join(parts)] = path.read_text()
  return sources


def node_of(module: str) -> str:
  """The layout node of a dotted lie_jax module name ("lie_jax" itself is "root")."""
  parts = module.split(".")
  return "root" if parts == ["lie_jax"] else parts[1]


class Use:
  """One use of another module: `importer` (a node) took `target` (a dotted name)."""

  def __init__(self, module: str, line: int, target: str):
    self.module, self.line, self.target = module, line, target

  def __repr__(self) -> str:
    return f"{self.module}:{self.line} uses {self.target}"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
  if not node.level:
    return node.module or ""
  base = module.split(".")
  base = base if is_package else base[:-1]
  base = base[:len(base) - node.level + 1]
  return ".".join(base + ([node.module] if node.module else []))


def uses(sources: Mapping[str, str]) -> list[Use]:
  """Every lie_jax name each module imports, with attributes read off imported modules.

  `from lie_jax.data import sources` gives lie_jax.data.sources;
  `from lie_jax.data.sources import x` gives lie_jax.data.sources.x; and
  `sources._y` on such an imported module gives lie_jax.data.sources._y.
  """
  found = []
  for module, text in sources.items():
    tree = ast.parse(text)
    is_package = any(other.startswith(module + ".") for other in sources)
    bound: dict[str, str] = {}  # local name -> dotted lie_jax module or name
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        for alias in node.names:
          if alias.name.split(".")[0] == "lie_jax":
            found.append(Use(module, node.lineno, alias.name))
            bound[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else "lie_jax")
      elif isinstance(node, ast.ImportFrom):
        base = _resolve(module, is_package, node)
        if base.split(".")[0] != "lie_jax":
          continue
        for alias in node.names:
          target = f"{base}.{alias.name}"
          found.append(Use(module, node.lineno, target))
          bound[alias.asname or alias.name] = target
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id in bound and bound[node.value.id] in sources):
        found.append(Use(module, node.lineno, f"{bound[node.value.id]}.{node.attr}"))
  return found


def _target_node(target: str, sources: Mapping[str, str]) -> str:
  """The node a used name belongs to: `lie_jax.__version__` is root, `lie_jax.keys` is keys."""
  if len(target.split(".")) == 2 and target not in sources:
    return "root"  # a name defined in lie_jax/__init__.py
  return node_of(target)


def edges(sources: Mapping[str, str]) -> dict[tuple[str, str], list[Use]]:
  """(importer node, imported node) -> the uses behind that edge, between different nodes."""
  result: dict[tuple[str, str], list[Use]] = {}
  for use in uses(sources):
    a, b = node_of(use.module), _target_node(use.target, sources)
    if a != b:
      result.setdefault((a, b), []).append(use)
  return result


def cycles(graph: Iterable[tuple[str, str]]) -> list[list[str]]:
  """The strongly connected components with more than one node (Tarjan)."""
  adjacency: dict[str, set[str]] = {}
  for a, b in graph:
    adjacency.setdefault(a, set()).add(b)
    adjacency.setdefault(b, set())
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(adjacency[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for v in sorted(adjacency):
    if v not in index:
      visit(v)
  return components


def direction_violations(sources: Mapping[str, str]) -> list[str]:
  """Edges that go against ciphers -> data -> models -> training -> owner/attacks -> cli."""
  bad = []
  for (a, b), why in sorted(edges(sources).items()):
    if a in MAY_IMPORT:
      allowed = b in MAY_IMPORT[a]
    elif b in ANYONE_MAY_IMPORT:
      allowed = True
    else:
      allowed = a in RANK and b in RANK and RANK[b] < RANK[a]
    if not allowed:
      bad.append(f"{a} -> {b} ({why[0]})")
  return bad


def private_violations(sources: Mapping[str, str]) -> list[str]:
  """Uses of another node's `_private` module or attribute."""
  bad = []
  for use in uses(sources):
    a, b = node_of(use.module), _target_node(use.target, sources)
    private = [p for p in use.target.split(".")[1:] if p.startswith("_") and not p.startswith("__")]
    if a != b and private:
      bad.append(repr(use))
  return bad


# ---------------------------------------------------------------------------
# The package itself.


def test_no_import_cycles_between_subpackages():
  assert cycles(edges(package_sources())) == []


def test_imports_follow_the_data_flow():
  sources = package_sources()
  assert {node_of(m) for m in sources} <= set(RANK) | set(ANYONE_MAY_IMPORT)
  assert direction_violations(sources) == []


def test_no_module_imports_another_subpackages_private_names():
  assert private_violations(package_sources()) == []


def test_the_walk_sees_the_known_edges():
  # Guards against a checker that silently finds nothing: edges that must exist.
  found = set(edges(package_sources()))
  for edge in [("data", "ciphers"), ("data", "keys"), ("training", "data"), ("owner", "data"),
               ("models", "ciphers"), ("cli", "owner"), ("__main__", "cli")]:
    assert edge in found, edge
  assert ("owner", "training") in found  # predict restores the trainer's checkpoints
  assert ("training", "owner") not in found and ("data", "owner") not in found


# ---------------------------------------------------------------------------
# The checker flags what it must (synthetic packages).


def test_checker_flags_a_cycle_and_an_upward_import():
  sources = {
      "lie_jax": '__version__ = "0"\n',
      "lie_jax.data": "",
      "lie_jax.data.sources": "def load():\n  from lie_jax.owner import store\n",
      "lie_jax.owner": "",
      "lie_jax.owner.store": "from lie_jax.data import sources\n",
  }
  assert cycles(edges(sources)) == [["data", "owner"]]
  assert direction_violations(sources) == [
      "data -> owner (lie_jax.data.sources:2 uses lie_jax.owner.store)"]


def test_checker_flags_private_names_and_keys_importing_upward():
  sources = {
      "lie_jax": '__version__ = "0"\n',
      "lie_jax.keys": "from lie_jax.data import sources\n",
      "lie_jax.ciphers": "",
      "lie_jax.ciphers._core": "X = 1\n",
      "lie_jax.data": "",
      "lie_jax.data.sources": "_GRAY = 1\n",
      "lie_jax.owner": "",
      "lie_jax.owner.inputs": (
          "from lie_jax.data import sources\n"
          "from lie_jax.ciphers._core import X\n"
          "from lie_jax import __version__\n"
          "gray = sources._GRAY\n"),
  }
  assert private_violations(sources) == [
      "lie_jax.owner.inputs:2 uses lie_jax.ciphers._core.X",
      "lie_jax.owner.inputs:4 uses lie_jax.data.sources._GRAY"]
  assert direction_violations(sources) == [
      "keys -> data (lie_jax.keys:1 uses lie_jax.data.sources)"]
  # Private names inside one subpackage are its own business; the root version is for all.
  sources["lie_jax.ciphers.le"] = "from lie_jax.ciphers import _core\nY = _core.X\n"
  assert len(private_violations(sources)) == 2
  assert ("owner", "root") in edges(sources)


@pytest.mark.parametrize("text,target", [
    ("from .sources import load\n", "lie_jax.data.sources.load"),
    ("from . import sources\n", "lie_jax.data.sources"),
    ("import lie_jax.owner.store as store\n", "lie_jax.owner.store"),
])
def test_checker_resolves_relative_and_aliased_imports(text, target):
  sources = {"lie_jax.data": "", "lie_jax.data.pipeline": text, "lie_jax.data.sources": "",
             "lie_jax.owner": "", "lie_jax.owner.store": ""}
  assert target in [use.target for use in uses(sources)]
