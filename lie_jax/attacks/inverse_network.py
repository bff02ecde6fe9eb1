"""Inverse-transformation network (ITN) attack: known plaintext (Ito et al.).

The attacker holds (ciphertext, plain image) pairs made under the victim's
key (e.g. leaked or public images that went through the same pipeline) and
trains a small network to map ciphertexts back to images, then applies it to
held-out ciphertexts. The architecture follows the scheme family:

  block:  conv B x B stride B -> 1x1 conv -> 1x1 conv (B*B*C outputs)
          -> depth-to-space by B (`lie_jax.models.depth_to_space`);
  pixel:  1x1 conv -> 1x1 conv -> 1x1 conv (C outputs).

(1x1 convolutions are `nnx.Linear` layers on the channel axis.)

Inputs are the ciphertext's bits (8 per byte, as +-1), so nibble and bit
permutations and negative-positive flips are linear maps of the input; a
learned bias per block (or pixel) position after the first layer lets the
network learn keys that differ by position (PE's per-pixel flips). The
network is translation-equivariant over block positions otherwise, so it
cannot undo block scrambling (that is the jigsaw attack's job).

Example:
  >>> import jax, numpy as np
  >>> from flax import nnx
  >>> from lie_jax.attacks import inverse_network as itn
  >>> net = itn.InverseNetwork(family="block", image_shape=(8, 8, 1), block_size=4,
  ...                          rngs=nnx.Rngs(0))
  >>> net(np.zeros((2, 8, 8, 1), np.uint8)).shape
  (2, 8, 8, 1)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike

from lie_jax.models.adaptation import depth_to_space

FAMILIES = ("block", "pixel")


def bit_planes(images: jax.Array) -> jax.Array:
  """[N, H, W, C] uint8 -> [N, H, W, 8*C] float32 in {-1, +1} (bit k of channel c at 8c + k)."""
  bits = (images[..., None] >> jnp.arange(8, dtype=jnp.uint8)) & 1
  return (2.0 * bits.astype(jnp.float32) - 1.0).reshape(*images.shape[:-1], -1)


class InverseNetwork(nnx.Module):
  """Maps ciphertexts to plain-image estimates.

  Args:
    family: "block" (block schemes) or "pixel" (pixel-wise schemes).
    image_shape: (H, W, C) of the images.
    block_size: B of the block family (ignored for "pixel").
    hidden: width of the hidden layers.
    positional: add a learned bias per block (pixel) position after the first layer.
    rngs: parameter randomness.

  Call: [N, H, W, C] uint8 ciphertexts -> [N, H, W, C] float32 estimates on a 0..1 scale.
  """

  def __init__(self, *, family: str, image_shape: tuple[int, int, int], block_size: int = 4,
               hidden: int = 64, positional: bool = True, rngs: nnx.Rngs):
    if family not in FAMILIES:
      raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    h, w, c = image_shape
    b = block_size if family == "block" else 1
    if h % b or w % b:
      raise ValueError(f"image size {h}x{w} is not divisible by block_size={b}")
    self.block_size = b
    # 1x1 convolutions are written as nnx.Linear on the channel axis: the same map,
    # and XLA:CPU runs a dense layer faster than a 1x1 convolution.
    if b > 1:
      self.first = nnx.Conv(8 * c, hidden, (b, b), (b, b), padding="VALID", rngs=rngs)
    else:
      self.first = nnx.Linear(8 * c, hidden, rngs=rngs)
    self.mid = nnx.Linear(hidden, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, b * b * c, rngs=rngs)
    self.position_bias = nnx.Param(jnp.zeros((h // b, w // b, hidden))) if positional else None

  def __call__(self, images: jax.Array) -> jax.Array:
    x = self.first(bit_planes(jnp.asarray(images)))
    if self.position_bias is not None:
      x = x + self.position_bias[...]
    x = self.out(nnx.relu(self.mid(nnx.relu(x))))
    return depth_to_space(x, self.block_size) if self.block_size > 1 else x


@nnx.jit
def _train_step(model: InverseNetwork, optimizer: nnx.Optimizer, cipher: jax.Array,
                plain: jax.Array) -> jax.Array:
  def loss_fn(m):
    return jnp.mean((m(cipher) - plain.astype(jnp.float32) / 255.0) ** 2)

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def _predict(model: InverseNetwork, cipher: jax.Array) -> jax.Array:
  return jnp.clip(jnp.round(model(cipher) * 255.0), 0, 255).astype(jnp.uint8)


def train(cipher: ArrayLike, plain: ArrayLike, *, family: str, block_size: int = 4,
          steps: int = 400, batch_size: int = 64, learning_rate: float = 3e-3, hidden: int = 64,
          seed: int = 0, progress: bool = False) -> InverseNetwork:
  """Trains an `InverseNetwork` on known (ciphertext, plain) pairs with Adam.

  Args:
    cipher: [N, H, W, C] uint8 ciphertexts.
    plain: [N, H, W, C] uint8 plain images, pair by pair.
    family: "block" or "pixel".
    block_size: B of the block family.
    steps: optimizer steps (MSE on a 0..1 scale).
    batch_size: pairs per step (drawn without replacement per epoch).
    learning_rate: Adam step size.
    hidden: width of the hidden layers.
    seed: parameter initialisation and batch order.
    progress: show a tqdm progress bar.

  Returns:
    The trained network.
  """
  cipher, plain = np.asarray(cipher), np.asarray(plain)
  if cipher.shape != plain.shape or cipher.ndim != 4 or cipher.dtype != np.uint8:
    raise ValueError(f"need uint8 [N, H, W, C] ciphertexts and plain images of one shape, got "
                     f"{cipher.dtype} {cipher.shape} and {plain.dtype} {plain.shape}")
  model = InverseNetwork(family=family, image_shape=cipher.shape[1:], block_size=block_size,
                         hidden=hidden, rngs=nnx.Rngs(seed))
  optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
  rng = np.random.default_rng(seed)
  n = len(cipher)
  batch_size = min(batch_size, n)
  order, at = rng.permutation(n), 0
  cipher_dev, plain_dev = jnp.asarray(cipher), jnp.asarray(plain)
  bar = range(steps)
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(bar, desc=f"inverse network ({family})", leave=False)
  for _ in bar:
    if at + batch_size > n:
      order, at = rng.permutation(n), 0
    idx = jnp.asarray(order[at:at + batch_size])
    at += batch_size
    _train_step(model, optimizer, cipher_dev[idx], plain_dev[idx])
  return model


def reconstruct(model: InverseNetwork, cipher: ArrayLike, *, batch_size: int = 256) -> np.ndarray:
  """Applies a trained network: [N, H, W, C] uint8 ciphertexts -> uint8 estimates."""
  cipher = np.asarray(cipher)
  parts = [np.asarray(_predict(model, jnp.asarray(cipher[i:i + batch_size])))
           for i in range(0, len(cipher), batch_size)]
  return np.concatenate(parts)
