"""Inference backends behind one interface, chosen from the model path.

`sgbm` (or an empty model path) selects the classical OpenCV matcher, which
needs no weights; `.engine`/`.plan` TensorRT; `.onnx` ONNX Runtime; `.pth`,
a directory holding one, or a native model directory PyTorch.
"""
import os

from .. import defaults
from ..errors import ConfigError
from .base import StereoBackend

BACKEND_NAMES = ('auto', 'sgbm', 'tensorrt', 'onnxruntime', 'pytorch')


def backend_kind(model_path, backend='auto'):
    """Which backend a model path selects (`backend` overrides 'auto')."""
    if backend not in BACKEND_NAMES:
        raise ConfigError(f"backend must be one of {', '.join(BACKEND_NAMES)}, got '{backend}'")
    if backend != 'auto':
        return backend
    if not model_path or model_path == 'sgbm':
        return 'sgbm'
    lowered = str(model_path).lower()
    if lowered.endswith(('.engine', '.plan')):
        return 'tensorrt'
    if lowered.endswith('.onnx'):
        return 'onnxruntime'
    if lowered.endswith('.pth') or os.path.isdir(model_path):
        return 'pytorch'
    raise ConfigError(
        f"cannot tell the backend from model path '{model_path}': give a .engine/.plan, .onnx, "
        ".pth or native model directory, or 'sgbm' for the weight-free classical matcher")


def create_backend(model_path: str, backend: str = 'auto', device: str = defaults.DEVICE,
                   max_disp: int = defaults.MAX_DISP, valid_iters: int = defaults.VALID_ITERS,
                   cuda_graph: bool = False) -> StereoBackend:
    """Instantiate the backend for `model_path` (see `backend_kind`); `cuda_graph` applies to TensorRT."""
    kind = backend_kind(model_path, backend)
    device = defaults.resolve_device(device)
    if kind == 'sgbm':
        from .sgbm import SGBMBackend
        return SGBMBackend(max_disp=max_disp)
    if kind == 'tensorrt':
        from .tensorrt import TensorRTBackend
        return TensorRTBackend(model_path, cuda_graph=cuda_graph)
    if kind == 'onnxruntime':
        from .onnx_runtime import OnnxRuntimeBackend
        return OnnxRuntimeBackend(model_path, device=device)
    from .pytorch import TorchBackend
    return TorchBackend(model_path, device=device, max_disp=max_disp, valid_iters=valid_iters)


__all__ = ['StereoBackend', 'create_backend', 'backend_kind', 'BACKEND_NAMES']
