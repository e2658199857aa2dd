"""Node subprocess over real DDS: the confidence topic and min_confidence (SGBM, left-right consistency)."""
import numpy as np
from sensor_msgs.msg import Image
from stereo_msgs.msg import DisparityImage

from .helpers import (NodeProcess, RosGraph, StereoSource, cached_scene, float_image, now_ns, unique_domain_id,
                      wait_until)

MIN_CONFIDENCE = 0.5


def test_confidence_is_published_with_the_disparity_header_and_min_confidence_invalidates():
    domain = unique_domain_id()
    scene = cached_scene('mixed')
    parameters = {'model': 'sgbm', 'max_disp': 64, 'min_confidence': MIN_CONFIDENCE, 'log_period': 0.0}
    with NodeProcess(domain, parameters) as node, RosGraph(domain) as graph:
        source = StereoSource(graph)
        confidence = graph.subscribe(Image, 'confidence')
        disparity = graph.subscribe(DisparityImage, 'disparity')
        depth = graph.subscribe(Image, 'depth/image')
        assert source.wait_for_subscriber(), node.output()
        assert graph.wait_for_publishers(['/confidence', '/disparity', '/depth/image']), node.output()

        def common_stamps():
            return set(confidence.by_stamp()) & set(disparity.by_stamp()) & set(depth.by_stamp())

        def step():
            source.publish(source.messages(scene, now_ns()))
            return bool(common_stamps())
        assert wait_until(step, 15.0, interval=0.15), node.output()
        stamp = max(common_stamps())
        confidence_message = confidence.by_stamp()[stamp]
        disparity_message = disparity.by_stamp()[stamp]
        depth_image = float_image(depth.by_stamp()[stamp])
    assert confidence_message.encoding == '32FC1'
    assert confidence_message.header == disparity_message.header
    assert (confidence_message.width, confidence_message.height) == (scene.camera.width, scene.camera.height)
    values = float_image(confidence_message)
    disparities = float_image(disparity_message.image)
    assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    below = values < MIN_CONFIDENCE
    assert 0.01 < below.mean() < 0.9
    assert np.isnan(disparities[below]).all() and np.isnan(depth_image[below]).all()
    assert np.isfinite(disparities[~below]).mean() > 0.9
