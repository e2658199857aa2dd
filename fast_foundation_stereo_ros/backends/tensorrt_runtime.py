"""Lazy access to TensorRT and CUDA: import errors, device fingerprint, device memory.

Nothing here imports TensorRT or CUDA at module load, so the package works on
machines without them; each entry point raises EngineError with the fix.
Device memory and streams go through cuda-python (`cuda.bindings.runtime`,
formerly `cuda.cudart`) when importable, else pycuda; both wrap the CUDA
runtime/driver the engine runs on, and only this module knows the difference.

UNVERIFIED ON A GPU in the session that wrote it (no TensorRT there): written
against the documented TensorRT 10 / cuda-python 12 / pycuda APIs.
"""
import numpy as np

from ..errors import EngineError
from .engine_sidecar import DeviceFingerprint

TENSORRT_MISSING = ('TensorRT is not installed: the `tensorrt` Python module cannot be imported here. '
                    'Engines must be built on the device that runs them: install it on the target device '
                    '(JetPack / pip install tensorrt) and run this command there. The ONNX step works '
                    'without it: ffs-stereo export --model CKPT --height H --width W --output model.onnx')
CUDA_MISSING = ('neither cuda-python nor pycuda is installed, and TensorRT needs one of them to move '
                'images to the GPU: pip install cuda-python (or pycuda) on the target device')


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise EngineError(TENSORRT_MISSING) from None
    return tensorrt


def tensorrt_available():
    try:
        import_tensorrt()
    except EngineError:
        return False
    return True


def open_cuda(device=0):
    """The first importable CUDA binding as a `CudaApi`."""
    try:
        return _CudaPythonApi(device)
    except ImportError:
        pass
    try:
        return _PyCudaApi(device)
    except ImportError:
        raise EngineError(CUDA_MISSING) from None


def probe_fingerprint(device=0):
    """DeviceFingerprint of this machine's GPU `device` and installed TensorRT."""
    trt = import_tensorrt()
    cuda = open_cuda(device)
    try:
        name, capability, cuda_version = cuda.describe_device()
    finally:
        cuda.close()
    return DeviceFingerprint(gpu_name=name, compute_capability=capability,
                             tensorrt_version=trt.__version__, cuda_version=cuda_version)


class _CudaPythonApi:
    """CUDA runtime through cuda-python; supports CUDA graph capture."""

    supports_graphs = True

    def __init__(self, device):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart  # cuda-python < 12.6 layout
        self._rt = cudart
        self._device = device
        self._check(cudart.cudaSetDevice(device))
        self.stream = self._check(cudart.cudaStreamCreate())
        self._graph = self._graph_exec = None

    def _check(self, result):
        error, *values = result
        if error != self._rt.cudaError_t.cudaSuccess:
            _, message = self._rt.cudaGetErrorString(error)
            raise EngineError(f'CUDA error {error}: {message.decode(errors="replace")}')
        return values[0] if len(values) == 1 else (values or None)

    @property
    def stream_handle(self):
        return int(self.stream)

    def describe_device(self):
        props = self._check(self._rt.cudaGetDeviceProperties(self._device))
        name = props.name.decode(errors='replace').rstrip('\x00') if isinstance(props.name, bytes) else props.name
        version = self._check(self._rt.cudaRuntimeGetVersion())
        return name, f'{props.major}.{props.minor}', f'{version // 1000}.{version % 1000 // 10}'

    def alloc(self, nbytes):
        return self._check(self._rt.cudaMalloc(nbytes))

    def free(self, pointer):
        self._check(self._rt.cudaFree(pointer))

    def host_array(self, shape, dtype):
        # Pageable memory: cudaMemcpyAsync is then staged by the driver, which
        # costs a little overlap but keeps ownership simple and leak-free.
        return np.empty(shape, dtype)

    def to_device(self, pointer, array):
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self.stream))

    def to_host(self, array, pointer):
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes, kind, self.stream))

    def synchronize(self):
        self._check(self._rt.cudaStreamSynchronize(self.stream))

    def capture_graph(self, enqueue):
        """Record what `enqueue()` puts on the stream as a CUDA graph for `launch_graph`."""
        mode = self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        self._check(self._rt.cudaStreamBeginCapture(self.stream, mode))
        try:
            enqueue()
        finally:
            self._graph = self._check(self._rt.cudaStreamEndCapture(self.stream))
        self._graph_exec = self._check(self._rt.cudaGraphInstantiate(self._graph, 0))

    def launch_graph(self):
        self._check(self._rt.cudaGraphLaunch(self._graph_exec, self.stream))

    def close(self):
        if self._graph_exec is not None:
            self._rt.cudaGraphExecDestroy(self._graph_exec)
            self._rt.cudaGraphDestroy(self._graph)
            self._graph = self._graph_exec = None
        if self.stream is not None:
            self._rt.cudaStreamDestroy(self.stream)
            self.stream = None


class _PyCudaApi:
    """CUDA through pycuda on the device's primary context (shared with TensorRT's runtime API)."""

    supports_graphs = False

    def __init__(self, device):
        import pycuda.driver as driver
        driver.init()
        self._driver = driver
        self._gpu = driver.Device(device)
        # The primary context is the one the CUDA runtime (and so TensorRT)
        # uses; pushing it per call makes the backend usable from any thread.
        self._context = self._gpu.retain_primary_context()
        with self._current():
            self.stream = driver.Stream()
        self._allocations = {}

    def _current(self):
        api = self

        class _Push:
            def __enter__(self):
                api._context.push()

            def __exit__(self, *exc):
                api._driver.Context.pop()
        return _Push()

    @property
    def stream_handle(self):
        return self.stream.handle

    def describe_device(self):
        major, minor = self._gpu.compute_capability()
        version = '.'.join(str(part) for part in self._driver.get_version()[:2])
        return self._gpu.name(), f'{major}.{minor}', version

    def alloc(self, nbytes):
        with self._current():
            allocation = self._driver.mem_alloc(nbytes)
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, pointer):
        allocation = self._allocations.pop(pointer)
        with self._current():
            allocation.free()

    def host_array(self, shape, dtype):
        with self._current():
            return self._driver.pagelocked_empty(shape, dtype)  # async copies need page-locked memory

    def to_device(self, pointer, array):
        with self._current():
            self._driver.memcpy_htod_async(pointer, array, self.stream)

    def to_host(self, array, pointer):
        with self._current():
            self._driver.memcpy_dtoh_async(array, pointer, self.stream)

    def synchronize(self):
        with self._current():
            self.stream.synchronize()

    def capture_graph(self, enqueue):
        raise EngineError('CUDA graph capture needs cuda-python (pip install cuda-python); '
                          'pycuda is installed instead: run without CUDA graphs')

    def launch_graph(self):
        raise EngineError('no CUDA graph captured')

    def close(self):
        for pointer in list(self._allocations):
            self.free(pointer)
        self.stream = None
        if self._context is not None:
            self._context.detach()
            self._context = None
