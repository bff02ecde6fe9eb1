"""The public API follows the house conventions; the cipher package stays light."""

import inspect
import math
import subprocess
import sys

import pytest

from lie_jax import ciphers


@pytest.mark.parametrize("name", sorted(ciphers.SCHEMES))
def test_scheme_module_conventions(name):
  module = ciphers.SCHEMES[name]
  assert module.__doc__ and len(module.__doc__) > 200
  gen = inspect.signature(module.generate_key)
  params = list(gen.parameters.values())
  assert params[0].name == "key" and params[0].kind == params[0].POSITIONAL_OR_KEYWORD
  assert all(p.kind == p.KEYWORD_ONLY for p in params[1:])
  assert "image_shape" in gen.parameters
  for fn_name in ("encrypt", "decrypt"):
    fn = getattr(module, fn_name, None)
    if fn is None:
      continue
    sig = list(inspect.signature(fn).parameters.values())
    assert [p.name for p in sig[:2]] == ["cipher_key", "images" if fn_name == "encrypt" or
                                         name != "morph" else "vectors"]
    assert all(p.kind == p.KEYWORD_ONLY for p in sig[2:])
    assert fn.__doc__
  if name != "morph":
    assert callable(module.encrypt_per_image)
    sig = inspect.signature(module.encrypt_per_image).parameters
    assert list(sig)[:2] == ["key", "images"]
  assert callable(module.nominal_key_space_bits)


def test_every_public_function_is_documented():
  for name, module in ciphers.SCHEMES.items():
    for attr in dir(module):
      obj = getattr(module, attr)
      if attr.startswith("_") or not inspect.isfunction(obj):
        continue
      if getattr(obj, "__module__", "").startswith("lie_jax.ciphers"):
        assert obj.__doc__, f"{name}.{attr} has no docstring"


def test_ciphers_import_only_jax_and_numpy():
  code = ("import sys, lie_jax.ciphers, lie_jax.keys; "
          "bad = [m for m in ('flax', 'optax', 'grain', 'tensorflow', 'tensorflow_datasets', "
          "'orbax', 'torch') if m in sys.modules]; print(bad)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_key_space_bits():
  ks = ciphers.key_space_bits("le", image_shape=(32, 32, 3), block_size=4)
  assert ks.nominal_bits == pytest.approx(sum(math.log2(i) for i in range(1, 97)))
  assert ks.effective_bits == 64
  assert ciphers.key_space_bits("morph", image_shape=(8, 8, 1)).effective_bits == 64
  assert ciphers.key_space_bits("le", image_shape=(28, 28, 1), block_size=1,
                                prng_impl="rbg").effective_bits == pytest.approx(
                                    math.log2(2))
  etc_bits = ciphers.key_space_bits("etc", image_shape=(8, 8, 3), block_size=4).nominal_bits
  assert etc_bits == pytest.approx(math.log2(24) + 4 * (3 + 1 + math.log2(6)))
  with pytest.raises(ValueError, match="prng_impl"):
    ciphers.key_space_bits("le", image_shape=(8, 8, 1), prng_impl="mt19937")
