"""The engine check's statistics on real arrays: agreement, latency percentiles, tolerance, record, pairs."""
import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.export.engine_verification import (MEAN_ABS_LIMIT_PX, OVER_1PX_LIMIT, compare_disparity,
                                                                   format_report, judge, latency_summary,
                                                                   verification_pairs, verification_record)


def test_agreement_figures():
    expected = np.linspace(0, 100, 400 * 100, dtype=np.float32).reshape(400, 100)
    found = expected.copy()
    found[0, :10] += 2.0      # 10 pixels off by 2 px
    found[1, :30] -= 0.5      # 30 pixels off by 0.5 px
    agreement = compare_disparity(found, expected)
    assert agreement.max_abs == pytest.approx(2.0, abs=1e-5)
    assert agreement.mean_abs == pytest.approx((10 * 2.0 + 30 * 0.5) / 40000, rel=1e-4)
    assert agreement.over_1px == 10 / 40000
    assert (agreement.non_finite, agreement.pixels) == (0, 40000)


def test_non_finite_engine_output_is_counted_and_fails():
    expected = np.ones((10, 10), np.float32)
    found = expected.copy()
    found[0, 0], found[0, 1] = np.nan, np.inf
    agreement = compare_disparity(found, expected)
    assert agreement.non_finite == 2 and agreement.max_abs == float('inf') and agreement.mean_abs == 0.0
    assert agreement.over_1px == 2 / 100
    passed, reasons = judge({'synthetic': agreement})
    assert not passed and reasons[0] == 'synthetic: 2 non-finite pixels'
    with pytest.raises(InputError, match='differ in shape'):
        compare_disparity(found, expected[:5])


def test_latency_percentiles():
    summary = latency_summary([value / 1000 for value in range(1, 101)])  # 1..100 ms
    assert summary == {'runs': 100, 'p50_ms': 50.5, 'p99_ms': 99.01, 'mean_ms': 50.5}
    with pytest.raises(InputError, match='at least 1'):
        latency_summary([])


def test_tolerance_decision_at_the_limits():
    pixels = 10000
    inside = compare_disparity(np.full(pixels, MEAN_ABS_LIMIT_PX * 0.99), np.zeros(pixels))
    assert judge({'pair': inside}) == (True, [])
    outside = compare_disparity(np.full(pixels, MEAN_ABS_LIMIT_PX * 1.01), np.zeros(pixels))
    assert judge({'pair': outside}) == (False, ['pair: mean abs 0.1010 px > 0.1 px'])
    over = np.zeros(pixels, np.float32)
    over[:int(OVER_1PX_LIMIT * pixels) + 1] = 1.5
    passed, reasons = judge({'pair': compare_disparity(over, np.zeros(pixels, np.float32))})
    assert not passed and reasons == ['pair: 0.51% of pixels off by > 1 px (limit 0.50%)']


def test_record_and_report():
    expected = np.zeros((20, 20), np.float32)
    agreements = {'synthetic': compare_disparity(expected + 0.02, expected)}
    latency = {'plain': latency_summary([0.010, 0.012, 0.011]), 'cuda_graph': {'skipped': 'CUDA graph failed'}}
    record = verification_record(agreements, latency, {'onnx': '/m/ref.onnx', 'precision': 'fp32',
                                                       'provider': 'ONNX Runtime CPU'})
    assert record['passed'] and not record['accepted_out_of_tolerance'] and record['reasons'] == []
    assert record['pairs']['synthetic']['mean_abs_px'] == pytest.approx(0.02, abs=1e-6)
    assert record['limits'] == {'mean_abs_px': MEAN_ABS_LIMIT_PX, 'over_1px_share': OVER_1PX_LIMIT}
    lines = format_report(record)
    assert lines[0] == 'engine vs ONNX Runtime CPU on fp32 graph /m/ref.onnx:'
    assert lines[1].startswith('  synthetic    max abs 0.0200 px, mean abs 0.0200 px, > 1 px 0.000%')
    assert lines[2] == '  latency plain     : p50 11.00 ms, p99 11.98 ms over 3 runs (host copies included)'
    assert lines[3] == '  latency cuda_graph: skipped (CUDA graph failed)'
    assert lines[4].endswith(': OK')


def test_pairs_synthetic_at_engine_size_and_user_pair_resized(tmp_path):
    left = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'l.png'), left[..., ::-1])
    cv2.imwrite(str(tmp_path / 'r.png'), left[..., ::-1])
    pairs = verification_pairs((64, 96), str(tmp_path / 'l.png'), str(tmp_path / 'r.png'))
    assert list(pairs) == ['synthetic', 'user pair']
    assert pairs['synthetic'][0].shape == (64, 96, 3) and pairs['synthetic'][0].dtype == np.uint8
    assert pairs['user pair'][0].shape == (64, 96, 3)
    same = verification_pairs((50, 70), str(tmp_path / 'l.png'), str(tmp_path / 'r.png'))
    np.testing.assert_array_equal(same['user pair'][0], left)  # read as RGB, not resized at the engine size
    with pytest.raises(InputError, match='give both --left and --right'):
        verification_pairs((64, 96), str(tmp_path / 'l.png'))
    with pytest.raises(InputError, match="cannot read image '.*missing.png'"):
        verification_pairs((64, 96), str(tmp_path / 'missing.png'), str(tmp_path / 'r.png'))
