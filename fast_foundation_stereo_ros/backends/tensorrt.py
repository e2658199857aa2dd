"""TensorRT engine backend: one fixed-size engine, one CUDA stream, pinned buffers, optional CUDA graph.

The engine is only deserialized after its sidecar says it was built for this
GPU, compute capability and TensorRT version and its size/SHA-256 match
(engine_sidecar): a foreign or truncated engine is refused
with the rebuild command instead of crashing inside TensorRT. Every TensorRT
call that reports failure by its return value (deserialize_cuda_engine,
create_execution_context, set_tensor_address, execute_async_v3) is checked
and turned into an EngineError naming the engine.

An engine built from a graph with the `confidence` output (listed in the
sidecar's outputs) binds it too and `infer_with_confidence` returns it; an
engine without it loads as before and reports no confidence.

Input normalisation is inside the graph, so the host only lays out the two
uint8 images as 1x3xHxW floats 0..255 in page-locked buffers. With
`cuda_graph=True` the engine is captured once as a CUDA graph and replayed
(`tensorrt_runtime.GraphLauncher`: a failed capture is logged once and the
engine runs without a graph).

Verified without a GPU: the file/sidecar refusals and the missing-TensorRT
message (test/backends). The TensorRT calls follow the TensorRT 10/11 Python
API (execute_async_v3 with set_tensor_address); `ffs-stereo build-engine`
runs every freshly built engine against ONNX Runtime before writing it.
"""
import sys

import numpy as np

from ..errors import EngineError
from .base import StereoBackend
from .engine_sidecar import check_engine_file, check_fingerprint, read_sidecar, refuse_engine
from .graph_io import CONFIDENCE_NAME, INPUT_NAMES, OUTPUT_NAME, GraphOutputs
from .tensorrt_runtime import GraphLauncher, import_tensorrt, open_cuda, probe_fingerprint


class TensorRTBackend(GraphOutputs, StereoBackend):
    name = 'tensorrt'
    size_multiple = 32

    def __init__(self, path, device=0, cuda_graph=False, verify_hash=True, log=None):
        self.path = str(path)
        self.device = int(device)
        # file and sidecar checks need no GPU: a missing or corrupt engine is
        # reported as such even on a machine without TensorRT
        self.sidecar = read_sidecar(self.path)
        check_engine_file(self.path, self.sidecar, verify_hash)
        trt = import_tensorrt()
        check_fingerprint(self.path, self.sidecar, probe_fingerprint(device))
        self.input_size = (int(self.sidecar['height']), int(self.sidecar['width']))
        self.max_disparity = float(self.sidecar['max_disp'])
        self._cuda = open_cuda(device)
        self._buffers = {}  # name -> (host array, device pointer)
        try:
            self._engine = self._deserialize(trt)
            self._context = self._create_context()
            self._bind_tensors(trt)
        except BaseException:
            self.close()
            raise
        self._launcher = GraphLauncher(self._cuda, self._enqueue, bool(cuda_graph), log or _log_to_stderr)

    def _deserialize(self, trt):
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with open(self.path, 'rb') as stream:
            engine = self._runtime.deserialize_cuda_engine(stream.read())
        if engine is None:
            refuse_engine(self.path, 'TensorRT could not deserialize it (see its log above)', self.sidecar)
        return engine

    def _create_context(self):
        context = self._engine.create_execution_context()
        if context is None:
            raise EngineError(f"TensorRT could not create an execution context for '{self.path}' (see its log "
                              'above; usually GPU memory: close other GPU programs)')
        return context

    def _bind_tensors(self, trt):
        """Allocate one host/device buffer pair per I/O tensor and bind the device side."""
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        expected = set(INPUT_NAMES) | {OUTPUT_NAME} | ({CONFIDENCE_NAME} & set(names))
        if set(names) != expected:
            refuse_engine(self.path, f'its I/O tensors are {sorted(names)}, expected {sorted(expected)}',
                          self.sidecar)
        recorded = {t['name']: t['shape'] for t in self.sidecar['inputs'] + self.sidecar['outputs']}
        for name in names:
            shape = tuple(int(size) for size in self._engine.get_tensor_shape(name))
            if list(shape) != list(recorded.get(name, [])):
                refuse_engine(self.path, f"tensor '{name}' has shape {list(shape)} but the sidecar records "
                                         f'{recorded.get(name)}', self.sidecar)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            host = self._cuda.host_array(shape, dtype)
            pointer = self._cuda.alloc(host.nbytes)
            self._buffers[name] = (host, pointer)
            if not self._context.set_tensor_address(name, pointer):
                refuse_engine(self.path, f"TensorRT refused the device buffer of tensor '{name}' "
                                         '(set_tensor_address returned False)', self.sidecar)
        self.has_confidence = CONFIDENCE_NAME in names

    def _enqueue(self):
        if not self._context.execute_async_v3(self._cuda.stream_handle):
            raise EngineError(f"TensorRT failed to run '{self.path}' (see its log above)")

    @property
    def cuda_graph_state(self):
        """'off', 'pending', 'captured', 'failed' or 'unsupported' (see GraphLauncher)."""
        return self._launcher.state

    def _run(self, left_rgb, right_rgb, names):
        """Upload the pair, run the engine, download the outputs `names` (HxW float32 copies)."""
        self.check_input_pair(left_rgb, right_rgb)
        for name, image in zip(INPUT_NAMES, (left_rgb, right_rgb)):
            host, pointer = self._buffers[name]
            host[0] = image.transpose(2, 0, 1)  # HWC uint8 -> CHW in the engine's float dtype
            self._cuda.to_device(pointer, host)
        self._launcher.run()
        for name in names:
            host, pointer = self._buffers[name]
            self._cuda.to_host(host, pointer)
        self._cuda.synchronize()
        return [self._buffers[name][0][0, 0].astype(np.float32, copy=True) for name in names]

    def close(self):
        cuda = getattr(self, '_cuda', None)
        if cuda is None:
            return
        for _, pointer in self._buffers.values():
            cuda.free(pointer)
        self._buffers = {}
        # Release TensorRT objects before the stream/context they ran on.
        self._context = self._engine = self._runtime = None
        cuda.close()
        self._cuda = None

    def baked_settings(self):
        return {key: int(self.sidecar[key]) for key in ('max_disp', 'valid_iters')}

    def describe(self):
        height, width = self.input_size
        return (f"tensorrt ({width}x{height}, {self.sidecar['precision']}, max_disp "
                f"{self.sidecar['max_disp']}, {self.sidecar['valid_iters']} iterations, "
                f"TensorRT {self.sidecar['tensorrt_version']}, cuda:{self.device} {self.sidecar['gpu_name']}"
                f"{', CUDA graph' if self._launcher.state in ('pending', 'captured') else ''})")


def _log_to_stderr(message):
    print(f'tensorrt backend: {message}', file=sys.stderr)
