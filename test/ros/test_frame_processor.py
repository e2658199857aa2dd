"""FrameProcessor with rclpy messages: messages in, requested output messages out (real SGBM, no graph)."""
import numpy as np
import pytest

from fast_foundation_stereo_ros.backends import create_backend
from fast_foundation_stereo_ros.pipeline.encodings import image_to_array
from fast_foundation_stereo_ros.pipeline.frame_stage import (STAGE_OF, BadFrame, FrameOptions, FrameProcessor,
                                                             OutputRequest, StereoFrame)
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import DELTA_D_INPUT_PIXELS, StereoPipeline
from fast_foundation_stereo_ros.ros.messages import RclpyMessageFactory

from .helpers import StereoSource, cached_scene

EVERYTHING = OutputRequest(disparity=True, disparity_color=True, depth=True, depth_mm=True, points=True)


def processor(max_disp=64, **options):
    return FrameProcessor(StereoPipeline(create_backend('sgbm', max_disp=max_disp)), RclpyMessageFactory(),
                          FrameOptions(**options))


def frame_of(scene, stamp=1_000_000_123, encoding='rgb8'):
    return StereoFrame(*StereoSource.messages(scene, stamp, encoding))


def test_only_requested_outputs_are_built():
    scene = cached_scene('plane')
    result = processor().process(frame_of(scene), OutputRequest(depth=True))
    assert set(result.messages) == {'depth', 'depth_info'}
    result = processor().process(frame_of(scene), OutputRequest(points=True))
    assert set(result.messages) == {'points'}
    nothing = processor().process(frame_of(scene), OutputRequest())
    assert nothing.messages == {} and nothing.timings == {}


def test_all_outputs_share_the_left_header_and_timings_cover_the_stages():
    scene = cached_scene('plane')
    frame = frame_of(scene, stamp=5_000_000_007)
    result = processor().process(frame, EVERYTHING)
    assert set(result.messages) == {'disparity', 'disparity_color', 'depth', 'depth_info', 'depth_mm', 'points'}
    for message in result.messages.values():
        assert message.header.frame_id == 'camera_left_optical_frame'
        assert (message.header.stamp.sec, message.header.stamp.nanosec) == (5, 7)
    assert set(result.timings) <= set(STAGE_OF)
    assert set(result.stage_timings()) == {'convert', 'infer', 'geometry', 'build'}
    assert result.timings['infer'] > 0


def test_principal_point_offset_is_removed_from_disparity():
    """Right principal point k px to the right: raw x_l - x_r is d - k, published d."""
    scene = cached_scene('plane')
    k = 4
    frame = frame_of(scene)
    right = image_to_array(frame.right_image)
    shifted = np.empty_like(right)
    shifted[:, k:] = right[:, :-k]
    shifted[:, :k] = right[:, :1]
    frame.right_image.data = shifted.tobytes()
    frame.right_info.p[2] += k
    result = processor().process(frame, OutputRequest(disparity=True, depth=True))
    disparity = result.disparity
    truth = np.isfinite(disparity) & scene.non_occluded
    truth[:, :k + 64] = False
    assert np.median(np.abs(disparity[truth] - scene.disparity[truth])) < 0.3
    message = result.messages['disparity']
    assert (message.min_disparity, message.max_disparity) == (k, 64 + k)
    relative = np.abs(result.depth[truth] - scene.depth[truth]) / scene.depth[truth]
    assert np.median(relative) < 0.02


def test_delta_d_scales_with_the_input_scale():
    scene = cached_scene('plane')
    half = FrameProcessor(StereoPipeline(create_backend('sgbm', max_disp=64), scale=0.5), RclpyMessageFactory())
    result = half.process(frame_of(scene), OutputRequest(disparity=True))
    message = result.messages['disparity']
    assert message.delta_d == pytest.approx(2 * DELTA_D_INPUT_PIXELS)
    assert message.max_disparity == pytest.approx(128.0)
    assert (message.image.width, message.image.height) == (640, 480)


@pytest.mark.parametrize('encoding', ['bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16'])
def test_every_input_encoding_gives_the_same_depth(encoding):
    scene = cached_scene('plane')
    result = processor().process(frame_of(scene, encoding=encoding), OutputRequest(depth=True))
    truth = np.isfinite(result.depth) & scene.non_occluded
    assert truth.mean() > 0.85
    assert np.median(np.abs(result.depth[truth] - scene.depth[truth]) / scene.depth[truth]) < 0.02


def test_bad_frames_carry_their_cause():
    scene = cached_scene('plane')
    frame = frame_of(scene)
    frame.left_image.encoding = '8UC3'
    with pytest.raises(BadFrame) as error:
        processor().process(frame, OutputRequest(depth=True))
    assert error.value.cause == 'encoding'
    frame = frame_of(scene)
    frame.right_info.p[3] = abs(frame.right_info.p[3])   # right camera on the left: negative baseline
    with pytest.raises(BadFrame) as error:
        processor().process(frame, OutputRequest(depth=True))
    assert error.value.cause == 'camera_info' and 'baseline' in str(error.value)
    frame = frame_of(scene)
    frame.right_info.p[3] = 0.0   # Tx = 0: the disparity, no depth messages
    result = processor().process(frame, OutputRequest(disparity=True, depth=True, points=True))
    assert set(result.messages) == {'disparity'} and result.no_baseline and result.messages['disparity'].t == 0.0
