"""Other layouts built from the same block types load and compute what they describe.

Each test edits the unpickled fixture, writes it back in the official file
format (test/ffs_pickle_writer.py) and loads it with our loader. The expected
output comes from an independent route: the already-loaded fixture network
with the same change applied by hand in PyTorch.
"""
import copy

import numpy as np
import pytest
import torch

from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.loading.safe_unpickler import PickledObject
from fast_foundation_stereo_ros.loading.stereo_model import load_model

from . import pickle_writer as writer
from .helpers import fixture_model, fixture_records, reference, small_pair

ITERS, MAX_DISP = 2, 64


def _load_edited(records, tmp_path, name='edited.pth'):
    return load_model(writer.write_checkpoint(records, tmp_path / name))


def _run(network, left, right, iters=ITERS, max_disp=MAX_DISP):
    as_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        return network(as_tensor(left), as_tensor(right), iters, max_disp)[0, 0].numpy()


@pytest.fixture(scope='module')
def pair():
    return small_pair()


@pytest.fixture(scope='module')
def baseline(pair):
    return fixture_model().predict(*pair, valid_iters=ITERS, max_disp=MAX_DISP)


def _records_of(root, class_name):
    found, stack, seen = [], [root], set()
    while stack:
        record = stack.pop()
        if id(record) in seen:
            continue
        seen.add(id(record))
        if record.class_name == class_name:
            found.append(record)
        stack.extend(child for child in record.state.get('_modules', {}).values()
                     if isinstance(child, PickledObject))
    return found


def test_equivalent_encodings_give_identical_output(tmp_path, pair, baseline):
    """relu as bool flags, the other module prefix, old timm paths, BatchNorm3d class."""
    records = fixture_records()
    flags = 0
    for conv in _records_of(records, 'BasicConv'):
        relu = conv.state['_modules'].pop('relu')
        conv.state['relu'] = relu.class_name == 'LeakyReLU'  # as stored by other releases
        flags += 1
    writer.rename_prefix(records, 'foundation_stereo_ori.', 'core.')
    writer.rename_prefix(records, 'timm.layers.', 'timm.models.layers.')
    writer.rename_prefix(writer.module_at(records, 'cost_agg'),
                         'torch.nn.modules.batchnorm.SyncBatchNorm',
                         'torch.nn.modules.batchnorm.BatchNorm3d')
    model = _load_edited(records, tmp_path)
    assert flags == 28  # every BasicConv of the release
    relu = model.network.cost_agg.post8_to_4.upsample[0].relu
    assert isinstance(relu, torch.nn.Identity)  # the relu=False flag of the s4 conv survived
    assert np.array_equal(model.predict(*pair, valid_iters=ITERS, max_disp=MAX_DISP), baseline)


def test_normalize_false_is_honoured(tmp_path, pair, baseline):
    records = fixture_records()
    writer.set_arg(records, 'normalize', False)
    model = _load_edited(records, tmp_path)
    assert model.network.normalize is False and model.args['normalize'] is False
    output = model.predict(*pair, valid_iters=ITERS, max_disp=MAX_DISP)
    assert np.abs(output - baseline).max() > 0.1
    network = fixture_model().network
    network.normalize = False
    try:
        expected = _run(network, *pair)
    finally:
        network.normalize = True
    assert np.array_equal(output, expected)


def test_missing_normalize_key_means_true(tmp_path, pair, baseline):
    records = fixture_records()
    writer.set_arg(records, 'normalize', None)  # like the HF release
    model = _load_edited(records, tmp_path)
    assert 'normalize' not in model.args and model.network.normalize is True
    assert np.array_equal(model.predict(*pair, valid_iters=ITERS, max_disp=MAX_DISP), baseline)


def test_replaced_and_removed_nas_layers(tmp_path, pair, baseline):
    """Drop a BasicConv from post32_to_16 and give an APC a 5-tap disparity kernel."""
    records = fixture_records()
    out16 = writer.module_at(records, 'cost_agg.post32_to_16.out').state['_modules']
    del out16['3']
    conv = writer.module_at(records, 'cost_agg.post16_to_8.out.2.conv2.0')
    generator = torch.Generator().manual_seed(5)
    new_weight = (torch.randn(56, 56, 5, 1, 1, generator=generator) * 0.05)
    conv.state['_parameters']['weight'] = new_weight
    conv.state['kernel_size'], conv.state['padding'] = (5, 1, 1), (2, 0, 0)
    model = _load_edited(records, tmp_path)
    output = model.predict(*pair, valid_iters=ITERS, max_disp=MAX_DISP)

    network = copy.deepcopy(fixture_model().network)
    del network.cost_agg.post32_to_16.out[3]
    replacement = torch.nn.Conv3d(56, 56, (5, 1, 1), padding=(2, 0, 0))
    replacement.weight.data.copy_(new_weight)
    replacement.bias.data.copy_(network.cost_agg.post16_to_8.out[2].conv2[0].bias)
    network.cost_agg.post16_to_8.out[2].conv2[0] = replacement
    expected = _run(network, *pair)
    assert np.abs(output - baseline).max() > 0.01
    assert np.array_equal(output, expected)


def test_code_default_hourglass_path_when_nas_blocks_absent(tmp_path, pair, baseline):
    """Without post* blocks the stored legacy decoder and 4-layer attention are live."""
    records = fixture_records()
    hourglass = writer.module_at(records, 'cost_agg').state['_modules']
    for name in ('post32_to_16', 'post16_to_8', 'post8_to_4'):
        del hourglass[name]
    model = _load_edited(records, tmp_path)
    network = model.network.cost_agg
    for name in ('conv3_up', 'agg_0', 'feature_att_up_16', 'conv2_up', 'agg_1',
                 'feature_att_up_8', 'conv_patch', 'atts', 'conv_out'):
        assert hasattr(network, name), name
    count = lambda module: sum(p.numel() for p in module.parameters())
    nas = fixture_model().network.cost_agg
    nas_blocks = count(nas.post32_to_16) + count(nas.post16_to_8) + count(nas.post8_to_4)
    legacy = sum(count(getattr(network, name)) for name in (
        'conv3_up', 'agg_0', 'feature_att_up_16', 'conv2_up', 'agg_1', 'feature_att_up_8',
        'conv_patch', 'atts', 'conv_out'))
    assert count(model.network) == 14_600_541 - nas_blocks + legacy
    assert len(network.atts['4'].sa) == 4 and model.max_disp_limit == 416
    output = model.predict(*pair, valid_iters=ITERS, max_disp=MAX_DISP)
    assert np.isfinite(output).all() and np.abs(output - baseline).max() > 0.01


def test_disparity_limit_follows_the_positional_table(tmp_path, pair):
    records = fixture_records()
    table = writer.module_at(records, 'cost_agg.post8_to_4.upsample.1.pos_embed0')
    table.state['pe'] = table.state['pe'][:, :20].clone()
    model = _load_edited(records, tmp_path)
    assert model.pe_length == 20 and model.max_disp_limit == 320  # 20 tokens x s4 patch x 1/4 res
    assert np.isfinite(model.predict(*pair, valid_iters=1, max_disp=320)).all()
    with pytest.raises(ConfigError, match='320'):
        model.predict(*pair, valid_iters=1, max_disp=352)


@pytest.mark.parametrize('height, width, max_disp, iters', [
    (128, 192, 128, 1), (100, 150, 256, 3), (64, 96, 416, 2)])
def test_other_sizes_disparity_ranges_and_iterations(height, width, max_disp, iters):
    data = reference()
    left, right = data['left'][:height, :width], data['right'][:height, :width]
    model = fixture_model()
    output = model.predict(left, right, valid_iters=iters, max_disp=max_disp)
    assert output.shape == (height, width) and output.dtype == np.float32
    assert np.isfinite(output).all()
    # predict = the official demo padding (edge replicate, pad//2 top/left) + crop
    pad_h, pad_w = (-height) % 32, (-width) % 32
    pads = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    expected = _run(model.network, np.pad(left, pads, mode='edge'), np.pad(right, pads, mode='edge'),
                    iters, max_disp)
    expected = expected[pads[0][0]:pads[0][0] + height, pads[1][0]:pads[1][0] + width]
    assert np.array_equal(output, expected)


def test_grey_input_is_replicated_to_rgb():
    left, right = small_pair(64, 96)
    grey_left, grey_right = left[..., 1], right[..., 1]
    model = fixture_model()
    from_grey = model.predict(grey_left, grey_right, valid_iters=1, max_disp=64)
    from_rgb = model.predict(np.repeat(grey_left[..., None], 3, 2), np.repeat(grey_right[..., None], 3, 2),
                             valid_iters=1, max_disp=64)
    assert np.array_equal(from_grey, from_rgb)


def test_concat_merge_in_post_forward_helper(tmp_path, pair, baseline):
    """op 'concat' stacks [upsampled, skip]; the next conv takes twice the channels."""
    records = fixture_records()
    block = writer.module_at(records, 'cost_agg.post16_to_8')
    block.state['op'] = 'concat'
    conv = writer.module_at(records, 'cost_agg.post16_to_8.out.0.conv')
    generator = torch.Generator().manual_seed(6)
    new_weight = torch.randn(56, 112, 3, 3, 3, generator=generator) * 0.02
    conv.state['_parameters']['weight'] = new_weight
    conv.state['in_channels'] = 112
    model = _load_edited(records, tmp_path)
    assert model.network.cost_agg.post16_to_8.op == 'concat'
    output = model.predict(*pair, valid_iters=ITERS, max_disp=MAX_DISP)

    network = copy.deepcopy(fixture_model().network)
    network.cost_agg.post16_to_8.op = 'concat'
    replacement = torch.nn.Conv3d(112, 56, 3, padding=1, bias=False)
    replacement.weight.data.copy_(new_weight)
    network.cost_agg.post16_to_8.out[0].conv = replacement
    assert np.array_equal(output, _run(network, *pair))
    assert np.abs(output - baseline).max() > 0.01
