"""Node subprocess over real DDS: cloud options, depth range, sync modes, QoS, names."""
import time

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from ..helpers import cloud_fields
from .helpers import (NodeProcess, RosGraph, StereoSource, cached_scene, counter, diagnostic_values, float_image,
                      make_stamp, now_ns, stamp_ns, subscribe_diagnostics, unique_domain_id, wait_until)

MS = 1_000_000


def publish_until(source, messages_for_stamp, condition, timeout=10.0):
    def step():
        source.publish(messages_for_stamp(now_ns()))
        return condition()
    return wait_until(step, timeout, interval=0.15)


def test_packed_decimated_cloud_without_colour_and_depth_range_from_mono8():
    domain = unique_domain_id()
    scene = cached_scene('slanted')          # depth 2.5 .. 5.5 m
    parameters = {'model': 'sgbm', 'max_disp': 64, 'avoid_point_cloud_padding': True, 'use_color': False,
                  'point_cloud_decimation': 2, 'min_depth': 3.0, 'max_depth': 4.5, 'log_period': 0.0}
    with NodeProcess(domain, parameters) as node, RosGraph(domain) as graph:
        source = StereoSource(graph)
        clouds = graph.subscribe(PointCloud2, 'points2')
        depth = graph.subscribe(Image, 'depth/image')
        assert source.wait_for_subscriber(), node.output()
        assert graph.wait_for_publishers(['/points2', '/depth/image']), node.output()
        assert publish_until(source, lambda stamp: source.messages(scene, stamp, 'mono8'),
                             lambda: len(clouds) and set(clouds.by_stamp()) & set(depth.by_stamp())), \
            node.output()
        stamp = max(set(clouds.by_stamp()) & set(depth.by_stamp()))
        cloud, depth_image = clouds.by_stamp()[stamp], depth.by_stamp()[stamp]
    assert (cloud.width, cloud.height, cloud.point_step, cloud.row_step) == (320, 240, 12, 12 * 320)
    assert [f.name for f in cloud.fields] == ['x', 'y', 'z']
    assert len(cloud.data) == cloud.row_step * cloud.height
    fields = cloud_fields(cloud)
    full_depth = float_image(depth_image)
    np.testing.assert_array_equal(np.isnan(fields['z']), np.isnan(full_depth[::2, ::2]))
    finite = np.isfinite(full_depth)
    assert finite.any()
    assert full_depth[finite].min() >= 3.0 and full_depth[finite].max() <= 4.5
    # where the truth is outside [3, 4.5] the output is NaN, not clamped (but for SGBM outliers)
    assert np.isnan(full_depth[scene.depth < 2.9]).mean() > 0.95
    assert np.isnan(full_depth[scene.depth > 4.6]).mean() > 0.95
    # decimated points are the full-resolution points of every second pixel
    camera = scene.camera
    v, u = np.nonzero(np.isfinite(fields['z']))
    z = fields['z'][v, u]
    np.testing.assert_allclose(fields['x'][v, u], (2 * u - camera.cx) * z / camera.fx, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fields['y'][v, u], (2 * v - camera.cy) * z / camera.fy, rtol=1e-4, atol=1e-6)
    truth = np.isfinite(full_depth) & scene.non_occluded
    assert np.median(np.abs(full_depth[truth] - scene.depth[truth]) / scene.depth[truth]) < 0.03


def offset_set(source, scene, stamp, right_offset_ns):
    messages = source.messages(scene, stamp)
    for index in (1, 3):   # right image and right camera_info come from a second clock
        messages[index].header.stamp = make_stamp(stamp + right_offset_ns)
    return messages


def test_approximate_sync_within_tolerance_and_exact_sync_rejects_offsets():
    scene = cached_scene('plane')
    domain = unique_domain_id()
    approximate = {'model': 'sgbm', 'max_disp': 64, 'approximate_sync': True,
                   'approximate_sync_tolerance_seconds': 0.01, 'diagnostics_period': 0.2, 'log_period': 0.0}
    with NodeProcess(domain, approximate) as node, RosGraph(domain) as graph:
        source = StereoSource(graph)
        disparity = graph.subscribe(DisparityImage, 'disparity')
        diagnostics = subscribe_diagnostics(graph)
        assert source.wait_for_subscriber() and graph.wait_for_publishers(['/disparity']), node.output()
        sent = []

        def within(stamp):
            sent.append(stamp)
            return offset_set(source, scene, stamp, 3 * MS)
        assert publish_until(source, within, lambda: len(disparity) >= 2), node.output()
        # stamped with the LEFT image's stamp
        assert {stamp_ns(m.header.stamp) for m in disparity.messages()} <= set(sent)
        time.sleep(0.5)   # let the last in-flight set settle before taking the baseline

        def settled():
            values = diagnostic_values(diagnostics)
            return (counter(values, 'frames') == len(disparity)
                    and counter(values, 'sets') == counter(values, 'frames') + counter(values, 'drops.busy'))
        assert wait_until(settled, 5.0)
        before = diagnostic_values(diagnostics)
        # 30 ms apart: never matched
        for _ in range(8):   # paced: the best-effort input queue keeps only 5
            source.publish(offset_set(source, scene, now_ns(), 30 * MS))
            time.sleep(0.05)
        assert wait_until(lambda: counter(diagnostic_values(diagnostics), 'in.right/image_rect')
                          >= counter(before, 'in.right/image_rect') + 8, 5.0)
        after = diagnostic_values(diagnostics)
        assert counter(after, 'sets') == counter(before, 'sets')
        assert counter(after, 'frames') == counter(before, 'frames')

    domain = unique_domain_id()
    exact = {'model': 'sgbm', 'max_disp': 64, 'diagnostics_period': 0.2, 'queue_size': 3, 'log_period': 0.0}
    with NodeProcess(domain, exact) as node, RosGraph(domain) as graph:
        source = StereoSource(graph)
        disparity = graph.subscribe(DisparityImage, 'disparity')
        diagnostics = subscribe_diagnostics(graph)
        assert source.wait_for_subscriber() and graph.wait_for_publishers(['/disparity']), node.output()
        assert publish_until(source, lambda stamp: offset_set(source, scene, stamp, 1 * MS),
                             lambda: counter(diagnostic_values(diagnostics), 'drops.unmatched') > 0), \
            node.output()
        values = diagnostic_values(diagnostics)
        assert len(disparity) == 0 and counter(values, 'sets') == 0
        assert values['_level'] == b'\x01' and 'stamps' in values['_message'], values
        # the drops name the inputs that lacked a partner
        assert counter(values, 'missing.right/image_rect') > 0 or counter(values, 'missing.left/image_rect') > 0


def test_namespace_remapping_and_best_effort_camera():
    """Like stereo_image_proc's launch: node in a namespace, inputs remapped to a
    camera driver's topics published best-effort (sensor-data QoS)."""
    domain = unique_domain_id()
    scene = cached_scene('plane')
    remaps = {'__ns': '/stereo', 'left/image_rect': '/cam/left/image_rect',
              'right/image_rect': '/cam/right/image_rect', 'left/camera_info': '/cam/left/camera_info',
              'right/camera_info': '/cam/right/camera_info'}
    camera_topics = ('/cam/left/image_rect', '/cam/right/image_rect', '/cam/left/camera_info',
                     '/cam/right/camera_info')
    with NodeProcess(domain, {'model': 'sgbm', 'max_disp': 64, 'log_period': 0.0}, remaps) as node, \
            RosGraph(domain) as graph:
        source = StereoSource(graph, qos_profile_sensor_data, topics=camera_topics)
        disparity = graph.subscribe(DisparityImage, '/stereo/disparity')
        assert source.wait_for_subscriber(), node.output()
        assert graph.wait_for_publishers(['/stereo/disparity', '/stereo/points2']), node.output()
        assert publish_until(source, lambda stamp: source.messages(scene, stamp), lambda: len(disparity) > 0), \
            node.output()
        assert graph.node.count_publishers('/disparity') == 0


def test_node_runs_the_fast_foundation_stereo_pytorch_backend(fixture_dir):
    """The released-layout checkpoint (random weights: values are meaningless, the
    plumbing is not) through the node on CPU."""
    domain = unique_domain_id()
    scene = cached_scene('plane', 224, 160)
    parameters = {'model': str(fixture_dir / 'model_best_bp2_serialize.pth'), 'device': 'cpu',
                  'valid_iters': 4, 'diagnostics_period': 0.5, 'log_period': 0.0}
    with NodeProcess(domain, parameters) as node, RosGraph(domain) as graph:
        source = StereoSource(graph)
        disparity = graph.subscribe(DisparityImage, 'disparity')
        diagnostics = subscribe_diagnostics(graph)
        assert source.wait_for_subscriber(30.0) and graph.wait_for_publishers(['/disparity'], 30.0), node.output()
        assert publish_until(source, lambda stamp: source.messages(scene, stamp), lambda: len(disparity) > 0,
                             timeout=60.0), node.output()
        assert wait_until(lambda: diagnostic_values(diagnostics).get('_level') is not None, 5.0)
        statuses = [s for m in diagnostics.messages() for s in m.status if 'stereo depth' in s.name]
        log = node.output()
    message = disparity.messages()[-1]
    assert (message.image.width, message.image.height) == (224, 160)
    assert message.max_disparity == 192.0 and message.t > 0
    assert statuses[-1].hardware_id.startswith('pytorch (cpu')
    assert 'SGBM' not in log
