"""Transposed 3-D convolution computed as eight ordinary convolutions.

A stride-2 transposed convolution writes each output parity class (even or
odd index along D, H and W) from a fixed subset of kernel taps, so it equals
eight small ordinary convolutions whose outputs are interleaved ("sub-pixel"
form). Same multiply-adds, same parameters and state-dict names, results equal
up to float rounding order. Why bother: ONNX Runtime's CPU ConvTranspose for
3-D volumes runs at ~6 GMAC/s against ~50 GMAC/s for its Conv (one
hourglass deconvolution took a quarter of the whole network), and PyTorch's
CPU path is ~15 % faster too. The interleave is pure data movement in four
ops (Concat, Reshape, DepthToSpace, Reshape) on tensors of at most 5
dimensions, which every TensorRT version accepts
(test/network/test_operations.py compares with nn.ConvTranspose3d).
"""
import torch
import torch.nn.functional as F
from torch import nn


def _parity_taps(kernel, padding, parity):
    """(first input offset, kernel indices in conv order) for one output parity.

    Output o = 2*m + parity receives x[m + d] * w[k] whenever o = 2*(m + d) - padding + k.
    """
    offsets = [(parity + padding - k) // 2 for k in range(kernel) if (parity + padding - k) % 2 == 0]
    first = min(offsets)
    indices = [parity + padding - 2 * d for d in range(first, max(offsets) + 1)]
    return first, indices


class SubPixelConvTranspose3d(nn.ConvTranspose3d):
    """nn.ConvTranspose3d whose forward uses the sub-pixel form where it applies."""

    def _subpixel_applies(self):
        return (tuple(self.stride) == (2, 2, 2) and tuple(self.dilation) == (1, 1, 1) and self.groups == 1
                and self.padding_mode == 'zeros'
                and all(k >= 2 and k + op - 2 * p == 2   # output size exactly twice the input
                        for k, p, op in zip(self.kernel_size, self.padding, self.output_padding)))

    def forward(self, x, output_size=None):
        if output_size is not None or not self._subpixel_applies():
            return super().forward(x, output_size)
        batch, _, depth, height, width = x.shape
        parts = [self._parity_output(x, (d, h, w)) for d in (0, 1) for h in (0, 1) for w in (0, 1)]
        # (B, C, D, 8H, W) in memory is (B*C*D, d parity, 4 (h, w) parities, H, W): the (h, w)
        # parities become the 2x2 pixel blocks of a pixel shuffle, the d parity the odd depths
        stacked = torch.cat(parts, dim=3).reshape(-1, 4, height, width)
        shuffled = F.pixel_shuffle(stacked, 2)                                 # (B*C*D*2, 1, 2H, 2W)
        return shuffled.reshape(batch, self.out_channels, 2 * depth, 2 * height, 2 * width)

    def _parity_output(self, x, parity):
        """Outputs of one parity class at input resolution (B, Cout, D, H, W)."""
        firsts, weight = [], self.weight     # (Cin, Cout, kd, kh, kw)
        for axis, (kernel, padding, bit) in enumerate(zip(self.kernel_size, self.padding, parity)):
            first, indices = _parity_taps(kernel, padding, bit)
            firsts.append((first, len(indices)))
            weight = weight.index_select(2 + axis, torch.tensor(indices, device=weight.device))
        pads = []
        for first, taps in reversed(firsts):      # F.pad wants the last axis first
            pads += [max(0, -first), max(0, first + taps - 1)]
        out = F.conv3d(F.pad(x, pads), weight.transpose(0, 1), self.bias)
        starts = [first + max(0, -first) for first, _ in firsts]
        size = x.shape[2:]
        return out[:, :, starts[0]:starts[0] + size[0], starts[1]:starts[1] + size[1],
                   starts[2]:starts[2] + size[2]]
