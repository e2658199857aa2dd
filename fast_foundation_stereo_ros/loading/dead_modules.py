"""Stored modules that the released forward never reaches, and their tensors.

The released checkpoints keep legacy decoder branches that the NAS `post*`
blocks replace, `context_zqr_convs`, and the `dx` constant. They are dropped by
name: the builders skip them and `dead_state_keys` tells the loader which
tensors go with them. Verified by test/loading/test_dead_modules.py.
"""

TOP_LEVEL_DEAD = ('context_zqr_convs',)
# NAS block -> the code-default modules it replaces (dead when the block exists).
HOURGLASS_REPLACES = {
    'post32_to_16': ('conv3_up', 'agg_0', 'feature_att_up_16'),
    'post16_to_8': ('conv2_up', 'agg_1', 'feature_att_up_8'),
    'post8_to_4': ('conv_patch', 'atts', 'conv_out'),
}


def hourglass_dead_modules(node):
    """Code-default hourglass modules made dead by the NAS `post*` blocks present."""
    dead = set()
    for block, replaced in HOURGLASS_REPLACES.items():
        if node['children'].get(block) is not None:
            dead.update(replaced)
    return dead


def dead_module_paths(manifest):
    """Dotted paths of stored modules the forward pass never uses."""
    paths = [name for name in TOP_LEVEL_DEAD if manifest['children'].get(name) is not None]
    hourglass = manifest['children'].get('cost_agg')
    if hourglass is not None:
        paths += [f'cost_agg.{name}' for name in sorted(hourglass_dead_modules(hourglass))
                  if hourglass['children'].get(name) is not None]
    return paths


def dead_state_keys(manifest, state_dict):
    """Keys of `state_dict` that belong to dead modules or to the `dx` constant."""
    prefixes = tuple(f'{path}.' for path in dead_module_paths(manifest))
    return [key for key in state_dict if key.startswith(prefixes) or key == 'dx']
