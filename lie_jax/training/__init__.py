"""Training on encrypted images: `train_and_evaluate(config, workdir)`."""

from lie_jax.training.trainer import make_optimizer
from lie_jax.training.trainer import train_and_evaluate

__all__ = ["train_and_evaluate", "make_optimizer"]
