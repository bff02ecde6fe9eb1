"""Sphinx configuration of the lie_jax API reference (docs/api).

  sphinx-build -W --keep-going -b html docs/api docs/api/_build

-W: every warning (a broken docstring, a missing reference) fails the build, as CI runs it.
"""

import lie_jax

project = "lie_jax"
author = "lie_jax developers"
copyright = "2026, lie_jax developers"  # pylint: disable=redefined-builtin
release = version = lie_jax.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections as :ivar: fields, not a second description of NamedTuple fields.
napoleon_use_ivar = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Names in signatures that Sphinx cannot resolve to pages of ours (JAX, Flax, NumPy types).
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"lie_jax {release} API reference"
