"""Compressed input over real DDS: image_transport-style jpeg/png CompressedImage pairs into the node."""
import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage
from stereo_msgs.msg import DisparityImage

from fast_foundation_stereo_ros.backends import create_backend
from fast_foundation_stereo_ros.pipeline.frame_stage import FrameProcessor, OutputRequest, StereoFrame
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline
from fast_foundation_stereo_ros.ros.messages import RclpyMessageFactory

from .helpers import (NodeProcess, RosGraph, StereoSource, cached_scene, diagnostic_values, float_image, now_ns,
                      subscribe_diagnostics, unique_domain_id, wait_until)

COMPRESSED_TOPICS = ('left/image_rect/compressed', 'right/image_rect/compressed', 'left/camera_info',
                     'right/camera_info')
MAX_DISP = 64


def compressed(image, compression):
    """A CompressedImage as image_transport's compressed plugin writes an rgb8 image (bgr8 inside)."""
    bgr = cv2.cvtColor(np.asarray(image.data, np.uint8).reshape(image.height, image.width, 3), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode('.png' if compression == 'png' else '.jpg', bgr)
    assert ok
    message = CompressedImage(header=image.header, format=f'rgb8; {compression} compressed bgr8')
    message.data = data.tobytes()
    return message


def run_compressed(scene, compression, timeout=20.0):
    """(disparity message, raw messages) the node publishes for one compressed set; the node's diagnostics."""
    domain = unique_domain_id()
    parameters = {'model': 'sgbm', 'max_disp': MAX_DISP, 'input_transport': 'compressed', 'log_period': 0.0,
                  'diagnostics_period': 0.3}
    with NodeProcess(domain, parameters) as node, RosGraph(domain) as graph:
        types = (CompressedImage, CompressedImage, CameraInfo, CameraInfo)
        publishers = [graph.publisher(t, topic) for topic, t in zip(COMPRESSED_TOPICS, types)]
        disparity = graph.subscribe(DisparityImage, 'disparity')
        diagnostics = subscribe_diagnostics(graph)
        assert wait_until(lambda: all(p.get_subscription_count() for p in publishers), 15.0), node.output()
        assert graph.wait_for_publishers(['/disparity']), node.output()
        sent = {}

        def step():
            stamp = now_ns()
            raw = StereoSource.messages(scene, stamp)
            sent[stamp] = raw
            for publisher, message in zip(publishers, [compressed(raw[0], compression),
                                                       compressed(raw[1], compression), raw[2], raw[3]]):
                publisher.publish(message)
            return set(disparity.by_stamp()) & set(sent)
        assert wait_until(step, timeout, interval=0.2), node.output()
        assert wait_until(lambda: 'stage_ms.decode.mean' in diagnostic_values(diagnostics), 5.0), node.output()
        stamp = max(set(disparity.by_stamp()) & set(sent))
        return disparity.by_stamp()[stamp], sent[stamp], diagnostic_values(diagnostics)


def raw_disparity(raw_messages):
    """The same backend on the raw messages, in process (SGBM is deterministic)."""
    processor = FrameProcessor(StereoPipeline(create_backend('sgbm', max_disp=MAX_DISP)), RclpyMessageFactory())
    result = processor.process(StereoFrame(*raw_messages), OutputRequest(disparity=True))
    return float_image(result.messages['disparity'].image)


def test_png_compressed_pair_gives_the_raw_disparity_and_decode_time_on_diagnostics():
    scene = cached_scene('slanted')
    message, raw, diagnostics = run_compressed(scene, 'png')
    published = float_image(message.image)
    assert message.header.frame_id == raw[0].header.frame_id
    np.testing.assert_array_equal(np.isnan(published), np.isnan(raw_disparity(raw)))
    np.testing.assert_array_equal(published, raw_disparity(raw))     # png is lossless: bit-identical
    assert 0.0 < float(diagnostics['stage_ms.decode.mean']) < 1000.0
    assert int(diagnostics['frames']) >= 1 and int(diagnostics.get('drops.bad_input', 0)) == 0


def test_jpeg_compressed_pair_gives_a_close_disparity():
    scene = cached_scene('slanted')
    message, raw, _ = run_compressed(scene, 'jpeg')
    published, expected = float_image(message.image), raw_disparity(raw)
    both = np.isfinite(published) & np.isfinite(expected)
    assert both.mean() > 0.5
    assert np.median(np.abs(published[both] - expected[both])) < 0.25   # jpeg artefacts move few pixels
