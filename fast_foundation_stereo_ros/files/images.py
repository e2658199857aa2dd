"""Image files in and out: the one reader (with explicit options) and the RGB PNG writer.

`read_image` returns the pixels and their sensor_msgs encoding, so images go
through the same encoding conversion as camera messages. `ffs-stereo run`
accepts 8-bit colour/grey (alpha too) and 16-bit grey; `ffs-stereo infer`
asks for 8-bit without alpha. Verified by test/files/test_images.py and the
run/infer command tests.
"""
import os

import cv2
import numpy as np

from ..errors import InputError


def read_image(path, side, allow_alpha=True, allow_16bit=True):
    """Image file -> (array as decoded, sensor_msgs encoding: bgr8, bgra8, mono8 or mono16).

    `side` names the image in errors ('left'/'right'). Refused with one line
    naming the fix: a missing or undecodable file, other depths or channel
    counts, and (when not allowed) an alpha channel or 16-bit grey.
    """
    if not os.path.isfile(path):
        raise InputError(f"{side} image '{path}' does not exist: check the path")
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot read {side} image '{path}': it is not an image OpenCV can decode "
                         '(use PNG, JPEG, PPM/PGM, BMP or TIFF)')
    accepted = '8-bit colour/grey' + (' or 16-bit grey' if allow_16bit else '')
    if image.ndim == 2 and image.dtype == np.uint16:
        if not allow_16bit:
            raise InputError(f"{side} image '{path}' is 16-bit: convert it to 8-bit")
        return image, 'mono16'
    if image.ndim == 2 and image.dtype == np.uint8:
        return image, 'mono8'
    if image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] in (3, 4):
        if image.shape[2] == 3:
            return image, 'bgr8'
        if not allow_alpha:
            raise InputError(f"{side} image '{path}' has an alpha channel: save it as RGB")
        return image, 'bgra8'
    raise InputError(f"{side} image '{path}' is {image.dtype} with shape {image.shape}: give {accepted} images")


def write_rgb_png(path, rgb):
    """Write an HxWx3 RGB uint8 image as PNG (OpenCV stores BGR)."""
    if not cv2.imwrite(os.fspath(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise InputError(f"could not write '{path}': check the output folder")
