"""Read a `torch.save` zip archive without executing anything from it.

The released Fast-FoundationStereo checkpoints are whole pickled `nn.Module`
objects. Loading them with the stock unpickler imports and calls whatever the
file names, so a tampered download is arbitrary code execution. Here every
global the pickle asks for is looked up in an explicit allow-list:

* model classes (FFS, timm, torch.nn, omegaconf) become inert `PickledObject`
  records that only remember their class name and the state the pickle gave
  them; none of their code exists in this process, so none can run;
* tensor rebuild functions map to our own functions that slice storages read
  from the archive's `data/<key>` entries;
* a handful of harmless builtins (dict, list, set, OrderedDict, dtypes) map to
  themselves.

Any other global raises `CheckpointError` naming it.
"""
import collections
import io
import pickle
import zipfile

import torch

from ..errors import CheckpointError

# Module prefixes under which the FFS classes were pickled. The official code
# aliases `foundation_stereo_ori.*` to `core.*`, and files contain both.
_FFS_PREFIXES = ('core', 'foundation_stereo_ori')

# FFS classes by sub-module (both prefixes accepted).
_FFS_CLASSES = {
    'foundation_stereo': {'FastFoundationStereo', 'FoundationStereoLite',
                          'FoundationStereo', 'hourglass'},
    'extractor': {'Feature', 'ContextNetSharedBackbone'},
    'submodule': {
        'BasicConv', 'BasicConv_IN', 'Conv2x', 'Conv2x_IN', 'Conv3dNormActReduced',
        'ResnetBasicBlock', 'ResnetBasicBlock3D', 'FeatureAtt',
        'CostVolumeDisparityAttention', 'FlashAttentionTransformerEncoderLayer',
        'FlashMultiheadAttention', 'PositionalEmbedding', 'EdgeNextConvEncoder',
        'ChannelAttentionEnhancement', 'SpatialAttentionExtractor', 'LayerNorm2d'},
    'update': {'BasicSelectiveMultiUpdateBlock', 'BasicMotionEncoder',
               'SelectiveConvGRU', 'RaftConvGRU', 'DispHead'},
    'distill_block': {'ForwardHelper', 'PostForwardHelper'},
}

# timm classes; older timm releases pickle the layers under `timm.models.layers`.
_TIMM_CLASSES = {
    'timm.models.edgenext': {'EdgeNeXtStage', 'ConvBlock', 'SplitTransposeBlock',
                             'CrossCovarianceAttn', 'PositionalEncodingFourier'},
    'timm.layers.norm': {'LayerNorm2d', 'LayerNorm'},
    'timm.layers.mlp': {'Mlp'},
    'timm.layers.drop': {'DropPath'},
    'timm.models.layers.norm': {'LayerNorm2d', 'LayerNorm'},
    'timm.models.layers.mlp': {'Mlp'},
    'timm.models.layers.drop': {'DropPath'},
}

_TORCH_NN_CLASSES = {
    'torch.nn.modules.conv': {'Conv2d', 'Conv3d', 'ConvTranspose2d', 'ConvTranspose3d'},
    'torch.nn.modules.batchnorm': {'SyncBatchNorm', 'BatchNorm2d', 'BatchNorm3d'},
    'torch.nn.modules.instancenorm': {'InstanceNorm2d', 'InstanceNorm3d'},
    'torch.nn.modules.normalization': {'LayerNorm'},
    'torch.nn.modules.linear': {'Linear', 'Identity'},
    'torch.nn.modules.activation': {'ReLU', 'LeakyReLU', 'GELU', 'Sigmoid', 'Tanh'},
    'torch.nn.modules.dropout': {'Dropout'},
    'torch.nn.modules.pooling': {'AdaptiveAvgPool2d', 'AdaptiveMaxPool2d'},
    'torch.nn.modules.upsampling': {'Upsample'},
    'torch.nn.modules.container': {'Sequential', 'ModuleList', 'ModuleDict'},
}

_OMEGACONF_CLASSES = {
    'omegaconf.dictconfig': {'DictConfig'},
    'omegaconf.listconfig': {'ListConfig'},
    'omegaconf.base': {'ContainerMetadata', 'Metadata'},
    'omegaconf.nodes': {'AnyNode', 'IntegerNode', 'FloatNode', 'BooleanNode',
                        'StringNode', 'ValueNode'},
}

# Storage classes named in persistent ids, and the element type they hold.
_STORAGE_DTYPES = {
    'FloatStorage': torch.float32, 'DoubleStorage': torch.float64,
    'HalfStorage': torch.float16, 'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8,
    'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
}

_DTYPE_NAMES = {'float32', 'float16', 'bfloat16', 'float64', 'int64', 'int32',
                'int8', 'uint8', 'bool'}


class PickledObject:
    """Inert stand-in for any class instance found in the pickle.

    Remembers the pickled global name, the constructor arguments (NEWOBJ) and
    the state (BUILD). Dynamic subclasses (one per global) exist only so that
    pickle's NEWOBJ accepts them as classes.
    """
    global_name = '?'

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.new_args = args
        obj.state = {}
        return obj

    def __init__(self, *args, **kwargs):
        pass  # state arrives through __setstate__

    def __getstate__(self):
        return self.state  # copy.deepcopy round-trips through __setstate__

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:
            dict_state, slot_state = state
            state = dict(dict_state or {})
            state.update(slot_state or {})
        if not isinstance(state, dict):
            raise CheckpointError(
                f'unexpected pickled state of type {type(state).__name__} for '
                f'{self.global_name}: the file is not a Fast-FoundationStereo checkpoint')
        self.state = state

    @property
    def class_name(self):
        return self.global_name.rsplit('.', 1)[-1]

    def __repr__(self):
        return f'<pickled {self.global_name}>'


class StorageType:
    """Marker for `torch.<X>Storage` globals: only its element dtype is used."""

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype


class ClassReference:
    """A pickled reference to a class used as a value (e.g. `norm_layer`)."""

    def __init__(self, global_name):
        self.global_name = global_name

    @property
    def class_name(self):
        return self.global_name.rsplit('.', 1)[-1]

    def __repr__(self):
        return f'<class {self.global_name}>'


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False,
                    backward_hooks=None, metadata=None):
    """Own version of `torch._utils._rebuild_tensor_v2`: a strided view copy."""
    try:
        view = storage.as_strided(tuple(size), tuple(stride), int(storage_offset))
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f'tensor of size {tuple(size)} does not fit its storage ({exc}); '
            'the checkpoint is corrupt, download it again') from exc
    return view.clone(memory_format=torch.contiguous_format)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """Parameters are plain tensors for inference."""
    return data


def _plain_dict(*args):
    """`collections.defaultdict(factory)` -> plain dict (the factory is dropped)."""
    return {}


def _class_record_factory():
    cache = {}

    def record_class(global_name):
        if global_name not in cache:
            short = global_name.rsplit('.', 1)[-1]
            cache[global_name] = type(short, (PickledObject,), {'global_name': global_name})
        return cache[global_name]
    return record_class


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals, to inert objects."""

    def __init__(self, file, storage_loader):
        super().__init__(file)
        self._storage_loader = storage_loader
        self._record_class = _class_record_factory()

    def find_class(self, module, name):
        full = f'{module}.{name}'
        if module in ('__builtin__', 'builtins'):
            builtin = {'dict': dict, 'list': list, 'set': set, 'tuple': tuple,
                       'frozenset': frozenset, 'long': int, 'int': int,
                       'float': float, 'bool': bool, 'str': str}.get(name)
            if builtin is not None:
                return builtin
        elif module == 'collections':
            if name == 'OrderedDict':
                return collections.OrderedDict
            if name == 'defaultdict':
                return _plain_dict
        elif module == 'typing' and name == 'Any':
            return ClassReference(full)
        elif module == 'torch._utils':
            if name == '_rebuild_tensor_v2':
                return _rebuild_tensor
            if name in ('_rebuild_parameter', '_rebuild_parameter_with_state'):
                return _rebuild_parameter
        elif module == 'torch':
            if name in _STORAGE_DTYPES:
                return StorageType(name, _STORAGE_DTYPES[name])
            if name in _DTYPE_NAMES:
                return getattr(torch, name)
        elif self._is_model_class(module, name):
            return self._record_class(full)
        raise CheckpointError(
            f'refusing global {full}: not in the allow-list of Fast-FoundationStereo '
            'checkpoint classes (the file may be tampered with or is a different model); '
            'nothing from it was executed. Use an official release or a converted '
            'native model directory')

    @staticmethod
    def _is_model_class(module, name):
        head, _, tail = module.partition('.')
        if head in _FFS_PREFIXES:
            return name in _FFS_CLASSES.get(tail, ())
        for table in (_TIMM_CLASSES, _TORCH_NN_CLASSES, _OMEGACONF_CLASSES):
            if name in table.get(module, ()):
                return True
        return False

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
                and isinstance(pid[1], StorageType)):
            raise CheckpointError(
                f'unsupported persistent id {pid!r} in checkpoint: only torch.save '
                'storages are accepted')
        _, storage_type, key, _location, numel = pid
        return self._storage_loader(str(key), storage_type.dtype, int(numel))


class TorchZipArchive:
    """Accessor for the entries of a `torch.save` (zip format) file."""

    def __init__(self, path):
        self.path = str(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError as exc:
            raise CheckpointError(f'checkpoint {self.path} does not exist: check the path') from exc
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise CheckpointError(
                f'{self.path} is not a torch.save zip archive ({exc}); it is truncated '
                'or not a checkpoint: download model_best_bp2_serialize.pth again') from exc
        names = self._zip.namelist()
        pickles = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
        if len(pickles) != 1:
            raise CheckpointError(
                f'{self.path} has {len(pickles)} data.pkl entries (expected 1): '
                'not a torch.save checkpoint')
        self.prefix = pickles[0][:-len('data.pkl')]
        self._storages = {}

    def read(self, name):
        try:
            return self._zip.read(self.prefix + name)
        except KeyError as exc:
            raise CheckpointError(
                f'{self.path} lacks entry {self.prefix + name}: the checkpoint is '
                'truncated or corrupt, download it again') from exc
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise CheckpointError(
                f'cannot read {self.prefix + name} from {self.path} ({exc}): the '
                'checkpoint is truncated or corrupt, download it again') from exc

    def byteorder(self):
        if self.prefix + 'byteorder' in self._zip.namelist():
            return self.read('byteorder').decode('ascii', 'replace').strip()
        return 'little'

    def load_storage(self, key, dtype, numel):
        """A 1-D tensor over `data/<key>` (cached: views share storages)."""
        if key not in self._storages:
            raw = self.read(f'data/{key}')
            itemsize = torch.empty((), dtype=dtype).element_size()
            if len(raw) < numel * itemsize:
                raise CheckpointError(
                    f'storage data/{key} of {self.path} holds {len(raw)} bytes, '
                    f'{numel * itemsize} expected: the checkpoint is truncated, '
                    'download it again')
            buffer = bytearray(raw[:numel * itemsize])
            tensor = (torch.frombuffer(buffer, dtype=dtype) if numel
                      else torch.empty(0, dtype=dtype))
            self._storages[key] = tensor
        return self._storages[key]

    def close(self):
        self._zip.close()


def read_pickled_module(path):
    """Unpickle a `torch.save` zip with the restricted unpickler.

    Returns the root object (a `PickledObject` tree for model files).
    """
    archive = TorchZipArchive(path)
    try:
        if archive.byteorder() != 'little':
            raise CheckpointError(
                f'{path} was saved on a big-endian machine; re-save it on a '
                'little-endian one')
        data = archive.read('data.pkl')
        unpickler = RestrictedUnpickler(io.BytesIO(data), archive.load_storage)
        try:
            return unpickler.load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
                AttributeError, IndexError, KeyError, RecursionError) as exc:
            raise CheckpointError(
                f'cannot unpickle {path} ({type(exc).__name__}: {exc}); the file is '
                'corrupt or not a Fast-FoundationStereo checkpoint') from exc
    finally:
        archive.close()
