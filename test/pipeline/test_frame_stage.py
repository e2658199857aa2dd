"""FrameStage on arrays: the per-frame stage of node, bags, pairs and demo (real SGBM, no ROS)."""
import dataclasses
import math

import numpy as np
import pytest

from fast_foundation_stereo_ros.backends import create_backend
from fast_foundation_stereo_ros.backends.base import StereoBackend
from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.geometry.stereo import CloudLayout
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene
from fast_foundation_stereo_ros.pipeline.frame_stage import (BadFrame, FrameOptions, FrameStage, OutputRequest,
                                                             reported_stages)
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline

EVERYTHING = OutputRequest(disparity=True, disparity_color=True, depth=True, depth_mm=True, points=True)


@pytest.fixture(scope='module')
def scene():
    return make_scene('mixed', 160, 120, seed=2)


def stage(**options):
    return FrameStage(StereoPipeline(create_backend('sgbm', max_disp=64)), FrameOptions(**options))


def test_outputs_follow_the_node_conventions(scene):
    arrays = stage().compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, EVERYTHING)
    camera = scene.camera
    valid = np.isfinite(arrays.disparity)
    assert valid.mean() > 0.8 and (arrays.disparity[valid] > 0).all()
    np.testing.assert_allclose(arrays.depth[valid], camera.focal_baseline / arrays.disparity[valid], rtol=1e-6)
    assert np.isnan(arrays.depth[~valid]).all()
    np.testing.assert_array_equal(arrays.depth_mm[~valid], 0)
    np.testing.assert_allclose(arrays.depth_mm[valid], np.rint(arrays.depth[valid] * 1000), atol=0.5)
    assert arrays.disparity_range == (0.0, 64.0) and arrays.delta_d == pytest.approx(1 / 16)
    assert arrays.colour.shape == (120, 160, 3) and arrays.colour.dtype == np.uint8
    assert arrays.points.shape == (120, 160, 32) and arrays.layout == CloudLayout.for_options(True, False)
    np.testing.assert_array_equal(arrays.xyz[..., 2], arrays.depth)
    np.testing.assert_array_equal(arrays.point_colours, scene.left)
    assert set(reported_stages(arrays.timings)) == {'convert', 'infer', 'geometry'}


def test_depth_range_decimation_and_colour_options(scene):
    full = stage().compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, EVERYTHING)
    low, high = np.nanpercentile(full.depth, [20, 80])
    arrays = stage(min_depth=low, max_depth=high, point_cloud_decimation=3, use_color=False,
                   avoid_point_cloud_padding=True).compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera,
                                                            EVERYTHING)
    kept = (full.depth >= low) & (full.depth <= high)
    np.testing.assert_array_equal(arrays.depth[kept], full.depth[kept])
    assert np.isnan(arrays.depth[~kept]).all() and (arrays.depth_mm[~kept] == 0).all()
    np.testing.assert_array_equal(arrays.disparity, full.disparity)   # the range limits depth, not disparity
    assert arrays.points.shape == (40, 54, 12) and arrays.point_colours is None
    np.testing.assert_array_equal(arrays.xyz[..., 2], arrays.depth[::3, ::3])
    decimated = scene.camera.decimated(3)
    u = np.arange(54, dtype=np.float32)[None, :]
    np.testing.assert_allclose(arrays.xyz[..., 0], (u - decimated.cx) * arrays.depth[::3, ::3] / decimated.fx,
                               rtol=1e-6, equal_nan=True)


def test_buffers_are_reused_frame_after_frame(scene):
    frame_stage = stage()
    first = frame_stage.compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, EVERYTHING)
    kept = {name: getattr(first, name) for name in ('disparity', 'depth', 'depth_mm', 'points')}
    second = frame_stage.compute(scene.right, 'rgb8', scene.left, 'rgb8', scene.camera, EVERYTHING)
    for name, array in kept.items():
        assert getattr(second, name) is array, name      # same memory: no allocation per frame


def test_without_a_camera_only_the_raw_disparity(scene):
    arrays = stage().compute(scene.left, 'bgr8', scene.right, 'bgr8', None, OutputRequest(disparity=True))
    assert arrays.depth is None and arrays.points is None and arrays.camera is None
    assert np.isfinite(arrays.disparity).mean() > 0.5
    with pytest.raises(ValueError, match='without the camera'):
        stage().compute(scene.left, 'rgb8', scene.right, 'rgb8', None, OutputRequest(depth=True))


def test_bad_input_is_one_frame_with_a_cause(scene):
    with pytest.raises(BadFrame) as error:
        stage().compute(scene.left, 'yuv422', scene.right, 'rgb8', scene.camera)
    assert error.value.cause == 'encoding' and 'left image' in str(error.value)
    with pytest.raises(BadFrame) as error:
        stage().compute(scene.left, 'rgb8', scene.right[:60], 'rgb8', scene.camera)
    assert error.value.cause == 'size_mismatch' and '160x120 vs 160x60' in str(error.value)


@pytest.mark.parametrize('options, message', [
    ({'min_depth': -1.0}, r'min_depth = -1.0 is invalid; allowed: >= 0 \(metres\)'),
    ({'min_depth': 2.0, 'max_depth': 1.0}, r'max_depth = 1.0 is invalid; allowed: 0 \(no limit\) or > min_depth \(2.0\)'),
    ({'point_cloud_decimation': 0}, 'point_cloud_decimation = 0 is invalid; allowed: an integer in 1..16'),
    ({'point_cloud_decimation': 17}, 'point_cloud_decimation = 17 is invalid'),
    ({'point_cloud_decimation': 2.5}, 'point_cloud_decimation = 2.5 is invalid'),
])
def test_options_are_checked_once_for_every_tool(options, message):
    with pytest.raises(ConfigError, match=message):
        FrameOptions(**options)
    assert FrameOptions(max_depth=math.inf).depth_range == (0.0, math.inf)


class FixedOutputBackend(StereoBackend):
    """A backend whose disparity is given: a network regressing past its max_disp (202.7 px with 192 was
    seen on the released checkpoint) without running one."""

    name = 'fixed'

    def __init__(self, disparity, max_disp):
        self.disparity = disparity
        self.max_disparity = float(max_disp)

    def infer(self, left_rgb, right_rgb):
        return self.disparity.copy()


def test_disparity_beyond_the_searched_range_is_invalid_and_reported(scene):
    """DisparityImage min/max tell the truth: no valid disparity exceeds the searched maximum, and the share
    of pixels at the top of the range comes with the max_disp that would cover them."""
    disparity = np.full((120, 160), 20.0, np.float32)
    disparity[:30] = 202.7            # a quarter of the image regressed past max_disp 192
    disparity[30:36] = 190.0          # at the top of the range (>= 97 % of 192), still valid
    # (a 160-px-wide image: every match of 190 px lies left of the right image, so keep those here)
    frame_stage = FrameStage(StereoPipeline(FixedOutputBackend(disparity, 192)),
                             FrameOptions(invalidate_out_of_view=False))
    arrays = frame_stage.compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, EVERYTHING)
    low, high = arrays.disparity_range
    assert high == 192.0 - scene.camera.cx_offset
    assert np.isnan(arrays.disparity[:30]).all() and np.isnan(arrays.depth[:30]).all()
    assert np.nanmax(arrays.disparity) <= high
    np.testing.assert_allclose(arrays.disparity[30:36], 190.0 - scene.camera.cx_offset)
    assert arrays.top_of_range.share == pytest.approx(36 / 120)
    assert arrays.top_of_range.suggested_max_disp == 256     # 202.7 * 1.25 -> next multiple of 32
    # without a camera (files) the same rule holds
    raw_only = frame_stage.compute(scene.left, 'rgb8', scene.right, 'rgb8')
    assert np.isnan(raw_only.disparity[:30]).all() and np.nanmax(raw_only.disparity) == pytest.approx(190.0)
    quiet = FrameStage(StereoPipeline(FixedOutputBackend(np.full((120, 160), 20.0, np.float32), 192)))
    assert quiet.compute(scene.left, 'rgb8', scene.right, 'rgb8').top_of_range.share == 0.0


def test_zero_baseline_gives_disparity_without_depth_or_points(scene):
    camera = dataclasses.replace(scene.camera, baseline=0.0)
    arrays = stage().compute(scene.left, 'rgb8', scene.right, 'rgb8', camera, EVERYTHING)
    assert np.isfinite(arrays.disparity).mean() > 0.8
    assert arrays.depth is None and arrays.depth_mm is None and arrays.points is None


def test_matches_outside_the_right_image_leave_depth_and_points_unless_kept(scene):
    """x - d < 0: the match lies left of the right image. As the official demo's remove_invisible, the
    disparity keeps the network's value (so it equals the official disparity) while depth, depth_mm and
    the cloud drop those pixels."""
    disparity = np.full((120, 160), 50.0, np.float32)
    default = FrameStage(StereoPipeline(FixedOutputBackend(disparity, 192)))
    arrays = default.compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, EVERYTHING)
    assert np.isfinite(arrays.disparity).all()
    assert np.isnan(arrays.depth[:, :50]).all() and np.isfinite(arrays.depth[:, 50:]).all()
    assert (arrays.depth_mm[:, :50] == 0).all() and (arrays.depth_mm[:, 50:] > 0).all()
    assert np.isfinite(default.compute(scene.left, 'rgb8', scene.right, 'rgb8').disparity).all()
    kept = FrameStage(StereoPipeline(FixedOutputBackend(disparity, 192)), FrameOptions(invalidate_out_of_view=False))
    assert np.isfinite(kept.compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, EVERYTHING).depth).all()


def test_min_confidence_invalidates_disparity_depth_and_points(scene):
    request = OutputRequest(disparity=True, depth=True, depth_mm=True, points=True, confidence=True)
    full = stage().compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, request)
    confidence = full.confidence.copy()
    full_disparity = full.disparity.copy()
    assert confidence.shape == (120, 160) and 0 <= confidence.min() and confidence.max() <= 1
    threshold = float(np.percentile(confidence[np.isfinite(full_disparity)], 30))
    arrays = stage(min_confidence=threshold).compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera,
                                                     request)
    dropped = confidence < threshold
    assert 0.05 < (dropped & np.isfinite(full_disparity)).mean() < 0.5
    assert np.isnan(arrays.disparity[dropped]).all() and np.isnan(arrays.depth[dropped]).all()
    assert (arrays.depth_mm[dropped] == 0).all() and np.isnan(arrays.xyz[..., 2][dropped]).all()
    np.testing.assert_array_equal(arrays.disparity[~dropped], full_disparity[~dropped])
    np.testing.assert_array_equal(arrays.confidence, confidence)    # the map itself is published unchanged
    assert 'min_confidence' in arrays.timings


def test_confidence_is_computed_only_when_requested_and_threshold_range_is_checked(scene):
    arrays = stage().compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, OutputRequest(disparity=True))
    assert arrays.confidence is None
    assert OutputRequest(confidence=True).needs_inference
    with pytest.raises(ConfigError, match=r'min_confidence = 1.5 is invalid; allowed: 0..1 \(0 = off\)'):
        FrameOptions(min_confidence=1.5)

