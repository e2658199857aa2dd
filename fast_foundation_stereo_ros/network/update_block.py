"""Iterative disparity refinement: motion encoder, selective ConvGRU, heads.

Child names follow `BasicSelectiveMultiUpdateBlock` of the released model so
`update_block.*` loads unchanged; every width comes from the checkpoint (the
release is pruned: e.g. convc1 is 522->56 instead of the code's 522->256).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class MotionEncoder(nn.Module):
    """`BasicMotionEncoder`: fuse geometry features and the current disparity."""

    def __init__(self, convc1, convc2, convd1, convd2, conv):
        super().__init__()
        self.convc1 = convc1
        self.convc2 = convc2
        self.convd1 = convd1
        self.convd2 = convd2
        self.conv = conv

    def forward(self, disp, geometry):
        cost = F.relu(self.convc2(F.relu(self.convc1(geometry))))
        motion = F.relu(self.convd2(F.relu(self.convd1(disp))))
        fused = F.relu(self.conv(torch.cat([cost, motion], dim=1)))
        return torch.cat([fused, disp], dim=1)


class ConvGRU(nn.Module):
    """`RaftConvGRU`: gates from a precomputed [x, h] mix `hx`."""

    def __init__(self, convz, convr, convq):
        super().__init__()
        self.convz = convz
        self.convr = convr
        self.convq = convq

    def forward(self, hidden, x, hx):
        update = torch.sigmoid(self.convz(hx))
        reset = torch.sigmoid(self.convr(hx))
        candidate = torch.tanh(self.convq(torch.cat([reset * hidden, x], dim=1)))
        return (1 - update) * hidden + update * candidate


class SelectiveConvGRU(nn.Module):
    """Small- and large-kernel GRUs blended per pixel by the spatial attention map."""

    def __init__(self, conv0, conv1, small_gru, large_gru):
        super().__init__()
        self.conv0 = conv0
        self.conv1 = conv1
        self.small_gru = small_gru
        self.large_gru = large_gru

    def forward(self, attention, hidden, x):
        x = self.conv0(x)
        hx = self.conv1(torch.cat([x, hidden], dim=1))
        return (self.small_gru(hidden, x, hx) * attention
                + self.large_gru(hidden, x, hx) * (1 - attention))


class DispHead(nn.Module):
    """`DispHead`: hidden state -> disparity increment (one channel)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, hidden):
        return self.conv(hidden)


class SelectiveUpdateBlock(nn.Module):
    """`BasicSelectiveMultiUpdateBlock` with one 1/4-resolution GRU.

    Returns the new hidden state, the upsampling-mask features (scaled by
    0.25 as released) and the disparity increment.
    """

    def __init__(self, encoder, gru04, disp_head, mask):
        super().__init__()
        self.encoder = encoder
        self.gru04 = gru04
        self.disp_head = disp_head
        self.mask = mask

    def forward(self, hidden, context, geometry, disp, attention):
        motion = self.encoder(disp, geometry)
        hidden = self.gru04(attention, hidden, torch.cat([context, motion], dim=1))
        delta = self.disp_head(hidden)
        mask_features = 0.25 * self.mask(hidden)
        return hidden, mask_features, delta
