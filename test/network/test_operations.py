"""Unit checks of the exportable operations against the literal official formulation."""
import math

import pytest
import torch
import torch.nn.functional as F

from fast_foundation_stereo_ros.network import cost_volume as cv
from fast_foundation_stereo_ros.network.blocks import HeadsAsSequenceAttention
from fast_foundation_stereo_ros.network.fast_foundation_stereo import convex_upsample


def _features(seed, channels=16, height=5, width=12):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, channels, height, width, generator=generator)


@pytest.mark.parametrize('normalize', [True, False])
def test_gwc_volume_equals_unfold_formulation(normalize):
    left, right = _features(0), _features(1)
    fast = cv.group_correlation_volume(left, right, num_disp=8, num_groups=4, normalize=normalize)
    official = cv.group_correlation_volume_reference(left, right, 8, 4, normalize=normalize)
    assert fast.shape == (2, 4, 8, 5, 12)
    assert torch.allclose(fast, official, atol=1e-6, rtol=1e-6)
    # shifted-in columns are exactly zero, real ones are not
    assert torch.all(fast[:, :, 3, :, :3] == 0) and torch.all(fast[:, :, 3, :, 3:] != 0)


def test_gwc_normalisation_changes_values():
    left, right = _features(0) * 3.0, _features(1) * 3.0
    raw = cv.group_correlation_volume(left, right, 4, 4, normalize=False)
    unit = cv.group_correlation_volume(left, right, 4, 4, normalize=True)
    assert unit.abs().max() <= 1.0 + 1e-6 < raw.abs().max()


def test_gwc_handles_disparity_beyond_width():
    left, right = _features(2, width=6), _features(3, width=6)
    fast = cv.group_correlation_volume(left, right, num_disp=8, num_groups=2)
    official = cv.group_correlation_volume_reference(left, right, 8, 2)
    assert torch.allclose(fast, official, atol=1e-6)
    assert torch.all(fast[:, :, 6:] == 0)


def test_concat_volume_equals_unfold_formulation():
    left, right = _features(4, channels=3), _features(5, channels=3)
    fast = cv.concat_volume(left, right, 7)
    assert torch.equal(fast, cv.concat_volume_reference(left, right, 7))
    assert torch.equal(fast[:, 3:, 2, :, 2:], right[..., :-2])  # right shifted by d = 2


def test_all_pairs_correlation_equals_einsum():
    left, right = _features(6), _features(7)
    fast = cv.all_pairs_correlation(left, right)
    assert fast.shape == (2, 5, 12, 1, 12)
    assert torch.allclose(fast, cv.all_pairs_correlation_reference(left, right), atol=1e-6)
    assert fast.abs().max() <= 1 + 1e-5  # cosine similarities
    same = cv.all_pairs_correlation(left, left)
    assert torch.allclose(same.diagonal(dim1=2, dim2=4), torch.ones(2, 5, 1, 12), atol=1e-5)


def _naive_taps(values, centre, radius):
    """Per-tap floor/ceil interpolation, zero outside, written as plainly as possible."""
    num, channels, length = values.shape
    out = torch.zeros(num, channels, 2 * radius + 1)
    for n in range(num):
        for k, offset in enumerate(range(-radius, radius + 1)):
            position = float(centre[n, 0]) + offset
            lower = math.floor(position)
            for index, weight in ((lower, 1 - (position - lower)), (lower + 1, position - lower)):
                if 0 <= index < length:
                    out[n, :, k] += weight * values[n, :, index]
    return out


def test_tap_sampler_matches_plain_interpolation_and_grid_sample():
    generator = torch.Generator().manual_seed(8)
    values = torch.randn(40, 3, 10, generator=generator)
    centre = torch.rand(40, 1, generator=generator) * 16 - 3  # taps reach past both ends
    centre[0, 0], centre[1, 0] = 4.0, -0.5                     # grid point, half outside
    taps = cv.sample_taps_1d(values, centre, radius=2)
    assert taps.shape == (40, 3, 5)
    assert torch.allclose(taps, _naive_taps(values, centre, 2), atol=1e-5)
    assert torch.allclose(taps, cv.sample_taps_1d_reference(values, centre, 2), atol=1e-4)
    assert torch.equal(taps[0], values[0, :, 2:7])               # integer centre: exact copies
    assert torch.allclose(taps[1, :, 2], 0.5 * values[1, :, 0])  # -0.5: half of entry 0
    far = cv.sample_taps_1d(values, torch.full((40, 1), -20.0), radius=2)
    assert torch.all(far == 0)


def test_geometry_lookup_layout():
    """Channels: [geo L0 (C x taps, channel-major), corr L0, geo L1, corr L1]."""
    generator = torch.Generator().manual_seed(9)
    left, right = torch.randn(1, 8, 2, 6, generator=generator), torch.randn(1, 8, 2, 6, generator=generator)
    volume = torch.randn(1, 3, 8, 2, 6, generator=generator)
    encoding = cv.GeometryEncoding(left, right, volume, num_levels=2, radius=1)
    disp = torch.full((1, 1, 2, 6), 2.0)
    features = encoding.lookup(disp)
    assert features.shape == (1, 2 * 3 * (3 + 1), 2, 6)
    # geo level 0, channel c, tap k sits at c*3+k and equals volume[c, 2 + k - 1]
    assert torch.allclose(features[0, 1 * 3 + 2, 1, 4], volume[0, 1, 3, 1, 4])
    corr = cv.all_pairs_correlation(left, right)[0, 1, 4, 0]
    assert torch.allclose(features[0, 9 + 1, 1, 4], corr[4 - 2])


def test_heads_as_sequence_attention_never_mixes_disparities():
    """The released attention attends across heads within a token, not across D."""
    torch.manual_seed(0)
    attention = HeadsAsSequenceAttention(*(torch.nn.Linear(8, 8) for _ in range(4)), num_heads=2)
    tokens = torch.randn(3, 6, 8)
    perturbed = tokens.clone()
    perturbed[:, 4:] += 10.0
    out, out_perturbed = attention(tokens), attention(perturbed)
    assert torch.equal(out[:, :4], out_perturbed[:, :4])
    assert not torch.allclose(out[:, 4:], out_perturbed[:, 4:])
    # and it is not standard multi-head attention over disparities
    q = attention.q_proj(tokens).view(3, 6, 2, 4).transpose(1, 2)
    k = attention.k_proj(tokens).view(3, 6, 2, 4).transpose(1, 2)
    v = attention.v_proj(tokens).view(3, 6, 2, 4).transpose(1, 2)
    standard = attention.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(3, 6, 8))
    assert not torch.allclose(out, standard, atol=1e-3)


def test_convex_upsample_equals_unfold_definition():
    generator = torch.Generator().manual_seed(10)
    disp = torch.randn(2, 1, 3, 4, generator=generator)
    weights = torch.softmax(torch.randn(2, 9, 12, 16, generator=generator), 1)
    unfolded = F.unfold(disp, 3, 1, 1).reshape(2, 9, 3, 4)
    expected = (F.interpolate(unfolded, (12, 16), mode='nearest') * weights).sum(1, keepdim=True)
    assert torch.equal(convex_upsample(disp, weights), expected)
    constant = convex_upsample(torch.full((1, 1, 3, 4), 5.0), torch.full((1, 9, 12, 16), 1 / 9))
    assert math.isclose(constant[0, 0, 5, 7].item(), 5.0, rel_tol=1e-6)  # interior: plain average


@pytest.mark.parametrize('kernel,padding,output_padding,bias', [
    (4, 1, 0, False),            # hourglass up-sampling deconvolutions
    (3, 1, 1, False),            # post32_to_16 (k3, output_padding 1)
    (2, 0, 0, True),
    ((4, 3, 4), (1, 1, 1), (0, 1, 0), True),
])
def test_subpixel_transposed_conv_equals_torch(kernel, padding, output_padding, bias):
    from fast_foundation_stereo_ros.network.subpixel_deconv import SubPixelConvTranspose3d
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose3d(6, 5, kernel, stride=2, padding=padding,
                                         output_padding=output_padding, bias=bias)
    subpixel = SubPixelConvTranspose3d(6, 5, kernel, stride=2, padding=padding,
                                       output_padding=output_padding, bias=bias)
    subpixel.load_state_dict(reference.state_dict())
    assert subpixel._subpixel_applies()
    volume = torch.randn(2, 6, 5, 7, 9)
    with torch.no_grad():
        expected, actual = reference(volume), subpixel(volume)
    assert actual.shape == expected.shape == (2, 5, 10, 14, 18)
    assert (actual - expected).abs().max().item() < 1e-5


def test_subpixel_transposed_conv_falls_back_where_it_does_not_apply():
    from fast_foundation_stereo_ros.network.subpixel_deconv import SubPixelConvTranspose3d
    torch.manual_seed(1)
    odd_size = SubPixelConvTranspose3d(3, 2, 3, stride=2, padding=1)      # output 2n - 1
    assert not odd_size._subpixel_applies()
    reference = torch.nn.ConvTranspose3d(3, 2, 3, stride=2, padding=1)
    reference.load_state_dict(odd_size.state_dict())
    volume = torch.randn(1, 3, 4, 5, 6)
    with torch.no_grad():
        assert torch.equal(odd_size(volume), reference(volume))
