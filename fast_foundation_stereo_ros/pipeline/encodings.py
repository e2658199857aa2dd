"""Camera encodings to the network's RGB uint8 layout, one conversion per image.

Supported: rgb8, bgr8, rgba8, bgra8, mono8, mono16 (sensor_msgs names).
"""
import numpy as np

from ..errors import InputError

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, 'mono16': 1}
DTYPES = {'mono16': np.uint16}
SUPPORTED_ENCODINGS = tuple(CHANNELS)


def check_encoding(encoding):
    if encoding not in CHANNELS:
        raise InputError(
            f"unsupported image encoding '{encoding}': use one of {', '.join(SUPPORTED_ENCODINGS)} "
            '(convert it upstream, e.g. with image_proc, or set the camera driver to rgb8/mono8)')


def dtype_of(encoding):
    check_encoding(encoding)
    return DTYPES.get(encoding, np.uint8)


def channels_of(encoding):
    check_encoding(encoding)
    return CHANNELS[encoding]


def to_rgb8(image, encoding, mono16_scale=None):
    """Return HxWx3 uint8 RGB; rgb8 input comes back as the same array (no copy).

    mono16 is mapped to 8 bits by `mono16_scale` (255 / full-scale value); pass
    the same scale for left and right so both images keep equal brightness.
    """
    check_encoding(encoding)
    expected = CHANNELS[encoding]
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


def pair_to_rgb8(left, left_encoding, right, right_encoding):
    """Convert a stereo pair, checking that both images share one size."""
    if left.shape[:2] != right.shape[:2]:
        raise InputError(
            f'left and right images differ in size ({left.shape[1]}x{left.shape[0]} vs '
            f'{right.shape[1]}x{right.shape[0]}): publish rectified images of one resolution')
    scale = None
    if left_encoding == 'mono16' and right_encoding == 'mono16':
        scale = mono16_scale_for(left, right)
    return to_rgb8(left, left_encoding, scale), to_rgb8(right, right_encoding, scale)
