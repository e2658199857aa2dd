"""numpy <-> rosbags message objects (the offline twin of ros_conversions).

rosbags' typestore builds messages as plain dataclasses and serialises them
to the same CDR bytes rclpy would, so bags written here play back in ROS 2
unchanged, without needing rclpy.
"""
import sys

import numpy as np
from rosbags.typesys import Stores, get_typestore

from ..errors import InputError

# newest first: the distro the package targets, then the closest older ones
_PREFERRED_STORES = ('ROS2_KILTED', 'ROS2_JAZZY', 'ROS2_HUMBLE')

IMAGE = 'sensor_msgs/msg/Image'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
DISPARITY_IMAGE = 'stereo_msgs/msg/DisparityImage'
POINT_CLOUD2 = 'sensor_msgs/msg/PointCloud2'

_PIXEL_LAYOUTS = {  # encoding -> (dtype, channels)
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1), '32FC1': (np.float32, 1),
}
_FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32
_HOST_IS_BIG_ENDIAN = sys.byteorder == 'big'


def ros2_typestore():
    """The typestore of the newest ROS 2 distro this rosbags version knows."""
    for name in _PREFERRED_STORES:
        store = getattr(Stores, name, None)
        if store is not None:
            return get_typestore(store)
    return get_typestore(Stores.LATEST)


def stamp_ns(header):
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def image_to_array(msg, source):
    """HxW(xC) array of a sensor_msgs/Image; `source` names it in errors."""
    layout = _PIXEL_LAYOUTS.get(msg.encoding)
    if layout is None:
        raise InputError(f"{source}: unsupported image encoding '{msg.encoding}': record one of "
                         'rgb8, bgr8, rgba8, bgra8, mono8, mono16')
    dtype, channels = np.dtype(layout[0]), layout[1]
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes or len(msg.data) < msg.step * msg.height:
        raise InputError(f'{source}: {msg.encoding} image {msg.width}x{msg.height} with step {msg.step} '
                         f'has {len(msg.data)} data bytes: the message is corrupt')
    rows = np.asarray(msg.data, np.uint8)[:msg.step * msg.height].reshape(msg.height, msg.step)
    wire = dtype.newbyteorder('>' if msg.is_bigendian else '<') if dtype.itemsize > 1 else dtype
    pixels = np.ascontiguousarray(rows[:, :row_bytes]).view(wire).astype(dtype, copy=False)
    return pixels.reshape((msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels))


class MessageFactory:
    """Builds the output messages from numpy arrays."""

    def __init__(self, typestore):
        self.typestore = typestore
        self.types = typestore.types

    def serialize(self, msg):
        return self.typestore.serialize_cdr(msg, msg.__msgtype__)

    def deserialize(self, raw, msgtype):
        return self.typestore.deserialize_cdr(raw, msgtype)

    def header(self, header):
        """A copy of `header` (outputs carry the left image's stamp and frame)."""
        Header, Time = self.types['std_msgs/msg/Header'], self.types['builtin_interfaces/msg/Time']
        return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
                      frame_id=header.frame_id)

    def image(self, pixels, encoding, header):
        dtype, channels = _PIXEL_LAYOUTS[encoding]
        pixels = np.ascontiguousarray(pixels, dtype=dtype)
        height, width = pixels.shape[:2]
        return self.types[IMAGE](header=self.header(header), height=height, width=width, encoding=encoding,
                                 is_bigendian=int(_HOST_IS_BIG_ENDIAN), step=width * channels * pixels.itemsize,
                                 data=pixels.reshape(-1).view(np.uint8))

    def disparity_image(self, disparity, header, camera, min_disparity, max_disparity, delta_d):
        """DisparityImage as the node fills it: f = fx, t = B > 0, full valid window, NaN invalid."""
        height, width = disparity.shape
        window = self.types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=height, width=width, do_rectify=False)
        return self.types[DISPARITY_IMAGE](
            header=self.header(header), image=self.image(disparity, '32FC1', header),
            f=float(camera.fx), t=float(camera.baseline), valid_window=window,
            min_disparity=float(min_disparity), max_disparity=float(max_disparity), delta_d=float(delta_d))

    def point_cloud(self, points, layout, header):
        """Organised PointCloud2 from a CloudBuilder buffer (H x W x point_step bytes)."""
        height, width, point_step = points.shape
        PointField = self.types['sensor_msgs/msg/PointField']
        fields = [PointField(name=name, offset=offset, datatype=_FLOAT32, count=1)
                  for name, offset in layout.fields]
        return self.types[POINT_CLOUD2](
            header=self.header(header), height=height, width=width, fields=fields,
            is_bigendian=_HOST_IS_BIG_ENDIAN, point_step=point_step, row_step=point_step * width,
            data=np.ascontiguousarray(points).reshape(-1), is_dense=False)

    def camera_info(self, info_fields, header):
        """CameraInfo from a synthetic.camera_info_dict-style dict (for tests and tools)."""
        roi = self.types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return self.types[CAMERA_INFO](
            header=self.header(header), height=info_fields['height'], width=info_fields['width'],
            distortion_model=info_fields['distortion_model'],
            d=np.asarray(info_fields['d'], np.float64), k=np.asarray(info_fields['k'], np.float64),
            r=np.asarray(info_fields['r'], np.float64), p=np.asarray(info_fields['p'], np.float64),
            binning_x=0, binning_y=0, roi=roi)

    def new_header(self, stamp_ns, frame_id):
        Header, Time = self.types['std_msgs/msg/Header'], self.types['builtin_interfaces/msg/Time']
        return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                      frame_id=frame_id)


def cloud_fields(msg):
    """{field name: HxW float32} of an organised FLOAT32 PointCloud2 (tests, tools)."""
    raw = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.row_step)
    points = raw[:, :msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
    result = {}
    for field in msg.fields:
        if field.datatype != _FLOAT32:
            raise InputError(f'point field {field.name} is not FLOAT32')
        chunk = np.ascontiguousarray(points[:, :, field.offset:field.offset + 4])
        result[field.name] = chunk.view('>f4' if msg.is_bigendian else '<f4')[:, :, 0].astype(np.float32)
    return result
