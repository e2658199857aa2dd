"""Shared helpers for the network/checkpoint tests (imported, not a conftest).

Paths follow test/conftest.py (../shared beside the checkout, or
$FFS_SHARED_DIR). Expensive objects — the unpickled record tree, the loaded
fixture model — are built once per test session through lru_cache.
"""
import functools
import os
import pathlib

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = pathlib.Path(os.environ.get('FFS_SHARED_DIR', REPO_ROOT.parent / 'shared'))
FIXTURE_DIR = SHARED_DIR / 'fixtures' / 'ffs_released_layout'
CHECKPOINT = FIXTURE_DIR / 'model_best_bp2_serialize.pth'
REFERENCE = FIXTURE_DIR / 'reference.npz'


def require_fixture():
    if not CHECKPOINT.is_file():
        pytest.fail(f'reference fixture missing at {FIXTURE_DIR}: ../shared must sit beside the '
                    'checkout (or set FFS_SHARED_DIR)')


@functools.lru_cache(maxsize=1)
def reference():
    """dict with left, right (uint8 HxWx3), disparity, valid_iters, max_disp."""
    require_fixture()
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@functools.lru_cache(maxsize=1)
def fixture_model():
    """The fixture checkpoint loaded once through the .pth path (CPU)."""
    require_fixture()
    from fast_foundation_stereo_ros.inference import load_model
    return load_model(CHECKPOINT, device='cpu')


def fixture_records():
    """A fresh unpickled record tree of the fixture, free to edit."""
    require_fixture()
    from fast_foundation_stereo_ros.safe_unpickler import read_pickled_module
    return read_pickled_module(CHECKPOINT)


def small_pair(height=96, width=128):
    """A crop of the fixture pair (fast forwards for layout tests)."""
    data = reference()
    return data['left'][:height, :width].copy(), data['right'][:height, :width].copy()
