"""Shared helpers for the network/checkpoint tests (imported, not a conftest).

Paths come from test/paths.py (../shared beside the checkout, or
$FFS_SHARED_DIR). Expensive objects — the unpickled record tree, the loaded
fixture model — are built once per test session through lru_cache.
"""
import functools

import numpy as np

from ..paths import CHECKPOINT, FIXTURE_DIR, REFERENCE, require_fixture  # noqa: F401 - re-exported


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
    from fast_foundation_stereo_ros.loading.stereo_model import load_model
    return load_model(CHECKPOINT, device='cpu')


def fixture_records():
    """A fresh unpickled record tree of the fixture, free to edit."""
    require_fixture()
    from fast_foundation_stereo_ros.loading.safe_unpickler import read_pickled_module
    return read_pickled_module(CHECKPOINT)


def small_pair(height=96, width=128):
    """A crop of the fixture pair (fast forwards for layout tests)."""
    data = reference()
    return data['left'][:height, :width].copy(), data['right'][:height, :width].copy()
