"""Node subprocess over real DDS: every output checked against known geometry.

SGBM on well-textured synthetic planes (fronto-parallel and slanted) with exact
ground truth; the node runs as `python -m fast_foundation_stereo_ros.ros.stereo_node`.
"""
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from ..helpers import cloud_fields
from .helpers import NodeProcess, RosGraph, StereoSource, cached_scene, float_image, now_ns, stamp_ns, unique_domain_id

OUTPUT_TYPES = {'disparity': DisparityImage, 'disparity/color': Image, 'depth/image': Image,
                'depth/camera_info': CameraInfo, 'depth/image_mm': Image, 'points2': PointCloud2}
MAX_DISP = 128
LEFT_FRAME = 'camera_left_optical_frame'


class NodeUnderTest:
    """One node process + the test graph subscribed to all of its outputs."""

    def __init__(self, parameters):
        self.domain = unique_domain_id()
        self.node = NodeProcess(self.domain, parameters)
        self.graph = RosGraph(self.domain)
        self.source = StereoSource(self.graph)
        self.logs = {topic: self.graph.subscribe(t, topic) for topic, t in OUTPUT_TYPES.items()}

    def close(self):
        self.graph.close()
        self.node.stop()

    def run_scene(self, scene, encoding='rgb8', timeout=20.0):
        """Publish `scene` (fresh stamps, 5 Hz) until every output of one stamp arrived.

        Returns ({topic: message}, input messages) of that stamp.
        """
        assert self.source.wait_for_subscriber(), 'node did not subscribe:\n' + self.node.output()
        assert self.graph.wait_for_publishers(['/disparity', '/points2']), self.node.output()
        sent = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stamp = now_ns()
            sent[stamp] = self.source.messages(scene, stamp, encoding)
            self.source.publish(sent[stamp])
            complete = self._complete_stamp(sent)
            if complete is not None:
                return {topic: log.by_stamp()[complete] for topic, log in self.logs.items()}, sent[complete]
            time.sleep(0.2)
        raise AssertionError('no complete output set; node log:\n' + self.node.output())

    def _complete_stamp(self, sent):
        stamps = set(sent)
        for log in self.logs.values():
            stamps &= set(log.by_stamp())
        return max(stamps) if stamps else None


@pytest.fixture(scope='module')
def full_node():
    harness = NodeUnderTest({'model': 'sgbm', 'max_disp': MAX_DISP, 'publish_depth_mm': True,
                             'log_period': 0.0})
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope='module')
def plane_outputs(full_node):
    scene = cached_scene('plane')
    outputs, inputs = full_node.run_scene(scene)
    return scene, outputs, inputs


def test_disparity_image_fields(plane_outputs):
    scene, outputs, inputs = plane_outputs
    message = outputs['disparity']
    left_image = inputs[0]
    assert message.header.frame_id == LEFT_FRAME
    assert stamp_ns(message.header.stamp) == stamp_ns(left_image.header.stamp)
    assert message.image.header.frame_id == LEFT_FRAME
    assert message.image.encoding == '32FC1'
    assert (message.image.width, message.image.height) == (640, 480)
    assert message.f == pytest.approx(scene.camera.fx)
    assert message.t == pytest.approx(scene.camera.baseline, rel=1e-6)
    assert message.t > 0
    assert (message.min_disparity, message.max_disparity) == (0.0, MAX_DISP)
    assert message.delta_d == pytest.approx(1.0 / 16.0)
    window = message.valid_window
    assert (window.x_offset, window.y_offset, window.width, window.height) == (0, 0, 640, 480)


def test_fronto_parallel_plane_disparity_and_depth(plane_outputs):
    scene, outputs, _ = plane_outputs
    disparity = float_image(outputs['disparity'].image)
    depth = float_image(outputs['depth/image'])
    valid = np.isfinite(disparity)
    assert valid.mean() > 0.9
    # invalid disparity is NaN, never a number
    assert np.array_equal(np.isfinite(depth), valid)
    # depth = f * T / d exactly (same frame)
    message = outputs['disparity']
    np.testing.assert_allclose(depth[valid], message.f * message.t / disparity[valid], rtol=1e-5)
    # and close to the truth
    truth = valid & scene.non_occluded
    assert np.median(np.abs(disparity[truth] - scene.disparity[truth])) < 0.3   # ~23 px here
    relative = np.abs(depth[truth] - scene.depth[truth]) / scene.depth[truth]
    assert np.median(relative) < 0.02


def test_depth_outputs_follow_rep_117_and_118(plane_outputs):
    _, outputs, inputs = plane_outputs
    depth_message = outputs['depth/image']
    assert depth_message.encoding == '32FC1' and depth_message.header.frame_id == LEFT_FRAME
    depth = float_image(depth_message)
    millimetres = float_image(outputs['depth/image_mm'])
    assert outputs['depth/image_mm'].encoding == '16UC1' and millimetres.dtype == np.uint16
    valid = np.isfinite(depth)
    np.testing.assert_array_equal(millimetres[~valid], 0)
    np.testing.assert_allclose(millimetres[valid], np.rint(depth[valid] * 1000), atol=1)
    info = outputs['depth/camera_info']
    left_info = inputs[2]
    assert info.header.frame_id == LEFT_FRAME
    assert stamp_ns(info.header.stamp) == stamp_ns(inputs[0].header.stamp)
    assert (info.width, info.height) == (left_info.width, left_info.height)
    np.testing.assert_array_equal(info.p, left_info.p)
    np.testing.assert_array_equal(info.k, left_info.k)


def test_point_cloud_of_plane(plane_outputs):
    scene, outputs, _ = plane_outputs
    cloud = outputs['points2']
    assert (cloud.height, cloud.width, cloud.point_step) == (480, 640, 32)
    assert cloud.row_step * cloud.height == len(cloud.data)
    assert cloud.is_dense is False and cloud.header.frame_id == LEFT_FRAME
    fields = cloud_fields(cloud)
    depth = float_image(outputs['depth/image'])
    valid = np.isfinite(depth)
    np.testing.assert_array_equal(np.isnan(fields['z']), ~valid)
    np.testing.assert_allclose(fields['z'][valid], depth[valid], rtol=1e-6)
    camera = scene.camera
    v, u = np.nonzero(valid)
    np.testing.assert_allclose(fields['x'][valid], (u - camera.cx) * depth[valid] / camera.fx, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(fields['y'][valid], (v - camera.cy) * depth[valid] / camera.fy, rtol=1e-4,
                               atol=1e-6)
    # the plane is at constant Z: metric check of the whole cloud
    truth = valid & scene.non_occluded
    assert np.median(np.abs(fields['z'][truth] - scene.depth[truth])) / scene.depth.mean() < 0.02
    # colour = left image packed 0x00RRGGBB
    rgb = fields['rgb'].view(np.uint32)
    left = scene.left.astype(np.uint32)
    np.testing.assert_array_equal(rgb, (left[..., 0] << 16) | (left[..., 1] << 8) | left[..., 2])


def test_disparity_color_image(plane_outputs):
    _, outputs, _ = plane_outputs
    colour = outputs['disparity/color']
    assert colour.encoding == 'rgb8' and (colour.width, colour.height) == (640, 480)
    pixels = float_image(colour)
    invalid = ~np.isfinite(float_image(outputs['disparity'].image))
    assert (pixels[invalid] == 0).all()
    assert pixels[~invalid].max() > 0


def test_slanted_plane_depth_and_points(full_node):
    scene = cached_scene('slanted')
    outputs, _ = full_node.run_scene(scene)
    depth = float_image(outputs['depth/image'])
    truth = np.isfinite(depth) & scene.non_occluded
    assert truth.mean() > 0.8
    relative = np.abs(depth[truth] - scene.depth[truth]) / scene.depth[truth]
    assert np.median(relative) < 0.03
    assert np.percentile(relative, 90) < 0.08
    # the cloud lies on the true plane: compare X, Y, Z against the ground-truth points
    fields = cloud_fields(outputs['points2'])
    camera = scene.camera
    v, u = np.nonzero(truth)
    true_z = scene.depth[truth]
    true_x = (u - camera.cx) * true_z / camera.fx
    true_y = (v - camera.cy) * true_z / camera.fy
    error = np.sqrt((fields['x'][truth] - true_x) ** 2 + (fields['y'][truth] - true_y) ** 2
                    + (fields['z'][truth] - true_z) ** 2)
    assert np.median(error / true_z) < 0.03


def test_mono16_input_gives_the_same_geometry(full_node):
    scene = cached_scene('plane')
    outputs, inputs = full_node.run_scene(scene, encoding='mono16')
    assert inputs[0].encoding == 'mono16'
    depth = float_image(outputs['depth/image'])
    truth = np.isfinite(depth) & scene.non_occluded
    assert truth.mean() > 0.8
    assert np.median(np.abs(depth[truth] - scene.depth[truth]) / scene.depth[truth]) < 0.02
