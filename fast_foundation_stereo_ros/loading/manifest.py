"""Turn an unpickled module tree into a JSON-able architecture manifest.

The released checkpoints are NAS-pruned: their layer list, widths, kernels,
strides, activation flags and merge operators differ from the public model
code, and cannot be recovered from tensor shapes alone. The manifest is a
faithful transcription of what the pickle says, so `network_builders` can rebuild
exactly that network:

    {"class": "BasicConv", "global": "foundation_stereo_ori.submodule.BasicConv",
     "attrs": {"use_bn": true, "relu": true, ...},      # plain attributes
     "params": {"weight": [28, 32, 3, 3, 3], ...},       # parameter shapes (None = absent)
     "buffers": {...}, "tensors": {"pe": [1, 26, 28]},   # tensor-valued plain attributes
     "children": {"conv": {...}, "bn": {...}, "relu": null}}

Tensors themselves go to a flat state dict keyed by dotted module path (tensor
attributes such as the disparity positional table `pe` included).
"""
import collections

import torch

from ..errors import CheckpointError
from .safe_unpickler import ClassReference, PickledObject

# nn.Module bookkeeping that carries no architecture information.
_MODULE_INTERNALS = {
    'training', '_parameters', '_buffers', '_non_persistent_buffers_set',
    '_backward_pre_hooks', '_backward_hooks', '_is_full_backward_hook',
    '_forward_hooks', '_forward_hooks_with_kwargs', '_forward_hooks_always_called',
    '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_state_dict_hooks',
    '_state_dict_pre_hooks', '_load_state_dict_pre_hooks',
    '_load_state_dict_post_hooks', '_modules', '_compiled_call_impl',
    '_reversed_padding_repeated_twice', 'process_group',
}

# Attributes holding the whole run configuration (kept once, at the root).
_CONFIG_ATTRS = {'args', 'cfg'}


def omegaconf_to_plain(value):
    """Convert pickled omegaconf containers/nodes (as records) to dict/list/scalars."""
    if isinstance(value, PickledObject):
        name = value.class_name
        content = value.state.get('_content')
        if name == 'DictConfig':
            if not isinstance(content, dict):
                return None
            return {str(k): omegaconf_to_plain(v) for k, v in content.items()}
        if name == 'ListConfig':
            if not isinstance(content, (list, tuple)):
                return None
            return [omegaconf_to_plain(v) for v in content]
        if '_val' in value.state:
            return omegaconf_to_plain(value.state['_val'])
        raise CheckpointError(f'unexpected {value.global_name} object inside the pickled args')
    if isinstance(value, dict):
        return {str(k): omegaconf_to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [omegaconf_to_plain(v) for v in value]
    return _plain_scalar(value, 'args')


def _plain_scalar(value, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return str(value).replace('torch.', '')
    if isinstance(value, ClassReference):
        return {'class_ref': value.class_name}
    if isinstance(value, type) and issubclass(value, PickledObject):
        return {'class_ref': value.global_name.rsplit('.', 1)[-1]}
    raise CheckpointError(
        f'unsupported value of type {type(value).__name__} at {where} in the checkpoint')


def _plain_attr(value, where):
    if isinstance(value, (list, tuple)):
        return [_plain_attr(v, where) for v in value]
    if isinstance(value, set):
        return sorted(_plain_attr(v, where) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain_attr(v, where) for k, v in value.items()}
    return _plain_scalar(value, where)


def _is_module_record(value):
    return isinstance(value, PickledObject) and '_modules' in value.state


def _shape(tensor):
    return None if tensor is None else list(tensor.shape)


def describe_module(record, path, state_dict):
    """Manifest node for `record`; fills `state_dict` with its tensors."""
    if not _is_module_record(record):
        raise CheckpointError(
            f'{path or "root"} is a {getattr(record, "global_name", type(record).__name__)}, '
            'not a torch module: not a Fast-FoundationStereo model checkpoint')
    state = record.state
    prefix = f'{path}.' if path else ''
    node = {'class': record.class_name, 'global': record.global_name,
            'attrs': {}, 'params': {}, 'buffers': {}, 'tensors': {}, 'children': {}}
    for name, tensor in (state.get('_parameters') or {}).items():
        node['params'][name] = _shape(tensor)
        if tensor is not None:
            state_dict[prefix + name] = tensor
    transient = set(state.get('_non_persistent_buffers_set') or ())
    for name, tensor in (state.get('_buffers') or {}).items():
        if name in transient:
            continue
        node['buffers'][name] = _shape(tensor)
        if tensor is not None:
            state_dict[prefix + name] = tensor
    for name, value in state.items():
        if name in _MODULE_INTERNALS or name in _CONFIG_ATTRS:
            continue
        if isinstance(value, torch.Tensor):
            node['tensors'][name] = list(value.shape)
            state_dict[prefix + name] = value
        elif _is_module_record(value):
            node['attrs'][name] = {'module': describe_module(value, prefix + name, state_dict)}
        else:
            node['attrs'][name] = _plain_attr(value, prefix + name)
    for name, child in (state.get('_modules') or {}).items():
        node['children'][name] = (None if child is None
                                  else describe_module(child, prefix + name, state_dict))
    return node


def extract_architecture(root):
    """(manifest, state_dict, args) for an unpickled FastFoundationStereo record."""
    if not isinstance(root, PickledObject) or root.class_name not in (
            'FastFoundationStereo', 'FoundationStereoLite'):
        found = getattr(root, 'global_name', type(root).__name__)
        raise CheckpointError(
            f'the pickle holds {found}, not a FastFoundationStereo model: use '
            'model_best_bp2_serialize.pth from a Fast-FoundationStereo release')
    if 'args' not in root.state:
        raise CheckpointError('the pickled model has no `args` configuration: the file is '
                              'not a complete Fast-FoundationStereo release')
    args = omegaconf_to_plain(root.state['args'])
    if not isinstance(args, dict):
        raise CheckpointError('the pickled `args` are not a mapping: the checkpoint is corrupt')
    state_dict = collections.OrderedDict()
    manifest = describe_module(root, '', state_dict)
    return manifest, state_dict, args


# ---- reading a manifest node (for the builders and the range analysis) ---------------

def child_node(node, name, path, required=True):
    """The manifest node of sub-module `name` (also one held in an attribute); None or an error when absent."""
    child = node['children'].get(name)
    if child is None and name in node['attrs']:
        attr = node['attrs'][name]
        child = attr.get('module') if isinstance(attr, dict) else None
    if child is None and required:
        raise CheckpointError(f'{node["class"]} at {path or "root"} lacks sub-module {name!r}: '
                              'the checkpoint layout is incomplete or unsupported')
    return child


def join_path(path, name):
    """Dotted module path of child `name` under `path`."""
    return f'{path}.{name}' if path else name


def node_attr(node, name, default=None):
    """A recorded attribute of the node, or `default`."""
    return node['attrs'].get(name, default)


def param_shape(node, name, path, required=True):
    """Shape of parameter `name` of the node (its widths come from here, never from code defaults)."""
    shape = node['params'].get(name)
    if shape is None and required:
        raise CheckpointError(f'{node["class"]} at {path} has no {name!r} parameter')
    return shape


def as_tuple(value):
    """A recorded list (JSON has no tuples) as the tuple torch expects; scalars unchanged."""
    return tuple(value) if isinstance(value, (list, tuple)) else value
