"""loading.manifest: the fixture's architecture manifest and the node accessors the builders use."""
import pytest

from fast_foundation_stereo_ros.errors import CheckpointError
from fast_foundation_stereo_ros.loading.manifest import (as_tuple, child_node, extract_architecture, join_path,
                                                         node_attr, param_shape)
from fast_foundation_stereo_ros.loading.safe_unpickler import read_pickled_module

from .helpers import CHECKPOINT, require_fixture
from .manifest_nodes import conv, node


def test_fixture_manifest_records_classes_shapes_and_tensors():
    require_fixture()
    manifest, state_dict, args = extract_architecture(read_pickled_module(CHECKPOINT))
    assert manifest['class'] == 'FastFoundationStereo'
    assert manifest['attrs']['cv_group'] == 8 and manifest['attrs']['volume_dim'] == 28
    assert args['max_disp'] == 416 and args['valid_iters'] == 8
    # every recorded parameter shape is the shape of the tensor filed under its dotted path
    stack = [('', manifest)]
    checked = 0
    while stack:
        path, current = stack.pop()
        for name, shape in current['params'].items():
            if shape is not None:
                assert list(state_dict[join_path(path, name)].shape) == shape
                checked += 1
        stack += [(join_path(path, name), child) for name, child in current['children'].items() if child]
    assert checked > 100
    assert list(state_dict['dx'].shape) == manifest['buffers']['dx']


def test_child_node_reads_children_and_modules_held_in_attributes():
    inner = conv()
    parent = node('Block', attrs={'held': {'module': inner}, 'flag': True}, children={'conv': inner, 'gone': None})
    assert child_node(parent, 'conv', 'a.b') is inner
    assert child_node(parent, 'held', 'a.b') is inner
    assert child_node(parent, 'gone', 'a.b', required=False) is None
    with pytest.raises(CheckpointError, match=r"Block at a.b lacks sub-module 'missing'"):
        child_node(parent, 'missing', 'a.b')
    with pytest.raises(CheckpointError, match='Block at root lacks'):
        child_node(parent, 'missing', '')


def test_attributes_shapes_and_paths():
    layer = conv(weight=(8, 4, 3, 3), stride=[2, 2])
    assert node_attr(layer, 'stride') == [2, 2] and node_attr(layer, 'groups', 1) == 1
    assert as_tuple(node_attr(layer, 'stride')) == (2, 2) and as_tuple(3) == 3
    assert param_shape(layer, 'weight', 'x') == [8, 4, 3, 3]
    assert param_shape(layer, 'scale', 'x', required=False) is None
    with pytest.raises(CheckpointError, match="Conv2d at x has no 'scale' parameter"):
        param_shape(layer, 'scale', 'x')
    assert join_path('', 'feature') == 'feature' and join_path('feature', 'stem') == 'feature.stem'
