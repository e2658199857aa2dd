"""False-colour images of depth (and any scalar map) for people to look at.

The colouring itself is disparity_colormap's (invalid pixels black); this
adds a range that fits one image (`robust_range`) and depth coloured by its
inverse.
"""
import cv2
import numpy as np

from .colormap import colorize_disparity


def colorize(values, value_range=None, colormap=cv2.COLORMAP_TURBO):
    """HxW float (NaN invalid) -> HxWx3 uint8 RGB; low values blue, high red."""
    values = np.asarray(values, np.float32)
    low, high = value_range if value_range is not None else robust_range(values)
    return colorize_disparity(values, low, high, colormap)


def colorize_depth(depth, depth_range=None):
    """Near red, far blue: colour by inverse depth, which spreads near detail."""
    with np.errstate(divide='ignore', invalid='ignore'):
        inverse = np.where(np.asarray(depth) > 0, 1.0 / np.asarray(depth, np.float32), np.nan)
    value_range = None
    if depth_range is not None:
        value_range = (1.0 / depth_range[1], 1.0 / depth_range[0])
    return colorize(inverse, value_range)


def robust_range(values):
    """1st-99th percentile of the finite values, so a few outliers do not wash out the image."""
    valid_values = np.asarray(values)[np.isfinite(values)]
    if valid_values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(valid_values, (1, 99))
    return float(low), float(high)
