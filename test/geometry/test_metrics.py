"""Disparity metrics: hand-computed values, masks, invalid pixels; SGBM on synthetic scenes."""
import numpy as np
import pytest

from fast_foundation_stereo_ros.backends import create_backend
from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.geometry.metrics import evaluate, evaluate_regions, format_table, sparsification
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline

# SGBM on 320x240 scenes, seed 0, non-occluded pixels. Measured (seeds 0-5):
# EPE <= 0.34 (plane: sub-pixel bias on one constant disparity) / <= 0.19,
# bad-2 <= 0.43 % (plane, slanted) / <= 1.51 % (boxes, spheres, mixed).
SGBM_LIMITS = {  # kind: (max EPE px, max bad-2 %)
    'plane': (0.45, 0.8),
    'slanted': (0.25, 0.8),
    'boxes': (0.25, 2.0),
    'spheres': (0.25, 2.0),
    'mixed': (0.25, 2.0),
}


def test_hand_computed_values():
    truth = np.array([[10.0, 20.0, 40.0, 100.0]], np.float32)
    prediction = np.array([[10.5, 21.5, 42.5, 104.0]], np.float32)  # errors 0.5, 1.5, 2.5, 4
    m = evaluate(prediction, truth)
    assert m.epe == pytest.approx((0.5 + 1.5 + 2.5 + 4.0) / 4)
    assert (m.bad1, m.bad2, m.bad3) == (75.0, 50.0, 25.0)
    assert m.d1 == 0.0  # 4 px error on 100 px is < 5 %
    assert m.density == 100.0 and m.pixels == 4


def test_d1_needs_both_absolute_and_relative_error():
    truth = np.array([[10.0, 100.0]], np.float32)
    prediction = np.array([[14.0, 106.0]], np.float32)  # 4 px = 40 %, 6 px = 6 %
    assert evaluate(prediction, truth).d1 == 100.0
    assert evaluate(np.array([[14.0, 104.0]], np.float32), truth).d1 == 50.0


def test_invalid_ground_truth_is_ignored_and_missing_prediction_is_bad():
    truth = np.array([[np.inf, 0.0, np.nan, 10.0, 20.0]], np.float32)
    prediction = np.array([[1.0, 1.0, 1.0, 10.0, np.nan]], np.float32)
    m = evaluate(prediction, truth)
    assert m.pixels == 2
    assert m.epe == 0.0            # over predicted pixels only
    assert m.bad3 == 50.0 and m.d1 == 50.0   # the hole counts as an error
    assert m.density == 50.0


def test_regions_and_table():
    truth = np.full((2, 2), 10.0, np.float32)
    prediction = np.array([[10.0, 10.0], [10.0, 20.0]], np.float32)
    occlusion = np.array([[False, False], [False, True]])
    results = evaluate_regions(prediction, truth, occlusion)
    assert results['all'].bad2 == 25.0 and results['noc'].bad2 == 0.0
    assert results['noc'].pixels == 3
    table = format_table(results)
    assert 'non-occluded' in table and 'all valid' in table and 'D1' in table
    assert evaluate_regions(prediction, truth).keys() == {'all'}


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match='ground truth'):
        evaluate(np.zeros((2, 3)), np.zeros((3, 2)))


def test_empty_region_gives_nan_not_a_crash():
    m = evaluate(np.ones((2, 2)), np.zeros((2, 2)))
    assert m.pixels == 0 and np.isnan(m.epe)


@pytest.mark.parametrize('kind', sorted(SGBM_LIMITS))
def test_sgbm_accuracy_on_synthetic_scenes(kind):
    scene = make_scene(kind, 320, 240, seed=0)
    pipeline = StereoPipeline(create_backend('sgbm'))
    results = evaluate_regions(pipeline.compute(scene.left, scene.right), scene.disparity, scene.occlusion)
    max_epe, max_bad2 = SGBM_LIMITS[kind]
    noc = results['noc']
    assert noc.epe < max_epe and noc.bad2 < max_bad2, format_table(results)
    assert noc.density > 99.0
    # occluded pixels are hard for any matcher: the all-pixel row must be worse
    assert results['all'].bad2 > noc.bad2


def test_sparsification_removes_the_least_confident_pixels_first():
    truth = np.full((1, 11), 10.0, np.float32)
    error = np.append(np.arange(10, dtype=np.float32), 0.0)[None]   # pixel i errs by i px
    prediction = truth + error
    confidence = 1.0 - error / 10.0                      # ... and is the less confident, the larger i
    prediction[0, 10] = np.nan                           # not predicted: not ranked
    rows = sparsification(prediction, truth, confidence)
    assert [row.kept for row in rows] == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert rows[0].epe == pytest.approx(4.5) and rows[0].bad2 == pytest.approx(70.0)
    assert rows[5].epe == pytest.approx(2.0) and rows[5].threshold == pytest.approx(0.6)
    assert rows[-1].epe == 0.0 and rows[-1].bad2 == 0.0
    reversed_rows = sparsification(prediction, truth, error)   # a confidence that ranks backwards
    assert reversed_rows[5].epe == pytest.approx(7.0)


def test_sparsification_refuses_mismatched_confidence_and_handles_no_pixels():
    truth = np.ones((4, 4), np.float32)
    with pytest.raises(InputError, match='confidence 4x2'):
        sparsification(truth, truth, np.ones((2, 4), np.float32))
    assert sparsification(truth, np.zeros((4, 4), np.float32), truth) == []
