"""Helpers for the offline tool tests: files, calibrations and bags from synthetic scenes."""
import os

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from fast_foundation_stereo_ros import cli
from fast_foundation_stereo_ros.geometry.intrinsics import camera_from_infos
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene
from fast_foundation_stereo_ros.offline.bag_messages import CAMERA_INFO, IMAGE, RosbagsMessageFactory, ros2_typestore
from fast_foundation_stereo_ros.offline.bags import first_camera_infos
from fast_foundation_stereo_ros.pipeline.frame_stage import camera_info_fields

FRAME_ID = 'stereo_left_optical_frame'
STAMP0_NS = 1_700_000_000_123_456_789
PERIOD_NS = 100_000_000


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of an in-process `ffs-stereo` call."""
    status = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def error_lines(stderr):
    """The lines of stderr that report an error (progress/notice lines excluded)."""
    return [line for line in stderr.splitlines() if 'error' in line]


def write_rgb(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return str(path)


def write_pair(directory, scene, stem='pair'):
    left = write_rgb(os.path.join(directory, f'{stem}_left.png'), scene.left)
    right = write_rgb(os.path.join(directory, f'{stem}_right.png'), scene.right)
    return left, right


def write_k_txt(path, camera, baseline=None):
    baseline = camera.baseline if baseline is None else baseline
    k = [camera.fx, 0, camera.cx, 0, camera.fy, camera.cy, 0, 0, 1]
    with open(path, 'w') as handle:
        handle.write(' '.join(repr(float(v)) for v in k) + f'\n{baseline}\n')
    return str(path)


def calibration_yaml(info, name):
    """camera_calibration / camera_info_manager YAML content of a camera_info dict."""
    def matrix(rows, cols, data):
        return {'rows': rows, 'cols': cols, 'data': [float(v) for v in data]}
    return {'image_width': info['width'], 'image_height': info['height'], 'camera_name': name,
            'camera_matrix': matrix(3, 3, info['k']), 'distortion_model': info['distortion_model'],
            'distortion_coefficients': matrix(1, 5, info['d']),
            'rectification_matrix': matrix(3, 3, info['r']), 'projection_matrix': matrix(3, 4, info['p'])}


def write_calibration_pair(directory, scene):
    paths = []
    for side in ('left', 'right'):
        path = os.path.join(directory, f'{side}.yaml')
        with open(path, 'w') as handle:
            yaml.safe_dump(calibration_yaml(scene.camera_info(side), side), handle)
        paths.append(path)
    return paths


def to_encoding(rgb, encoding):
    """An RGB image in another sensor_msgs encoding."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return {'rgb8': rgb, 'bgr8': rgb[:, :, ::-1], 'rgba8': np.dstack([rgb, np.full(grey.shape, 255, np.uint8)]),
            'bgra8': np.dstack([rgb[:, :, ::-1], np.full(grey.shape, 255, np.uint8)]), 'mono8': grey,
            'mono16': grey.astype(np.uint16) * 64}[encoding]


def new_header(typestore, stamp_ns, frame_id):
    Header, Time = typestore.types['std_msgs/msg/Header'], typestore.types['builtin_interfaces/msg/Time']
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def camera_from_bag(bag_path, left_info_topic, right_info_topic):
    """StereoCamera of the first camera_info pair recorded in a rosbag2."""
    left_info, right_info = first_camera_infos(bag_path, left_info_topic, right_info_topic)
    return camera_from_infos(camera_info_fields(left_info), camera_info_fields(right_info),
                             source=f"bag '{bag_path}'")


def write_stereo_bag(path, scenes, encoding='rgb8', storage='mcap', with_infos=True, extra_topic=True,
                     right_info_delay_ns=0, topics=('/left/image_rect', '/right/image_rect', '/left/camera_info', '/right/camera_info'),
                     without_right_image=()):
    """rosbag2 with one stereo set per scene (no right image for the indices in `without_right_image`);
    returns the header stamps (ns)."""
    typestore = ros2_typestore()
    factory = RosbagsMessageFactory(typestore)
    plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[storage]
    stamps = []
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        kinds = [IMAGE, IMAGE] + ([CAMERA_INFO, CAMERA_INFO] if with_infos else [])
        connections = [writer.add_connection(topic, kind, typestore=typestore)
                       for topic, kind in zip(topics, kinds)]
        chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=typestore) \
            if extra_topic else None
        for index, scene in enumerate(scenes):
            stamp = STAMP0_NS + index * PERIOD_NS
            header = new_header(typestore, stamp, FRAME_ID)
            messages = [factory.image(to_encoding(scene.left, encoding), encoding, header),
                        factory.image(to_encoding(scene.right, encoding), encoding, header)]
            if with_infos:
                right_header = new_header(typestore, stamp + right_info_delay_ns, FRAME_ID)
                messages += [factory.camera_info_from_fields(scene.camera_info('left'), header),
                             factory.camera_info_from_fields(scene.camera_info('right'), right_header)]
            # bag time a little after the header stamp, as a recorder would see it
            for offset, (connection, msg) in enumerate(zip(connections, messages)):
                if connection is connections[1] and index in without_right_image:
                    continue
                writer.write(connection, stamp + 5_000_000 + offset, factory.serialize(msg))
            if chatter is not None:
                text = typestore.types['std_msgs/msg/String'](data=f'frame {index}')
                writer.write(chatter, stamp + 1, typestore.serialize_cdr(text, 'std_msgs/msg/String'))
            stamps.append(stamp)
    return stamps


def small_scenes(count, kind='plane', width=160, height=120):
    return [make_scene(kind, width, height, seed=seed) for seed in range(count)]


def tree_snapshot(directory):
    """{relative path: bytes} of every file under `directory`."""
    snapshot = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as handle:
                snapshot[os.path.relpath(path, directory)] = handle.read()
    return snapshot


def expect_run_error(capsys, args, message, untouched=None):
    """`ffs-stereo run` fails with exit 2 and ONE error line containing `message`; `untouched` stays as it was."""
    before = tree_snapshot(untouched) if untouched else None
    status, _, stderr = run_cli(capsys, 'run', '--no-progress', *args)
    assert status == 2, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and message in lines[0], stderr
    if untouched:
        assert tree_snapshot(untouched) == before
    return lines[0]
