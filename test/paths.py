"""Where the tests find the repository and the reference fixtures (defined once).

The fixtures live in ``../shared`` beside the checkout (CI always has it), or
wherever ``$FFS_SHARED_DIR`` points. Tests that need them skip, naming that
variable, when they are absent; ``.ci/run`` treats their absence as a failure.
"""
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / 'fast_foundation_stereo_ros'
SHARED_DIR = pathlib.Path(os.environ.get('FFS_SHARED_DIR', REPO_ROOT.parent / 'shared'))
FIXTURE_DIR = SHARED_DIR / 'fixtures' / 'ffs_released_layout'
CHECKPOINT = FIXTURE_DIR / 'model_best_bp2_serialize.pth'
REFERENCE = FIXTURE_DIR / 'reference.npz'

MISSING_FIXTURE = (f'reference fixture not found at {FIXTURE_DIR}: put the shared/ folder beside the checkout '
                   'or set FFS_SHARED_DIR to it (see README, "Reference fixtures")')


def require_fixture():
    """Skip the calling test when the reference checkpoint is absent."""
    if not (CHECKPOINT.is_file() and REFERENCE.is_file()):
        pytest.skip(MISSING_FIXTURE)
