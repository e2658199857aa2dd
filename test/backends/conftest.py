"""Fixtures of the backend tests: the reference pair and the fixture checkpoint's exported graph."""
import numpy as np
import pytest

from ..export.helpers import exported_fixture_onnx


@pytest.fixture(scope='module')
def onnx_path(tmp_path_factory, fixture_dir):
    return exported_fixture_onnx(tmp_path_factory, fixture_dir)[0]


@pytest.fixture(scope='module')
def fixture_pair(fixture_dir):
    reference = np.load(fixture_dir / 'reference.npz')
    return reference['left'], reference['right']
