"""Shared test fixtures: paths to the reference fixtures in ../shared."""
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = pathlib.Path(os.environ.get('FFS_SHARED_DIR', REPO_ROOT.parent / 'shared'))
FIXTURE_DIR = SHARED_DIR / 'fixtures' / 'ffs_released_layout'


@pytest.fixture(scope='session')
def fixture_dir():
    """The released-layout checkpoint fixture (read in place, never copied)."""
    if not (FIXTURE_DIR / 'model_best_bp2_serialize.pth').is_file():
        pytest.fail(f'reference fixture missing at {FIXTURE_DIR}: the ../shared folder must sit beside '
                    'the checkout (or set FFS_SHARED_DIR)')
    return FIXTURE_DIR
