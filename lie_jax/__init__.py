"""lie_jax: learnable image encryption for privacy-preserving deep learning, in JAX."""

__version__ = "0.1.0"
