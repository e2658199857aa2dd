"""loading.network_builders: modules rebuilt from what the manifest records, errors naming the path."""
import pytest
import torch.nn as nn

from fast_foundation_stereo_ros.errors import CheckpointError
from fast_foundation_stereo_ros.loading.network_builders import build_module, build_network
from fast_foundation_stereo_ros.network.subpixel_deconv import SubPixelConvTranspose3d

from .manifest_nodes import conv, node


def test_convolution_takes_widths_from_the_weights_and_flags_from_the_record():
    layer = build_module(conv('Conv2d', (8, 2, 5, 3), bias=False, stride=[2, 1], padding=[2, 1], groups=2))
    assert isinstance(layer, nn.Conv2d)
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (4, 8, (5, 3))
    assert layer.stride == (2, 1) and layer.padding == (2, 1) and layer.groups == 2 and layer.bias is None


def test_transposed_3d_convolution_runs_in_subpixel_form():
    layer = build_module(conv('ConvTranspose3d', (6, 3, 4, 4, 4), stride=[2, 2, 2], padding=[1, 1, 1]))
    assert isinstance(layer, SubPixelConvTranspose3d)
    assert (layer.in_channels, layer.out_channels) == (6, 3)


def test_containers_keep_order_and_names():
    sequence = build_module(node('Sequential', children={'0': conv(weight=(4, 2, 1, 1)),
                                                          '1': node('ReLU'), '2': conv(weight=(2, 4, 1, 1))}))
    assert [type(m).__name__ for m in sequence] == ['Conv2d', 'ReLU', 'Conv2d']
    assert sequence[2].in_channels == 4


def test_inconsistent_record_and_unknown_block_are_named():
    with pytest.raises(CheckpointError, match=r'layer.0: in_channels 3 disagrees with weight shape'):
        build_module(conv(weight=(8, 4, 3, 3), in_channels=3), 'layer.0')
    with pytest.raises(CheckpointError, match=r'unsupported block Mystery \(test.Mystery\) at net.x'):
        build_module(node('Mystery'), 'net.x')


def test_whole_network_needs_the_released_root_and_top_level_modules():
    with pytest.raises(CheckpointError, match='manifest root is Other'):
        build_network(node('Other'), {})
    with pytest.raises(CheckpointError, match=r"lacks top-level modules \['feature'"):
        build_network(node('FastFoundationStereo'), {})
