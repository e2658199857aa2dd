"""Fit camera images to a backend's input size and map disparity back.

Disparity is a horizontal distance in pixels, so when images are scaled by
sx before inference the returned disparity is divided by sx afterwards; the
camera model (f, cx, baseline) of the camera-resolution image then applies
unchanged. Upsampling uses nearest neighbour so that no "flying pixels" are
invented between foreground and background.

Padding follows the official demo (replicate, split by `defaults.split_padding`:
half before, the rest after), as `StereoModel.predict` does, so the node, `run`,
bags and `infer` give the official disparity for any camera size
(test/pipeline/test_image_fitting.py compares the two on the fixture checkpoint).
Padding columns on the left of both images shifts them alike, so disparity
values are unchanged by it.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from ..defaults import round_up, split_padding
from ..errors import InputError

FIT_MODES = ('letterbox', 'stretch')


@dataclass(frozen=True)
class FitTransform:
    camera_size: tuple   # (height, width) of the camera images
    scaled_size: tuple   # (height, width) after resizing, before padding
    input_size: tuple    # (height, width) fed to the backend

    @property
    def disparity_scale(self):
        """Factor turning input-size disparity into camera-size disparity."""
        return self.camera_size[1] / self.scaled_size[1]

    @property
    def padding(self):
        """(top, bottom, left, right) replicate padding around the scaled image."""
        top, bottom = split_padding(self.input_size[0] - self.scaled_size[0])
        left, right = split_padding(self.input_size[1] - self.scaled_size[1])
        return top, bottom, left, right

    def apply(self, image):
        """Resize then pad (replicate, centred as the official demo) one HxWxC image."""
        if self.scaled_size != self.camera_size:
            image = cv2.resize(image, self.scaled_size[::-1], interpolation=cv2.INTER_AREA)
        top, bottom, left, right = self.padding
        if top or bottom or left or right:
            image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE)
        return image

    def restore(self, disparity):
        """Crop the padding, resize to the camera size and rescale values."""
        restored = self.restore_map(disparity)
        if self.scaled_size != self.camera_size:
            restored *= np.float32(self.disparity_scale)   # a new array: cv2.resize made it
        return restored

    def restore_map(self, values):
        """Crop the (centred) padding and resize to the camera size (nearest), values unchanged: the
        disparity's geometry, for per-pixel maps that are not distances, such as confidence."""
        top, _, left, _ = self.padding
        values = values[top:top + self.scaled_size[0], left:left + self.scaled_size[1]]
        if self.scaled_size == self.camera_size:
            return values
        return cv2.resize(values, self.camera_size[::-1], interpolation=cv2.INTER_NEAREST)


def plan_fit(camera_size, input_size=None, size_multiple=1, scale=1.0, mode='letterbox'):
    """Choose how a camera image reaches the backend.

    input_size None (backend takes any size): scale by `scale` and pad up to a
    multiple of `size_multiple`. Fixed input_size: 'letterbox' shrinks
    uniformly to fit and pads; 'stretch' resizes to exactly input_size.
    """
    if mode not in FIT_MODES:
        raise InputError(f"fit mode must be one of {FIT_MODES}, got '{mode}'")
    height, width = camera_size
    if input_size is None:
        if not 0.0 < scale <= 1.0:
            raise InputError(f'scale must be in (0, 1], got {scale}')
        scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
        padded = (round_up(scaled[0], size_multiple), round_up(scaled[1], size_multiple))
        return FitTransform(tuple(camera_size), scaled, padded)
    in_height, in_width = input_size
    if height < in_height or width < in_width:
        raise InputError(
            f'camera image {width}x{height} is smaller than the network input {in_width}x{in_height}: '
            'build the engine/ONNX for a size no larger than the camera image')
    if mode == 'stretch':
        return FitTransform(tuple(camera_size), tuple(input_size), tuple(input_size))
    factor = min(in_height / height, in_width / width)
    scaled = (min(in_height, round(height * factor)), min(in_width, round(width * factor)))
    return FitTransform(tuple(camera_size), scaled, tuple(input_size))
