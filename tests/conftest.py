"""Shared fixtures: every cipher configuration, for parametrised tests."""

import pytest

from tests.cipher_cases import ALL_CASES, INVERTIBLE_CASES, case_id


@pytest.fixture(params=INVERTIBLE_CASES, ids=case_id)
def invertible_case(request):
  return request.param


@pytest.fixture(params=ALL_CASES, ids=case_id)
def any_case(request):
  return request.param
