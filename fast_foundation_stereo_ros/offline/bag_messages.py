"""The pipeline's MessageFactory for rosbags message objects (bags without rclpy).

rosbags' typestore builds messages as plain dataclasses and serialises them
to the same CDR bytes rclpy would, so bags written here play back in ROS 2
unchanged, without needing rclpy. Outputs are computed in reusable numpy
buffers (pipeline.frame_stage.ArrayBuffer) whose bytes the messages hold
until they are serialised.
"""
import dataclasses

import numpy as np
from rosbags.typesys import Stores, get_typestore

from ..pipeline.encodings import HOST_IS_BIG_ENDIAN, message_layout
from ..pipeline.frame_stage import ArrayBuffer, MessageFactory

# newest first: the distro the package targets, then the closest older ones
_PREFERRED_STORES = ('ROS2_KILTED', 'ROS2_JAZZY', 'ROS2_HUMBLE')

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
DISPARITY_IMAGE = 'stereo_msgs/msg/DisparityImage'
POINT_CLOUD2 = 'sensor_msgs/msg/PointCloud2'
_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


def ros2_typestore():
    """The typestore of the newest ROS 2 distro this rosbags version knows."""
    for name in _PREFERRED_STORES:
        store = getattr(Stores, name, None)
        if store is not None:
            return get_typestore(store)
    return get_typestore(Stores.LATEST)


def stamp_ns(header):
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class RosbagsMessageFactory(MessageFactory):
    """Builds rosbags output messages from numpy arrays, and (de)serialises them."""

    def __init__(self, typestore):
        self.typestore = typestore
        self.types = typestore.types

    def serialize(self, msg):
        return self.typestore.serialize_cdr(msg, msg.__msgtype__)

    def deserialize(self, raw, msgtype):
        return self.typestore.deserialize_cdr(raw, msgtype)

    def buffer(self, shape, dtype):
        return ArrayBuffer(shape, dtype)

    def header(self, header):
        """A copy of `header` (outputs carry the left image's stamp and frame)."""
        Header, Time = self.types['std_msgs/msg/Header'], self.types['builtin_interfaces/msg/Time']
        return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
                      frame_id=header.frame_id)

    def image(self, pixels, encoding, header, data=None):
        pixels, step = message_layout(pixels, encoding)
        height, width = pixels.shape[:2]
        return self.types[IMAGE](header=self.header(header), height=height, width=width, encoding=encoding,
                                 is_bigendian=int(HOST_IS_BIG_ENDIAN), step=step,
                                 data=_message_bytes(pixels, data))

    def disparity_image(self, disparity, header, camera, min_disparity, max_disparity, delta_d, data=None):
        height, width = disparity.shape
        window = self.types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=height, width=width, do_rectify=False)
        return self.types[DISPARITY_IMAGE](
            header=self.header(header), image=self.image(disparity, '32FC1', header, data),
            f=float(camera.fx), t=float(camera.baseline), valid_window=window,
            min_disparity=float(min_disparity), max_disparity=float(max_disparity), delta_d=float(delta_d))

    def point_cloud(self, points, layout, header, data=None):
        height, width, point_step = points.shape
        if point_step != layout.point_step:
            raise ValueError(f'buffer has {point_step} bytes per point, layout needs {layout.point_step}')
        PointField = self.types['sensor_msgs/msg/PointField']
        fields = [PointField(name=name, offset=offset, datatype=_FLOAT32, count=1)
                  for name, offset in layout.fields]
        return self.types[POINT_CLOUD2](
            header=self.header(header), height=height, width=width, fields=fields,
            is_bigendian=HOST_IS_BIG_ENDIAN, point_step=point_step, row_step=point_step * width,
            data=_message_bytes(points, data), is_dense=False)

    def camera_info(self, info, header):
        return dataclasses.replace(info, header=self.header(header))

    def camera_info_from_fields(self, fields, header=None):
        """CameraInfo of a geometry.synthetic_scenes.camera_info_dict (a rectified camera: no binning or ROI);
        without `header`, stamp 0 and no frame (camera_info() puts each output's header on it)."""
        types = self.types
        if header is None:
            header = types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](sec=0, nanosec=0),
                                                  frame_id='')
        roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return types[CAMERA_INFO](
            header=self.header(header), height=fields['height'], width=fields['width'],
            distortion_model=fields['distortion_model'], d=np.asarray(fields['d'], np.float64),
            k=np.asarray(fields['k'], np.float64), r=np.asarray(fields['r'], np.float64),
            p=np.asarray(fields['p'], np.float64), binning_x=0, binning_y=0, roi=roi)


def _message_bytes(pixels, data):
    """`data` (the buffer's bytes that `pixels` views) as is, else the bytes of `pixels` in a new array."""
    if data is None:
        return np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)
    if data.nbytes != pixels.nbytes or not np.may_share_memory(data, pixels):
        raise ValueError('data must be the ArrayBuffer bytes that the pixels are a view of')
    return data
