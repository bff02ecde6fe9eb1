"""The cipher configurations every property test runs over, and small helpers."""

import jax
import numpy as np

from lie_jax import ciphers

# (scheme, generate_key options) for every invertible uint8 -> uint8 cipher.
INVERTIBLE_CASES = [
    ("le", {"block_size": 4}),
    ("le", {"block_size": 2, "layout": "chw"}),
    ("ele", {"block_size": 4}),
    ("etc", {"block_size": 4}),
    ("pe", {}),
    ("vit", {"block_size": 4}),
    ("vit", {"block_size": 4, "layout": "chw"}),
    ("blockwise", {"block_size": 4, "transforms": ("shuffle",)}),
    ("blockwise", {"block_size": 4, "transforms": ("flip",)}),
    ("blockwise", {"block_size": 2, "transforms": ("shuffle", "flip", "ffx")}),
]
ALL_CASES = INVERTIBLE_CASES + [
    ("huang2022", {"block_size": 2, "statistic": "median"}),
    ("morph", {"copies": 4}),
]


def case_id(case):
  scheme, options = case
  return scheme + "".join(f"-{k}={v}" for k, v in options.items()).replace(" ", "")


def random_images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_key(scheme, options, image_shape, seed=0):
  return ciphers.get_scheme(scheme).generate_key(jax.random.key(seed), image_shape=image_shape,
                                                 **options)
