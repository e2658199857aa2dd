"""The largest max_disp a checkpoint supports, from its positional tables.

Disparity-attention blocks index a learned positional table along the
disparity axis; the table's length, scaled by the strides between the
1/4-resolution cost volume and the block, bounds max_disp. Tables that are
resized on the fly (`resize_embed`) impose no bound. Verified by
test/loading/test_disparity_range.py.
"""
from ..errors import CheckpointError
from ..network.fast_foundation_stereo import DISPARITY_MULTIPLE
from .manifest import as_tuple, node_attr


def _disparity_scale(node, scale, tables):
    """Propagate the disparity-axis scale through `node`; record attention tables.

    Returns the output scale relative to the 1/4-resolution volume (D = max_disp/4).
    """
    cls = node['class']
    if cls == 'CostVolumeDisparityAttention':
        pe = node['children']['pos_embed0']['tensors']['pe']
        tables.append((pe[1], scale, bool(node_attr(node, 'resize_embed', False))))
        return scale
    if cls == 'Conv3d':
        return scale / as_tuple(node_attr(node, 'stride', (1,)))[0]
    if cls == 'ConvTranspose3d':
        return scale * as_tuple(node_attr(node, 'stride', (1,)))[0]
    if cls == 'Upsample':
        factor = node_attr(node, 'scale_factor')
        factor = factor[0] if isinstance(factor, (list, tuple)) else factor
        return scale * float(factor) if factor else scale
    if cls in ('FeatureAtt',):
        return scale  # gates from 2-D image features; disparity untouched
    if cls == 'PostForwardHelper':
        raise CheckpointError('PostForwardHelper must be walked by the hourglass walker')
    for child in node['children'].values():
        if child is not None:
            scale = _disparity_scale(child, scale, tables)
    return scale


def _hourglass_scales(hourglass, tables):
    modules = hourglass['children']
    walk = lambda name, scale: (_disparity_scale(modules[name], scale, tables)
                                if modules.get(name) is not None else scale)
    s1 = walk('feature_att_8', walk('conv1', 1.0))
    s2 = walk('feature_att_16', walk('conv2', s1))
    s3 = walk('feature_att_32', walk('conv3', s2))
    if modules.get('post32_to_16') is not None:   # coarse = conv3, skip = conv2
        _disparity_scale(modules['post32_to_16']['children']['upsample'], s3, tables)
        s2 = _disparity_scale(modules['post32_to_16']['children']['out'], s2, tables)
    if modules.get('post16_to_8') is not None:    # coarse = conv2, skip = conv1
        _disparity_scale(modules['post16_to_8']['children']['upsample'], s2, tables)
        s1 = _disparity_scale(modules['post16_to_8']['children']['out'], s1, tables)
    up = walk('conv1_up', s1)
    if modules.get('post8_to_4') is not None:
        _disparity_scale(modules['post8_to_4']['children']['upsample'], up, tables)
        _disparity_scale(modules['post8_to_4']['children']['out'], 1.0, tables)
    elif modules.get('atts') is not None:
        _disparity_scale(modules['atts'], walk('conv_patch', 1.0), tables)


def max_disparity_limit(manifest):
    """Largest max_disp (multiple of 32) the positional tables allow; None = unbounded."""
    tables = []
    for name in ('corr_stem', 'corr_feature_att', 'classifier'):
        if manifest['children'].get(name) is not None:
            _disparity_scale(manifest['children'][name], 1.0, tables)
    if manifest['children'].get('cost_agg') is not None:
        _hourglass_scales(manifest['children']['cost_agg'], tables)
    limits = [int(4 * length / scale) // DISPARITY_MULTIPLE * DISPARITY_MULTIPLE
              for length, scale, resizable in tables if not resizable]
    return min(limits) if limits else None
