"""Confidence from every backend: range, unchanged disparity, restoring to the camera, SGBM's accuracy ranking."""
import numpy as np
import onnx.utils
import pytest

from fast_foundation_stereo_ros.backends import create_backend
from fast_foundation_stereo_ros.backends.onnx_runtime import OnnxRuntimeBackend
from fast_foundation_stereo_ros.backends.sgbm import LR_RESIDUAL_CAP_PX, SGBMBackend, left_right_confidence
from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.geometry.metrics import sparsification
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene
from fast_foundation_stereo_ros.pipeline.frame_stage import FrameOptions, FrameStage
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline

from ..export.helpers import CHECKPOINT_NAME, EXPORT_HEIGHT, EXPORT_MAX_DISP, EXPORT_WIDTH

#: the SGBM sparsification curve may rise by this much (px EPE) from one decile to the next ...
EPE_NOISE_PX = 0.015
#: ... but removing the least-confident 90 % must cut the EPE to this share of the full set's
EPE_DROP = 0.9


def _check_range(disparity, confidence):
    assert confidence.dtype == np.float32 and confidence.shape == disparity.shape
    valid = np.isfinite(disparity)
    assert np.isfinite(confidence[valid]).all()
    assert confidence[valid].min() >= 0.0 and confidence[valid].max() <= 1.0
    assert np.ptp(confidence[valid]) > 1e-3     # a per-pixel map, not a constant


def test_onnxruntime_backend_returns_the_graphs_confidence(onnx_path, fixture_pair):
    backend = OnnxRuntimeBackend(onnx_path)
    left, right = (image[:EXPORT_HEIGHT, :EXPORT_WIDTH].copy() for image in fixture_pair)
    disparity, confidence = backend.infer_with_confidence(left, right)
    assert backend.has_confidence
    assert np.array_equal(disparity, backend.infer(left, right))
    _check_range(disparity, confidence)


def test_single_output_graph_still_loads_and_reports_no_confidence(onnx_path, fixture_pair, tmp_path):
    """A graph exported before confidence existed: the same network, only the disparity output."""
    single = str(tmp_path / 'disparity_only.onnx')
    onnx.utils.extract_model(onnx_path, single, ['left', 'right'], ['disparity'])
    backend = OnnxRuntimeBackend(single)
    left, right = (image[:EXPORT_HEIGHT, :EXPORT_WIDTH].copy() for image in fixture_pair)
    disparity, confidence = backend.infer_with_confidence(left, right)
    assert not backend.has_confidence and confidence is None
    np.testing.assert_allclose(disparity, OnnxRuntimeBackend(onnx_path).infer(left, right), atol=1e-5)
    pipeline = StereoPipeline(backend)
    assert not pipeline.has_confidence and pipeline.compute_with_confidence(left, right)[1] is None
    with pytest.raises(ConfigError, match='min_confidence = 0.5 is invalid; allowed: 0 with the onnxruntime '
                                          'backend: its model has no confidence output'):
        FrameStage(pipeline, FrameOptions(min_confidence=0.5))


def test_pipeline_restores_confidence_with_the_disparity_fit_without_rescaling(onnx_path, fixture_pair):
    """Camera 224x160 -> graph 160x128 (letterbox, x1.4): confidence is resized like the disparity,
    its values are not multiplied."""
    left, right = fixture_pair
    pipeline = StereoPipeline(OnnxRuntimeBackend(onnx_path))
    disparity, confidence = pipeline.compute_with_confidence(left, right)
    fit = pipeline.fit_for(left.shape[:2])
    raw_disparity, raw_confidence = pipeline.backend.infer_with_confidence(fit.apply(left), fit.apply(right))
    assert confidence.shape == disparity.shape == left.shape[:2]
    np.testing.assert_array_equal(confidence, fit.restore_map(raw_confidence))
    np.testing.assert_array_equal(disparity, pipeline.compute(left, right))
    assert confidence.max() <= 1.0 and set(np.unique(confidence)) <= set(np.unique(raw_confidence))
    assert fit.disparity_scale == pytest.approx(1.4)


def test_pytorch_backend_confidence_through_a_resizing_pipeline(fixture_dir, fixture_pair):
    backend = create_backend(str(fixture_dir / CHECKPOINT_NAME), max_disp=EXPORT_MAX_DISP, valid_iters=1)
    pipeline = StereoPipeline(backend, scale=0.8)
    left, right = fixture_pair
    disparity, confidence = pipeline.compute_with_confidence(left, right)
    assert backend.has_confidence and disparity.shape == left.shape[:2]
    np.testing.assert_array_equal(disparity, pipeline.compute(left, right))
    _check_range(disparity, confidence)


def test_left_right_confidence_of_consistent_and_inconsistent_views():
    left = np.full((2, 8), 2.0, np.float32)
    right = np.full((2, 8), 2.0, np.float32)
    right[1, 3] = 4.0           # row 1, x = 5 looks at x_r = 3, which disagrees by 2 px
    left[0, 0] = np.nan         # unmatched
    confidence = left_right_confidence(left, right, window=1)
    assert confidence[0, 0] == 0.0                               # no disparity
    assert confidence[0, 1] == pytest.approx(np.exp(-LR_RESIDUAL_CAP_PX))   # points outside the right image
    assert confidence[0, 4] == 1.0
    assert confidence[1, 5] == pytest.approx(np.exp(-2.0), rel=1e-6)
    smoothed = left_right_confidence(left, right)                # the window spreads the disagreement
    assert smoothed[1, 4] < 1.0 and smoothed[1, 5] > confidence[1, 5]


@pytest.mark.parametrize('kind, size, seed', [('mixed', (320, 240), 0), ('mixed', (240, 180), 5),
                                              ('boxes', (320, 240), 1), ('spheres', (320, 240), 0),
                                              ('slanted', (320, 240), 0)])
def test_sgbm_error_falls_as_confidence_rises(kind, size, seed):
    scene = make_scene(kind, width=size[0], height=size[1], seed=seed)
    backend = SGBMBackend(max_disp=128)
    disparity, confidence = backend.infer_with_confidence(scene.left, scene.right)
    np.testing.assert_array_equal(disparity, backend.infer(scene.left, scene.right))
    _check_range(disparity, confidence)
    assert (confidence[~np.isfinite(disparity)] == 0).all()
    rows = sparsification(disparity, scene.disparity, confidence)
    epe = [row.epe for row in rows]
    print(kind, seed, ' '.join(f'{row.removed:.0%}: {row.epe:.3f} px / {row.bad2:.2f} %' for row in rows))
    assert all(later <= earlier + EPE_NOISE_PX for earlier, later in zip(epe, epe[1:])), epe
    assert epe[-1] <= EPE_DROP * epe[0] and rows[-1].bad2 < rows[0].bad2
