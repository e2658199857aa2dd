"""Lazy access to TensorRT and CUDA: version decisions, CUDA bindings, pinned memory, CUDA graphs.

Nothing here imports TensorRT or CUDA at module load, so the package works on
machines without them; each entry point raises EngineError with the fix.

Split in two on purpose:

* plain decisions, unit-tested here with version strings and small stand-in
  objects: which TensorRT line builds how (`builder_path`), which
  cuda-python line a driver can load (`bindings_pin_for_driver`), which CUDA
  binding to fall back to and what to tell the user (`open_cuda`,
  `cuda_unavailable_message`), the stream handle without the deprecated
  `int(stream)` where the bindings offer `get_cuda_native_handle`
  (`stream_handle`), and the capture-once / fall-back-once CUDA
  graph state machine (`GraphLauncher`);
* thin wrappers around the CUDA runtime (`_CudaPythonApi`, cuda-python /
  cuda-bindings) and the driver API (`_PyCudaApi`, pycuda) that only call
  what the decisions chose. Their device half is exercised by
  `scripts/verify_gpu.py` on a GPU machine (allocation, pinned copies,
  stream, graph capture with its fallback); TensorRT itself was not
  available on any machine this was checked on.
"""
import ctypes
import ctypes.util

import numpy as np

from ..errors import EngineError
from .engine_sidecar import DeviceFingerprint

#: oldest TensorRT major that can build and run our strongly typed mixed-precision graphs
MIN_TENSORRT_MAJOR = 10

TENSORRT_MISSING = ('TensorRT is not installed: the `tensorrt` Python module cannot be imported here. '
                    'Engines must be built on the device that runs them: install it on the target device '
                    '(JetPack / pip install tensorrt) and run this command there. The ONNX step works '
                    'without it: ffs-stereo export --model CKPT --height H --width W --output model.onnx')
#: cuda-python line for CUDA-12 drivers (JetPack 6, most desktops): 13.x needs a CUDA-13 (580+) driver
CUDA12_BINDINGS_PIN = 'cuda-python>=12.6,<13'
CUDA13_BINDINGS_PIN = 'cuda-python>=13,<14'
CUDA_MISSING = ('neither cuda-python nor pycuda is installed, and TensorRT needs one of them to move '
                f"images to the GPU: pip install '{CUDA12_BINDINGS_PIN}' on CUDA-12 hosts (JetPack 6) or "
                f"'{CUDA13_BINDINGS_PIN}' on CUDA-13 hosts (driver 580+), or pip install pycuda")
INSUFFICIENT_DRIVER = 'cudaErrorInsufficientDriver'


# --- TensorRT versions --------------------------------------------------------------------------

def major_version(version, package='TensorRT'):
    """Major number of a version string ('10.3.0' -> 10)."""
    head = str(version).split('.')[0]
    if not head.isdigit():
        raise EngineError(f"cannot read the {package} version '{version}': reinstall {package}")
    return int(head)


def builder_path(version):
    """How a TensorRT `version` builds our graphs: 'strongly-typed-flag' (10.x) or 'strongly-typed' (11+).

    TensorRT 10 offers strong typing as NetworkDefinitionCreationFlag.STRONGLY_TYPED;
    11 removed weak typing (BuilderFlag.FP16, OBEY_PRECISION_CONSTRAINTS, layer
    precision), so every network is strongly typed. Older lines are refused.
    """
    major = major_version(version)
    if major < MIN_TENSORRT_MAJOR:
        raise EngineError(f'TensorRT {version} is too old: engines need TensorRT {MIN_TENSORRT_MAJOR} or newer '
                          '(strongly typed mixed-precision networks). JetPack 6 ships TensorRT 10; on a '
                          "desktop: pip install 'tensorrt>=10'")
    return 'strongly-typed-flag' if major == MIN_TENSORRT_MAJOR else 'strongly-typed'


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise EngineError(TENSORRT_MISSING) from None
    builder_path(tensorrt.__version__)  # refuse TensorRT < 10 before anything is touched
    return tensorrt


def tensorrt_available():
    """Whether a `tensorrt` module is importable here (any version)."""
    import importlib.util
    return importlib.util.find_spec('tensorrt') is not None


# --- CUDA versions and bindings -----------------------------------------------------------------

def format_cuda_version(code):
    """CUDA's integer version (12060) as '12.6'; None stays None."""
    if code is None:
        return None
    return f'{int(code) // 1000}.{int(code) % 1000 // 10}'


def driver_cuda_version():
    """The CUDA version the installed driver supports (e.g. 12060), or None without a driver.

    Asked from libcuda directly (cuDriverGetVersion needs no cuInit), so it
    works even when the Python bindings installed are too new for the driver.
    """
    for name in ('libcuda.so.1', ctypes.util.find_library('cuda'), 'nvcuda.dll'):
        if not name:
            continue
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if library.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value > 0:
            return version.value
    return None


def bindings_pin_for_driver(driver_version):
    """The cuda-python requirement that loads on a driver of CUDA version `driver_version` (12060), or None.

    cuda-python 13.x is built against CUDA 13 and refuses older drivers
    (cudaErrorInsufficientDriver); 12.x runs on every CUDA-12 driver (minor
    version compatibility), and newer drivers run older runtimes.
    """
    if driver_version is None:
        return None
    major = int(driver_version) // 1000
    if major >= 13:
        return CUDA13_BINDINGS_PIN
    if major == 12:
        return CUDA12_BINDINGS_PIN
    return 'cuda-python>=11.8,<12'


def bindings_match_driver(bindings_version, driver_version):
    """True when cuda-python `bindings_version` ('12.6.2') can run on a driver of CUDA `driver_version`."""
    if not bindings_version or driver_version is None:
        return None
    return major_version(bindings_version, 'cuda-python') <= int(driver_version) // 1000


def cuda_unavailable_message(problems, driver_version):
    """One line for `open_cuda` when no binding works; `problems` maps binding name -> why not."""
    pin = bindings_pin_for_driver(driver_version)
    if all(why == 'not installed' for why in problems.values()):
        if pin is None:
            return CUDA_MISSING
        return ('neither cuda-python nor pycuda is installed, and TensorRT needs one of them to move images '
                f"to the GPU: pip install '{pin}' (this driver supports CUDA "
                f'{format_cuda_version(driver_version)}), or pip install pycuda')
    described = '; '.join(f'{name}: {why}' for name, why in problems.items())
    fix = f"pip install '{pin}'" if pin else f"pip install '{CUDA12_BINDINGS_PIN}' (CUDA-12 drivers)"
    return (f'no CUDA binding can use this GPU ({described}). The installed cuda-python is built for a newer '
            f'CUDA than this driver supports ({format_cuda_version(driver_version) or "unknown"}): {fix}, '
            'or pip install pycuda')


class CudaError(EngineError):
    """A CUDA runtime call failed; `name` is the cudaError_t name (e.g. cudaErrorInsufficientDriver)."""

    def __init__(self, message, name=''):
        super().__init__(message)
        self.name = name


class CudaDriverTooOld(CudaError):
    """The binding's CUDA runtime needs a newer driver than the one installed."""


def native_handle_function():
    """cuda.bindings.utils.get_cuda_native_handle where it exists (cuda-bindings 12.9.1+ / 13), else None."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return None
    return get_cuda_native_handle


def stream_handle(stream, native_handle):
    """The raw cudaStream_t value of a cuda-python stream, for TensorRT's execute_async_v3.

    cuda-bindings 12.9.1/13 deprecate `int(stream)` in favour of
    `utils.get_cuda_native_handle` (`native_handle`); older lines only have
    `int`. (`getPtr()` is no substitute: it is the address of the wrapper's
    storage, not the stream.)
    """
    return int(native_handle(stream)) if native_handle is not None else int(stream)


def cuda_binding_versions():
    """{'cuda-python': '12.6.2', 'cuda-bindings': ..., 'pycuda': ...} for what is installed (no import)."""
    from importlib import metadata
    found = {}
    for name in ('cuda-python', 'cuda-bindings', 'pycuda'):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _binding_classes():
    return (('cuda-python', _CudaPythonApi), ('pycuda', _PyCudaApi))


def open_cuda(device=0, bindings=None):
    """The first CUDA binding that works here, as a `CudaApi`.

    cuda-python first (CUDA graphs), then pycuda: a cuda-python too new for the
    driver (cudaErrorInsufficientDriver, e.g. 13.x on JetPack 6) falls back to
    pycuda; when nothing works the message names the exact pin to install.
    """
    problems = {}
    for name, api in bindings or _binding_classes():
        try:
            return api(device)
        except ImportError:
            problems[name] = 'not installed'
        except CudaDriverTooOld as exc:
            problems[name] = str(exc)
    raise EngineError(cuda_unavailable_message(problems, driver_cuda_version()))


def probe_fingerprint(device=0):
    """DeviceFingerprint of this machine's GPU `device`, TensorRT and CUDA runtime/driver."""
    trt = import_tensorrt()
    cuda = open_cuda(device)
    try:
        name, capability = cuda.describe_device()
        runtime, driver = cuda.cuda_versions()
    finally:
        cuda.close()
    return DeviceFingerprint(gpu_name=name, compute_capability=capability, tensorrt_version=trt.__version__,
                             cuda_version=format_cuda_version(runtime),
                             cuda_driver_version=format_cuda_version(driver), cuda_bindings=cuda.binding)


# --- CUDA graphs ----------------------------------------------------------------------------------

class GraphLauncher:
    """Runs `enqueue` directly or as a CUDA graph captured once, falling back once on failure.

    States: 'off' (not asked), 'unsupported' (binding cannot capture),
    'pending' (capture on the next run), 'captured' (replay), 'failed' (capture
    or instantiation failed: logged once, never retried, plain enqueues from
    then on). `cuda.capture_graph` must leave no capture open and no graph
    allocated when it raises.
    """

    def __init__(self, cuda, enqueue, enabled, log):
        self._cuda, self._enqueue, self._log = cuda, enqueue, log
        if not enabled:
            self.state = 'off'
        elif not getattr(cuda, 'supports_graphs', False):
            self.state = 'unsupported'
            log('CUDA graphs need cuda-python (pycuda is in use): running without a CUDA graph')
        else:
            self.state = 'pending'
        self.failure = None

    def run(self):
        if self.state == 'captured':
            self._cuda.launch_graph()
            return
        self._enqueue()
        if self.state != 'pending':
            return
        # TensorRT needs one ordinary enqueue before capture (deferred resource
        # updates); that run already produced this frame's output.
        self._cuda.synchronize()
        try:
            self._cuda.capture_graph(self._enqueue)
        except EngineError as exc:
            self.state, self.failure = 'failed', str(exc)
            self._log(f'CUDA graph capture failed ({exc}): running without a CUDA graph')
        else:
            self.state = 'captured'


# --- cuda-python ----------------------------------------------------------------------------------

class _CudaPythonApi:
    """CUDA runtime through cuda-python (cuda.bindings.runtime): pinned buffers, stream, CUDA graphs."""

    supports_graphs = True

    def __init__(self, device):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart  # cuda-python < 12.6 layout
        self._rt = cudart
        self._device = device
        self._pinned = []
        self._graph = self._graph_exec = None
        self.stream = None
        versions = cuda_binding_versions()
        self.binding = 'cuda-python ' + versions.get('cuda-bindings', versions.get('cuda-python', '?'))
        self._check(cudart.cudaSetDevice(device))
        self.stream = self._check(cudart.cudaStreamCreate())
        self.stream_handle = stream_handle(self.stream, native_handle_function())

    def _check(self, result):
        error, *values = result if isinstance(result, tuple) else (result,)
        if error != self._rt.cudaError_t.cudaSuccess:
            name = getattr(error, 'name', str(error))
            _, message = self._rt.cudaGetErrorString(error)
            text = message.decode(errors='replace') if isinstance(message, bytes) else str(message)
            if name == INSUFFICIENT_DRIVER:
                raise CudaDriverTooOld(f'{self.binding} needs a newer driver ({name}: {text})', name)
            raise CudaError(f'CUDA error {name}: {text}', name)
        return values[0] if len(values) == 1 else (values or None)

    def describe_device(self):
        props = self._check(self._rt.cudaGetDeviceProperties(self._device))
        name = props.name.decode(errors='replace').rstrip('\x00') if isinstance(props.name, bytes) else props.name
        return name, f'{props.major}.{props.minor}'

    def cuda_versions(self):
        """(runtime, driver) integer versions as this process runs them (not the bindings' build)."""
        return self._check(self._rt.cudaRuntimeGetVersion()), self._check(self._rt.cudaDriverGetVersion())

    def alloc(self, nbytes):
        return self._check(self._rt.cudaMalloc(nbytes))

    def free(self, pointer):
        self._check(self._rt.cudaFree(pointer))

    def host_array(self, shape, dtype):
        """A numpy array over page-locked memory (cudaMallocHost): true async copies, freed in `close`."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        pointer = int(self._check(self._rt.cudaMallocHost(nbytes)))
        self._pinned.append(pointer)
        buffer = (ctypes.c_ubyte * nbytes).from_address(pointer)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)

    def to_device(self, pointer, array):
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self.stream))

    def to_host(self, array, pointer):
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes, kind, self.stream))

    def synchronize(self):
        self._check(self._rt.cudaStreamSynchronize(self.stream))

    def capture_graph(self, enqueue):
        """Record `enqueue()`'s work on the stream as an instantiated CUDA graph for `launch_graph`.

        Thread-local capture mode (other threads' CUDA calls are not caught
        in it). On any failure the capture is ended, the sticky error cleared
        and the partial graph destroyed before the error is raised.
        """
        rt = self._rt
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(rt.cudaStreamBeginCapture(self.stream, mode))
        graph = None
        try:
            try:
                enqueue()
            finally:
                ended, graph = rt.cudaStreamEndCapture(self.stream)  # always end it, even after a failure
            if ended != rt.cudaError_t.cudaSuccess:
                self._check((ended,))
            self._graph_exec = self._check(rt.cudaGraphInstantiateWithFlags(graph, 0))
            self._graph = graph
        except BaseException:
            rt.cudaGetLastError()  # clear the capture error so later calls are not poisoned
            if graph is not None:
                rt.cudaGraphDestroy(graph)
            raise

    def launch_graph(self):
        self._check(self._rt.cudaGraphLaunch(self._graph_exec, self.stream))

    def close(self):
        if self._graph_exec is not None:
            self._rt.cudaGraphExecDestroy(self._graph_exec)
            self._rt.cudaGraphDestroy(self._graph)
            self._graph = self._graph_exec = None
        for pointer in self._pinned:
            self._rt.cudaFreeHost(pointer)
        self._pinned = []
        if self.stream is not None:
            self._rt.cudaStreamDestroy(self.stream)
            self.stream = None


# --- pycuda ----------------------------------------------------------------------------------------

class _PyCudaApi:
    """CUDA through pycuda on the device's primary context (shared with TensorRT's runtime API)."""

    supports_graphs = False

    def __init__(self, device):
        import pycuda.driver as driver
        try:
            driver.init()
            self._gpu = driver.Device(device)
        except driver.Error as exc:
            raise EngineError(f'pycuda cannot use GPU {device}: {exc} (is the NVIDIA driver loaded? '
                              'nvidia-smi / ffs-stereo doctor)') from None
        self._driver = driver
        self.binding = 'pycuda ' + cuda_binding_versions().get('pycuda', '?')
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
        return self._gpu.name(), f'{major}.{minor}'

    def cuda_versions(self):
        """(None, driver version): pycuda uses the driver API, no CUDA runtime of its own."""
        return None, self._driver.get_driver_version()

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
        raise EngineError('CUDA graph capture needs cuda-python; pycuda is in use')

    def launch_graph(self):
        raise EngineError('no CUDA graph captured')

    def close(self):
        for pointer in list(self._allocations):
            self.free(pointer)
        self.stream = None
        if self._context is not None:
            self._context.detach()
            self._context = None
