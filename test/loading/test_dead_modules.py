"""loading.dead_modules: which stored modules and tensors the released forward never uses."""
from fast_foundation_stereo_ros.loading.dead_modules import dead_module_paths, dead_state_keys, hourglass_dead_modules

from .manifest_nodes import conv, node


def _hourglass(*present):
    return node('hourglass', children={name: conv('Conv3d', (4, 4, 3, 3, 3)) for name in present})


def test_nas_blocks_make_the_code_default_branches_dead():
    assert hourglass_dead_modules(_hourglass('conv1', 'conv2')) == set()
    assert hourglass_dead_modules(_hourglass('post32_to_16')) == {'conv3_up', 'agg_0', 'feature_att_up_16'}
    assert hourglass_dead_modules(_hourglass('post16_to_8', 'post8_to_4')) == {
        'conv2_up', 'agg_1', 'feature_att_up_8', 'conv_patch', 'atts', 'conv_out'}


def test_dead_paths_name_only_stored_modules():
    manifest = node('FastFoundationStereo', children={
        'context_zqr_convs': conv(), 'cost_agg': _hourglass('post32_to_16', 'conv3_up', 'agg_0', 'conv1')})
    assert dead_module_paths(manifest) == ['context_zqr_convs', 'cost_agg.agg_0', 'cost_agg.conv3_up']
    assert dead_module_paths(node('FastFoundationStereo')) == []


def test_dead_state_keys_cover_dead_modules_and_dx():
    manifest = node('FastFoundationStereo', children={
        'context_zqr_convs': conv(), 'cost_agg': _hourglass('post32_to_16', 'agg_0', 'conv1')})
    state = dict.fromkeys(['dx', 'context_zqr_convs.weight', 'cost_agg.agg_0.weight', 'cost_agg.agg_01.weight',
                           'cost_agg.conv1.weight', 'feature.stem.weight'])
    assert dead_state_keys(manifest, state) == ['dx', 'context_zqr_convs.weight', 'cost_agg.agg_0.weight']
