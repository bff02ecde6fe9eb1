"""MoLe / MpLe: morphed learning (Shen, Liu, Chen, Li, arXiv 1809.09968), as used
by Onesimu & Karthikeyan, "An efficient privacy-preserving deep learning scheme
for medical image analysis", J. Inf. Technol. Management 12 (2021).

The owner flattens an image to a row vector x (values / 255, zero-padded to a
multiple of `copies`: length n) and sends x . M: M is n x n, block-diagonal
with `copies` copies of one m x m core (m = n / copies), here Haar-random
orthogonal, so round trips are exact after rounding to uint8.

The owner turns the model's first convolution (a dense matrix C) into the
augmented convolution C_ac = M^-1 . C, output channels permuted by
`channel_permutation` (`lie_jax.models.augmented_conv`); the server runs
(x . M) . C_ac = the first layer's output on x, channels permuted. That layer
is built from the one key, so there are no per-image keys.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import morph
  >>> k = morph.generate_key(jax.random.key(0), image_shape=(8, 8, 1), copies=4)
  >>> v = morph.encrypt(k, np.full((8, 8, 1), 7, np.uint8))
  >>> v.shape, v.dtype
  ((64,), dtype('float32'))
  >>> int(morph.decrypt(k, v)[0, 0, 0])
  7
"""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lie_jax.ciphers import _core
from lie_jax.ciphers._keytree import cipher_key, static_field


@cipher_key
class MorphKey:
  """Morphing key.

  Attributes:
    core: [m, m] float32 orthogonal core of the block-diagonal morphing matrix.
    channel_key: PRNG key of the secret output-channel permutation (same impl and
      width as the key drawn from: 256-bit ChaCha20 for key files).
    geometry: channels and image shape (block size 1).
    copies: number of core copies on M's diagonal.
  """

  core: jax.Array
  channel_key: jax.Array
  geometry: _core.KeyGeometry = static_field()
  copies: int = static_field(default=1)

  @property
  def vector_size(self) -> int:
    """n: length of the morphed vectors (H*W*C padded to a multiple of copies)."""
    return self.copies * self.core.shape[-1]


def _vector_size(image_shape: tuple[int, int, int], copies: int) -> int:
  return -(-math.prod(image_shape) // copies) * copies


def generate_key(key: jax.Array, *, image_shape: tuple[int, int, int], copies: int = 1
                 ) -> MorphKey:
  """Draws a morphing key for images of `image_shape` (H, W, C).

  copies: kappa, the number of copies of the core on the diagonal of M;
  larger is cheaper (core size n / kappa) and mixes less.
  """
  geometry = _core.make_geometry(image_shape, block_size=1)
  if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
    raise ValueError(f"copies must be a positive int, got {copies!r}")
  m = _vector_size(geometry.image_shape, copies) // copies
  k_core, k_chan = jax.random.split(key)
  q, r = jnp.linalg.qr(jax.random.normal(k_core, (m, m), jnp.float32))
  core = q * jnp.sign(jnp.diagonal(r))[None, :]  # sign fix makes Q Haar-distributed
  return MorphKey(core=core, channel_key=k_chan, geometry=geometry, copies=int(copies))


def _morph_one(cipher_key: MorphKey, image: jax.Array) -> jax.Array:
  n = cipher_key.vector_size
  x = image.reshape(-1).astype(jnp.float32) / 255.0
  x = jnp.pad(x, (0, n - x.shape[0]))
  y = jnp.matmul(x.reshape(cipher_key.copies, -1), cipher_key.core,
                 precision=jax.lax.Precision.HIGHEST)
  return y.reshape(n)


def _unmorph_one(cipher_key: MorphKey, vector: jax.Array) -> jax.Array:
  shape = cipher_key.geometry.image_shape
  x = jnp.matmul(vector.reshape(cipher_key.copies, -1), cipher_key.core.T,
                 precision=jax.lax.Precision.HIGHEST).reshape(-1)[:math.prod(shape)]
  return jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.uint8).reshape(shape)


def encrypt(cipher_key: MorphKey, images: ArrayLike) -> jax.Array:
  """Morphs images: [H, W, C] or [N, H, W, C] uint8 -> [n] or [N, n] float32 (x/255 . M)."""
  return _core.encrypt_with(SCHEME, cipher_key, images)


def decrypt(cipher_key: MorphKey, vectors: ArrayLike) -> jax.Array:
  """Inverts `encrypt`: [n] or [N, n] float32 -> [H, W, C] or [N, H, W, C] uint8."""
  _core.expect_key(cipher_key, MorphKey, "morph.decrypt")
  if not hasattr(vectors, "shape"):
    vectors = np.asarray(vectors)
  n = cipher_key.vector_size
  if vectors.ndim not in (1, 2) or vectors.shape[-1] != n:
    raise ValueError(f"morphed vectors must be [{n}] or [N, {n}], got shape {tuple(vectors.shape)}")
  if not jnp.issubdtype(vectors.dtype, jnp.floating):
    raise TypeError(f"morphed vectors must be floating point, got {vectors.dtype}")
  vectors = jnp.asarray(vectors, jnp.float32)
  if vectors.ndim == 1:  # jitted_decrypt maps over a batch of vectors
    return SCHEME.jitted_decrypt(cipher_key, vectors[None])[0]
  return SCHEME.jitted_decrypt(cipher_key, vectors)


def channel_permutation(cipher_key: MorphKey, num_channels: int) -> jax.Array:
  """The secret [num_channels] permutation of the augmented layer's output channels."""
  return jax.random.permutation(jax.random.fold_in(cipher_key.channel_key, num_channels),
                                num_channels)


def nominal_key_space_bits(*, image_shape: tuple[int, int, int], copies: int = 1) -> float:
  """Infinite: the core is continuous (the PRNG key bounds what can be reached)."""
  del image_shape, copies
  return math.inf


SCHEME = _core.Scheme(
    name="morph", title="Shen et al. MoLe; Onesimu & Karthikeyan MpLe", key_type=MorphKey,
    generate_key=generate_key, encrypt=encrypt, decrypt=decrypt, encrypt_image=_morph_one,
    decrypt_image=_unmorph_one, nominal_key_space_bits=nominal_key_space_bits,
    options={"copies": 1}, kind="linear", scrambles_blocks=False, native_adaptation="morph",
    per_image_keys=False, storable=False, cipher_dtype=lambda **options: np.dtype(np.float32))
