"""Compact cost volumes, one-gather lookup and 1x1-conv ConvNeXt MLP vs the literal (official) formulations."""
import pytest
import torch

from fast_foundation_stereo_ros.network import cost_volume as cv
from fast_foundation_stereo_ros.network.blocks import ConvNeXtStyleEncoder


def _pair(seed, channels, height, width, batch=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, channels, height, width, generator=generator),
            torch.randn(batch, channels, height, width, generator=generator))


@pytest.mark.parametrize('channels, groups, height, width, num_disp, normalize', [
    (16, 4, 5, 12, 8, True),
    (24, 8, 3, 20, 12, False),
    (32, 8, 4, 10, 16, True),     # num_disp > width: the extra disparities are all zero
    (8, 1, 2, 48, 48, True),      # max_disp 192 at 1/4 resolution
])
def test_matmul_gwc_volume_equals_reference(channels, groups, height, width, num_disp, normalize):
    left, right = _pair(channels + width, channels, height, width, batch=2)
    compact = cv.group_correlation_volume_matmul(left, right, num_disp, groups, normalize)
    official = cv.group_correlation_volume_reference(left, right, num_disp, groups, normalize)
    per_disparity = cv.group_correlation_volume(left, right, num_disp, groups, normalize)
    assert compact.shape == official.shape == (2, groups, num_disp, height, width)
    assert (compact - official).abs().max().item() < 2e-6
    assert torch.equal(per_disparity, official) or (per_disparity - official).abs().max().item() < 1e-6
    for disparity in range(min(num_disp, width)):
        assert torch.all(compact[:, :, disparity, :, :disparity] == 0)
    assert torch.all(compact[:, :, width:] == 0)


@pytest.mark.parametrize('channels, width, num_disp', [(3, 12, 7), (5, 6, 9), (8, 40, 48)])
def test_skewed_concat_volume_is_bit_identical(channels, width, num_disp):
    left, right = _pair(width, channels, 3, width)
    assert torch.equal(cv.concat_volume(left, right, num_disp), cv.concat_volume_reference(left, right, num_disp))


def test_halving_equals_average_pooling():
    values = torch.randn(30, 4, 13)
    pooled = torch.nn.functional.avg_pool2d(values.unsqueeze(2), [1, 2], stride=[1, 2]).squeeze(2)
    assert torch.equal(cv.halve_last_axis(values), pooled)


@pytest.mark.parametrize('levels, radius, num_disp, width', [(2, 4, 48, 40), (3, 2, 24, 17), (1, 1, 8, 6)])
def test_one_gather_lookup_equals_grid_sample_pyramid_and_per_level_sampling(levels, radius, num_disp, width):
    """Fast (one table, one gather) vs reference (pooled batch, grid_sample per level), incl. taps outside."""
    generator = torch.Generator().manual_seed(levels * 100 + width)
    left, right = torch.randn(1, 8, 3, width, generator=generator), torch.randn(1, 8, 3, width, generator=generator)
    volume = torch.randn(1, 5, num_disp, 3, width, generator=generator)
    disp = torch.rand(1, 1, 3, width, generator=generator) * (num_disp + 8) - 4    # some centres past both ends
    disp[0, 0, 0, :3] = torch.tensor([0.0, 2.0, -0.5])
    fast = cv.GeometryEncoding(left, right, volume, levels, radius, 'fast').lookup(disp)
    official = cv.GeometryEncoding(left, right, volume, levels, radius, 'reference').lookup(disp)
    assert fast.shape == official.shape == (1, levels * (2 * radius + 1) * (5 + 1), 3, width)
    assert (fast - official).abs().max().item() < 1e-5     # grid_sample rounds its weights differently
    literal = cv.GeometryEncoding(left, right, volume, levels, radius, 'fast')
    per_level = torch.cat([
        torch.cat([cv.sample_taps_1d(literal_level, centre, radius).reshape(3 * width, -1)
                   for literal_level, centre in ((geo, disp.reshape(-1, 1) / 2 ** level),
                                                 (corr, (literal.columns - disp.reshape(-1, 1)) / 2 ** level))],
                  dim=1)
        for level, (geo, corr) in enumerate(zip(*_pyramids(literal, left, right, volume, levels)))], dim=1)
    assert torch.equal(fast[0].permute(1, 2, 0).reshape(3 * width, -1), per_level)


def _pyramids(encoding, left, right, volume, levels):
    """Per-level geometry and correlation rows, pooled with avg_pool2d (the official pyramid)."""
    batch, channels, disp, height, width = volume.shape
    geo = volume.permute(0, 3, 4, 1, 2).reshape(-1, channels, disp)
    corr = cv.all_pairs_correlation(left, right).reshape(batch * height * width, 1, -1)
    geos, corrs = [geo], [corr]
    for _ in range(levels - 1):
        geo = torch.nn.functional.avg_pool2d(geo.unsqueeze(2), [1, 2], stride=[1, 2]).squeeze(2)
        corr = torch.nn.functional.avg_pool2d(corr.unsqueeze(2), [1, 2], stride=[1, 2]).squeeze(2)
        geos.append(geo)
        corrs.append(corr)
    return geos, corrs


@pytest.mark.parametrize('with_gamma', [True, False])
def test_convnext_block_as_1x1_convolutions_equals_the_channels_last_mlp(with_gamma):
    """The compact (export) form of the ConvNeXt-style block: same output up to float rounding."""
    torch.manual_seed(0)
    channels = 12
    block = ConvNeXtStyleEncoder(torch.nn.Conv2d(channels, channels, 7, padding=3, groups=channels),
                                 torch.nn.Identity(), torch.nn.Linear(channels, 4 * channels), torch.nn.GELU(),
                                 torch.nn.Linear(4 * channels, channels),
                                 torch.rand(channels) + 0.5 if with_gamma else None).eval()
    x = torch.randn(2, channels, 9, 11)
    with torch.no_grad():
        expected = block(x)
        block.pointwise_as_conv = True
        found = block(x)
    assert found.shape == expected.shape and (found - expected).abs().max().item() < 1e-5
