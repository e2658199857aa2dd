"""ONNX Runtime backend for graphs written by `ffs-stereo export`.

The graph has a static input size (read from its inputs), normalisation
inside, and `max_disp` in its metadata. A graph with the second output
`confidence` (the default export) gives `infer_with_confidence` a map; an older
single-output graph loads too and reports none. CUDA is used when onnxruntime-gpu
provides it and a CUDA device is asked for; otherwise the CPU provider runs
with all graph optimisations and one intra-op thread per core.
"""
import logging
import os

import numpy as np

from .. import defaults
from ..errors import ConfigError, EngineError
from .base import StereoBackend
from .graph_io import CONFIDENCE_NAME, INPUT_NAMES, OUTPUT_NAME, GraphOutputs, to_nchw

LOGGER = logging.getLogger(__name__)


def choose_providers(device, available):
    """Execution providers for `device` ('cpu', 'cuda', 'cuda:N') given the available ones.

    CUDA asked for but not provided (onnxruntime instead of onnxruntime-gpu) runs on the CPU and says so
    in one warning line, so a slow node is not a mystery.
    """
    if str(device).startswith('cuda'):
        if 'CUDAExecutionProvider' in available:
            index = int(str(device).partition(':')[2] or 0)
            return [('CUDAExecutionProvider', {'device_id': index}), 'CPUExecutionProvider']
        LOGGER.warning(f"ONNX Runtime: device '{device}' asked for, but this onnxruntime has no CUDA provider "
                       f"(available: {', '.join(available)}); running on the CPU. Install onnxruntime-gpu "
                       "for CUDA, or set device 'cpu' to silence this")
    return ['CPUExecutionProvider']


def _integer_settings(recorded):
    """{'max_disp', 'valid_iters'} of a graph's metadata (strings), those it records."""
    return {key: int(recorded[key]) for key in ('max_disp', 'valid_iters') if key in recorded}


class OnnxRuntimeBackend(GraphOutputs, StereoBackend):
    name = 'onnxruntime'
    size_multiple = 32

    def __init__(self, path, device=defaults.DEVICE, threads=None):
        import onnxruntime as ort
        device = defaults.resolve_device(device)
        if str(device) not in ('cpu',) and not str(device).startswith('cuda'):
            raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got '{device}'")
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise EngineError(f"ONNX file '{self.path}' does not exist: create it with "
                              'ffs-stereo export --model CKPT --height H --width W --output model.onnx')
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        try:
            self._session = ort.InferenceSession(
                self.path, options, providers=choose_providers(device, ort.get_available_providers()))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise EngineError(f"ONNX Runtime cannot load '{self.path}': {exc}") from None
        self.providers = self._session.get_providers()
        self.input_size = self._static_input_size()
        self.has_confidence = CONFIDENCE_NAME in [tensor.name for tensor in self._session.get_outputs()]
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.metadata = dict(metadata)
        self.max_disparity = float(metadata.get('max_disp', self.max_disparity))

    def _static_input_size(self):
        inputs = {tensor.name: tensor.shape for tensor in self._session.get_inputs()}
        outputs = [tensor.name for tensor in self._session.get_outputs()]
        if set(inputs) != set(INPUT_NAMES) or OUTPUT_NAME not in outputs:
            raise EngineError(f"'{self.path}' has inputs {sorted(inputs)} and outputs {outputs}; expected "
                              f'{list(INPUT_NAMES)} -> {OUTPUT_NAME} (export it with ffs-stereo export)')
        shape = inputs[INPUT_NAMES[0]]
        if len(shape) != 4 or not all(isinstance(size, int) for size in shape):
            raise EngineError(f"'{self.path}' has a dynamic input shape {shape}; export it for a fixed "
                              'size with ffs-stereo export --height H --width W')
        return int(shape[2]), int(shape[3])

    def _run(self, left_rgb, right_rgb, names):
        self.check_input_pair(left_rgb, right_rgb)
        feeds = {INPUT_NAMES[0]: to_nchw(left_rgb), INPUT_NAMES[1]: to_nchw(right_rgb)}
        return [output[0, 0].astype(np.float32, copy=False) for output in self._session.run(names, feeds)]

    def baked_settings(self):
        return _integer_settings(self.metadata)

    def close(self):
        self._session = None

    def describe(self):
        height, width = self.input_size
        provider = self.providers[0].replace('ExecutionProvider', '')
        return (f"onnxruntime ({width}x{height}, {provider}, max_disp {self.metadata.get('max_disp', '?')}, "
                f"{self.metadata.get('valid_iters', '?')} iterations)")
