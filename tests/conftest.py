"""Shared fixtures: every cipher configuration, for parametrised tests."""

import pytest

from tests.cipher_cases import ALL_CASES, INVERTIBLE_CASES, case_id


@pytest.fixture(params=INVERTIBLE_CASES, ids=case_id)
def invertible_case(request):
  return request.param


@pytest.fixture(params=ALL_CASES, ids=case_id)
def any_case(request):
  return request.param


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "notebooks: executes notebooks/*.ipynb; runs only with: pytest -m notebooks")


def pytest_collection_modifyitems(config, items):
  """Notebook runs take minutes: skip them unless `-m` names the marker (`pytest -m notebooks`)."""
  if "notebooks" in config.getoption("markexpr"):
    return
  skip = pytest.mark.skip(reason="executes a notebook; run with: python -m pytest -m notebooks")
  for item in items:
    if item.get_closest_marker("notebooks"):
      item.add_marker(skip)
