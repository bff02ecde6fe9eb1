"""Inverse-transformation network (ITN) attack: known plaintext (Ito et al.).

The attacker holds (ciphertext, plain image) pairs made under the victim's
key (leaked or public images that went through the same pipeline), trains a
network to map ciphertexts back to images, and applies it to the victim's
ciphertexts (Ito, Kinoshita, Kiya, "Image to perturbation: an image
transformation network for generating visually protected images for
privacy-preserving deep neural networks", and their inverse-transformation
attack; block-position adaptation after Madono et al., ELE-AdaptNet,
AAAI-20 PPAI).

Architecture. Images are cut into nb blocks of B x B pixels (the "pixel"
family uses cells of 2 x 2 pixels, 1 x 1 for odd sizes, and no block
mixing: a per-position map on a cell can undo per-pixel keys). Every byte
enters as its 8 bits, +-1, so nibble and bit permutations, XOR masks and
negative-positive flips are linear maps of the input:

  1. in-block layer, per cipher block position p: h_p = W_p bits_p + b_p
     (one matrix per position when nb * 8d * hidden stays under
     PER_POSITION_MAX_PARAMS, so a key that differs by block, as ELE's and
     EtC's do, can be undone; otherwise one shared matrix after a learned
     per-position sign/scale s_p on the bits, which still undoes
     per-position XOR masks and negative-positive flips);
  2. block mixing: g_q = sum_p M[q, p] h_p, a learnable [nb, nb] matrix over
     block positions: a block permutation is one such matrix, so block
     scrambling is learnable. M starts uniform (1/nb: every output block
     hears every cipher block) and is stored divided by `mixing_gain`, which
     multiplies its Adam step; from identity or at the base rate it stays
     near its start while the in-block layers overfit;
  3. out-block layer, shared by plain positions q: a linear path plus a
     one-hidden-layer ReLU path, plus a learned bias per output value
     initialised to the mean training image, with the output weights at
     zero: the untrained network predicts the mean image exactly, so
     training starts from the mean-image baseline and can only improve on
     its held-out error.

Every shared-key block or pixel scheme here (LE, ELE, EtC, ViT, PE,
block-wise shuffle/flip) is a signed permutation of bits, so the network can
express the exact inverse where its in-block layer is per position. Parameter
counts stay sane at 224 x 224: with B = 16 (nb = 196) the mixing matrix holds
38k values, the whole RGB network under 10M.

Training to convergence: a share of the known pairs (`val_fraction`) is
held out; every `eval_every` steps the held-out MSE is measured (also at
step 0, the mean image); training stops after `patience` evaluations
without improvement, at a held-out MSE of TARGET_LOSS, or at `max_steps`,
and the best parameters are kept. On 28 x 28 PneumoniaMNIST with 1000 known
pairs and B = 4, the defaults stop after 2000-3000 steps (15-60 s on two CPU
cores) at SSIM 0.98-1.0 on LE, ELE, EtC, ViT, PE and block-wise shuffle.

Example:
  >>> import numpy as np
  >>> from flax import nnx
  >>> from lie_jax.attacks import inverse_network as itn
  >>> net = itn.InverseNetwork(family="block", image_shape=(8, 8, 1), block_size=4,
  ...                          rngs=nnx.Rngs(0))
  >>> net(np.zeros((2, 8, 8, 1), np.uint8)).shape
  (2, 8, 8, 1)
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike

from lie_jax.models.adaptation import depth_to_space
from lie_jax.models.adaptation import space_to_depth

FAMILIES = ("block", "pixel")
MIN_BLOCK, MAX_BLOCK = 1, 32
# Per-position in-block matrices are used while nb * 8d * hidden stays at or below this.
PER_POSITION_MAX_PARAMS = 1 << 22
# Block mixing is built while nb * nb stays at or below this (nb = 3136 at 224 x 224, B = 4).
MIXING_MAX_PARAMS = 1 << 24
# Held-out MSE (0..1 scale) at which training stops: reconstructions are then exact or nearly.
TARGET_LOSS = 1e-7


def bit_planes(images: jax.Array) -> jax.Array:
  """[..., C] uint8 -> [..., 8*C] float32 in {-1, +1} (bit k of channel c at 8c + k)."""
  bits = (images[..., None] >> jnp.arange(8, dtype=jnp.uint8)) & 1
  return (2.0 * bits.astype(jnp.float32) - 1.0).reshape(*images.shape[:-1], -1)


def check_pairs(cipher: ArrayLike, plain: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  """Validates known pairs: uint8 [N, H, W, C] of one shape, C in (1, 3), N >= 2."""
  cipher, plain = np.asarray(cipher), np.asarray(plain)
  if (cipher.shape != plain.shape or cipher.ndim != 4 or cipher.dtype != np.uint8
      or plain.dtype != np.uint8):
    raise ValueError(f"need uint8 [N, H, W, C] ciphertexts and plain images of one shape, got "
                     f"{cipher.dtype} {cipher.shape} and {plain.dtype} {plain.shape}")
  if cipher.shape[-1] not in (1, 3):
    raise ValueError(f"images need 1 or 3 channels, got {cipher.shape[-1]}")
  if len(cipher) < 2:
    raise ValueError(f"need at least 2 known pairs (one held out), got {len(cipher)}")
  return cipher, plain


def _check_geometry(family: str, image_shape: tuple[int, ...], block_size: int) -> int:
  if family not in FAMILIES:
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
  if len(image_shape) != 3 or image_shape[-1] not in (1, 3):
    raise ValueError(f"image_shape must be (H, W, C) with C = 1 or 3, got {image_shape}")
  h, w, _ = image_shape
  if family == "pixel":  # 2x2 cells when they fit: the same maps, and faster than 1x1
    return 2 if h % 2 == 0 and w % 2 == 0 else 1
  b = int(block_size)
  if not MIN_BLOCK <= b <= MAX_BLOCK:
    raise ValueError(f"block_size must be in {MIN_BLOCK}..{MAX_BLOCK}, got {block_size}")
  if h % b or w % b:
    raise ValueError(f"image size {h}x{w} is not divisible by block_size={b}")
  return b


def default_hidden(block_size: int, channels: int) -> int:
  """Feature width: at least 64 and at least the B*B*C values of a block."""
  return max(64, block_size * block_size * channels)


class InverseNetwork(nnx.Module):
  """Maps ciphertexts to plain-image estimates (see the module docstring).

  Args:
    family: "block" (block schemes) or "pixel" (pixel-wise schemes: 2x2 cells, no mixing).
    image_shape: (H, W, C) of the images.
    block_size: B of the block family (ignored for "pixel").
    hidden: feature width (default `default_hidden`).
    mixing: learn the [nb, nb] block-mixing matrix (block family only): True, False, or
      "auto" (True while nb * nb stays at or below MIXING_MAX_PARAMS, e.g. not at 224 x 224
      in 2x2 blocks, nb = 12544; `has_mixing` tells which was built).
    mixing_init: its start, "uniform" (1/nb everywhere) or "identity".
    mixing_gain: its parameter is stored divided by this (a larger Adam step).
    per_position: one in-block matrix per block position: True, False, or "auto"
      (True while it needs at most PER_POSITION_MAX_PARAMS weights).
    mean_image: [H, W, C] uint8 or float (0..255) start of the output bias (default mid-grey).
    rngs: parameter randomness.

  Call: [N, H, W, C] uint8 ciphertexts -> [N, H, W, C] float32 estimates on a 0..1 scale.
  """

  def __init__(self, *, family: str, image_shape: tuple[int, int, int], block_size: int = 4,
               hidden: int | None = None, mixing: bool | str = "auto",
               per_position: bool | str = "auto", mixing_init: str = "uniform", mixing_gain: float = 10.0,
               mean_image: ArrayLike | None = None, rngs: nnx.Rngs):
    image_shape = tuple(int(s) for s in image_shape)
    b = _check_geometry(family, image_shape, block_size)
    h, w, c = image_shape
    nb, e = (h // b) * (w // b), b * b * c
    hidden = default_hidden(b, c) if hidden is None else int(hidden)
    if hidden < 1:
      raise ValueError(f"hidden must be positive, got {hidden}")
    if per_position == "auto":
      per_position = nb * 8 * e * hidden <= PER_POSITION_MAX_PARAMS
    if mixing == "auto":
      mixing = nb * nb <= MIXING_MAX_PARAMS
    elif not isinstance(mixing, (bool, np.bool_)):
      raise ValueError(f"mixing must be True, False or 'auto', got {mixing!r}")
    mixing = bool(mixing) and family == "block" and nb > 1
    if mixing and nb * nb > MIXING_MAX_PARAMS:
      raise ValueError(f"{nb} blocks need a {nb}x{nb} mixing matrix, over the limit; use a "
                       "larger block_size, mixing=False or mixing='auto'")
    if mixing_init not in ("uniform", "identity"):
      raise ValueError(f"mixing_init must be 'uniform' or 'identity', got {mixing_init!r}")
    if mean_image is not None and np.shape(mean_image) != image_shape:
      raise ValueError(f"mean_image must have shape {image_shape}, got {np.shape(mean_image)}")
    self.image_shape, self.block_size, self.family = image_shape, b, family
    init = nnx.initializers.lecun_normal()
    w_in = init(rngs.params(), (8 * e, hidden))
    self.in_weight = nnx.Param(jnp.broadcast_to(w_in, (nb, 8 * e, hidden)) if per_position
                               else w_in)
    self.in_sign = None if per_position else nnx.Param(jnp.ones((nb, 8 * e)))
    self.in_bias = nnx.Param(jnp.zeros((nb, hidden)))
    self.mixing_gain = float(mixing_gain)
    start_mix = jnp.eye(nb) if mixing_init == "identity" else jnp.full((nb, nb), 1.0 / nb)
    self.mixing = nnx.Param(start_mix / self.mixing_gain) if mixing else None
    self.linear_out = nnx.Param(jnp.zeros((hidden, e)))
    self.mid = nnx.Linear(hidden, hidden, rngs=rngs)
    self.relu_out = nnx.Param(jnp.zeros((hidden, e)))
    if mean_image is None:
      start = jnp.full((nb, e), 0.5)
    else:
      mean = jnp.asarray(mean_image, jnp.float32).reshape(1, h, w, c) / 255.0
      start = space_to_depth(mean, b).reshape(nb, e)
    self.out_bias = nnx.Param(start)

  @property
  def has_mixing(self) -> bool:
    """Whether the block-mixing layer was built."""
    return self.mixing is not None

  @property
  def num_blocks(self) -> int:
    h, w, _ = self.image_shape
    return (h // self.block_size) * (w // self.block_size)

  def __call__(self, images: jax.Array) -> jax.Array:
    images = jnp.asarray(images)
    if tuple(images.shape[1:]) != self.image_shape:
      raise ValueError(f"the network was built for {self.image_shape} images, got "
                       f"{tuple(images.shape[1:])}")
    n, (h, w, _), b = images.shape[0], self.image_shape, self.block_size
    blocks = space_to_depth(images, b).reshape(n, self.num_blocks, -1)
    bits = bit_planes(blocks).reshape(n, self.num_blocks, -1)
    weight = self.in_weight[...]
    if self.in_sign is None:
      x = jnp.einsum("npi,pih->nph", bits, weight)
    else:
      x = (bits * self.in_sign[...]) @ weight
    x = x + self.in_bias[...]
    if self.mixing is not None:
      x = jnp.einsum("qp,nph->nqh", self.mixing[...] * self.mixing_gain, x)
    y = x @ self.linear_out[...] + nnx.relu(self.mid(x)) @ self.relu_out[...]
    y = y + self.out_bias[...]
    return depth_to_space(y.reshape(n, h // b, w // b, -1), b)


def mse(model: nnx.Module, cipher: jax.Array, plain: jax.Array) -> jax.Array:
  """Mean squared error of `model(cipher)` against uint8 `plain`, on a 0..1 scale."""
  return jnp.mean((model(cipher) - plain.astype(jnp.float32) / 255.0) ** 2)


def make_chunk_runner(model: nnx.Module, loss: Callable[..., jax.Array],
                      tx: optax.GradientTransformation) -> Callable[..., Any]:
  """A jitted run of k optimizer steps (`lax.scan`) on the parameters of `model`.

  The runner maps (params, opt_state, cipher, plain, idx [k, batch]) to (params, opt_state,
  losses [k]), one step per row of `idx`, with `loss(model, cipher, plain)`; one dispatch per
  chunk keeps the Python overhead of small networks out of the loop.
  """
  graphdef, _, rest = nnx.split(model, nnx.Param, ...)

  def loss_of(params, cipher, plain):
    return loss(nnx.merge(graphdef, params, rest), cipher, plain)

  @jax.jit
  def run(params, opt_state, cipher, plain, idx):
    def body(carry, i):
      params, opt_state = carry
      value, grads = jax.value_and_grad(loss_of)(params, cipher[i], plain[i])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), value

    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), idx)
    return params, opt_state, losses

  return run


@nnx.jit
def _predict(model: nnx.Module, cipher: jax.Array) -> jax.Array:
  return jnp.clip(jnp.round(model(cipher) * 255.0), 0, 255).astype(jnp.uint8)


_eval_mse = nnx.jit(mse)


def held_out_mse(model: nnx.Module, cipher: np.ndarray, plain: np.ndarray, *,
                 batch_size: int = 256) -> float:
  """MSE (0..1 scale) of `model` over all pairs, in batches."""
  total = 0.0
  for i in range(0, len(cipher), batch_size):
    c, p = cipher[i:i + batch_size], plain[i:i + batch_size]
    total += float(_eval_mse(model, jnp.asarray(c), jnp.asarray(p))) * len(c)
  return total / len(cipher)


def split_pairs(cipher: np.ndarray, plain: np.ndarray, *, val_fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Shuffles the pairs and holds out ceil(val_fraction * G) of their G distinct plain images
  (at least 1, at most G - 1), with every pair of a held-out image.

  Pairs of one plain image under several keys (`suite.run_attack(key_views=...)`) thus stay
  on one side, and the held-out loss measures images the network has not seen. With one
  distinct image (G = 1) the pairs themselves are split.
  """
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
  n = len(cipher)
  groups = {}
  image_of = np.array([groups.setdefault(hashlib.blake2b(row.tobytes()).digest(), len(groups))
                       for row in plain])
  if len(groups) < 2:
    image_of = np.arange(n)
  g = int(image_of.max()) + 1
  n_val = min(g - 1, max(1, math.ceil(val_fraction * g)))
  held = np.zeros(g, bool)
  held[np.random.default_rng(seed).permutation(g)[:n_val]] = True
  rng = np.random.default_rng(seed + 1)
  val, tr = rng.permutation(np.flatnonzero(held[image_of])), rng.permutation(
      np.flatnonzero(~held[image_of]))
  return cipher[tr], plain[tr], cipher[val], plain[val]


def batches(n: int, batch_size: int, seed: int):
  """Endless index batches, drawn without replacement per epoch."""
  if int(batch_size) < 1:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
  rng = np.random.default_rng(seed)
  batch_size = min(batch_size, n)
  order, at = rng.permutation(n), 0
  while True:
    if at + batch_size > n:
      order, at = rng.permutation(n), 0
    yield order[at:at + batch_size]
    at += batch_size


def fit(run_steps: Callable[[int, int], None], evaluate: Callable[[], float],
        model: nnx.Module, *, max_steps: int, eval_every: int, patience: int,
        target_loss: float = 0.0, progress: bool = False, desc: str = "training"
        ) -> dict[str, Any]:
  """Runs training with early stopping on `evaluate()` and restores the best parameters.

  `run_steps(start, count)` runs steps start .. start + count - 1 and leaves the new
  parameters in `model`; `evaluate` runs at step 0 and every `eval_every` steps (and at
  the last step); training stops after `patience`
  evaluations without improvement, at a loss <= `target_loss` (nothing left to learn),
  or at `max_steps`. The parameters (nnx.Param) of `model`
  at the best evaluation are put back at the end.

  Returns:
    History: steps (run), best_step, best_val_loss, initial_val_loss, stopped_early, and
    val_curve (a list of (step, loss)).
  """
  for name, v in (("max_steps", max_steps), ("eval_every", eval_every), ("patience", patience)):
    if int(v) < 1:
      raise ValueError(f"{name} must be a positive integer, got {v}")
  best_loss = evaluate()
  curve = [(0, best_loss)]
  best_state = jax.tree.map(jnp.array, nnx.state(model, nnx.Param))
  best_step, waited, done = 0, 0, 0
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=max_steps, desc=desc, leave=False)
  stopped = False
  while done < max_steps:
    chunk = min(eval_every, max_steps - done)
    run_steps(done, chunk)
    done += chunk
    if bar is not None:
      bar.update(chunk)
    loss = evaluate()
    curve.append((done, loss))
    if loss < best_loss:
      best_loss, best_step, waited = loss, done, 0
      best_state = jax.tree.map(jnp.array, nnx.state(model, nnx.Param))
      if loss <= target_loss:
        stopped = True
        break
    else:
      waited += 1
      if waited >= patience:
        stopped = True
        break
    if bar is not None:
      bar.set_postfix(val=f"{loss:.5f}", best=f"{best_loss:.5f}")
  if bar is not None:
    bar.close()
  nnx.update(model, best_state)
  return {"steps": done, "best_step": best_step, "best_val_loss": float(best_loss),
          "initial_val_loss": float(curve[0][1]), "stopped_early": stopped,
          "val_curve": [(int(s), float(v)) for s, v in curve]}


def build(cipher: np.ndarray, plain: np.ndarray, *, family: str, block_size: int,
          hidden: int | None, mixing: bool | str, per_position: bool | str, seed: int
          ) -> InverseNetwork:
  """An `InverseNetwork` for these pairs, its output bias at their mean plain image."""
  return InverseNetwork(family=family, image_shape=cipher.shape[1:], block_size=block_size,
                        hidden=hidden, mixing=mixing, per_position=per_position,
                        mean_image=plain.astype(np.float64).mean(0), rngs=nnx.Rngs(seed))


def train(cipher: ArrayLike, plain: ArrayLike, *, family: str, block_size: int = 4,
          max_steps: int = 3000, eval_every: int = 100, patience: int = 5,
          val_fraction: float = 0.1, batch_size: int = 64, learning_rate: float = 3e-3,
          hidden: int | None = None, mixing: bool | str = "auto",
          per_position: bool | str = "auto", seed: int = 0, progress: bool = False
          ) -> tuple[InverseNetwork, dict[str, Any]]:
  """Trains an `InverseNetwork` on known (ciphertext, plain) pairs with Adam, to convergence.

  Args:
    cipher: [N, H, W, C] uint8 ciphertexts (N >= 2).
    plain: [N, H, W, C] uint8 plain images, pair by pair.
    family: "block" or "pixel".
    block_size: B of the block family.
    max_steps: cap on optimizer steps (MSE on a 0..1 scale); raise it for longer runs.
    eval_every: steps between held-out evaluations.
    patience: evaluations without improvement before stopping.
    val_fraction: share of the pairs held out for early stopping.
    batch_size: pairs per step (drawn without replacement per epoch).
    learning_rate: Adam step size.
    hidden, mixing, per_position: see `InverseNetwork`.
    seed: parameter initialisation, hold-out split and batch order.
    progress: show a tqdm progress bar.

  Returns:
    (the network at its best held-out loss, history from `fit` plus num_train, num_val and
    mixing, whether the block-mixing layer was built).
  """
  cipher, plain = check_pairs(cipher, plain)
  c_tr, p_tr, c_val, p_val = split_pairs(cipher, plain, val_fraction=val_fraction, seed=seed)
  model = build(c_tr, p_tr, family=family, block_size=block_size, hidden=hidden, mixing=mixing,
                per_position=per_position, seed=seed)
  tx = optax.adam(learning_rate)
  run = make_chunk_runner(model, mse, tx)
  state = {"params": nnx.state(model, nnx.Param)}
  state["opt"] = tx.init(state["params"])
  c_dev, p_dev = jnp.asarray(c_tr), jnp.asarray(p_tr)
  draws = batches(len(c_tr), batch_size, seed)

  def run_steps(_, count):
    idx = jnp.asarray(np.stack([next(draws) for _ in range(count)]))
    state["params"], state["opt"], _ = run(state["params"], state["opt"], c_dev, p_dev, idx)
    nnx.update(model, state["params"])

  history = fit(run_steps, lambda: held_out_mse(model, c_val, p_val), model, max_steps=max_steps,
                eval_every=eval_every, patience=patience, target_loss=TARGET_LOSS,
                progress=progress,
                desc=f"inverse network ({family})")
  history.update(num_train=len(c_tr), num_val=len(c_val), mixing=model.has_mixing)
  return model, history


def reconstruct(model: nnx.Module, cipher: ArrayLike, *, batch_size: int = 256) -> np.ndarray:
  """Applies a trained network: [N, H, W, C] uint8 ciphertexts -> uint8 estimates."""
  cipher = np.asarray(cipher)
  if cipher.ndim != 4 or cipher.dtype != np.uint8:
    raise ValueError(f"need uint8 [N, H, W, C] ciphertexts, got {cipher.dtype} {cipher.shape}")
  if tuple(cipher.shape[1:]) != tuple(model.image_shape):
    raise ValueError(f"the network was trained on {tuple(model.image_shape)} images, got "
                     f"{tuple(cipher.shape[1:])}")
  parts = [np.asarray(_predict(model, jnp.asarray(cipher[i:i + batch_size])))
           for i in range(0, len(cipher), batch_size)]
  return np.concatenate(parts) if parts else np.zeros((0, *cipher.shape[1:]), np.uint8)
