"""EdgeNeXt backbone blocks (the `stem` + `stages` FFS keeps from timm `edgenext_small`).

timm is not a dependency: these classes re-implement the forward pass of the
timm blocks the released checkpoints pickle (ConvBlock, SplitTransposeBlock,
CrossCovarianceAttn, PositionalEncodingFourier, Mlp, LayerNorm2d,
EdgeNeXtStage) with the same child names, so `feature.stem.*` and
`feature.stages.*` parameters load unchanged. Widths, kernel sizes, head counts
and scale splits all come from the checkpoint manifest.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW map (timm `LayerNorm2d`)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """timm `Mlp`: fc1 -> act -> (norm) -> fc2 on channels-last tokens."""

    def __init__(self, fc1, act, fc2, norm=None):
        super().__init__()
        self.fc1 = fc1
        self.act = act
        self.norm = norm if norm is not None else nn.Identity()
        self.fc2 = fc2

    def forward(self, x):
        return self.fc2(self.norm(self.act(self.fc1(x))))


class ConvBlock(nn.Module):
    """Depth-wise conv + inverted bottleneck with layer scale (timm `ConvBlock`)."""

    def __init__(self, conv_dw, norm, mlp, gamma, shortcut_after_dw=False):
        super().__init__()
        self.conv_dw = conv_dw
        self.norm = norm
        self.mlp = mlp
        self.gamma = None if gamma is None else nn.Parameter(gamma.clone(), requires_grad=False)
        self.shortcut_after_dw = bool(shortcut_after_dw)

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        if self.shortcut_after_dw:
            shortcut = x
        x = self.mlp(self.norm(x.permute(0, 2, 3, 1)))
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + x.permute(0, 3, 1, 2)


class FourierPositionalEncoding(nn.Module):
    """Sinusoidal 2-D position code projected to the stage width.

    Depends only on the map size. Computed with the same float32 operations
    as timm (cumulative pixel index / (size + 1e-6) * 2 pi) so the result is
    bit-identical.
    """

    def __init__(self, token_projection, hidden_dim=32, temperature=10000.0,
                 scale=2 * math.pi):
        super().__init__()
        self.token_projection = token_projection
        self.hidden_dim = int(hidden_dim)
        self.temperature = float(temperature)
        self.scale = float(scale)

    def forward(self, batch, height, width):
        device = self.token_projection.weight.device
        ones = torch.ones((batch, height, width), device=device, dtype=torch.bool)
        y_embed = ones.cumsum(1, dtype=torch.float32)
        x_embed = ones.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.hidden_dim, dtype=torch.int64, device=device).to(torch.float32)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode='floor') / self.hidden_dim)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
        return self.token_projection(pos.to(self.token_projection.weight.dtype))


class CrossCovarianceAttention(nn.Module):
    """XCA: attention between channels (C/h x C/h map per head), not pixels."""

    def __init__(self, qkv, proj, temperature, num_heads):
        super().__init__()
        self.qkv = qkv
        self.proj = proj
        self.temperature = nn.Parameter(temperature.clone(), requires_grad=False)
        self.num_heads = int(num_heads)

    def forward(self, x):
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 4, 1)
        q, k, v = qkv.unbind(0)
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        x = (attn @ v).permute(0, 3, 1, 2).reshape(batch, tokens, channels)
        return self.proj(x)


class SplitTransposeBlock(nn.Module):
    """Multi-scale depth-wise split + XCA + inverted bottleneck (timm `SplitTransposeBlock`).

    Channels are split with `chunk(len(convs) + 1)` (ceil-sized chunks); each
    conv sees the previous conv output plus the next chunk; the last chunk
    passes untouched. Note the residual structure: the XCA branch updates the
    token stream, but the block output is `input + gamma * MLP(norm(tokens))`.
    """

    def __init__(self, convs, norm_xca, xca, norm, mlp, gamma_xca, gamma, pos_embd=None):
        super().__init__()
        self.convs = convs
        self.pos_embd = pos_embd
        self.norm_xca = norm_xca
        self.xca = xca
        self.norm = norm
        self.mlp = mlp
        self.gamma_xca = None if gamma_xca is None else nn.Parameter(gamma_xca.clone(), requires_grad=False)
        self.gamma = None if gamma is None else nn.Parameter(gamma.clone(), requires_grad=False)

    def _multi_scale_convs(self, x):
        chunks = x.chunk(len(self.convs) + 1, dim=1)
        outputs = []
        running = chunks[0]
        for index, conv in enumerate(self.convs):
            if index > 0:
                running = running + chunks[index]
            running = conv(running)
            outputs.append(running)
        outputs.append(chunks[-1])
        return torch.cat(outputs, 1)

    def forward(self, x):
        shortcut = x
        x = self._multi_scale_convs(x)
        batch, channels, height, width = x.shape
        x = x.reshape(batch, channels, height * width).permute(0, 2, 1)
        if self.pos_embd is not None:
            position = self.pos_embd(batch, height, width)
            x = x + position.reshape(batch, -1, x.shape[1]).permute(0, 2, 1)
        attended = self.xca(self.norm_xca(x))
        x = x + (attended if self.gamma_xca is None else self.gamma_xca * attended)
        x = self.mlp(self.norm(x.reshape(batch, height, width, channels)))
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + x.permute(0, 3, 1, 2)


class EdgeNeXtStage(nn.Module):
    """Optional LayerNorm2d + stride-2 conv downsample, then the stage blocks."""

    def __init__(self, downsample, blocks):
        super().__init__()
        self.downsample = downsample
        self.blocks = blocks

    def forward(self, x):
        return self.blocks(self.downsample(x))
