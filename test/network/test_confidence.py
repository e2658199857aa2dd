"""The network's confidence output: the window measure, its range, and an unchanged disparity."""
import numpy as np
import torch

from fast_foundation_stereo_ros.network.fast_foundation_stereo import classifier_confidence

from ..loading.helpers import fixture_model, reference


def _distribution(weights_by_bin, bins=16):
    prob = torch.zeros(1, bins, 1, 1)
    for index, weight in weights_by_bin.items():
        prob[0, index] = weight
    return prob


def test_mass_split_between_the_two_bins_around_the_disparity_is_fully_confident():
    prob = _distribution({6: 0.5, 7: 0.5})
    assert classifier_confidence(prob, torch.full((1, 1, 1, 1), 6.5)).item() == 1.0


def test_mass_inside_one_bin_counts_fully_and_fades_out_to_one_and_a_half_bins():
    prob = _distribution({4: 0.25, 6: 0.5, 8: 0.25})
    disparity = torch.full((1, 1, 1, 1), 6.0)
    # bins 4 and 8 are 2 bins away: outside the window, only bin 6 counts
    assert classifier_confidence(prob, disparity).item() == 0.5
    shifted = torch.full((1, 1, 1, 1), 6.75)   # bin 8 is 1.25 bins away: half weight
    assert abs(classifier_confidence(prob, shifted).item() - (0.5 + 0.125)) < 1e-6


def test_flat_distribution_scores_low():
    bins = 48
    prob = torch.full((1, bins, 1, 1), 1.0 / bins)
    score = classifier_confidence(prob, torch.full((1, 1, 1, 1), 20.3)).item()
    assert abs(score - 2.4 / bins) < 1e-6   # bins 20, 21 in full, 19 (1.3 away) at 0.4, 22 (1.7) at 0


def test_fixture_confidence_range_and_disparity_bit_identical():
    model = fixture_model()
    data = reference()
    left, right = data['left'], data['right']
    iters, max_disp = int(data['valid_iters']), int(data['max_disp'])
    plain = model.predict(left, right, valid_iters=iters, max_disp=max_disp)
    disparity, confidence = model.predict_with_confidence(left, right, valid_iters=iters, max_disp=max_disp)
    assert np.array_equal(plain, disparity)        # bit-identical, so official parity is untouched
    assert confidence.shape == disparity.shape == left.shape[:2]
    assert confidence.dtype == np.float32
    assert np.isfinite(confidence).all()
    assert confidence.min() >= 0.0 and confidence.max() <= 1.0
    assert confidence.std() > 1e-4                  # a per-pixel map, not a constant


def test_network_returns_a_single_tensor_unless_asked():
    model = fixture_model()
    left = torch.zeros(1, 3, 64, 96)
    with torch.inference_mode():
        single = model.network(left, left, 1, 64)
        pair = model.network(left, left, 1, 64, return_confidence=True)
    assert isinstance(single, torch.Tensor) and single.shape == (1, 1, 64, 96)
    assert len(pair) == 2 and pair[1].shape == (1, 1, 64, 96) and torch.equal(pair[0], single)
