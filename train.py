"""Train a classifier on encrypted images: `python -m lie_jax.train` from a checkout.

  python train.py --config quickstart --workdir workdir/quickstart

See lie_jax/train.py for the flags; lie_jax/configs/ for the configs.
"""

from lie_jax import train

if __name__ == "__main__":
  train.run()
