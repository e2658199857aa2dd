"""Compressed images (sensor_msgs/CompressedImage, as image_transport's compressed plugin writes them) -> pixels.

The `format` field reads e.g. "bgr8; jpeg compressed bgr8", "rgb8; png compressed",
"mono8; jpeg compressed " or, from old writers, just "jpeg"/"png". OpenCV decodes
the bytes once (`cv2.imdecode` on a numpy view of `data`, no copy of the input)
into BGR / BGRA / grey, which the stage already reads (`bgr8`, `bgra8`, `mono8`,
`mono16` for 16-bit png), so no further conversion is made here.
`compressedDepth` (image_transport's depth plugin) is refused: it is not a camera image.

Verified by test/pipeline/test_compressed_images.py (jpeg/png, rgb/mono/16-bit, bad data).
"""
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError

COMPRESSED_FORMATS = ('jpeg', 'png')
#: (dimensions, channels, dtype) of what cv2.imdecode returns -> encoding of those pixels
_DECODED_ENCODINGS = {(2, 1, np.uint8): 'mono8', (2, 1, np.uint16): 'mono16',
                      (3, 3, np.uint8): 'bgr8', (3, 4, np.uint8): 'bgra8'}


@dataclass
class DecodedImage:
    """Decoded pixels with the fields `encodings.image_to_array` reads (a view, like an Image message)."""
    header: object
    encoding: str
    height: int
    width: int
    step: int
    data: np.ndarray
    is_bigendian: bool = False


def compression_of(format_field):
    """'jpeg' or 'png' from a CompressedImage format field; InputError for anything else."""
    text = format_field.lower()
    if 'compresseddepth' in text:
        raise InputError(f"compressed image format '{format_field}' is a compressedDepth image, not a camera "
                         "image: subscribe the cameras' jpeg/png compressed topics")
    for compression in COMPRESSED_FORMATS:
        if compression in text or (compression == 'jpeg' and 'jpg' in text):
            return compression
    raise InputError(f"compressed image format '{format_field}' is neither jpeg nor png: publish "
                     "image_transport 'compressed' images (jpeg or png)")


def decode_compressed(header, format_field, data):
    """DecodedImage of one compressed image (`data`: bytes-like); InputError if it cannot be decoded."""
    compression_of(format_field)
    raw = np.frombuffer(data, np.uint8)
    pixels = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if pixels is None:
        raise InputError(f"compressed image ({format_field or 'no format'}, {raw.size} bytes) could not be "
                         'decoded: the message is corrupt or truncated')
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    encoding = _DECODED_ENCODINGS.get((pixels.ndim, channels, pixels.dtype.type))
    if encoding is None:
        raise InputError(f'compressed image decodes to {channels} channel(s) of {pixels.dtype}: publish 8-bit '
                         'grey/colour or 16-bit grey images')
    pixels = np.ascontiguousarray(pixels)
    return DecodedImage(header, encoding, pixels.shape[0], pixels.shape[1], pixels.strides[0],
                        pixels.reshape(-1).view(np.uint8))
