"""TEST-ONLY: write a record tree back in the official checkpoint file format.

The restricted unpickler turns a released checkpoint into inert
`PickledObject` records. Tests edit those records (other widths, a replaced
NAS block, relu flags as bools, `normalize: false`, other module prefixes) and
this writer serialises them exactly the way `torch.save` lays out a whole
pickled module: a zip with `<name>/data.pkl` (protocol 2, GLOBAL + NEWOBJ +
BUILD for every object, `_rebuild_tensor_v2` + persistent storage ids for
tensors), `<name>/data/<key>` raw storages, `byteorder` and `version`.
Nothing here imports the classes it names, so any layout can be produced.
"""
import collections
import io
import pickle
import zipfile

import torch

from fast_foundation_stereo_ros.loading.safe_unpickler import ClassReference, PickledObject

_STORAGE_NAMES = {torch.float32: 'FloatStorage', torch.float16: 'HalfStorage',
                  torch.int64: 'LongStorage', torch.int8: 'CharStorage',
                  torch.float64: 'DoubleStorage', torch.int32: 'IntStorage',
                  torch.uint8: 'ByteStorage', torch.bool: 'BoolStorage'}


class GlobalName:
    """A global reference written as a GLOBAL opcode without importing it."""

    def __init__(self, module, name):
        self.module = module
        self.name = name

    def __call__(self, *args):  # pickle's save_reduce insists on a callable
        raise TypeError('marker only')


class _StorageRef:
    def __init__(self, tensor):
        self.tensor = tensor


class _RecordPickler(pickle._Pickler):
    """Pure-Python pickler with hooks for records, global markers and tensors."""

    def __init__(self, file, storages):
        super().__init__(file, protocol=2)
        self.storages = storages  # key -> bytes

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            key = str(len(self.storages))
            tensor = obj.tensor.detach().contiguous()
            self.storages[key] = tensor.view(-1).numpy().tobytes() if tensor.numel() else b''
            return ('storage', GlobalName('torch', _STORAGE_NAMES[tensor.dtype]), key, 'cpu',
                    tensor.numel())
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, GlobalName):
            return self._write_global(obj.module, obj.name)
        if isinstance(obj, ClassReference) or (isinstance(obj, type) and issubclass(obj, PickledObject)):
            module, _, name = obj.global_name.rpartition('.')
            return self._write_global(module, name)
        if isinstance(obj, PickledObject):
            return self._save_record(obj)
        if isinstance(obj, torch.Tensor):
            rebuild = GlobalName('torch._utils', '_rebuild_tensor_v2')
            args = (_StorageRef(obj), 0, tuple(obj.shape), tuple(obj.contiguous().stride()),
                    False, collections.OrderedDict())
            return self.save_reduce(rebuild, args, obj=obj)
        return super().save(obj, save_persistent_id)

    def _write_global(self, module, name):
        self.write(pickle.GLOBAL + f'{module}\n{name}\n'.encode('utf-8'))

    def _save_record(self, record):
        if id(record) in self.memo:
            self.write(self.get(self.memo[id(record)][0]))
            return
        module, _, name = record.global_name.rpartition('.')
        self._write_global(module, name)
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.memoize(record)
        self.save(record.state)
        self.write(pickle.BUILD)


def write_checkpoint(root, path, archive_name='model_best_bp2_serialize'):
    """Serialise the record tree `root` to `path` in torch.save's zip layout."""
    storages = {}
    buffer = io.BytesIO()
    _RecordPickler(buffer, storages).dump(root)
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f'{archive_name}/data.pkl', buffer.getvalue())
        archive.writestr(f'{archive_name}/byteorder', 'little')
        for key, data in storages.items():
            archive.writestr(f'{archive_name}/data/{key}', data)
        archive.writestr(f'{archive_name}/version', '3\n')
    return path


def write_raw_pickle(path, pickle_bytes, archive_name='archive', storages=None):
    """A torch.save-shaped zip around hand-made pickle bytes (for hostile files)."""
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr(f'{archive_name}/data.pkl', pickle_bytes)
        archive.writestr(f'{archive_name}/byteorder', 'little')
        for key, data in (storages or {}).items():
            archive.writestr(f'{archive_name}/data/{key}', data)
        archive.writestr(f'{archive_name}/version', '3\n')
    return path


# ---- record-tree editing helpers ------------------------------------------------------

def module_at(root, dotted):
    """The record at a dotted module path ('cost_agg.post8_to_4.upsample.0')."""
    node = root
    for part in dotted.split('.'):
        node = node.state['_modules'][part]
    return node


def set_arg(root, key, value):
    """Set (or with value=None delete) a key of the pickled omegaconf `args`."""
    content = root.state['args'].state['_content']
    if value is None:
        content.pop(key, None)
        return
    content[key].state['_val'] = value


def rename_prefix(root, old, new):
    """Re-home every record whose global starts with `old` under `new`."""
    seen = set()

    def visit(record):
        if id(record) in seen:
            return
        seen.add(id(record))
        if record.global_name.startswith(old):
            cls = type(record.class_name, (PickledObject,),
                       {'global_name': new + record.global_name[len(old):]})
            record.__class__ = cls
        for value in record.state.values():
            if isinstance(value, PickledObject):
                visit(value)
            elif isinstance(value, dict):
                for item in value.values():
                    if isinstance(item, PickledObject):
                        visit(item)
    visit(root)
