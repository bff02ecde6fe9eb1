"""The public API follows the house conventions; the cipher package stays small and light."""

import ast
import inspect
import math
import pathlib
import subprocess
import sys
import typing

import jax
import pytest

from lie_jax import ciphers

CIPHERS_DIR = pathlib.Path(ciphers.__file__).parent
STDLIB = set(sys.stdlib_module_names)


@pytest.mark.parametrize("name", sorted(ciphers.SCHEMES))
def test_scheme_module_conventions(name):
  record = ciphers.SCHEMES[name]
  module = sys.modules[record.generate_key.__module__]
  assert module.SCHEME is record
  assert module.__doc__ and len(module.__doc__) > 200
  gen = inspect.signature(module.generate_key)
  params = list(gen.parameters.values())
  assert params[0].name == "key" and params[0].kind == params[0].POSITIONAL_OR_KEYWORD
  assert all(p.kind == p.KEYWORD_ONLY for p in params[1:])
  # The record declares exactly generate_key's options, with the same defaults.
  declared = {p.name: p.default for p in params[1:] if p.name != "image_shape"}
  assert "image_shape" in gen.parameters and declared == dict(record.options)
  for fn in (record.encrypt, record.decrypt):
    if fn is None:
      continue
    sig = list(inspect.signature(fn).parameters.values())
    assert sig[0].name == "cipher_key" and sig[1].name in ("images", "vectors")
    assert all(p.kind == p.KEYWORD_ONLY for p in sig[2:])
    assert fn.__doc__
  assert callable(module.nominal_key_space_bits)


def test_public_functions_are_documented_plain_defs_with_array_types():
  # Public functions are plain `def`s of their module with their own docstring;
  # array arguments are typed jax.typing.ArrayLike, array results jax.Array.
  for record in ciphers.SCHEMES.values():
    module = sys.modules[record.generate_key.__module__]
    for attr in dir(module):
      obj = getattr(module, attr)
      if attr.startswith("_") or not inspect.isfunction(obj):
        continue
      if obj.__module__ != module.__name__:
        continue
      assert obj.__doc__, f"{module.__name__}.{attr} has no docstring"
      hints = typing.get_type_hints(obj)
      for arg in ("images", "vectors", "perm", "pixel_perm", "block_perm", "kernel"):
        if arg in hints:
          assert hints[arg] in (jax.typing.ArrayLike, jax.typing.ArrayLike | None), (
              f"{module.__name__}.{attr}({arg})")
      if attr in ("encrypt", "decrypt"):
        assert hints["return"] == jax.Array


def _imports(path):
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      yield node.module


def test_ciphers_import_only_jax_numpy_and_the_standard_library():
  for path in CIPHERS_DIR.glob("*.py"):
    for name in _imports(path):
      top = name.split(".")[0]
      ok = top in ("jax", "numpy", "__future__") or top in STDLIB or name.startswith(
          "lie_jax.ciphers")
      assert ok, f"{path.name} imports {name}"
  code = ("import sys, lie_jax.ciphers, lie_jax.keys; "
          "bad = [m for m in ('flax', 'optax', 'grain', 'tensorflow', 'tensorflow_datasets', "
          "'orbax', 'torch', 'chex') if m in sys.modules]; print(bad)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_cipher_package_stays_small():
  # Issue 16: the whole semantics is one executor; the package stays under 1,600 lines.
  lines = sum(len(p.read_text().splitlines()) for p in CIPHERS_DIR.glob("*.py"))
  assert lines <= 1600, lines


def test_key_space_bits():
  ks = ciphers.key_space_bits("le", image_shape=(32, 32, 3), block_size=4)
  assert ks.nominal_bits == pytest.approx(sum(math.log2(i) for i in range(1, 97)))
  # Default: the chacha20 keys that key files give (256 bits); log2(96!) = 499 > 256.
  assert ks.prng_bits == 256 and ks.effective_bits == 256
  mid = ciphers.key_space_bits("le", image_shape=(9, 9, 3), block_size=3)  # log2(54!) = 237
  assert 128 <= mid.nominal_bits < 256 and mid.effective_bits == pytest.approx(mid.nominal_bits)
  assert ciphers.key_space_bits("le", image_shape=(32, 32, 3), block_size=4,
                                prng_impl="threefry2x32").effective_bits == 64
  assert ciphers.key_space_bits("morph", image_shape=(8, 8, 1),
                                prng_impl="threefry2x32").effective_bits == 64
  assert ciphers.key_space_bits("morph", image_shape=(8, 8, 1)).effective_bits == 256
  # Honest below 128 bits: LE at B=4 on 1 channel permutes 2 * 16 nibbles, log2(32!) = 118.
  small = ciphers.key_space_bits("le", image_shape=(28, 28, 1), block_size=4)
  assert small.nominal_bits == pytest.approx(sum(math.log2(i) for i in range(1, 33)))
  assert small.effective_bits == small.nominal_bits < 128
  assert ciphers.key_space_bits("le", image_shape=(28, 28, 1), block_size=1,
                                prng_impl="rbg").effective_bits == pytest.approx(
                                    math.log2(2))
  etc_bits = ciphers.key_space_bits("etc", image_shape=(8, 8, 3), block_size=4).nominal_bits
  assert etc_bits == pytest.approx(math.log2(24) + 4 * (3 + 1 + math.log2(6)))
  with pytest.raises(ValueError, match="prng_impl"):
    ciphers.key_space_bits("le", image_shape=(8, 8, 1), prng_impl="mt19937")
  with pytest.raises(ValueError, match="no option"):
    ciphers.key_space_bits("pe", image_shape=(8, 8, 1), block_size=4)
