"""PyTorch inference API: `load_model(path)` -> `StereoModel.predict(left, right)`.

`path` may be a released `.pth`, a directory holding one, or a native model
directory (see `native_format`). `predict` takes numpy images, pads them to a
multiple of 32 the way the official demo does (replicate padding, pad//2 on
the left/top, the rest right/bottom), runs the network and crops back.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from .. import defaults
from ..errors import ConfigError, InputError
from ..network.blocks import DisparityPositionTable


def _resolve_device(device):
    device = defaults.resolve_device(device)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f'unknown device {device!r}: use cpu or cuda') from exc
    if device.type not in ('cpu', 'cuda'):
        raise ConfigError(f'device must be cpu or cuda, got {device}')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('device cuda requested but no CUDA GPU is available: use --device cpu')
    return device


def read_model_source(path):
    """LoadedCheckpoint for a `.pth`, a directory holding one, or a native directory."""
    from .checkpoint import read_checkpoint
    from .native_format import is_native_dir, load_native
    path = os.fspath(path)
    if is_native_dir(path):
        return load_native(path)
    return read_checkpoint(path)


def load_model(path: 'str | os.PathLike', device: str = defaults.DEVICE,
               mixed_precision: bool = None) -> 'StereoModel':
    """Load a checkpoint or native directory into a ready `StereoModel`.

    `mixed_precision` (fp16 autocast) defaults to on for CUDA and is never
    used on CPU.
    """
    from .checkpoint import instantiate_network
    device = _resolve_device(device)
    source = read_model_source(path)
    network = instantiate_network(source.manifest, source.state_dict, source.args)
    return StereoModel(network, source, device, mixed_precision)


def pad_to_multiple(images, multiple=defaults.SIZE_MULTIPLE):
    """Replicate-pad B x C x H x W tensors; returns (padded, (top, bottom, left, right))."""
    height, width = images[0].shape[-2:]
    pads = defaults.split_padding((-height) % multiple) + defaults.split_padding((-width) % multiple)
    if not any(pads):
        return list(images), pads
    spec = (pads[2], pads[3], pads[0], pads[1])
    return [F.pad(image, spec, mode='replicate') for image in images], pads


def _image_tensor(image, name):
    """HxWx3 uint8 RGB (or HxW grey) numpy -> 1x3xHxW float32 tensor in 0..255."""
    if not isinstance(image, np.ndarray):
        raise InputError(f'{name} image must be a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise InputError(f'{name} image must be uint8 (8-bit RGB), got {image.dtype}: convert '
                         'or rescale it to 0..255')
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)  # grey/IR: replicate to RGB
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f'{name} image must be HxWx3 RGB or HxW grey, got shape {image.shape}')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f'{name} image is empty')
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def _as_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) \
            or int(value) != value:
        raise ConfigError(f'{name} must be an integer, got {value!r}')
    return int(value)


class StereoModel:
    """A loaded network plus the settings and provenance needed to run it."""

    def __init__(self, network, source, device, mixed_precision=None):
        self.device = device
        self.network = network.to(device).eval()
        wants_fp16 = True if mixed_precision is None else bool(mixed_precision)
        self.network.mixed_precision = wants_fp16 and device.type == 'cuda'
        self.args = dict(source.args)
        self.manifest = source.manifest
        self.source_path = source.source_path
        self.source_sha256 = source.source_sha256
        self.origin_sha256 = source.origin_sha256
        self.max_disp_limit = network.max_disp_limit
        self.pe_length = self._table_length(network)

    @property
    def path(self):
        return self.source_path

    @staticmethod
    def _table_length(network):
        """Shortest disparity positional table (None if the layout has no attention)."""
        lengths = [module.length for module in network.modules()
                   if isinstance(module, DisparityPositionTable)]
        return min(lengths) if lengths else None

    @property
    def default_max_disp(self):
        limit = self.max_disp_limit
        return defaults.MAX_DISP if limit is None else min(defaults.MAX_DISP, limit)

    def check_settings(self, valid_iters, max_disp):
        """(valid_iters, max_disp) with defaults applied; ConfigError if out of range."""
        valid_iters = _as_int(defaults.VALID_ITERS if valid_iters is None else valid_iters,
                              'valid_iters')
        max_disp = _as_int(self.default_max_disp if max_disp is None else max_disp, 'max_disp')
        if valid_iters < 1:
            raise ConfigError(f'valid_iters must be >= 1, got {valid_iters}')
        self.network.check_max_disp(max_disp)
        return valid_iters, max_disp

    def predict(self, left: np.ndarray, right: np.ndarray, valid_iters: int = None,
                max_disp: int = None) -> np.ndarray:
        """Float32 HxW disparity (left image pixels) for an RGB or grey uint8 pair."""
        return self._run(left, right, valid_iters, max_disp, False)[0]

    def predict_with_confidence(self, left: np.ndarray, right: np.ndarray, valid_iters: int = None,
                                max_disp: int = None) -> tuple:
        """(disparity, confidence): float32 HxW arrays, confidence in 0..1 (see
        `network.fast_foundation_stereo.classifier_confidence`); the disparity equals `predict`'s."""
        return self._run(left, right, valid_iters, max_disp, True)

    def _run(self, left, right, valid_iters, max_disp, return_confidence):
        valid_iters, max_disp = self.check_settings(valid_iters, max_disp)
        left_tensor = _image_tensor(left, 'left')
        right_tensor = _image_tensor(right, 'right')
        if left_tensor.shape != right_tensor.shape:
            raise InputError(f'left {left.shape} and right {right.shape} images differ in size: '
                             'give a rectified pair of equal size')
        height, width = left_tensor.shape[-2:]
        (left_tensor, right_tensor), (top, bottom, lft, rgt) = pad_to_multiple(
            [left_tensor.to(self.device), right_tensor.to(self.device)])
        with torch.inference_mode():
            outputs = self.network(left_tensor, right_tensor, valid_iters, max_disp,
                                   return_confidence=return_confidence)
        outputs = outputs if return_confidence else (outputs, None)
        return tuple(None if output is None else
                     output[0, 0, top:top + height, lft:lft + width].float().cpu().numpy()
                     .astype(np.float32, copy=False) for output in outputs)

    def describe(self):
        return (f'Fast-FoundationStereo from {self.source_path} on {self.device} '
                f'(max_disp <= {self.max_disp_limit}, normalize={self.network.normalize})')
