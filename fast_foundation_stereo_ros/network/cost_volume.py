"""Cost volumes, all-pairs correlation and the 1-D geometry lookup.

Three formulations live here, selected by `FastFoundationStereoNet.formulation`:

* "fast" (eager default): no 6-D tensors, no unfold/flip, no einsum, no
  grid_sample, no pooling over a (B*H*W)-batched tensor. The GWC volume sums
  the products of shifted copies one disparity at a time, in the official
  reduction order, so the eager network keeps the official rounding. The
  concat volume is a skew of D copies of the zero-padded right rows; the
  lookup keeps every pyramid level side by side (zero-separated) in one table,
  so each GRU step samples all levels with one GatherElements per volume
  (geometry, correlation); both are bit-identical to the literal form;
* "compact" (what ONNX export traces): "fast" with the GWC volume as one
  batched row matmul (every left column against every right column of the
  same row, per group) whose band of columns w - d is read out by a skewed
  reshape: a few nodes instead of a slice/mul/reduce/pad chain per disparity. The matmul sums a group's channels
  in another order (about 1e-7 relative);
* "reference": the official formulation written literally (expand +
  pad/unfold/flip to 6-D, normalise the expanded volume, einsum, per-level
  average pooling over the (B*H*W) batch, grid_sample), kept so benchmarks
  and tests can compare against it.

All give the same values up to float rounding (normalisation is per pixel,
so normalising before or after shifting is the same; shifted-in zeros stay
0); test/network/test_operations.py and test_compact_ops.py check each
operation, test/loading/test_reference_parity.py the whole network.
"""
import torch
import torch.nn.functional as F

FORMULATIONS = ('fast', 'compact', 'reference')


def group_correlation_volume(left, right, num_disp, num_groups, normalize=True):
    """GWC volume (B, G, D, H, W): mean-free dot product per channel group.

    V[g, d, h, w] = <l_g(h, w), r_g(h, w - d)>, with each group vector
    L2-normalised first when `normalize` (eps 1e-12, like F.normalize).
    Products are summed per disparity over the group's channels, in the same
    order as the official reduction, so the eager network keeps the official
    rounding; the export graph uses `group_correlation_volume_matmul`.
    """
    batch, channels, height, width = left.shape
    left, right = _normalized_groups(left, right, num_groups, normalize)
    slices = []
    for disparity in range(num_disp):
        if disparity >= width:
            slices.append(left.new_zeros(batch, num_groups, height, width))
            continue
        overlap = (left[..., disparity:] * right[..., :width - disparity]).sum(dim=2)
        slices.append(F.pad(overlap, (disparity, 0)))
    return torch.stack(slices, dim=2)


def _normalized_groups(left, right, num_groups, normalize):
    """(B, G, C/G, H, W) views of both features, each group vector L2-normalised when `normalize`."""
    batch, channels, height, width = left.shape
    group_width = channels // num_groups
    dtype = left.dtype
    left = left.view(batch, num_groups, group_width, height, width)
    right = right.view(batch, num_groups, group_width, height, width)
    if normalize:
        left = F.normalize(left.float(), dim=2).to(dtype)
        right = F.normalize(right.float(), dim=2).to(dtype)
    return left, right


def group_correlation_volume_matmul(left, right, num_disp, num_groups, normalize=True):
    """The GWC volume of `group_correlation_volume` as a few tensor ops (the export form).

    One matmul gives every left column against every right column of the
    row, the right side padded with D zero columns in front:
    M[w, j] = <l(w), r(j - D)> (0 for j < D), shape (W + 1, W + D) with a
    zero left column appended. Flattened and read with row length W + D + 1, row w holds M[w, w - d + D] = V[d, w] at
    column D - d (a skew), so one slice takes the whole band, zeros for w < d
    included; a gather along the disparity axis (contiguous H x W blocks)
    puts d in order. No per-element gather. The matmul sums a group's
    channels in another order than the per-disparity form (about 1e-7
    relative difference, test/network/test_compact_ops.py).
    """
    batch, channels, height, width = left.shape
    left, right = _normalized_groups(left, right, num_groups, normalize)
    # one extra (zero) left column makes the flat product long enough for the skewed read
    left = F.pad(left, (0, 1))
    right = F.pad(right, (num_disp, 0))
    rows = torch.matmul(left.permute(0, 1, 3, 4, 2), right.permute(0, 1, 3, 2, 4))   # (B, G, H, W + 1, W + D)
    skewed = rows.reshape(batch, num_groups, height, -1)[..., :width * (width + num_disp + 1)]
    skewed = skewed.view(batch, num_groups, height, width, width + num_disp + 1)
    band = skewed[..., 1:num_disp + 1].permute(0, 1, 4, 2, 3)                          # column D - d
    reverse = torch.arange(num_disp - 1, -1, -1, device=band.device)
    return band.index_select(2, reverse)


def concat_volume(left, right, num_disp):
    """Concatenation volume (B, 2C, D, H, W): [left broadcast over D, right shifted by d].

    The right half is a skew of D copies of each right row padded with D
    zeros in front and one behind (period P = W + D + 1): read with row
    length P - 1, copy d starts d entries later, so row d, column w + D holds
    r(w - d), or a padding zero for w < d. Only pad, tile, slices and
    reshapes, all contiguous (no per-element gather); bit-identical to the
    literal formulation.
    """
    batch, channels, height, width = left.shape
    left_part = left.unsqueeze(2).expand(batch, channels, num_disp, height, width)
    padded = F.pad(right, (num_disp, 1))
    tiled = padded.repeat(1, 1, 1, num_disp)[..., :num_disp * (width + num_disp)]
    right_part = tiled.reshape(batch, channels, height, num_disp, width + num_disp)[..., num_disp:]
    return torch.cat((left_part, right_part.permute(0, 1, 3, 2, 4)), dim=1)


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


def halve_last_axis(values):
    """Mean of consecutive pairs along the last axis (drops an odd last entry).

    Equals F.avg_pool2d(kernel [1, 2], stride [1, 2]) of the official pyramid,
    written as a reshape + mean so no pooling layer sees a (B*H*W) batch.
    """
    pairs = values.shape[-1] // 2
    return values[..., :2 * pairs].reshape(*values.shape[:-1], pairs, 2).mean(-1)


class TapTable:
    """Rows of 1-D signals stored side by side so one GatherElements samples them all.

    `signals` is a list of (N, C_k, L_k) tensors (any channel counts). Every
    channel of every signal becomes one "group" of the flat (N, T) table,
    stored with one zero on either side, so a tap index clamped to [-1, L_k]
    reads a real entry or a zero: entries outside [0, L_k - 1] contribute
    zero, as grid_sample with zero padding and align_corners=True does.
    `centre_of_group` names, per signal, which column of the `centres`
    argument of `sample` its groups are sampled around.
    """

    def __init__(self, signals, centre_of_group):
        rows = signals[0].shape[0]
        self.table = torch.cat([F.pad(signal, (1, 1)).reshape(rows, -1) for signal in signals], dim=1)
        device, dtype = self.table.device, self.table.dtype
        upper = [0] * (max(centre_of_group) + 1)
        starts, centres, offset = [], [], 0
        for signal, centre in zip(signals, centre_of_group):
            channels, length = signal.shape[1:]
            upper[centre] = length
            for channel in range(channels):
                starts.append(offset + channel * (length + 2) + 1)
                centres.append(centre)
            offset += channels * (length + 2)
        # per centre: highest tap index that reads the zero behind the signal
        self.upper = torch.tensor(upper, dtype=dtype, device=device).view(1, -1, 1)
        # per group: which centre it follows, and where its signal starts in the table
        self.group_centre = torch.tensor(centres, dtype=torch.long, device=device)
        self.starts = torch.tensor(starts, dtype=torch.long, device=device).view(1, -1, 1)

    def sample(self, centres, radius):
        """Linear interpolation at (-r..r) around each group's centre: (N, groups, 2r+1).

        `centres` is (N, K); group g is sampled around centres[:, group_centre[g]].
        The 2r+1 taps of a group are integer offsets of one centre, so they
        share one fraction, and the 2r+2 entries floor(c) - r .. floor(c) + r + 1
        serve them all. Index arithmetic runs per centre (N, K, 2r+2); one
        integer gather spreads it over the groups, and every tap of every
        group comes from one GatherElements.
        """
        rows = centres.shape[0]
        lower = torch.floor(centres)
        frac = (centres - lower)[:, self.group_centre].unsqueeze(-1)          # (N, groups, 1)
        steps = torch.arange(-radius, radius + 2, dtype=centres.dtype, device=centres.device)
        taps = torch.minimum(torch.maximum(lower.unsqueeze(-1) + steps, -torch.ones_like(self.upper)), self.upper)
        index = taps.long()[:, self.group_centre] + self.starts               # (N, groups, 2r+2)
        neighbours = torch.gather(self.table, 1, index.view(rows, -1)).view(*index.shape)
        return neighbours[..., :-1] * (1 - frac) + neighbours[..., 1:] * frac


def sample_taps_1d(values, centre, radius):
    """Linear interpolation of `values` (N, C, L) at centre (N, 1) + (-r..r) along L: (N, C, 2r+1).

    Pixel-centre coordinates (align_corners=True): position p mixes entries
    floor(p) and floor(p) + 1 with weights (1 - frac, frac); entries outside
    [0, L-1] contribute zero (one level of `TapTable`).
    """
    return TapTable([values], [0]).sample(centre, radius)


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
    the all-pairs correlation along the right-image row, plus coarser levels
    (means of consecutive pairs, as the official average pooling).
    `lookup(disp)` samples 2r+1 taps around the current disparity in every
    level: [geo_0 (C*(2r+1), channel-major), corr_0 (2r+1), geo_1, corr_1, ...].

    The "fast" formulation keeps all levels of a volume in one `TapTable`, so
    a GRU step is one gather per volume; "reference" pools over the (B*H*W)
    batch and samples with grid_sample per level, as the official code does.
    """

    def __init__(self, left, right, cost_volume, num_levels, radius, formulation='fast'):
        self.num_levels = int(num_levels)
        self.radius = int(radius)
        self.fast = formulation != 'reference'
        correlate = all_pairs_correlation if self.fast else all_pairs_correlation_reference
        corr = correlate(left.float(), right.float())
        batch, height, width, _, width2 = corr.shape
        _, channels, disp, _, _ = cost_volume.shape
        self.shape = (batch, height, width)
        geo = cost_volume.float().permute(0, 3, 4, 1, 2).reshape(batch * height * width, channels, disp)
        corr = corr.reshape(batch * height * width, 1, width2)
        self.columns = torch.arange(width, dtype=torch.float32, device=left.device).view(
            1, 1, width, 1).repeat(batch, height, 1, 1).reshape(-1, 1)
        # lookup centres = disp * disp_gain + column_offset, per level k: columns 2k (disparity
        # taps: disp / 2**k) and 2k + 1 (right-row columns: (column - disp) / 2**k), exact because
        # the scales are powers of two
        scales = torch.tensor([0.5 ** level for level in range(self.num_levels)], dtype=torch.float32,
                              device=left.device)
        self.disp_gain = torch.stack([scales, -scales], dim=1).reshape(1, -1)
        self.column_offset = self.columns * torch.stack([torch.zeros_like(scales), scales], dim=1).reshape(1, -1)
        geo_levels, corr_levels = [geo], [corr]
        for _ in range(self.num_levels - 1):
            if self.fast:
                geo, corr = halve_last_axis(geo), halve_last_axis(corr)
            else:
                geo = F.avg_pool2d(geo.unsqueeze(2), [1, 2], stride=[1, 2]).squeeze(2)
                corr = F.avg_pool2d(corr.unsqueeze(2), [1, 2], stride=[1, 2]).squeeze(2)
            geo_levels.append(geo)
            corr_levels.append(corr)
        if self.fast:
            # signal order = output channel order: [geo_0 channels, corr_0, geo_1, corr_1, ...];
            # centres column 2k is the disparity at level k, 2k + 1 the right-row column
            signals = [signal for pair in zip(geo_levels, corr_levels) for signal in pair]
            self.table = TapTable(signals, list(range(2 * self.num_levels)))
        else:
            self.geo_pyramid, self.corr_pyramid = geo_levels, corr_levels

    def lookup(self, disp):
        """Features (B, levels*(2r+1)*(C+1), H, W) around the float32 disparity `disp`."""
        if not self.fast:
            return self._lookup_reference(disp)
        batch, height, width = self.shape
        # per level: disparity taps in the cost volume, matching columns in the right row
        centres = disp.reshape(-1, 1) * self.disp_gain + self.column_offset
        taps = self.table.sample(centres, self.radius)
        return taps.reshape(batch, height, width, -1).permute(0, 3, 1, 2)

    def _lookup_reference(self, disp):
        batch, height, width = self.shape
        flat_disp = disp.reshape(-1, 1)
        pieces = []
        for level in range(self.num_levels):
            scale = 2 ** level
            geo = sample_taps_1d_reference(self.geo_pyramid[level], flat_disp / scale, self.radius)
            column = self.columns / scale - flat_disp / scale
            corr = sample_taps_1d_reference(self.corr_pyramid[level], column, self.radius)
            pieces.append(geo.reshape(batch, height, width, -1))
            pieces.append(corr.reshape(batch, height, width, -1))
        return torch.cat(pieces, dim=-1).permute(0, 3, 1, 2)
