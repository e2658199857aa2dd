"""Shared test fixtures: the reference fixtures in ../shared (paths in test/paths.py)."""
import pytest

from .paths import FIXTURE_DIR, require_fixture


@pytest.fixture(scope='session')
def fixture_dir():
    """The released-layout checkpoint fixture (read in place, never copied)."""
    require_fixture()
    return FIXTURE_DIR
