"""The one small interface every inference backend implements."""
from abc import ABC, abstractmethod

import numpy as np

from .. import defaults
from ..errors import InputError


class StereoBackend(ABC):
    """Maps a rectified RGB pair to disparity at the network's input size.

    `input_size` is the fixed (height, width) the backend needs (an engine or
    ONNX graph), or None when it accepts any size that is a multiple of
    `size_multiple`. Fitting camera images to that size, and mapping the
    disparity back, is done once for all backends by `StereoPipeline`.
    """

    name = 'backend'
    input_size = None
    size_multiple = 1
    #: largest disparity (pixels at input size) the backend can return
    max_disparity = float(defaults.MAX_DISP)

    #: whether `infer_with_confidence` returns a confidence map (False: a single-output
    #: ONNX graph or engine exported without it)
    has_confidence = False

    @abstractmethod
    def infer(self, left_rgb: np.ndarray, right_rgb: np.ndarray) -> np.ndarray:
        """Return float32 HxW disparity for two HxWx3 uint8 RGB arrays."""

    def infer_with_confidence(self, left_rgb: np.ndarray, right_rgb: np.ndarray) -> tuple:
        """(disparity, confidence): confidence a float32 HxW map in 0..1 (1 = trusted), or
        None when the backend has none (`has_confidence` False). The disparity equals `infer`'s."""
        return self.infer(left_rgb, right_rgb), None

    def check_input_pair(self, left_rgb: np.ndarray, right_rgb: np.ndarray) -> None:
        """Refuse images that do not match a fixed input size (camera images must go
        through StereoPipeline, which fits them)."""
        height, width = self.input_size
        for image in (left_rgb, right_rgb):
            if image.shape != (height, width, 3):
                raise InputError(f'the {self.name} model takes {width}x{height} RGB images, got shape '
                                 f'{image.shape}: run it through StereoPipeline, which fits camera images to it')

    def baked_settings(self) -> dict:
        """Network settings fixed inside the model file: {'max_disp': int, 'valid_iters': int}
        for an exported graph or engine, {} for backends that take them per call."""
        return {}

    def warmup(self) -> None:
        """Run once on a dummy pair so the first real frame is not slow."""
        height, width = self.input_size or (defaults.round_up(64, self.size_multiple), defaults.round_up(128, self.size_multiple))
        dummy = np.zeros((height, width, 3), np.uint8)
        self.infer(dummy, dummy)

    def close(self) -> None:
        """Release device memory; the backend is unusable afterwards."""

    def describe(self) -> str:
        """One line for logs: which backend runs and at what size."""
        size = 'any size' if self.input_size is None else '%dx%d' % (self.input_size[1], self.input_size[0])
        return f'{self.name} ({size})'
