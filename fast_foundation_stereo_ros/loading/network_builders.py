"""Our nn.Module for each manifest node, and the whole network for a manifest.

Every module is rebuilt from what the checkpoint recorded — class, kernel,
stride, padding, output padding, dilation, groups, bias, eps, activation flags,
merge op, upsample mode, head count, table length — and widths from the
weight shapes, never from code defaults. So any NAS layout assembled from the
supported block types loads, not only the published one. Modules the released
forward never reaches are left out (see `dead_modules`); the largest max_disp
comes from `disparity_range`.

Verified by test/loading/test_network_builders.py (builders on hand-made
manifest nodes) and by the layout and reference-parity tests on the fixture.
"""
import collections
import math

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..network import blocks as blocks, edgenext, update_block as update
from ..network.fast_foundation_stereo import ContextNet, FastFoundationStereoNet, FeatureExtractor, Hourglass
from ..network.subpixel_deconv import SubPixelConvTranspose3d
from .dead_modules import hourglass_dead_modules
from .disparity_range import max_disparity_limit
from .manifest import as_tuple, child_node, join_path, node_attr, param_shape

TOP_LEVEL_MODULES = ('feature', 'stem_2', 'proj_cmb', 'corr_stem', 'corr_feature_att',
                     'cost_agg', 'classifier', 'cnet', 'cam', 'sam', 'update_block',
                     'spx_2_gru', 'spx_gru')


def _build_child(node, name, path, required=True):
    child = child_node(node, name, path, required)
    return None if child is None else build_module(child, join_path(path, name))


def _zeros(shape):
    return None if shape is None else torch.zeros(shape)


# ---- torch.nn leaves ---------------------------------------------------------------

# 3-D transposed convolutions run in sub-pixel form (same parameters and names):
# several times faster in ONNX Runtime, a little faster in PyTorch
_CONV_CLASSES = {'Conv2d': nn.Conv2d, 'Conv3d': nn.Conv3d,
                 'ConvTranspose2d': nn.ConvTranspose2d, 'ConvTranspose3d': SubPixelConvTranspose3d}


def _build_conv(node, path):
    weight = param_shape(node, 'weight', path)
    transposed = node['class'].startswith('ConvTranspose')
    groups = int(node_attr(node, 'groups', 1))
    if transposed:
        in_channels, out_channels = weight[0], weight[1] * groups
    else:
        out_channels, in_channels = weight[0], weight[1] * groups
    for name, from_weight in (('in_channels', in_channels), ('out_channels', out_channels)):
        if node_attr(node, name, from_weight) != from_weight:
            raise CheckpointError(f'{path}: {name} {node_attr(node, name)} disagrees with weight '
                                  f'shape {weight}: the checkpoint is inconsistent')
    kwargs = dict(kernel_size=tuple(weight[2:]), stride=as_tuple(node_attr(node, 'stride', 1)),
                  padding=as_tuple(node_attr(node, 'padding', 0)),
                  dilation=as_tuple(node_attr(node, 'dilation', 1)), groups=groups,
                  bias=node['params'].get('bias') is not None)
    if transposed:
        kwargs['output_padding'] = as_tuple(node_attr(node, 'output_padding', 0))
    else:
        kwargs['padding_mode'] = node_attr(node, 'padding_mode', 'zeros')
    return _CONV_CLASSES[node['class']](in_channels, out_channels, **kwargs)


def _num_features(node, path):
    for source in (node['params'].get('weight'), node['buffers'].get('running_mean')):
        if source is not None:
            return source[0]
    if 'num_features' in node['attrs']:
        return int(node['attrs']['num_features'])
    raise CheckpointError(f'{path}: cannot tell the width of {node["class"]}')


def _build_batch_norm(node, path):
    return blocks.EvalBatchNorm(
        _num_features(node, path), eps=float(node_attr(node, 'eps', 1e-5)),
        momentum=node_attr(node, 'momentum', 0.1),
        affine=node['params'].get('weight') is not None,
        track_running_stats=node['buffers'].get('running_mean') is not None)


def _build_instance_norm(node, path):
    cls = nn.InstanceNorm3d if node['class'].endswith('3d') else nn.InstanceNorm2d
    return cls(_num_features(node, path), eps=float(node_attr(node, 'eps', 1e-5)),
               momentum=node_attr(node, 'momentum', 0.1),
               affine=node['params'].get('weight') is not None,
               track_running_stats=node['buffers'].get('running_mean') is not None)


def _layer_norm_args(node, path):
    shape = node_attr(node, 'normalized_shape') or param_shape(node, 'weight', path)
    return dict(normalized_shape=tuple(shape), eps=float(node_attr(node, 'eps', 1e-5)),
                elementwise_affine=node['params'].get('weight') is not None,
                bias=node['params'].get('bias') is not None)


def _build_layer_norm(node, path):
    return nn.LayerNorm(**_layer_norm_args(node, path))


def _build_layer_norm_2d(node, path):
    return edgenext.LayerNorm2d(**_layer_norm_args(node, path))


def _build_linear(node, path):
    weight = param_shape(node, 'weight', path)
    return nn.Linear(weight[1], weight[0], bias=node['params'].get('bias') is not None)


def _build_upsample(node, path):
    scale = node_attr(node, 'scale_factor')
    return blocks.Resample(size=as_tuple(node_attr(node, 'size')),
                           scale_factor=as_tuple(scale), mode=node_attr(node, 'mode', 'nearest'),
                           align_corners=node_attr(node, 'align_corners'),
                           recompute_scale_factor=node_attr(node, 'recompute_scale_factor'))


def _ordered_children(node, path):
    return collections.OrderedDict(
        (name, build_module(child, join_path(path, name)))
        for name, child in node['children'].items() if child is not None)


def _build_sequential(node, path):
    return nn.Sequential(_ordered_children(node, path))


def _build_module_list(node, path):
    children = _ordered_children(node, path)
    if list(children) != [str(i) for i in range(len(children))]:
        raise CheckpointError(f'{path}: ModuleList entries are not numbered 0..n-1')
    return nn.ModuleList(children.values())


def _build_module_dict(node, path):
    return nn.ModuleDict(_ordered_children(node, path))


_SIMPLE_LEAVES = {
    'Identity': lambda node, path: nn.Identity(),
    'Dropout': lambda node, path: nn.Identity(),       # inference: dropout is a no-op
    'DropPath': lambda node, path: nn.Identity(),
    'ReLU': lambda node, path: nn.ReLU(),
    'Sigmoid': lambda node, path: nn.Sigmoid(),
    'Tanh': lambda node, path: nn.Tanh(),
    'LeakyReLU': lambda node, path: nn.LeakyReLU(float(node_attr(node, 'negative_slope', 0.01))),
    'GELU': lambda node, path: nn.GELU(approximate=node_attr(node, 'approximate', 'none')),
    'AdaptiveAvgPool2d': lambda node, path: nn.AdaptiveAvgPool2d(as_tuple(node_attr(node, 'output_size', 1))),
    'AdaptiveMaxPool2d': lambda node, path: nn.AdaptiveMaxPool2d(as_tuple(node_attr(node, 'output_size', 1))),
}


# ---- FFS blocks --------------------------------------------------------------------

def _activation(node, path):
    """`relu` is a child module in some pickles and a bool attribute in others."""
    child = node['children'].get('relu')
    if child is not None:
        return build_module(child, join_path(path, 'relu'))
    return blocks.activation_from_flag(bool(node_attr(node, 'relu', True)))


def _build_basic_conv(node, path):
    bn = _build_child(node, 'bn', path, required=False) or nn.Identity()
    return blocks.BasicConv(_build_child(node, 'conv', path), bn, _activation(node, path),
                            use_bn=node_attr(node, 'use_bn', True))


def _build_basic_conv_in(node, path):
    norm = _build_child(node, 'IN', path, required=False) or nn.Identity()
    return blocks.BasicConvIN(_build_child(node, 'conv', path), norm, _activation(node, path),
                              use_in=node_attr(node, 'use_in', True))


def _build_reduced_conv(node, path):
    return blocks.ReducedConv3d(_build_child(node, 'conv1', path), _build_child(node, 'conv2', path))


def _build_residual(node, path):
    downsample = _build_child(node, 'downsample', path, required=False)
    return blocks.ResidualBlock(
        _build_child(node, 'conv1', path), _build_child(node, 'conv2', path),
        bn1=_build_child(node, 'bn1', path, required=False),
        bn2=_build_child(node, 'bn2', path, required=False), downsample=downsample)


def _build_feature_att(node, path):
    return blocks.FeatureGate(_build_child(node, 'feat_att', path))


def _build_forward_helper(node, path):
    return blocks.LayerSequence(_build_child(node, 'layers', path))


def _build_post_forward_helper(node, path):
    return blocks.MergeUpsampled(_build_child(node, 'upsample', path),
                                 _build_child(node, 'out', path), node_attr(node, 'op'))


def _build_paired_conv(node, path):
    return blocks.PairedConv(_build_child(node, 'conv1', path), _build_child(node, 'conv2', path),
                             concat=node_attr(node, 'concat', True))


def _build_disparity_attention(node, path):
    table = _build_child(node, 'pos_embed0', path)
    table.resize = bool(node_attr(node, 'resize_embed', False))
    return blocks.DisparityAttention(_build_child(node, 'sa', path), table)


def _build_position_table(node, path):
    shape = node['tensors'].get('pe')
    if shape is None or len(shape) != 3:
        raise CheckpointError(f'{path}: disparity positional table `pe` missing or malformed')
    return blocks.DisparityPositionTable(torch.zeros(shape))


def _build_attention_layer(node, path):
    return blocks.DisparityAttentionLayer(
        *(_build_child(node, name, path)
          for name in ('self_attn', 'linear1', 'linear2', 'norm1', 'norm2', 'act')))


def _build_heads_attention(node, path):
    projections = [_build_child(node, name, path)
                   for name in ('q_proj', 'k_proj', 'v_proj', 'out_proj')]
    num_heads = int(node_attr(node, 'num_heads'))
    if projections[0].out_features % num_heads:
        raise CheckpointError(f'{path}: width {projections[0].out_features} not divisible '
                              f'by {num_heads} heads')
    return blocks.HeadsAsSequenceAttention(*projections, num_heads=num_heads)


def _build_edgenext_encoder(node, path):
    return blocks.ConvNeXtStyleEncoder(
        *(_build_child(node, name, path) for name in ('dwconv', 'norm', 'pwconv1', 'act', 'pwconv2')),
        gamma=_zeros(node['params'].get('gamma')))


def _build_cam(node, path):
    return blocks.ChannelAttention(_build_child(node, 'fc', path))


def _build_sam(node, path):
    return blocks.SpatialAttention(_build_child(node, 'samconv', path))


def _build_disp_head(node, path):
    return update.DispHead(_build_child(node, 'conv', path))


def _build_motion_encoder(node, path):
    return update.MotionEncoder(*(_build_child(node, name, path)
                                  for name in ('convc1', 'convc2', 'convd1', 'convd2', 'conv')))


def _build_gru(node, path):
    return update.ConvGRU(*(_build_child(node, name, path) for name in ('convz', 'convr', 'convq')))


def _build_selective_gru(node, path):
    return update.SelectiveConvGRU(*(_build_child(node, name, path)
                                     for name in ('conv0', 'conv1', 'small_gru', 'large_gru')))


def _build_update_block(node, path):
    return update.SelectiveUpdateBlock(*(_build_child(node, name, path)
                                         for name in ('encoder', 'gru04', 'disp_head', 'mask')))


def _build_feature(node, path):
    if child_node(node, 'stem', path, required=False) is None:
        raise CheckpointError(f'{path}: backbone without `stem`/`stages` (forward_intermediates '
                              'variant) is not supported')
    extra = {name: _build_child(node, name, path) for name in ('conv8', 'conv16', 'conv32')
             if child_node(node, name, path, required=False) is not None}
    return FeatureExtractor(*(_build_child(node, name, path) for name in
                              ('stem', 'stages', 'deconv32_16', 'deconv16_8', 'deconv8_4', 'conv4')),
                            extra=extra)


def _build_context_net(node, path):
    return ContextNet(_build_child(node, 'conv04', path))


def _build_hourglass(node, path):
    modules = {}
    dead = hourglass_dead_modules(node)
    for name, child in node['children'].items():
        if child is not None and name not in dead:
            modules[name] = build_module(child, join_path(path, name))
    for name in ('conv1', 'conv2', 'conv3', 'feature_att_8', 'feature_att_16',
                 'feature_att_32', 'conv1_up'):
        if name not in modules:
            raise CheckpointError(f'{path}: hourglass lacks {name!r}: unsupported layout')
    return Hourglass(modules)


# ---- timm EdgeNeXt -----------------------------------------------------------------

def _build_stage(node, path):
    return edgenext.EdgeNeXtStage(_build_child(node, 'downsample', path),
                                  _build_child(node, 'blocks', path))


def _build_mlp(node, path):
    return edgenext.Mlp(_build_child(node, 'fc1', path), _build_child(node, 'act', path),
                        _build_child(node, 'fc2', path),
                        norm=_build_child(node, 'norm', path, required=False))


def _build_conv_block(node, path):
    return edgenext.ConvBlock(_build_child(node, 'conv_dw', path), _build_child(node, 'norm', path),
                              _build_child(node, 'mlp', path),
                              gamma=_zeros(node['params'].get('gamma')),
                              shortcut_after_dw=node_attr(node, 'shortcut_after_dw', False))


def _build_split_transpose(node, path):
    return edgenext.SplitTransposeBlock(
        _build_child(node, 'convs', path), _build_child(node, 'norm_xca', path),
        _build_child(node, 'xca', path), _build_child(node, 'norm', path),
        _build_child(node, 'mlp', path), gamma_xca=_zeros(node['params'].get('gamma_xca')),
        gamma=_zeros(node['params'].get('gamma')),
        pos_embd=_build_child(node, 'pos_embd', path, required=False))


def _build_xca(node, path):
    return edgenext.CrossCovarianceAttention(
        _build_child(node, 'qkv', path), _build_child(node, 'proj', path),
        torch.zeros(param_shape(node, 'temperature', path)), num_heads=node_attr(node, 'num_heads'))


def _build_fourier(node, path):
    return edgenext.FourierPositionalEncoding(
        _build_child(node, 'token_projection', path), hidden_dim=node_attr(node, 'hidden_dim', 32),
        temperature=node_attr(node, 'temperature', 10000.0), scale=node_attr(node, 'scale', 2 * math.pi))


_BUILDERS = {
    **{name: _build_conv for name in _CONV_CLASSES},
    'SyncBatchNorm': _build_batch_norm, 'BatchNorm2d': _build_batch_norm,
    'BatchNorm3d': _build_batch_norm,
    'InstanceNorm2d': _build_instance_norm, 'InstanceNorm3d': _build_instance_norm,
    'LayerNorm': _build_layer_norm, 'LayerNorm2d': _build_layer_norm_2d,
    'Linear': _build_linear, 'Upsample': _build_upsample,
    'Sequential': _build_sequential, 'ModuleList': _build_module_list,
    'ModuleDict': _build_module_dict,
    **_SIMPLE_LEAVES,
    'BasicConv': _build_basic_conv, 'BasicConv_IN': _build_basic_conv_in,
    'Conv3dNormActReduced': _build_reduced_conv,
    'ResnetBasicBlock': _build_residual, 'ResnetBasicBlock3D': _build_residual,
    'FeatureAtt': _build_feature_att, 'ForwardHelper': _build_forward_helper,
    'PostForwardHelper': _build_post_forward_helper,
    'Conv2x': _build_paired_conv, 'Conv2x_IN': _build_paired_conv,
    'CostVolumeDisparityAttention': _build_disparity_attention,
    'PositionalEmbedding': _build_position_table,
    'FlashAttentionTransformerEncoderLayer': _build_attention_layer,
    'FlashMultiheadAttention': _build_heads_attention,
    'EdgeNextConvEncoder': _build_edgenext_encoder,
    'ChannelAttentionEnhancement': _build_cam, 'SpatialAttentionExtractor': _build_sam,
    'DispHead': _build_disp_head, 'BasicMotionEncoder': _build_motion_encoder,
    'RaftConvGRU': _build_gru, 'SelectiveConvGRU': _build_selective_gru,
    'BasicSelectiveMultiUpdateBlock': _build_update_block,
    'Feature': _build_feature, 'ContextNetSharedBackbone': _build_context_net,
    'hourglass': _build_hourglass,
    'EdgeNeXtStage': _build_stage, 'Mlp': _build_mlp, 'ConvBlock': _build_conv_block,
    'SplitTransposeBlock': _build_split_transpose, 'CrossCovarianceAttn': _build_xca,
    'PositionalEncodingFourier': _build_fourier,
}


def build_module(node, path=''):
    """Our nn.Module for one manifest node (recursively)."""
    builder = _BUILDERS.get(node['class'])
    if builder is None:
        raise CheckpointError(f'unsupported block {node["class"]} ({node.get("global")}) at '
                              f'{path or "root"}: this loader knows {len(_BUILDERS)} block types')
    return builder(node, path)


# ---- top level ---------------------------------------------------------------------

def network_config(manifest, args):
    """Runtime constants of the network from root attributes and the pickled args."""
    attrs = manifest['attrs']
    config = {
        'cv_group': attrs.get('cv_group', args.get('cv_group', 8)),
        'volume_dim': attrs.get('volume_dim', args.get('volume_dim', 28)),
        'corr_levels': args.get('corr_levels', 2),
        'corr_radius': args.get('corr_radius', 4),
        # The HF release pickles no `normalize`; its network was trained with it on.
        'normalize': True if args.get('normalize') is None else bool(args['normalize']),
        'max_disp_limit': max_disparity_limit(manifest),
    }
    encoder = manifest['children']['update_block']['children']['encoder']['children']['convc1']
    expected = config['corr_levels'] * (2 * config['corr_radius'] + 1) * (config['volume_dim'] + 1)
    if encoder['params']['weight'][1] != expected:
        raise CheckpointError(
            f'update_block.encoder.convc1 takes {encoder["params"]["weight"][1]} channels but '
            f'corr_levels={config["corr_levels"]}, corr_radius={config["corr_radius"]}, '
            f'volume_dim={config["volume_dim"]} give {expected}: the args do not match the weights')
    return config


def build_network(manifest, args):
    """`FastFoundationStereoNet` for a checkpoint manifest and its args (weights not loaded)."""
    if manifest.get('class') not in ('FastFoundationStereo', 'FoundationStereoLite'):
        raise CheckpointError(f'manifest root is {manifest.get("class")}, not FastFoundationStereo')
    missing = [name for name in TOP_LEVEL_MODULES if manifest['children'].get(name) is None]
    if missing:
        raise CheckpointError(f'the checkpoint lacks top-level modules {missing}: unsupported layout')
    config = network_config(manifest, args)
    modules = {name: build_module(manifest['children'][name], name) for name in TOP_LEVEL_MODULES}
    network = FastFoundationStereoNet(modules, config)
    return network.eval()
