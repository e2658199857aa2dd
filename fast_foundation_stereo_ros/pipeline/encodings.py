"""sensor_msgs image encodings: the one table, image messages as arrays, conversion to RGB.

Inputs: rgb8, bgr8, rgba8, bgra8, mono8, mono16 (sensor_msgs names), each
converted once to the network's RGB uint8 layout. Outputs add 16UC1 and
32FC1. `image_to_array` reads rclpy and rosbags Image messages alike (both
carry height, width, step, encoding, is_bigendian and a byte buffer `data`).
"""
import sys

import numpy as np

from ..errors import InputError

#: encoding -> (numpy dtype, channels): the inputs we accept plus what we publish
ENCODING_LAYOUTS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '8UC1': (np.uint8, 1), '8UC3': (np.uint8, 3), '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
}
#: encodings the network can take (converted to rgb8 by `to_rgb8`)
SUPPORTED_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16')
HOST_IS_BIG_ENDIAN = sys.byteorder == 'big'


def check_encoding(encoding):
    if encoding not in SUPPORTED_ENCODINGS:
        raise InputError(
            f"unsupported image encoding '{encoding}': use one of {', '.join(SUPPORTED_ENCODINGS)} "
            '(convert it upstream, e.g. with image_proc, or set the camera driver to rgb8/mono8)')


def to_rgb8(image, encoding, mono16_scale=None):
    """Return HxWx3 uint8 RGB; rgb8 input comes back as the same array (no copy).

    mono16 is mapped to 8 bits by `mono16_scale` (255 / full-scale value); pass
    the same scale for left and right so both images keep equal brightness.
    """
    check_encoding(encoding)
    expected = ENCODING_LAYOUTS[encoding][1]
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != expected or image.ndim not in (2, 3):
        raise InputError(f'{encoding} image must have {expected} channel(s), got shape {image.shape}')
    if encoding == 'rgb8':
        return image
    if encoding == 'bgr8':
        return image[:, :, ::-1].copy()
    if encoding == 'rgba8':
        return np.ascontiguousarray(image[:, :, :3])
    if encoding == 'bgra8':
        return image[:, :, 2::-1].copy()
    grey = image.reshape(image.shape[:2])
    if encoding == 'mono16':
        scale = mono16_scale if mono16_scale is not None else mono16_scale_for(grey)
        grey = np.clip(grey * np.float32(scale), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def mono16_scale_for(*images):
    """One 16-to-8-bit scale for a stereo pair: its brightest pixel maps to 255.

    Many IR sensors fill only 10-12 of the 16 bits, so a fixed >>8 would leave
    the network an almost black image.
    """
    peak = max(int(img.max()) for img in images)
    return 255.0 / max(peak, 1)


def check_same_size(left, right):
    """Raise unless the two images of a pair have one size."""
    if left.shape[:2] != right.shape[:2]:
        raise InputError(
            f'left and right images differ in size ({left.shape[1]}x{left.shape[0]} vs '
            f'{right.shape[1]}x{right.shape[0]}): publish rectified images of one resolution')


def pair_to_rgb8(left, left_encoding, right, right_encoding):
    """Convert a stereo pair, checking that both images share one size."""
    check_same_size(left, right)
    scale = None
    if left_encoding == 'mono16' and right_encoding == 'mono16':
        scale = mono16_scale_for(left, right)
    return to_rgb8(left, left_encoding, scale), to_rgb8(right, right_encoding, scale)


def image_to_array(msg):
    """HxW or HxWxC numpy array of a sensor_msgs/Image (rclpy or rosbags).

    A VIEW of `msg.data` when possible (no copy); row padding
    (`step` > width * pixel size) is skipped by striding. A big-endian 16-bit
    image on a little-endian host (or the reverse) is byte-swapped into a copy.
    """
    layout = ENCODING_LAYOUTS.get(msg.encoding)
    if layout is None:
        raise InputError(f"unsupported image encoding '{msg.encoding}': use one of "
                         f"{', '.join(SUPPORTED_ENCODINGS)}")
    dtype, channels = np.dtype(layout[0]), layout[1]
    height, width, step = msg.height, msg.width, msg.step
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise InputError(f'{msg.encoding} image {width}x{height} has step {step} < {row_bytes} bytes '
                         'per row: the message is corrupt')
    if len(msg.data) < step * height:
        raise InputError(f'{msg.encoding} image {width}x{height} (step {step}) needs {step * height} '
                         f'bytes, got {len(msg.data)}: the message is truncated')
    raw = np.frombuffer(msg.data, np.uint8, count=step * height)
    rows = raw.reshape(height, step)[:, :row_bytes]
    if step % dtype.itemsize:
        rows = np.ascontiguousarray(rows)  # rows not aligned to the pixel size
    wire_dtype = dtype.newbyteorder('>' if msg.is_bigendian else '<') if dtype.itemsize > 1 else dtype
    pixels = rows.view(wire_dtype)
    if not wire_dtype.isnative:
        pixels = pixels.astype(dtype)  # native byte order (copy)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def message_layout(pixels, encoding):
    """(pixels as a contiguous array of the encoding's dtype, step in bytes) for an output image."""
    dtype, channels = ENCODING_LAYOUTS[encoding]
    pixels = np.ascontiguousarray(pixels, dtype=dtype)
    if (channels == 1 and pixels.ndim != 2) or (channels > 1 and pixels.shape[2:] != (channels,)):
        raise ValueError(f'{encoding} needs {channels} channel(s), got shape {pixels.shape}')
    return pixels, pixels.shape[1] * channels * pixels.itemsize
