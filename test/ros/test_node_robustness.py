"""Node subprocess over real DDS: bad inputs, bad parameters, lazy inference."""
import re

import numpy as np
import pytest
from sensor_msgs.msg import Image
from stereo_msgs.msg import DisparityImage

from fast_foundation_stereo_ros.ros.messages import array_to_image

from ..export.helpers import EXPORT_ITERS, exported_fixture_onnx
from .helpers import (NodeProcess, RosGraph, StereoSource, cached_scene, counter, diagnostic_values, float_image,
                      now_ns, stamp_ns, subscribe_diagnostics, unique_domain_id, wait_until)

FAST_DIAGNOSTICS = {'diagnostics_period': 0.2, 'log_period': 0.0}


def _wrong_encoding(messages, scene):
    messages[0].encoding = 'yuv422'


def _size_mismatch(messages, scene):
    small = array_to_image(np.ascontiguousarray(scene.right[::2, ::2]), 'rgb8', messages[1].header)
    messages[1] = small


def _info_size_differs_from_image(messages, scene):
    messages[2].width, messages[2].height = 1280, 960


def _left_right_focal_differ(messages, scene):
    messages[3].p[0] *= 1.2
    messages[3].p[3] *= 1.2


def _infinite_focal_length(messages, scene):
    messages[3].p[0] = float('inf')   # was f = inf and +inf depth everywhere, silently


def _principal_point_outside_the_image(messages, scene):
    messages[2].p[2] = 5000.0


def _negative_baseline(messages, scene):
    messages[3].p[3] = -messages[3].p[3]


def _truncated_image(messages, scene):
    messages[0].data = messages[0].data[:1000]


def resend_until(source, messages, condition, timeout=10.0):
    """Publish the same set until `condition`: the first copy can arrive before
    the node's reader has matched our writer (discovery is not symmetric)."""
    def step():
        source.publish(messages)
        return wait_until(condition, 0.3)
    return wait_until(step, timeout, interval=0.0)


BAD_INPUTS = [  # (how, expected cause)
    (_wrong_encoding, 'encoding'),
    (_size_mismatch, 'size_mismatch'),
    (_info_size_differs_from_image, 'camera_info'),
    (_left_right_focal_differ, 'camera_info'),
    (_infinite_focal_length, 'camera_info'),
    (_principal_point_outside_the_image, 'camera_info'),
    (_negative_baseline, 'camera_info'),
    (_truncated_image, 'corrupt_image'),
]


def test_bad_inputs_are_counted_logged_and_skipped_and_node_recovers():
    domain = unique_domain_id()
    scene = cached_scene('plane')
    with NodeProcess(domain, {'model': 'sgbm', 'max_disp': 64, **FAST_DIAGNOSTICS}) as node, \
            RosGraph(domain) as graph:
        source = StereoSource(graph)
        disparity = graph.subscribe(DisparityImage, 'disparity')
        diagnostics = subscribe_diagnostics(graph)
        assert source.wait_for_subscriber(), node.output()
        assert graph.wait_for_publishers(['/disparity']), node.output()
        expected = {}
        for corrupt, cause in BAD_INPUTS:
            expected[cause] = expected.get(cause, 0) + 1
            messages = source.messages(scene, now_ns())
            corrupt(messages, scene)
            # one set at a time, so the newest-wins mailbox never replaces a bad set unseen;
            # re-sending the same stamps is harmless (the synchroniser drops them as late)
            assert resend_until(source, messages, lambda: counter(diagnostic_values(diagnostics),
                                                                  f'bad_input.{cause}') >= expected[cause]), \
                (cause, diagnostic_values(diagnostics), node.output())
        assert node.alive(), node.output()
        assert len(disparity) == 0
        values = diagnostic_values(diagnostics)
        assert counter(values, 'drops.bad_input') == len(BAD_INPUTS)
        assert counter(values, 'inferences') == 0
        # a good set afterwards is processed normally
        good = source.messages(scene, now_ns())
        assert resend_until(source, good, lambda: len(disparity) > 0), node.output()
        message = disparity.messages()[-1]
        assert stamp_ns(message.header.stamp) == stamp_ns(good[0].header.stamp)
        values = float_image(message.image)
        truth = np.isfinite(values) & scene.non_occluded
        assert truth.mean() > 0.9
        assert np.median(np.abs(values[truth] - scene.disparity[truth])) < 0.3
        assert wait_until(lambda: diagnostic_values(diagnostics).get('_level') == b'\x00', 5.0)
        log = node.output()
    assert 'Traceback' not in log
    # throttled: five camera_info failures within 5 s give one log line
    assert len(re.findall(r'skipping frame \(camera_info\)', log)) == 1, log
    assert 'baseline' in log or 'focal' in log or 'camera_info is for' in log
    assert "unsupported image encoding 'yuv422'" in log
    assert 'left and right images differ in size' in log


def test_no_subscriber_means_no_inference():
    domain = unique_domain_id()
    scene = cached_scene('plane')
    with NodeProcess(domain, {'model': 'sgbm', 'max_disp': 64, **FAST_DIAGNOSTICS}) as node, \
            RosGraph(domain) as graph:
        source = StereoSource(graph)
        diagnostics = subscribe_diagnostics(graph)
        assert source.wait_for_subscriber(), node.output()

        def publish_until(condition, timeout=10.0):
            def step():
                source.publish(source.messages(scene, now_ns()))
                return condition(diagnostic_values(diagnostics))
            return wait_until(step, timeout, interval=0.1)

        assert publish_until(lambda v: counter(v, 'sets') >= 5), node.output()
        values = diagnostic_values(diagnostics)
        assert counter(values, 'inferences') == 0
        assert counter(values, 'skipped.no_subscribers') >= 4
        # a subscriber appears: inference starts, for that output only
        depth = graph.subscribe(Image, 'depth/image')
        assert publish_until(lambda v: counter(v, 'inferences') >= 2), node.output()
        values = diagnostic_values(diagnostics)
        assert counter(values, 'out.depth') >= 2
        assert counter(values, 'out.disparity') == 0 and counter(values, 'out.points') == 0
        assert wait_until(lambda: len(depth) > 0, 5.0)


@pytest.mark.parametrize('parameters,name', [
    ({'max_disp': 100}, 'max_disp'),
    ({'scale': 1.5}, 'scale'),
    ({'fit_mode': 'banana'}, 'fit_mode'),
    ({'queue_size': 0}, 'queue_size'),
    ({'min_depth': 1}, 'min_depth'),                      # an int where a double is needed
    ({'min_depth': 2.0, 'max_depth': 1.0}, 'max_depth'),
    ({'input_qos': 'FAST'}, 'input_qos'),
    ({'point_cloud_decimation': 0}, 'point_cloud_decimation'),
])
def test_invalid_parameter_exits_non_zero_naming_it(parameters, name):
    node = NodeProcess(unique_domain_id(), {'model': 'sgbm', **parameters})
    try:
        assert node.wait_exit(30) != 0
    finally:
        node.stop()
    log = node.output()
    assert 'Traceback' not in log, log
    fatal = [line for line in log.splitlines() if 'FATAL' in line]
    assert len(fatal) == 1, log
    assert f"parameter '{name}'" in fatal[0] and 'allowed' in fatal[0], log


def test_unknown_model_file_type_exits_with_one_line():
    node = NodeProcess(unique_domain_id(), {'model': 'weights.xyz'})
    try:
        assert node.wait_exit(30) == 2
    finally:
        node.stop()
    log = node.output()
    assert 'Traceback' not in log and "model path 'weights.xyz'" in log, log


def test_zero_baseline_still_gives_the_disparity_with_one_throttled_warning():
    """stereo_image_proc's own disparity test publishes camera_infos with Tx = 0 and expects a disparity."""
    domain = unique_domain_id()
    scene = cached_scene('plane')
    with NodeProcess(domain, {'model': 'sgbm', 'max_disp': 64, **FAST_DIAGNOSTICS}) as node, \
            RosGraph(domain) as graph:
        source = StereoSource(graph)
        disparity = graph.subscribe(DisparityImage, 'disparity')
        depth = graph.subscribe(Image, 'depth/image')
        assert source.wait_for_subscriber(), node.output()
        assert graph.wait_for_publishers(['/disparity', '/depth/image']), node.output()
        for _ in range(3):
            messages = source.messages(scene, now_ns())
            messages[3].p[3] = 0.0
            count = len(disparity)
            assert resend_until(source, messages, lambda: len(disparity) > count), node.output()
        message = disparity.messages()[-1]
        assert message.t == 0.0 and message.f == pytest.approx(scene.camera.fx)
        values = float_image(message.image)
        truth = np.isfinite(values) & scene.non_occluded
        assert truth.mean() > 0.9
        assert np.median(np.abs(values[truth] - scene.disparity[truth])) < 0.3
        assert len(depth) == 0
        log = node.output()
    assert len(re.findall(r'zero baseline', log)) == 1, log
    assert 'publishing the disparity only' in log and 'Traceback' not in log


def test_settings_an_onnx_graph_cannot_honour_are_refused_as_the_cli_does(tmp_path_factory, fixture_dir):
    """The graph bakes max_disp 192 and valid_iters 2: asking the node for others was silently ignored."""
    onnx_path = exported_fixture_onnx(tmp_path_factory, fixture_dir)[0]
    node = NodeProcess(unique_domain_id(), {'model': onnx_path, 'valid_iters': 5, 'warmup': False})
    try:
        assert node.wait_exit(60) == 2
    finally:
        node.stop()
    log = node.output()
    fatal = [line for line in log.splitlines() if 'FATAL' in line]
    assert 'Traceback' not in log and len(fatal) == 1, log
    assert f'was built with valid_iters {EXPORT_ITERS}, not 5' in fatal[0], log
    assert "remove parameter 'valid_iters'" in fatal[0], log
    assert "device 'auto' -> cpu (CUDA when available, else the CPU)" in log, log
