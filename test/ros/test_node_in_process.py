"""StereoNode built in the test process with a given backend, over real DDS.

Covers what needs a backend other than the configurable ones: a backend that
raises mid-stream, and a backend with a fixed network input size (letterbox
fitting, and images smaller than the network input).
"""
import threading

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from stereo_msgs.msg import DisparityImage

from fast_foundation_stereo_ros.backends.sgbm import SGBMBackend
from fast_foundation_stereo_ros.ros.stereo_node import StereoNode

from .helpers import RosGraph, StereoSource, cached_scene, float_image, now_ns, stamp_ns, unique_domain_id, wait_until


class FailingFirstSGBM(SGBMBackend):
    """SGBM that raises on its first `failures` frames, as a GPU backend does on
    an out-of-memory error or a lost device; the real matcher afterwards."""
    name = 'failing-first-sgbm'

    def __init__(self, failures, **kwargs):
        super().__init__(**kwargs)
        self.failures = failures

    def infer(self, left_rgb, right_rgb):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError('CUDA error: out of memory')
        return super().infer(left_rgb, right_rgb)


class FixedInputSGBM(SGBMBackend):
    """SGBM behind a fixed 320x240 input, like an engine built for one size."""
    name = 'fixed-input-sgbm'
    input_size = (240, 320)


class InProcessNode:
    def __init__(self, backend, domain, parameters):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = StereoNode(backend=backend, context=self.context, parameter_overrides=overrides)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - shut down under us
            pass

    def totals(self):
        return self.node.statistics.snapshot().totals

    def close(self):
        self.node.close()
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(2.0)


@pytest.fixture
def graph_and_node(request):
    domain = unique_domain_id()
    backend, parameters = request.param
    stereo = InProcessNode(backend(), domain, {'log_period': 0.0, **parameters})
    graph = RosGraph(domain)
    try:
        yield graph, stereo
    finally:
        graph.close()
        stereo.close()


def send_until(source, scene, condition, timeout=10.0):
    def step():
        source.publish(source.messages(scene, now_ns()))
        return condition()
    return wait_until(step, timeout, interval=0.15)


@pytest.mark.parametrize('graph_and_node', [(lambda: FailingFirstSGBM(3, max_disp=64), {'max_disp': 64})],
                         indirect=True)
def test_backend_exception_mid_stream_is_counted_and_node_continues(graph_and_node):
    graph, stereo = graph_and_node
    scene = cached_scene('plane')
    source = StereoSource(graph)
    disparity = graph.subscribe(DisparityImage, 'disparity')
    assert source.wait_for_subscriber() and graph.wait_for_publishers(['/disparity'])
    assert send_until(source, scene, lambda: len(disparity) >= 2)
    totals = stereo.totals()
    assert totals['drops.backend_error'] == 3
    assert totals['inferences'] >= 2
    assert stereo.thread.is_alive() and stereo.node._worker.is_alive()
    values = float_image(disparity.messages()[-1].image)
    truth = np.isfinite(values) & scene.non_occluded
    assert np.median(np.abs(values[truth] - scene.disparity[truth])) < 0.3


@pytest.mark.parametrize('graph_and_node', [(lambda: FixedInputSGBM(max_disp=64), {'max_disp': 64})],
                         indirect=True)
def test_fixed_network_input_letterbox_and_too_small_images(graph_and_node):
    graph, stereo = graph_and_node
    source = StereoSource(graph)
    disparity = graph.subscribe(DisparityImage, 'disparity')
    depth = graph.subscribe(Image, 'depth/image')
    assert source.wait_for_subscriber() and graph.wait_for_publishers(['/disparity', '/depth/image'])

    scene = cached_scene('plane')     # 640x480 -> 320x240 input, disparity x2 back
    assert send_until(source, scene, lambda: len(depth) > 0 and len(disparity) > 0)
    message = disparity.messages()[-1]
    assert (message.image.width, message.image.height) == (640, 480)
    assert message.max_disparity == pytest.approx(128.0)     # 64 input px = 128 camera px
    assert message.delta_d == pytest.approx(2.0 / 16.0)
    matching_depth = {stamp_ns(m.header.stamp): m for m in depth.messages()}[stamp_ns(message.header.stamp)]
    values = float_image(matching_depth)
    truth = np.isfinite(values) & scene.non_occluded
    assert truth.mean() > 0.8
    assert np.median(np.abs(values[truth] - scene.depth[truth]) / scene.depth[truth]) < 0.03

    small = cached_scene('plane', 160, 120)   # smaller than the network input
    before = len(disparity)
    assert send_until(source, small, lambda: stereo.totals()['bad_input.network_input'] >= 2)
    assert len(disparity) == before
    assert send_until(source, scene, lambda: len(disparity) > before)
