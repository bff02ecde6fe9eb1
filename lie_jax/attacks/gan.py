"""GAN inversion attack: known plaintext (SIA-GAN, Madono et al. 2020; Ito et al.).

SIA-GAN (Madono, Tanaka, Onishi, Ogawa, "SIA-GAN: Scrambling inversion attack
using generative adversarial network", 2020) trains a generator that maps
scrambled images back to plain ones against a discriminator that tells plain
images from reconstructions, in the conditional-GAN style of pix2pix: the
generator's loss is a reconstruction term plus lambda times an adversarial
term, so that it does not settle for the blurry average an MSE network
predicts where the ciphertext leaves the content uncertain. Ito et al. use
the same idea against learnable image encryption.

Here, as in the paper's threat model, the attacker holds known (ciphertext,
plain) pairs made under the victim's key:

  generator:      `inverse_network.InverseNetwork` (bit-plane input, per-position
                  in-block layer, learnable block mixing, output bias at the mean
                  training image: it starts as the mean-image baseline);
  discriminator:  `Discriminator`, a small convolutional network on 0..1 images
                  (2 to 4 stride-2 2x2 convolutions, leaky ReLU, global average,
                  one logit);
  losses:         generator  MSE(G(c), x) + lambda * softplus(-D(G(c)))
                  (non-saturating GAN loss); discriminator
                  softplus(-D(x)) + softplus(D(G(c))).

Both take one Adam step per batch. Early stopping and the kept checkpoint
follow the held-out reconstruction MSE (`inverse_network.fit`), as for the
inverse network.

Example:
  >>> import numpy as np
  >>> from flax import nnx
  >>> from lie_jax.attacks import gan
  >>> d = gan.Discriminator(image_shape=(8, 8, 1), rngs=nnx.Rngs(0))
  >>> d(np.zeros((2, 8, 8, 1), np.float32)).shape
  (2,)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike

from lie_jax.attacks import inverse_network
from lie_jax.models.adaptation import space_to_depth

DEFAULT_LAMBDA = 0.01


class Discriminator(nnx.Module):
  """Small convolutional discriminator: [N, H, W, C] float (0..1) images -> [N] logits.

  A stack of 2 x 2 stride-2 convolutions with leaky ReLU (written as a pixel
  shuffle by 2 and a dense layer, which XLA runs much faster on CPU than a
  convolution), odd sizes edge-padded, then a global average and one logit:
  2 levels below 64 pixels, 3 from 64, 4 from 128.

  Args:
    image_shape: (H, W, C).
    width: channels of the first level (doubled at each later one, at most 128).
    rngs: parameter randomness.
  """

  def __init__(self, *, image_shape: tuple[int, int, int], width: int = 16, rngs: nnx.Rngs):
    h, w, c = (int(s) for s in image_shape)
    if c not in (1, 3) or min(h, w) < 4:
      raise ValueError(f"image_shape must be (H, W, C), H, W >= 4, C = 1 or 3, got {image_shape}")
    depth = 2 + (min(h, w) >= 64) + (min(h, w) >= 128)
    chans = [c] + [min(128, width * 2 ** i) for i in range(depth)]
    self.levels = nnx.List([nnx.Linear(4 * chans[i], chans[i + 1], rngs=rngs)
                            for i in range(depth)])
    self.head = nnx.Linear(chans[-1], 1, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = 2.0 * jnp.asarray(images, jnp.float32) - 1.0
    for level in self.levels:
      pad = ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0))
      x = nnx.leaky_relu(level(space_to_depth(jnp.pad(x, pad, mode="edge"), 2)), 0.2)
    return self.head(x.mean(axis=(1, 2)))[:, 0]


def _make_chunk_runner(gen: nnx.Module, disc: Discriminator, g_tx: optax.GradientTransformation,
                       d_tx: optax.GradientTransformation, lam: float) -> Callable[..., Any]:
  """A jitted run of k GAN steps: (params, opt states, cipher, plain, idx [k, batch]) ->
  (params, opt states, [k, 3] losses: generator MSE, generator adversarial, discriminator)."""
  g_def, _, g_rest = nnx.split(gen, nnx.Param, ...)
  d_def, _, d_rest = nnx.split(disc, nnx.Param, ...)

  def g_loss(g_params, d_params, cipher, real):
    fake = nnx.merge(g_def, g_params, g_rest)(cipher)
    rec = jnp.mean((fake - real) ** 2)
    adv = jnp.mean(jax.nn.softplus(-nnx.merge(d_def, d_params, d_rest)(fake)))
    return rec + lam * adv, (rec, adv, fake)

  def d_loss(d_params, real, fake):
    d = nnx.merge(d_def, d_params, d_rest)
    return jnp.mean(jax.nn.softplus(-d(real))) + jnp.mean(jax.nn.softplus(d(fake)))

  @jax.jit
  def run(params, opts, cipher, plain, idx):
    def body(carry, i):
      (g_params, d_params), (g_opt, d_opt) = carry
      real = plain[i].astype(jnp.float32) / 255.0
      (_, (rec, adv, fake)), g_grads = jax.value_and_grad(g_loss, has_aux=True)(
          g_params, d_params, cipher[i], real)
      updates, g_opt = g_tx.update(g_grads, g_opt, g_params)
      g_params = optax.apply_updates(g_params, updates)
      dl, d_grads = jax.value_and_grad(d_loss)(d_params, real, jax.lax.stop_gradient(fake))
      updates, d_opt = d_tx.update(d_grads, d_opt, d_params)
      d_params = optax.apply_updates(d_params, updates)
      return ((g_params, d_params), (g_opt, d_opt)), jnp.stack([rec, adv, dl])

    (params, opts), losses = jax.lax.scan(body, (params, opts), idx)
    return params, opts, losses

  return run


def train(cipher: ArrayLike, plain: ArrayLike, *, family: str, block_size: int = 4,
          max_steps: int = 3000, eval_every: int = 100, patience: int = 5,
          val_fraction: float = 0.1, batch_size: int = 64, learning_rate: float = 3e-3,
          disc_learning_rate: float = 2e-4, adversarial_weight: float = DEFAULT_LAMBDA,
          hidden: int | None = None, mixing: bool | str = "auto",
          per_position: bool | str = "auto",
          disc_width: int = 16, seed: int = 0, progress: bool = False
          ) -> tuple[inverse_network.InverseNetwork, dict[str, Any]]:
  """Trains the SIA-GAN generator on known (ciphertext, plain) pairs, to convergence.

  Args:
    cipher: [N, H, W, C] uint8 ciphertexts (N >= 2).
    plain: [N, H, W, C] uint8 plain images, pair by pair.
    family: "block" or "pixel" (the generator's, see `inverse_network.InverseNetwork`).
    block_size: B of the block family.
    max_steps: cap on steps (one generator and one discriminator update each).
    eval_every, patience, val_fraction: early stopping on held-out reconstruction MSE.
    batch_size: pairs per step.
    learning_rate: the generator's Adam step size.
    disc_learning_rate: the discriminator's Adam step size (b1 = 0.5).
    adversarial_weight: lambda, the adversarial term's weight in the generator loss (>= 0).
    hidden, mixing, per_position: the generator's, see `inverse_network.InverseNetwork`.
    disc_width: channels of the discriminator's first convolution.
    seed: initialisation, hold-out split and batch order.
    progress: show a tqdm progress bar.

  Returns:
    (the generator at its best held-out MSE, history: `inverse_network.fit`'s plus
    num_train, num_val, mixing (whether the block-mixing layer was built) and the last step's
    gen_mse, gen_adversarial, disc_loss).
  """
  cipher, plain = inverse_network.check_pairs(cipher, plain)
  if not adversarial_weight >= 0.0:
    raise ValueError(f"adversarial_weight must be >= 0, got {adversarial_weight}")
  c_tr, p_tr, c_val, p_val = inverse_network.split_pairs(cipher, plain,
                                                         val_fraction=val_fraction, seed=seed)
  gen = inverse_network.build(c_tr, p_tr, family=family, block_size=block_size, hidden=hidden,
                              mixing=mixing, per_position=per_position, seed=seed)
  disc = Discriminator(image_shape=cipher.shape[1:], width=disc_width, rngs=nnx.Rngs(seed + 1))
  g_tx, d_tx = optax.adam(learning_rate), optax.adam(disc_learning_rate, b1=0.5)
  run = _make_chunk_runner(gen, disc, g_tx, d_tx, float(adversarial_weight))
  params = (nnx.state(gen, nnx.Param), nnx.state(disc, nnx.Param))
  state = {"params": params, "opts": (g_tx.init(params[0]), d_tx.init(params[1]))}
  c_dev, p_dev = jnp.asarray(c_tr), jnp.asarray(p_tr)
  draws = inverse_network.batches(len(c_tr), batch_size, seed)
  last = {}

  def run_steps(_, count):
    idx = jnp.asarray(np.stack([next(draws) for _ in range(count)]))
    state["params"], state["opts"], losses = run(state["params"], state["opts"], c_dev, p_dev,
                                                 idx)
    nnx.update(gen, state["params"][0])
    last["losses"] = losses[-1]

  history = inverse_network.fit(
      run_steps, lambda: inverse_network.held_out_mse(gen, c_val, p_val), gen, max_steps=max_steps,
      eval_every=eval_every, patience=patience, target_loss=inverse_network.TARGET_LOSS,
      progress=progress, desc=f"SIA-GAN ({family})")
  rec, adv, dl = (float(v) for v in last["losses"])
  history.update(num_train=len(c_tr), num_val=len(c_val), mixing=gen.has_mixing, gen_mse=rec,
                 gen_adversarial=adv, disc_loss=dl)
  return gen, history


def reconstruct(generator: nnx.Module, cipher: ArrayLike, *, batch_size: int = 256
                ) -> np.ndarray:
  """Applies a trained generator: [N, H, W, C] uint8 ciphertexts -> uint8 estimates."""
  return inverse_network.reconstruct(generator, cipher, batch_size=batch_size)
