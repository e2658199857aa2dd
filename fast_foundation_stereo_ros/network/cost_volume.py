"""Cost volumes, all-pairs correlation and the 1-D geometry lookup.

Two formulations of each operation live here:

* the default ("fast") one, written for CPU speed and for ONNX/TensorRT
  export: no 6-D tensors, no unfold/flip, no einsum, no grid_sample; the
  group-wise correlation normalises each feature group once per pixel and then
  multiplies shifted copies one disparity at a time, so no expanded copy of
  the volume is ever materialised;
* a "reference" one that follows the official formulation literally
  (expand + pad/unfold/flip to 6-D, normalise the expanded volume, einsum,
  grid_sample). It exists so benchmarks and tests can compare against it.

Both give the same values up to float rounding (normalisation is per pixel,
so normalising before or after shifting is the same; shifted-in zeros stay 0).
"""
import torch
import torch.nn.functional as F

FORMULATIONS = ('fast', 'reference')


def _shift_right(x, shift):
    """x[..., w - shift] with zeros for w < shift (shift >= 0) along the last axis."""
    width = x.shape[-1]
    if shift == 0:
        return x
    if shift >= width:
        return torch.zeros_like(x)
    return F.pad(x[..., :width - shift], (shift, 0))


def group_correlation_volume(left, right, num_disp, num_groups, normalize=True):
    """GWC volume (B, G, D, H, W): mean-free dot product per channel group.

    V[g, d, h, w] = <l_g(h, w), r_g(h, w - d)>, with each group vector
    L2-normalised first when `normalize` (eps 1e-12, like F.normalize).
    """
    batch, channels, height, width = left.shape
    group_width = channels // num_groups
    dtype = left.dtype
    left = left.view(batch, num_groups, group_width, height, width)
    right = right.view(batch, num_groups, group_width, height, width)
    if normalize:
        left = F.normalize(left.float(), dim=2).to(dtype)
        right = F.normalize(right.float(), dim=2).to(dtype)
    slices = []
    for disparity in range(num_disp):
        if disparity >= width:
            slices.append(left.new_zeros(batch, num_groups, height, width))
            continue
        overlap = (left[..., disparity:] * right[..., :width - disparity]).sum(dim=2)
        slices.append(F.pad(overlap, (disparity, 0)))
    return torch.stack(slices, dim=2)


def concat_volume(left, right, num_disp):
    """Concatenation volume (B, 2C, D, H, W): [left broadcast over D, right shifted by d]."""
    batch, channels, height, width = left.shape
    left_part = left.unsqueeze(2).expand(batch, channels, num_disp, height, width)
    right_part = torch.stack([_shift_right(right, d) for d in range(num_disp)], dim=2)
    return torch.cat((left_part, right_part), dim=1)


def all_pairs_correlation(left, right):
    """Cosine similarity of every left pixel with every right pixel of its row.

    Returns (B, H, W1, 1, W2); a batched matmul ((B*H) x W1 x C @ C x W2).
    Always float32: these values feed the float32 disparity refinement.
    """
    left = F.normalize(left.float(), dim=1)
    right = F.normalize(right.float(), dim=1)
    batch, _, height, width1 = left.shape
    width2 = right.shape[-1]
    corr = torch.matmul(left.permute(0, 2, 3, 1), right.permute(0, 2, 1, 3))
    return corr.view(batch, height, width1, 1, width2)


def sample_taps_1d(values, centre, radius):
    """Linear interpolation of `values` (N, C, L) at centre + (-r..r) along L.

    Pixel-centre coordinates (align_corners=True): position p mixes entries
    floor(p) and floor(p) + 1 with weights (1 - frac, frac); entries outside
    [0, L-1] contribute zero. Because the 2r+1 taps are integer offsets of one
    centre (N, 1), they share one fraction and one gather of 2r+2 consecutive
    entries serves them all: half the gathers of a per-tap floor/ceil sampler
    and no grid_sample, so it exports to ONNX/TensorRT as a single
    GatherElements. Returns (N, C, 2r+1).
    """
    num, channels, length = values.shape
    lower = torch.floor(centre)
    frac = (centre - lower).unsqueeze(1)                                   # (N, 1, 1)
    steps = torch.arange(-radius, radius + 2, dtype=centre.dtype, device=centre.device)
    index = lower + steps.view(1, -1)                                      # (N, 2r+2)
    inside = ((index >= 0) & (index < length)).to(values.dtype).unsqueeze(1)
    index = index.clamp(0, length - 1).long().unsqueeze(1).expand(num, channels, -1)
    neighbours = torch.gather(values, 2, index) * inside
    return neighbours[..., :-1] * (1 - frac) + neighbours[..., 1:] * frac


# --------------------------------------------------------------------------------------
# Reference ("official-way") formulations: literal, memory hungry, not exportable.

def group_correlation_volume_reference(left, right, num_disp, num_groups, normalize=True):
    """GWC the way the official PyTorch builder writes it (6-D expand/unfold/flip)."""
    dtype = left.dtype
    batch, channels, height, width = left.shape
    group_width = channels // num_groups
    left_volume = left.unsqueeze(2).expand(batch, channels, num_disp, height, width)
    padded = F.pad(right, (num_disp - 1, 0, 0, 0))
    right_volume = torch.flip(padded.unfold(3, width, 1), [3]).permute(0, 1, 3, 2, 4)
    left_volume = left_volume.reshape(batch, num_groups, group_width, num_disp, height, width)
    right_volume = right_volume.reshape(batch, num_groups, group_width, num_disp, height, width)
    if normalize:
        left_volume = F.normalize(left_volume.float(), dim=2).to(dtype)
        right_volume = F.normalize(right_volume.float(), dim=2).to(dtype)
    return (left_volume * right_volume).sum(dim=2).contiguous()


def concat_volume_reference(left, right, num_disp):
    """Concat volume with pad/unfold/flip, as in the official builder."""
    batch, channels, height, width = left.shape
    left_volume = left.unsqueeze(2).expand(batch, channels, num_disp, height, width)
    padded = F.pad(right, (num_disp - 1, 0, 0, 0))
    right_volume = torch.flip(padded.unfold(3, width, 1), [3]).permute(0, 1, 3, 2, 4)
    return torch.cat((left_volume, right_volume), dim=1).contiguous()


def all_pairs_correlation_reference(left, right):
    """All-pairs correlation with einsum, as in the official geometry encoder."""
    batch, _, height, width1 = left.shape
    width2 = right.shape[-1]
    corr = torch.einsum('aijk,aijh->ajkh', F.normalize(left.float(), dim=1),
                        F.normalize(right.float(), dim=1))
    return corr.view(batch, height, width1, 1, width2)


def sample_taps_1d_reference(values, centre, radius):
    """Same sampling through grid_sample with y fixed (official `low_memory=0` path)."""
    num, channels, length = values.shape
    offsets = torch.arange(-radius, radius + 1, dtype=centre.dtype, device=centre.device)
    positions = offsets.view(1, -1) + centre
    x = 2 * positions / (length - 1) - 1
    grid = torch.stack([x, torch.zeros_like(x)], dim=-1).unsqueeze(1)  # (N, 1, K, 2)
    sampled = F.grid_sample(values.unsqueeze(2), grid, align_corners=True)
    return sampled.view(num, channels, -1)


# --------------------------------------------------------------------------------------

class GeometryEncoding:
    """Two-level lookup volume for the GRU (FFS `Combined_Geo_Encoding_Volume`).

    Holds, per 1/4-res pixel, the aggregated cost volume along disparity and
    the all-pairs correlation along the right-image row, plus average-pooled
    coarser levels. `lookup(disp)` samples 2r+1 taps around the current
    disparity in every level: [geo_0 (C*(2r+1), channel-major), corr_0 (2r+1),
    geo_1, corr_1, ...].
    """

    def __init__(self, left, right, cost_volume, num_levels, radius, formulation='fast'):
        self.num_levels = int(num_levels)
        self.radius = int(radius)
        fast = formulation == 'fast'
        correlate = all_pairs_correlation if fast else all_pairs_correlation_reference
        self.sample = sample_taps_1d if fast else sample_taps_1d_reference
        corr = correlate(left.float(), right.float())
        batch, height, width, _, width2 = corr.shape
        _, channels, disp, _, _ = cost_volume.shape
        self.shape = (batch, height, width)
        geo = cost_volume.float().permute(0, 3, 4, 1, 2).reshape(batch * height * width, channels, 1, disp)
        corr = corr.reshape(batch * height * width, 1, 1, width2)
        self.geo_pyramid = [geo]
        self.corr_pyramid = [corr]
        for _ in range(self.num_levels - 1):
            geo = F.avg_pool2d(geo, [1, 2], stride=[1, 2])
            corr = F.avg_pool2d(corr, [1, 2], stride=[1, 2])
            self.geo_pyramid.append(geo)
            self.corr_pyramid.append(corr)
        self.columns = torch.arange(width, dtype=torch.float32, device=left.device).view(
            1, 1, width, 1).repeat(batch, height, 1, 1).reshape(-1, 1)

    def lookup(self, disp):
        """Features (B, levels*(2r+1)*(C+1), H, W) around the float32 disparity `disp`."""
        batch, height, width = self.shape
        flat_disp = disp.reshape(-1, 1)
        pieces = []
        for level in range(self.num_levels):
            scale = 2 ** level
            # disparity taps in the cost volume; matching columns in the right row
            geo = self.sample(self.geo_pyramid[level].squeeze(2), flat_disp / scale, self.radius)
            column = self.columns / scale - flat_disp / scale
            corr = self.sample(self.corr_pyramid[level].squeeze(2), column, self.radius)
            pieces.append(geo.reshape(batch, height, width, -1))
            pieces.append(corr.reshape(batch, height, width, -1))
        return torch.cat(pieces, dim=-1).permute(0, 3, 1, 2)
