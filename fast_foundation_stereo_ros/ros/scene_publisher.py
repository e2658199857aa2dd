"""Publish a synthetic rectified stereo scene, to try the node without a camera.

Renders one scene (fast_foundation_stereo_ros.geometry.synthetic_scenes) with exact ground
truth and publishes, at `rate` Hz and with one shared stamp per tick:
  left/image_rect, right/image_rect   (sensor_msgs/Image, `encoding`)
  left/camera_info, right/camera_info (rectified: P filled, right P[3] = -fx*B)
  ground_truth/depth                  (32FC1 metres, for comparison)

  python -m fast_foundation_stereo_ros.ros.scene_publisher --ros-args -p scene:=mixed -p rate:=10.0

Messages are built once; each tick only the stamps change, so the publisher
keeps up at 30 Hz with 720p images.
"""
import sys

import cv2
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..geometry.synthetic_scenes import SCENE_KINDS, camera_info_dict, make_scene
from .messages import array_to_image

DEFAULT_LEFT_FRAME = 'camera_left_optical_frame'
DEFAULT_RIGHT_FRAME = 'camera_right_optical_frame'
ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16')
STEREO_TOPICS = ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info')


def rgb_to_encoding(rgb, encoding):
    """An HxWx3 RGB image in one of the camera encodings the node accepts."""
    if encoding == 'rgb8':
        return rgb
    if encoding == 'bgr8':
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding == 'rgba8':
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    if encoding == 'bgra8':
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if encoding == 'mono8':
        return grey
    if encoding == 'mono16':
        return grey.astype(np.uint16) * np.uint16(257)
    raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got '{encoding}'")


def camera_info_message(camera, side, header):
    fields = camera_info_dict(camera, side)
    return CameraInfo(header=header, **fields)


def stereo_messages(scene, stamp, encoding='rgb8', left_frame=DEFAULT_LEFT_FRAME,
                    right_frame=DEFAULT_RIGHT_FRAME):
    """The four input messages of `scene` as a tuple in STEREO_TOPICS order."""
    # each side gets its own Time object, so one side can be re-stamped alone
    left_header = Header(stamp=Time(sec=stamp.sec, nanosec=stamp.nanosec), frame_id=left_frame)
    right_header = Header(stamp=Time(sec=stamp.sec, nanosec=stamp.nanosec), frame_id=right_frame)
    return (array_to_image(rgb_to_encoding(scene.left, encoding), encoding, left_header),
            array_to_image(rgb_to_encoding(scene.right, encoding), encoding, right_header),
            camera_info_message(scene.camera, 'left', left_header),
            camera_info_message(scene.camera, 'right', right_header))


def _descriptor(description, int_range=None, float_range=None):
    descriptor = ParameterDescriptor(description=description, read_only=True)
    if int_range:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    if float_range:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float_range[0],
                                                              to_value=float_range[1], step=0.0)]
    return descriptor


class ScenePublisher(Node):
    def __init__(self):
        super().__init__('scene_publisher')
        declare = self.declare_parameter
        self.scene_kind = declare('scene', 'mixed', _descriptor('one of ' + ', '.join(SCENE_KINDS))).value
        width = declare('width', 640, _descriptor('image width', (32, 4096))).value
        height = declare('height', 480, _descriptor('image height', (32, 4096))).value
        fx = declare('fx', 0.0, _descriptor('focal length px; 0 = 0.9 * width', float_range=(0.0, 1e5))).value
        baseline = declare('baseline', 0.12, _descriptor('baseline m', float_range=(0.001, 10.0))).value
        seed = declare('seed', 0, _descriptor('scene seed', (0, 1 << 30))).value
        rate = declare('rate', 10.0, _descriptor('publish rate Hz', float_range=(0.1, 1000.0))).value
        self.encoding = declare('encoding', 'rgb8', _descriptor('one of ' + ', '.join(ENCODINGS))).value
        self.left_frame = declare('frame_id', DEFAULT_LEFT_FRAME, _descriptor('left optical frame')).value
        self.right_frame = declare('right_frame_id', DEFAULT_RIGHT_FRAME, _descriptor('right optical frame')).value
        reliable = declare('reliable', True, _descriptor('reliable (true) or best-effort QoS')).value
        self.remaining = declare('count', 0, _descriptor('sets to publish; 0 = forever', (0, 1 << 30))).value
        self.wait_for = declare('wait_for_subscribers', 0, _descriptor(
            'start once left/camera_info has this many subscribers (0 = at once)', (0, 1000))).value
        if self.scene_kind not in SCENE_KINDS or self.encoding not in ENCODINGS:
            raise ValueError(f"scene must be one of {SCENE_KINDS} and encoding one of {ENCODINGS}")

        self.scene = make_scene(self.scene_kind, width, height, fx or None, baseline, seed)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        types = (Image, Image, CameraInfo, CameraInfo)
        self._publishers_in_order = [self.create_publisher(message_type, topic, qos)
                                     for topic, message_type in zip(STEREO_TOPICS, types)]
        self._truth_publisher = self.create_publisher(Image, 'ground_truth/depth', qos)
        self._messages = stereo_messages(self.scene, self.get_clock().now().to_msg(), self.encoding,
                                         self.left_frame, self.right_frame)
        self._truth = array_to_image(np.where(np.isfinite(self.scene.depth), self.scene.depth, np.nan)
                                     .astype(np.float32), '32FC1', Header(frame_id=self.left_frame))
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"publishing a '{self.scene_kind}' scene {width}x{height} {self.encoding}, "
                               f'f={self.scene.camera.fx:g} px, B={baseline:g} m at {rate:g} Hz in '
                               f'frame {self.left_frame}')

    def _tick(self):
        if self.wait_for and self._publishers_in_order[2].get_subscription_count() < self.wait_for:
            return
        self.wait_for = 0
        stamp = self.get_clock().now().to_msg()
        for message in self._messages:
            message.header.stamp = stamp
        self._truth.header.stamp = stamp
        for publisher, message in zip(self._publishers_in_order, self._messages):
            publisher.publish(message)
        self._truth_publisher.publish(self._truth)
        if self.remaining:
            self.remaining -= 1
            if self.remaining == 0:
                raise SystemExit(0)


def main(args=None):
    """Console entry point `scene_publisher`."""
    rclpy.init(args=args)
    try:
        node = ScenePublisher()
    except ValueError as exc:
        rclpy.logging.get_logger('scene_publisher').fatal(str(exc))
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
