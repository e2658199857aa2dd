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

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
from stereo_msgs.msg import DisparityImage

from ..pipeline.encodings import HOST_IS_BIG_ENDIAN, message_layout
from ..pipeline.frame_stage import MessageFactory


def stamp_to_ns(stamp):
    """builtin_interfaces/Time -> integer nanoseconds (exact)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


# ---------------------------------------------------------------- images --

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
    pixels, step = message_layout(pixels, encoding)
    height, width = pixels.shape[:2]
    return _new_message(Image, header=header, height=height, width=width, encoding=encoding,
                        is_bigendian=HOST_IS_BIG_ENDIAN, step=step, data=_message_bytes(pixels, data))


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
                        fields=point_fields(layout), is_bigendian=HOST_IS_BIG_ENDIAN,
                        point_step=point_step, row_step=point_step * width,
                        data=_message_bytes(points, data), is_dense=False)


def camera_info_with_header(info, header):
    """A copy of `info` under another header (depth/camera_info = left info)."""
    return CameraInfo(header=header, height=info.height, width=info.width,
                      distortion_model=info.distortion_model, d=info.d, k=info.k, r=info.r,
                      p=info.p, binning_x=info.binning_x, binning_y=info.binning_y, roi=info.roi)


class RclpyMessageFactory(MessageFactory):
    """The pipeline's MessageFactory for rclpy: outputs computed in MessageBuffers, published without a copy."""

    def buffer(self, shape, dtype):
        return MessageBuffer(shape, dtype)

    def image(self, pixels, encoding, header, data=None):
        return array_to_image(pixels, encoding, header, data)

    def disparity_image(self, disparity, header, camera, min_disparity, max_disparity, delta_d, data=None):
        return disparity_image(disparity, header, camera, min_disparity, max_disparity, delta_d, data)

    def point_cloud(self, points, layout, header, data=None):
        return point_cloud2(points, layout, header, data)

    def camera_info(self, info, header):
        return camera_info_with_header(info, header)


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
