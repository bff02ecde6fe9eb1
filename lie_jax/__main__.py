"""`python -m lie_jax` runs the `lie-jax` command."""

import sys

from lie_jax.cli import main

sys.exit(main())
