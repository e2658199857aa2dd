"""loading.disparity_range: max_disp bound from the positional tables, on the fixture manifest.

Includes the unbounded case (every table resizable): the range analysis says
None and the network must accept it (it used to call int(None)).
"""
import pytest

from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.loading.checkpoint import read_checkpoint
from fast_foundation_stereo_ros.loading.disparity_range import max_disparity_limit
from fast_foundation_stereo_ros.loading.network_builders import build_network, network_config

from .helpers import CHECKPOINT, require_fixture


def _attention_nodes(node):
    if node is None:
        return
    if node['class'] == 'CostVolumeDisparityAttention':
        yield node
    for child in node['children'].values():
        yield from _attention_nodes(child)


@pytest.fixture()
def checkpoint():
    require_fixture()
    return read_checkpoint(CHECKPOINT)


def test_fixture_limit_is_the_table_reach(checkpoint):
    # the released table holds 26 positions at 1/16 of the 1/4-resolution volume: 4 * 26 * 4 = 416 px
    assert max_disparity_limit(checkpoint.manifest) == 416


def test_a_shorter_table_lowers_the_limit(checkpoint):
    for node in _attention_nodes(checkpoint.manifest):
        node['children']['pos_embed0']['tensors']['pe'][1] = 13   # 4 * 13 * 4 = 208 px
    assert max_disparity_limit(checkpoint.manifest) == 192   # rounded down to a multiple of 32


def test_unbounded_range_builds_a_network_without_a_limit(checkpoint):
    nodes = list(_attention_nodes(checkpoint.manifest))
    assert nodes
    for node in nodes:
        node['attrs']['resize_embed'] = True
    assert max_disparity_limit(checkpoint.manifest) is None
    assert network_config(checkpoint.manifest, checkpoint.args)['max_disp_limit'] is None
    network = build_network(checkpoint.manifest, checkpoint.args)
    assert network.max_disp_limit is None
    network.check_max_disp(1024)   # no table bound: any multiple of 32 passes
    with pytest.raises(ConfigError, match='multiple of 32'):
        network.check_max_disp(100)
