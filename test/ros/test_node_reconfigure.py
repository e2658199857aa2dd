"""Live reconfiguration over real DDS: rcl_interfaces/srv/SetParameters from a client node."""
import numpy as np
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, PointCloud2

from .helpers import (NodeProcess, RosGraph, StereoSource, cached_scene, float_image, now_ns, stamp_ns,
                      unique_domain_id, wait_until)

SERVICE = '/fast_foundation_stereo/set_parameters'


def set_parameters(graph, client, **values):
    """The SetParametersResult of each value, in order (the service call over DDS)."""
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()
                                                for name, value in values.items()])
    future = client.call_async(request)
    assert wait_until(future.done, 10.0), 'set_parameters got no answer'
    return future.result().results


def newest_pair(source, scene, clouds, depth, condition, timeout=20.0):
    """Publish fresh sets until a (cloud, depth) pair of one stamp sent after the call meets `condition`."""
    first = now_ns()

    def step():
        source.publish(source.messages(scene, now_ns(), 'mono8'))
        stamps = sorted(set(clouds.by_stamp()) & set(depth.by_stamp()), reverse=True)
        return any(s > first and condition(clouds.by_stamp()[s], depth.by_stamp()[s]) for s in stamps)
    assert wait_until(step, timeout, interval=0.15)
    stamp = max(s for s in set(clouds.by_stamp()) & set(depth.by_stamp()) if s > first)
    return clouds.by_stamp()[stamp], float_image(depth.by_stamp()[stamp])


def test_set_parameters_changes_outputs_at_run_time_and_refuses_bad_or_restart_only_values():
    domain = unique_domain_id()
    scene = cached_scene('slanted')          # depth 2.5 .. 5.5 m
    with NodeProcess(domain, {'model': 'sgbm', 'max_disp': 64, 'log_period': 0.0}) as node, \
            RosGraph(domain) as graph:
        source = StereoSource(graph)
        clouds = graph.subscribe(PointCloud2, 'points2')
        depth = graph.subscribe(Image, 'depth/image')
        client = graph.node.create_client(SetParameters, SERVICE)
        assert source.wait_for_subscriber() and graph.wait_for_publishers(['/points2', '/depth/image']), \
            node.output()
        assert client.wait_for_service(timeout_sec=15.0), node.output()

        cloud, depth_image = newest_pair(source, scene, clouds, depth, lambda c, d: True)
        assert (cloud.width, cloud.height) == (640, 480)
        assert np.nanmax(depth_image) > 5.0

        results = set_parameters(graph, client, max_depth=4.0, point_cloud_decimation=4)
        assert [r.successful for r in results] == [True, True], [r.reason for r in results]
        cloud, depth_image = newest_pair(source, scene, clouds, depth, lambda c, d: c.width == 160)
        assert (cloud.width, cloud.height, cloud.row_step) == (160, 120, 160 * cloud.point_step)
        assert np.nanmax(depth_image) <= 4.0 and np.isfinite(depth_image).mean() > 0.2
        assert np.isnan(depth_image[scene.depth > 4.1]).mean() > 0.95

        (out_of_range,) = set_parameters(graph, client, point_cloud_decimation=17)
        assert not out_of_range.successful and 'point_cloud_decimation' in out_of_range.reason
        (inconsistent,) = set_parameters(graph, client, min_depth=5.0)     # > max_depth 4.0
        assert not inconsistent.successful and 'max_depth' in inconsistent.reason, inconsistent.reason
        (restart_only,) = set_parameters(graph, client, model='other.onnx')
        assert not restart_only.successful
        assert restart_only.reason == ("parameter 'model' cannot change while the node runs: the backend is "
                                       'built from it (a new model or engine); restart the node with the new value')

        # the refused values changed nothing: still decimated by 4, clipped at 4 m
        cloud, depth_image = newest_pair(source, scene, clouds, depth, lambda c, d: True)
        assert cloud.width == 160 and np.nanmax(depth_image) <= 4.0

        (switched_off,) = set_parameters(graph, client, publish_points=False)
        assert switched_off.successful
        assert wait_until(lambda: graph.node.count_publishers('/points2') == 0, 10.0), node.output()
        assert graph.node.count_publishers('/depth/image') == 1
        assert 'parameters changed: point_cloud_decimation=4' in node.output()   # SetParameters: one by one
    assert stamp_ns(cloud.header.stamp) > 0
