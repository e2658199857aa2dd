"""TensorRT/CUDA decisions without a GPU: versions, bindings vs driver, fallbacks, checked returns, CUDA graphs."""
import json
import types

import numpy as np
import pytest

from fast_foundation_stereo_ros.backends import tensorrt_runtime as runtime
from fast_foundation_stereo_ros.backends.engine_sidecar import sidecar_path
from fast_foundation_stereo_ros.backends.tensorrt import TensorRTBackend
from fast_foundation_stereo_ros.errors import EngineError

from ..export.helpers import IO_TENSORS_WITH_CONFIDENCE, write_fake_engine
from .helpers import FakeCuda, fake_tensorrt, install_fake_tensorrt


@pytest.mark.parametrize('version, path', [('10.3.0', 'strongly-typed-flag'), ('10.13.2.6', 'strongly-typed-flag'),
                                           ('11.0.0', 'strongly-typed'), ('11.1.0.post1', 'strongly-typed'),
                                           ('12.0', 'strongly-typed')])
def test_builder_path_per_tensorrt_line(version, path):
    assert runtime.builder_path(version) == path


@pytest.mark.parametrize('version', ['8.6.1', '9.3.0'])
def test_tensorrt_before_10_is_refused_with_the_install_command(version):
    with pytest.raises(EngineError) as caught:
        runtime.builder_path(version)
    assert str(caught.value).startswith(f'TensorRT {version} is too old: engines need TensorRT 10 or newer')
    assert "pip install 'tensorrt>=10'" in str(caught.value)


def test_import_tensorrt_refuses_old_module(monkeypatch):
    install_fake_tensorrt(monkeypatch, fake_tensorrt('8.6.1'))
    with pytest.raises(EngineError, match='TensorRT 8.6.1 is too old'):
        runtime.import_tensorrt()
    with pytest.raises(EngineError, match="cannot read the TensorRT version 'dev'"):
        runtime.builder_path('dev')


@pytest.mark.parametrize('driver, pin', [(12020, 'cuda-python>=12.6,<13'), (12060, 'cuda-python>=12.6,<13'),
                                         (12090, 'cuda-python>=12.6,<13'), (13000, 'cuda-python>=13,<14'),
                                         (13010, 'cuda-python>=13,<14'), (11080, 'cuda-python>=11.8,<12'),
                                         (None, None)])
def test_bindings_pin_for_driver(driver, pin):
    assert runtime.bindings_pin_for_driver(driver) == pin


@pytest.mark.parametrize('bindings, driver, loads', [('13.0.3', 12060, False), ('13.0.3', 13000, True),
                                                     ('12.6.2', 12020, True), ('12.9.0', 13010, True),
                                                     ('12.6.2', None, None)])
def test_bindings_match_driver(bindings, driver, loads):
    assert runtime.bindings_match_driver(bindings, driver) is loads


def test_cuda_versions_are_formatted_from_cuda_integers():
    assert runtime.format_cuda_version(12060) == '12.6'
    assert runtime.format_cuda_version(13010) == '13.1'
    assert runtime.format_cuda_version(None) is None


def _binding(name, outcome):
    class Binding:
        def __init__(self, device):
            if outcome == 'missing':
                raise ImportError(name)
            if outcome == 'old driver':
                raise runtime.CudaDriverTooOld(f'{name} 13.0.3 needs a newer driver (cudaErrorInsufficientDriver: '
                                               'CUDA driver version is insufficient for CUDA runtime version)',
                                               runtime.INSUFFICIENT_DRIVER)
            self.name, self.device = name, device
    return name, Binding


def test_insufficient_driver_falls_back_to_pycuda(monkeypatch):
    api = runtime.open_cuda(1, [_binding('cuda-python', 'old driver'), _binding('pycuda', 'ok')])
    assert api.name == 'pycuda' and api.device == 1


def test_insufficient_driver_without_pycuda_names_the_exact_pin(monkeypatch):
    monkeypatch.setattr(runtime, 'driver_cuda_version', lambda: 12060)
    with pytest.raises(EngineError) as caught:
        runtime.open_cuda(0, [_binding('cuda-python', 'old driver'), _binding('pycuda', 'missing')])
    message = str(caught.value)
    assert 'cuda-python: cuda-python 13.0.3 needs a newer driver (cudaErrorInsufficientDriver' in message
    assert 'pycuda: not installed' in message
    assert "than this driver supports (12.6): pip install 'cuda-python>=12.6,<13', or pip install pycuda" in message


def test_no_binding_installed_names_the_pin_for_this_driver_or_both_lines(monkeypatch):
    bindings = [_binding('cuda-python', 'missing'), _binding('pycuda', 'missing')]
    monkeypatch.setattr(runtime, 'driver_cuda_version', lambda: 13000)
    with pytest.raises(EngineError, match=r"pip install 'cuda-python>=13,<14' \(this driver supports CUDA 13.0\)"):
        runtime.open_cuda(0, bindings)
    monkeypatch.setattr(runtime, 'driver_cuda_version', lambda: None)
    with pytest.raises(EngineError) as caught:
        runtime.open_cuda(0, bindings)
    assert str(caught.value) == runtime.CUDA_MISSING
    assert "'cuda-python>=12.6,<13' on CUDA-12 hosts (JetPack 6)" in runtime.CUDA_MISSING


def test_stream_handle_uses_the_native_handle_function_where_it_exists():
    class Stream:
        def getPtr(self):
            return 0xDEAD  # the wrapper's own storage: never the stream

        def __int__(self):
            raise AssertionError('int(stream) is deprecated in cuda-bindings 13')
    stream = Stream()
    assert runtime.stream_handle(stream, lambda handle: 0xABC if handle is stream else None) == 0xABC

    class OldStream:
        def __int__(self):
            return 0x77
    assert runtime.stream_handle(OldStream(), None) == 0x77


# --- cuda-python wrapper over a stand-in runtime module ------------------------------------------

class _Error(int):
    @property
    def name(self):
        return {0: 'cudaSuccess', 35: 'cudaErrorInsufficientDriver', 900: 'cudaErrorStreamCaptureInvalidated',
                901: 'cudaErrorInvalidValue'}[int(self)]


def fake_cudart(fail=None):
    """A cuda.bindings.runtime stand-in; `fail` names the call that returns an error."""
    calls = []
    ok = _Error(0)

    def call(name, *values, error=None):
        def function(*args):
            calls.append((name, args))
            if fail == name:
                return (_Error(error or 901),) + (None,) * len(values) if values else (_Error(error or 901),)
            return (ok, *values) if values else (ok,)
        return function

    rt = types.SimpleNamespace(calls=calls)
    rt.cudaError_t = types.SimpleNamespace(cudaSuccess=ok)
    rt.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal='thread-local',
                                                     cudaStreamCaptureModeGlobal='global')
    rt.cudaGetErrorString = lambda error: (ok, f'{error.name} text'.encode())
    rt.cudaStreamBeginCapture = call('cudaStreamBeginCapture')
    rt.cudaStreamEndCapture = call('cudaStreamEndCapture', 'graph-1', error=900)
    rt.cudaGraphInstantiateWithFlags = call('cudaGraphInstantiateWithFlags', 'exec-1')
    rt.cudaGetLastError = call('cudaGetLastError')
    rt.cudaGraphDestroy = call('cudaGraphDestroy')
    rt.cudaGraphExecDestroy = call('cudaGraphExecDestroy')
    rt.cudaGraphLaunch = call('cudaGraphLaunch')
    rt.cudaStreamDestroy = call('cudaStreamDestroy')
    rt.cudaFreeHost = call('cudaFreeHost')
    rt.cudaSetDevice = call('cudaSetDevice', error=35)
    return rt


def cuda_python_api(rt):
    api = object.__new__(runtime._CudaPythonApi)
    api._rt, api._device, api._pinned, api.stream = rt, 0, [0x10, 0x20], 'stream-1'
    api._graph = api._graph_exec = None
    api.binding = 'cuda-python 13.0.3'
    return api


def names(rt):
    return [name for name, _ in rt.calls]


def test_capture_uses_thread_local_mode_and_instantiate_with_flags_then_close_frees_everything():
    rt = fake_cudart()
    api = cuda_python_api(rt)
    api.capture_graph(lambda: rt.calls.append(('enqueue', ())))
    assert rt.calls[0] == ('cudaStreamBeginCapture', ('stream-1', 'thread-local'))
    assert names(rt) == ['cudaStreamBeginCapture', 'enqueue', 'cudaStreamEndCapture', 'cudaGraphInstantiateWithFlags']
    assert rt.calls[-1][1] == ('graph-1', 0)
    api.launch_graph()
    api.close()
    assert names(rt)[-6:] == ['cudaGraphLaunch', 'cudaGraphExecDestroy', 'cudaGraphDestroy', 'cudaFreeHost',
                              'cudaFreeHost', 'cudaStreamDestroy']
    assert api._pinned == [] and api.stream is None


def test_failed_enqueue_during_capture_ends_capture_clears_error_and_leaks_nothing():
    rt = fake_cudart()
    api = cuda_python_api(rt)

    def enqueue():
        raise EngineError("TensorRT failed to run 'x.engine'")
    with pytest.raises(EngineError, match='TensorRT failed to run'):
        api.capture_graph(enqueue)
    assert names(rt) == ['cudaStreamBeginCapture', 'cudaStreamEndCapture', 'cudaGetLastError', 'cudaGraphDestroy']
    assert api._graph is None and api._graph_exec is None


@pytest.mark.parametrize('failing', ['cudaStreamEndCapture', 'cudaGraphInstantiateWithFlags'])
def test_failed_capture_or_instantiation_clears_error_and_destroys_the_graph(failing):
    rt = fake_cudart(fail=failing)
    api = cuda_python_api(rt)
    with pytest.raises(runtime.CudaError) as caught:
        api.capture_graph(lambda: None)
    assert 'cudaGetLastError' in names(rt)
    assert names(rt).count('cudaGraphDestroy') == (1 if failing == 'cudaGraphInstantiateWithFlags' else 0)
    assert caught.value.name in ('cudaErrorStreamCaptureInvalidated', 'cudaErrorInvalidValue')
    assert api._graph_exec is None


def test_insufficient_driver_error_is_recognised():
    rt = fake_cudart(fail='cudaSetDevice')
    api = cuda_python_api(rt)
    with pytest.raises(runtime.CudaDriverTooOld) as caught:
        api._check(rt.cudaSetDevice(0))
    assert caught.value.name == 'cudaErrorInsufficientDriver'
    assert 'cuda-python 13.0.3 needs a newer driver' in str(caught.value)


# --- the graph launcher ------------------------------------------------------------------------------

def test_graph_launcher_captures_once_and_replays():
    cuda, runs, logs = FakeCuda(0), [], []
    launcher = runtime.GraphLauncher(cuda, lambda: runs.append(1), True, logs.append)
    for _ in range(4):
        launcher.run()
    assert launcher.state == 'captured' and cuda.captures == 1
    assert cuda.launches == 3 and len(runs) == 1 + 3 and logs == []  # one plain run, three replays


def test_graph_launcher_failure_is_logged_once_and_never_retried(monkeypatch):
    monkeypatch.setattr(FakeCuda, 'fail_capture', True)
    cuda, runs, logs = FakeCuda(0), [], []
    launcher = runtime.GraphLauncher(cuda, lambda: runs.append(1), True, logs.append)
    for _ in range(5):
        launcher.run()
    assert launcher.state == 'failed' and cuda.captures == 1 and cuda.launches == 0 and len(runs) == 5
    assert len(logs) == 1 and logs[0].startswith('CUDA graph capture failed (CUDA error '
                                                 'cudaErrorStreamCaptureUnsupported')
    assert logs[0].endswith('running without a CUDA graph')


def test_graph_launcher_off_and_unsupported():
    runs, logs = [], []
    off = runtime.GraphLauncher(FakeCuda(0), lambda: runs.append(1), False, logs.append)
    pycuda_like = types.SimpleNamespace(supports_graphs=False)
    unsupported = runtime.GraphLauncher(pycuda_like, lambda: runs.append(1), True, logs.append)
    off.run()
    unsupported.run()
    assert (off.state, unsupported.state, len(runs)) == ('off', 'unsupported', 2)
    assert logs == ['CUDA graphs need cuda-python (pycuda is in use): running without a CUDA graph']


# --- the backend's checked TensorRT returns, on a stand-in TensorRT -------------------------------

def _identity_engine(left, right):
    return left[:, :1] - right[:, 1:2]


@pytest.mark.parametrize('graph', [False, True])
def test_backend_moves_images_through_pinned_buffers_and_engine(tmp_path, monkeypatch, graph):
    install_fake_tensorrt(monkeypatch, fake_tensorrt(compute=_identity_engine))
    engine = write_fake_engine(tmp_path)
    backend = TensorRTBackend(engine, cuda_graph=graph, log=lambda line: None)
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(2))
    for _ in range(3):
        disparity = backend.infer(left, right)
    np.testing.assert_array_equal(disparity, left[..., 0].astype(np.float32) - right[..., 1])
    assert disparity.dtype == np.float32 and disparity.shape == (480, 640)
    assert backend.cuda_graph_state == ('captured' if graph else 'off')
    assert ('CUDA graph' in backend.describe()) is graph
    assert 'cuda:0 Orin (nvgpu)' in backend.describe()
    cuda = FakeCuda.last
    backend.close()
    assert cuda.memory == {} and cuda.closed


def _confidence_engine(left, right):
    return left[:, 2:3] / 255.0


def test_backend_binds_the_confidence_output_when_the_engine_has_it(tmp_path, monkeypatch):
    install_fake_tensorrt(monkeypatch, fake_tensorrt(compute=_identity_engine, confidence=_confidence_engine))
    backend = TensorRTBackend(write_fake_engine(tmp_path, io_tensors=IO_TENSORS_WITH_CONFIDENCE))
    rng = np.random.default_rng(1)
    left, right = (rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(2))
    disparity, confidence = backend.infer_with_confidence(left, right)
    assert backend.has_confidence
    np.testing.assert_array_equal(disparity, backend.infer(left, right))
    np.testing.assert_allclose(confidence, left[..., 2] / np.float32(255.0), rtol=1e-6)
    assert confidence.dtype == np.float32 and 0.0 <= confidence.min() and confidence.max() <= 1.0
    backend.close()


def test_single_output_engine_reports_no_confidence(tmp_path, monkeypatch):
    install_fake_tensorrt(monkeypatch, fake_tensorrt(compute=_identity_engine))
    backend = TensorRTBackend(write_fake_engine(tmp_path))
    image = np.full((480, 640, 3), 7, np.uint8)
    disparity, confidence = backend.infer_with_confidence(image, image)
    assert not backend.has_confidence and confidence is None and disparity.shape == (480, 640)
    backend.close()


@pytest.mark.parametrize('failure, message', [
    (dict(deserialize_ok=False), 'TensorRT could not deserialize it'),
    (dict(set_address_ok=False), "TensorRT refused the device buffer of tensor 'left' (set_tensor_address returned False)"),
])
def test_backend_refuses_failed_tensorrt_returns_without_leaks(tmp_path, monkeypatch, failure, message):
    install_fake_tensorrt(monkeypatch, fake_tensorrt(**failure))
    engine = write_fake_engine(tmp_path)
    with pytest.raises(EngineError) as caught:
        TensorRTBackend(engine)
    assert message in str(caught.value) and 'ffs-stereo build-engine' in str(caught.value)
    assert FakeCuda.last.memory == {} and FakeCuda.last.closed


def test_backend_reports_failed_execute(tmp_path, monkeypatch):
    install_fake_tensorrt(monkeypatch, fake_tensorrt(execute_ok=False))
    backend = TensorRTBackend(write_fake_engine(tmp_path))
    image = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(EngineError, match=r"TensorRT failed to run '.*\.engine' \(see its log above\)"):
        backend.infer(image, image)
    backend.close()


def test_probe_records_runtime_and_driver_cuda_in_the_fingerprint(tmp_path, monkeypatch):
    install_fake_tensorrt(monkeypatch, fake_tensorrt('11.1.0'))
    fingerprint = runtime.probe_fingerprint()
    assert (fingerprint.tensorrt_version, fingerprint.cuda_version, fingerprint.cuda_driver_version,
            fingerprint.cuda_bindings) == ('11.1.0', '12.6', '12.8', 'fake-cuda 12.6')
    engine = write_fake_engine(tmp_path, fingerprint)
    record = json.load(open(sidecar_path(engine)))
    assert (record['cuda_runtime_version'], record['cuda_driver_version'], record['cuda_bindings']) == \
        ('12.6', '12.8', 'fake-cuda 12.6')


def test_package_extras_pin_the_bindings_the_runtime_asks_for():
    import ast

    from ..paths import REPO_ROOT
    tree = ast.parse((REPO_ROOT / 'setup.py').read_text())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'setup')
    extras = ast.literal_eval(next(keyword.value for keyword in call.keywords if keyword.arg == 'extras_require'))
    assert extras['gpu-cuda12'] == [runtime.CUDA12_BINDINGS_PIN] == [runtime.bindings_pin_for_driver(12020)]
    assert extras['gpu-cuda13'] == [runtime.CUDA13_BINDINGS_PIN] == [runtime.bindings_pin_for_driver(13000)]
    assert runtime.CUDA12_BINDINGS_PIN in extras['gpu']  # loads on CUDA-12 and newer drivers
    assert not [requirement for requirements in extras.values() for requirement in requirements
                if requirement == 'cuda-python']  # unpinned resolves to 13.x, which JetPack 6 cannot load
