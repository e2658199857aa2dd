"""Our network on the released-layout fixture vs the official code's recorded output."""
import numpy as np
import pytest

from .helpers import fixture_model, reference

PARITY_TOLERANCE_PX = 0.01


@pytest.fixture(scope='module')
def model():
    return fixture_model()


@pytest.fixture(scope='module')
def official_run(model):
    data = reference()
    disparity = model.predict(data['left'], data['right'], valid_iters=int(data['valid_iters']),
                              max_disp=int(data['max_disp']))
    return data, disparity


def test_pth_matches_official_output(official_run):
    data, disparity = official_run
    assert disparity.dtype == np.float32 and disparity.shape == data['disparity'].shape
    error = np.abs(disparity - data['disparity'])
    print(f'max abs vs official: {error.max():.3e} px, mean {error.mean():.3e} px')
    assert error.max() <= PARITY_TOLERANCE_PX
    assert np.ptp(data['disparity']) > 10  # the reference is not a trivial constant map


def test_fixture_settings_are_the_recorded_ones(model):
    data = reference()
    assert (int(data['valid_iters']), int(data['max_disp'])) == (4, 192)
    assert model.args['max_disp'] == 416 and model.args['normalize'] is True
    assert model.pe_length == 26 and model.max_disp_limit == 416
    live = sum(p.numel() for p in model.network.parameters())
    assert live == 14_600_541  # the published "14.6 M" live parameters


def test_official_way_formulation_gives_the_same_disparity(model, official_run):
    data, disparity = official_run
    network = model.network
    network.formulation = 'reference'
    try:
        official_way = model.predict(data['left'], data['right'], valid_iters=4, max_disp=192)
    finally:
        network.formulation = 'fast'
    assert np.abs(official_way - disparity).max() <= 1e-3
    assert np.abs(official_way - data['disparity']).max() <= PARITY_TOLERANCE_PX


def test_iteration_count_changes_the_refinement(model, official_run):
    data, four = official_run
    three = model.predict(data['left'], data['right'], valid_iters=3, max_disp=192)
    assert np.isfinite(three).all()
    assert np.abs(three - four).max() > 1e-2           # every GRU step matters
    assert np.abs(three - data['disparity']).max() > PARITY_TOLERANCE_PX


def test_default_settings_are_the_official_demo_ones(model, official_run):
    data, _ = official_run
    default = model.predict(data['left'], data['right'])
    explicit = model.predict(data['left'], data['right'], valid_iters=8, max_disp=192)
    assert np.array_equal(default, explicit)


def test_batch_of_pairs_equals_single_pairs(model):
    import torch
    data = reference()
    left = torch.from_numpy(data['left'][:96, :128]).permute(2, 0, 1).float()
    right = torch.from_numpy(data['right'][:96, :128]).permute(2, 0, 1).float()
    pair_b = (torch.flip(left, [1]), torch.flip(right, [1]))
    with torch.inference_mode():
        batch = model.network(torch.stack([left, pair_b[0]]), torch.stack([right, pair_b[1]]), 2, 64)
        single_a = model.network(left[None], right[None], 2, 64)
        single_b = model.network(pair_b[0][None], pair_b[1][None], 2, 64)
    assert batch.shape == (2, 1, 96, 128)
    # BatchNorm in eval and InstanceNorm are per sample: batching must not mix pairs
    assert torch.allclose(batch[0], single_a[0], atol=1e-3)
    assert torch.allclose(batch[1], single_b[0], atol=1e-3)
