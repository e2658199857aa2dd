"""sensor_msgs / stereo_msgs <-> numpy: our small cv_bridge replacement.

Speed notes (measured with the Kilted rclpy wheels, 720p, 32-byte points):
the generated setters copy any `uint8[]` value with `array.array('B', value)`,
which walks a memoryview or another array.array element by element (tens of
ms) but memcpy's `bytes`. A message built with `check_fields=True` instead
*keeps* an array.array it is given. So `_byte_array` fills an array.array from
the numpy buffer with one memcpy (`frombytes`), and `_new_message` builds the
message so that the array is kept as is: one copy of the pixels in total, the
same cost as `np.copyto`. On distros without `check_fields` (Humble) the
setters keep array.array values anyway. With a `MessageBuffer` the output is
computed directly in the array.array the message takes: no copy at all.

Reading is a zero-copy view: `np.frombuffer(msg.data)` over the array.array.
"""
import array
import sys

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
from stereo_msgs.msg import DisparityImage

from ..errors import InputError
from ..geometry.stereo import StereoCamera

# encoding -> (numpy dtype, channels); the inputs we accept plus what we publish
ENCODING_LAYOUTS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
    '8UC1': (np.uint8, 1), '8UC3': (np.uint8, 3), '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
}
_HOST_IS_BIG_ENDIAN = sys.byteorder == 'big'


def stamp_to_ns(stamp):
    """builtin_interfaces/Time -> integer nanoseconds (exact)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


# ---------------------------------------------------------------- images --

def image_to_array(msg):
    """HxW or HxWxC numpy array of a sensor_msgs/Image.

    A VIEW of `msg.data` when possible (no copy); row padding
    (`step` > width * pixel size) is skipped by striding. A big-endian 16-bit
    image on a little-endian host (or the reverse) is byte-swapped into a copy.
    """
    layout = ENCODING_LAYOUTS.get(msg.encoding)
    if layout is None:
        raise InputError(
            f"unsupported image encoding '{msg.encoding}': use one of "
            f"{', '.join(k for k in ENCODING_LAYOUTS if not k[0].isdigit())}")
    dtype, channels = layout
    dtype = np.dtype(dtype)
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


class MessageBuffer:
    """An array.array('B') with a numpy view of it, to compute a frame's output
    directly in the memory a message then takes without copying (`data=`).

    Reused frame after frame: a message built on it is valid until the buffer
    is written again (the node publishes, which serialises, before that).
    """

    def __init__(self, shape, dtype):
        dtype = np.dtype(dtype)
        self.data = array.array('B', bytes(int(np.prod(shape)) * dtype.itemsize))
        self.array = np.frombuffer(self.data, dtype).reshape(shape)

    def fits(self, shape, dtype):
        return self.array.shape == tuple(shape) and self.array.dtype == np.dtype(dtype)


def array_to_image(pixels, encoding, header, data=None):
    """sensor_msgs/Image holding `pixels` (contiguous, native byte order).

    `data`: the MessageBuffer.data that `pixels` is a view of, taken as the
    message's data without a copy; by default the pixels are copied once.
    """
    dtype, channels = ENCODING_LAYOUTS[encoding]
    pixels = np.ascontiguousarray(pixels, dtype=dtype)
    if (channels == 1 and pixels.ndim != 2) or (channels > 1 and pixels.shape[2:] != (channels,)):
        raise ValueError(f'{encoding} needs {channels} channel(s), got shape {pixels.shape}')
    height, width = pixels.shape[:2]
    return _new_message(Image, header=header, height=height, width=width, encoding=encoding,
                        is_bigendian=_HOST_IS_BIG_ENDIAN, step=width * channels * pixels.itemsize,
                        data=_message_bytes(pixels, data))


# --------------------------------------------------------------- outputs --

def disparity_image(disparity, header, camera, min_disparity, max_disparity, delta_d, data=None):
    """stereo_msgs/DisparityImage (32FC1) for `disparity` at `camera`'s size.

    `f`, `t` come from the rectified pair: f = fx (left and right rectified
    focal lengths are equal, checked by StereoCamera), t = B = -P_r[3]/P_r[0]
    > 0, so Z = f*t/d. valid_window is the full image: the network (and the
    SGBM backend, which pads its search range) returns every pixel, and
    invalid pixels are NaN instead of being cut out of a window.
    """
    height, width = disparity.shape
    image = array_to_image(disparity, '32FC1', header, data)
    window = RegionOfInterest(x_offset=0, y_offset=0, height=height, width=width, do_rectify=False)
    return DisparityImage(header=header, image=image, f=float(camera.fx), t=float(camera.baseline),
                          valid_window=window, min_disparity=float(min_disparity),
                          max_disparity=float(max_disparity), delta_d=float(delta_d))


def point_fields(layout):
    """PointField list of a geometry.CloudLayout (all FLOAT32, count 1)."""
    return [PointField(name=name, offset=offset, datatype=PointField.FLOAT32, count=1)
            for name, offset in layout.fields]


def point_cloud2(points, layout, header, data=None):
    """Organised PointCloud2 from a point buffer (H x W x point_step uint8).

    `data`: the MessageBuffer.data that `points` is a view of
    (a CloudBuilder writing into a MessageBuffer), used without a copy; by default the bytes of `points`
    are copied (CloudBuilder buffers). is_dense is False: invalid
    points are NaN (stereo always has some).
    """
    height, width, point_step = points.shape
    if point_step != layout.point_step:
        raise ValueError(f'buffer has {point_step} bytes per point, layout needs {layout.point_step}')
    return _new_message(PointCloud2, header=header, height=height, width=width,
                        fields=point_fields(layout), is_bigendian=_HOST_IS_BIG_ENDIAN,
                        point_step=point_step, row_step=point_step * width,
                        data=_message_bytes(points, data), is_dense=False)


def cloud_to_arrays(msg):
    """{field name: HxW float32 view} of an organised FLOAT32 PointCloud2 (for tests/tools)."""
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.row_step)
    points = raw[:, :msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
    result = {}
    for field in msg.fields:
        if field.datatype != PointField.FLOAT32:
            raise ValueError(f'field {field.name} is not FLOAT32')
        result[field.name] = points[:, :, field.offset:field.offset + 4].copy().view(np.float32)[:, :, 0]
    return result


def camera_info_with_header(info, header):
    """A copy of `info` under another header (depth/camera_info = left info)."""
    return CameraInfo(header=header, height=info.height, width=info.width,
                      distortion_model=info.distortion_model, d=info.d, k=info.k, r=info.r,
                      p=info.p, binning_x=info.binning_x, binning_y=info.binning_y, roi=info.roi)


# ----------------------------------------------------------- camera_info --

def stereo_camera_from_infos(left_info, right_info, width, height):
    """geometry.StereoCamera of a rectified pair whose images are `width`x`height`.

    Checks that both infos describe images of that size and that P is filled
    in; StereoCamera.from_projections checks focal lengths and baseline sign.
    Binning/ROI are not supported: the images must be full rectified frames.
    """
    for side, info in (('left', left_info), ('right', right_info)):
        if (info.width, info.height) != (width, height):
            raise InputError(
                f'{side} camera_info is for {info.width}x{info.height} images but the images are '
                f'{width}x{height}: publish the camera_info of the rectified stream you subscribe to '
                '(after any resize/crop)')
        if not np.any(np.asarray(info.p, dtype=np.float64)):
            raise InputError(f'{side} camera_info has an all-zero projection matrix P: the camera is '
                             'not calibrated; run camera_calibration and publish rectified camera_info')
        if info.binning_x > 1 or info.binning_y > 1 or _has_roi(info):
            raise InputError(f'{side} camera_info uses binning or an ROI: publish full-frame '
                             'rectified images with matching camera_info')
    return StereoCamera.from_projections(left_info.p, right_info.p, width, height)


def camera_info_key(left_info, right_info):
    """Hashable summary of what StereoCamera depends on (cache key)."""
    return (tuple(left_info.p), tuple(right_info.p), left_info.width, left_info.height,
            right_info.width, right_info.height, left_info.binning_x, left_info.binning_y,
            right_info.binning_x, right_info.binning_y, _has_roi(left_info), _has_roi(right_info))


def _has_roi(info):
    roi = info.roi
    return bool(roi.x_offset or roi.y_offset or (roi.width and roi.width != info.width)
                or (roi.height and roi.height != info.height))


# ---------------------------------------------------------------- helpers --

def _message_bytes(pixels, data):
    """`data` when it already holds exactly the bytes of `pixels`, else a copy."""
    if data is None:
        return _byte_array(pixels)
    if len(data) != pixels.nbytes or not np.may_share_memory(np.frombuffer(data, np.uint8), pixels):
        raise ValueError('data must be the MessageBuffer that the pixels are a view of')
    return data


def _byte_array(pixels):
    """array.array('B') holding the bytes of `pixels`, filled by one memcpy."""
    data = array.array('B')
    data.frombytes(memoryview(np.ascontiguousarray(pixels)).cast('B'))
    return data


def _new_message(message_type, **fields):
    """Construct a message so that array.array fields are stored, not re-copied.

    Fields holding an array.array are assigned after construction on a
    message created with check_fields=True (see the module docstring).
    """
    arrays = {name: value for name, value in fields.items() if isinstance(value, array.array)}
    scalars = {name: value for name, value in fields.items() if name not in arrays}
    if '_check_fields' in message_type.__slots__:
        scalars['check_fields'] = True
    message = message_type(**scalars)
    for name, value in arrays.items():
        setattr(message, name, value)
    return message
