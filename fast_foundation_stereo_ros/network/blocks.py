"""Generic 2-D/3-D building blocks of Fast-FoundationStereo and its NAS helpers.

Each class keeps the child-module names of the released checkpoints so their
state dict loads with `strict=True`; the constructor takes already-built child
modules (see `loading.network_builders`), because the widths, kernels and flags of a
released NAS layout come from the checkpoint, not from code defaults.
Operation order follows the reference implementation so float32 results match
to the last bits where the same kernels are used.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError


class EvalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm for 2-D and 3-D maps (stands in for `SyncBatchNorm`).

    In eval mode SyncBatchNorm is a plain batch norm with running statistics,
    but the pickled instance does not say whether it sat on 4-D or 5-D inputs,
    so any rank >= 2 is accepted.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f'expected at least 2-D input (got {input.dim()}-D)')


def activation_from_flag(flag):
    """`BasicConv.relu` may be pickled as a bool: True = LeakyReLU(0.01)."""
    return nn.LeakyReLU(0.01) if flag else nn.Identity()


class BasicConv(nn.Module):
    """Conv (or transposed conv) -> optional norm -> activation (`BasicConv`)."""

    def __init__(self, conv, bn, relu, use_bn):
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.relu = relu
        self.use_bn = bool(use_bn)

    def forward(self, x):
        x = self.conv(x)
        if self.use_bn:
            x = self.bn(x)
        return self.relu(x)


class BasicConvIN(nn.Module):
    """`BasicConv_IN`: conv -> optional InstanceNorm (child named `IN`) -> activation."""

    def __init__(self, conv, instance_norm, relu, use_in):
        super().__init__()
        self.conv = conv
        self.IN = instance_norm
        self.relu = relu
        self.use_in = bool(use_in)

    def forward(self, x):
        x = self.conv(x)
        if self.use_in:
            x = self.IN(x)
        return self.relu(x)


class ReducedConv3d(nn.Module):
    """`Conv3dNormActReduced` ("APC"): spatial (1,k,k) then disparity (kd,1,1) conv."""

    def __init__(self, conv1, conv2):
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2

    def forward(self, x):
        return self.conv2(self.conv1(x))


class ResidualBlock(nn.Module):
    """`ResnetBasicBlock` / `ResnetBasicBlock3D`: two convs, identity skip, ReLU."""

    def __init__(self, conv1, conv2, bn1=None, bn2=None, downsample=None):
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        if bn1 is not None:
            self.bn1 = bn1
        if bn2 is not None:
            self.bn2 = bn2
        self.has_norm = bn1 is not None
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(x)
        if self.has_norm:
            out = self.bn1(out)
        out = F.relu(out)
        out = self.conv2(out)
        if self.has_norm:
            out = self.bn2(out)
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class FeatureGate(nn.Module):
    """`FeatureAtt`: image features gate the cost volume channel-wise per pixel."""

    takes_side_feature = True

    def __init__(self, feat_att):
        super().__init__()
        self.feat_att = feat_att

    def forward(self, cost_volume, features):
        gate = self.feat_att(features).unsqueeze(2)  # broadcast over disparity
        return torch.sigmoid(gate) * cost_volume


def call_with_feature(layer, x, side_feature):
    """NAS containers pass the image feature only to FeatureAtt-like members."""
    if getattr(layer, 'takes_side_feature', False):
        return layer(x, side_feature)
    return layer(x)


class LayerSequence(nn.Module):
    """`ForwardHelper`: a NAS-selected list of layers applied in order."""

    takes_side_feature = True

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x, side_feature=None):
        for layer in self.layers:
            x = call_with_feature(layer, x, side_feature)
        return x


class MergeUpsampled(nn.Module):
    """`PostForwardHelper`: upsample the coarse volume, merge with the skip, refine.

    `op` is the pickled merge sentinel: 'sum' adds, 'concat' stacks channels
    (upsampled first).
    """

    def __init__(self, upsample, out, op):
        super().__init__()
        if op not in ('sum', 'concat'):
            raise ConfigError(f'unknown PostForwardHelper merge op {op!r}: expected sum or concat')
        self.upsample = upsample
        self.out = out
        self.op = op

    def forward(self, skip, coarse, side_feature=None):
        upsampled = self.upsample(coarse)
        if self.op == 'sum':
            x = upsampled + skip
        else:
            x = torch.cat((upsampled, skip), dim=1)
        for layer in self.out:
            x = call_with_feature(layer, x, side_feature)
        return x


class PairedConv(nn.Module):
    """`Conv2x` / `Conv2x_IN`: upsample-conv, align to the skip, merge, conv."""

    def __init__(self, conv1, conv2, concat):
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        self.concat = bool(concat)

    def forward(self, x, skip):
        x = self.conv1(x)
        if x.shape != skip.shape:
            # Same test as the reference (full shape, channels included).
            x = F.interpolate(x, size=(skip.shape[-2], skip.shape[-1]), mode='bilinear')
        x = torch.cat((x, skip), 1) if self.concat else x + skip
        return self.conv2(x)


class Resample(nn.Module):
    """`nn.Upsample` with the pickled size / scale / mode / align_corners."""

    def __init__(self, size=None, scale_factor=None, mode='nearest', align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size = size
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)


class DisparityPositionTable(nn.Module):
    """`PositionalEmbedding`: a fixed sinusoidal table added along disparity.

    In the pickle `pe` is a plain attribute; here it is a buffer so it travels
    in the state dict and the native safetensors file.
    """

    def __init__(self, pe, resize=False):
        super().__init__()
        self.register_buffer('pe', pe.clone())
        self.resize = bool(resize)  # `resize_embed` of the owning attention block

    @property
    def length(self):
        return int(self.pe.shape[1])

    def forward(self, x):
        table = self.pe.to(x.dtype)
        if x.shape[1] > self.length:
            if not self.resize:
                raise ConfigError(
                    f'the disparity attention sees {x.shape[1]} disparity tokens but the '
                    f'checkpoint table has {self.length}: lower max_disp')
            table = F.interpolate(table.permute(0, 2, 1), size=x.shape[1], mode='linear',
                                  align_corners=True).permute(0, 2, 1)
        return (x + table[:, :x.shape[1]]).to(x.dtype)


class HeadsAsSequenceAttention(nn.Module):
    """`FlashMultiheadAttention` exactly as released.

    Q/K/V are viewed as (tokens, D, heads, head_dim) and handed to SDPA without
    a transpose, so SDPA attends across the *heads* of one disparity token, not
    across disparities. The checkpoints were trained this way.
    """

    def __init__(self, q_proj, k_proj, v_proj, out_proj, num_heads):
        super().__init__()
        self.q_proj = q_proj
        self.k_proj = k_proj
        self.v_proj = v_proj
        self.out_proj = out_proj
        self.num_heads = int(num_heads)

    def forward(self, x):
        tokens, length, channels = x.shape
        head_dim = channels // self.num_heads
        q = self.q_proj(x).view(tokens, length, self.num_heads, head_dim)
        k = self.k_proj(x).view(tokens, length, self.num_heads, head_dim)
        v = self.v_proj(x).view(tokens, length, self.num_heads, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.reshape(tokens, length, -1))


class DisparityAttentionLayer(nn.Module):
    """`FlashAttentionTransformerEncoderLayer`: post-norm transformer layer."""

    def __init__(self, self_attn, linear1, linear2, norm1, norm2, act):
        super().__init__()
        self.self_attn = self_attn
        self.linear1 = linear1
        self.linear2 = linear2
        self.norm1 = norm1
        self.norm2 = norm2
        self.act = act

    def forward(self, x):
        dtype = x.dtype
        x = self.norm1(x + self.self_attn(x)).to(dtype)
        x = self.norm2(x + self.linear2(self.act(self.linear1(x)))).to(dtype)
        return x


class DisparityAttention(nn.Module):
    """`CostVolumeDisparityAttention`: per-pixel transformer along disparity."""

    def __init__(self, sa, pos_embed0):
        super().__init__()
        self.sa = sa
        self.pos_embed0 = pos_embed0

    def forward(self, cost_volume):
        batch, channels, disp, height, width = cost_volume.shape
        x = cost_volume.permute(0, 3, 4, 2, 1).reshape(batch * height * width, disp, channels)
        x = self.pos_embed0(x)
        for layer in self.sa:
            x = layer(x)
        return x.reshape(batch, height, width, disp, channels).permute(0, 4, 3, 1, 2)


class ChannelAttention(nn.Module):
    """`ChannelAttentionEnhancement` (CAM): returns the per-channel gate.

    Global average/max pooling are written as mean/amax reductions: TensorRT
    limits pooling kernel sizes, reductions have no such limit.
    """

    def __init__(self, fc):
        super().__init__()
        self.fc = fc

    def forward(self, x):
        avg = self.fc(x.mean(dim=(2, 3), keepdim=True))
        peak = self.fc(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """`SpatialAttentionExtractor` (SAM): per-pixel gate from channel mean/max."""

    def __init__(self, samconv):
        super().__init__()
        self.samconv = samconv

    def forward(self, x):
        avg = torch.mean(x, dim=1, keepdim=True)
        peak = torch.amax(x, dim=1, keepdim=True)
        return torch.sigmoid(self.samconv(torch.cat([avg, peak], dim=1)))


class ConvNeXtStyleEncoder(nn.Module):
    """`EdgeNextConvEncoder`: depth-wise conv, optional norm, channels-last MLP, scaled skip."""

    def __init__(self, dwconv, norm, pwconv1, act, pwconv2, gamma):
        super().__init__()
        self.dwconv = dwconv
        self.norm = norm
        self.pwconv1 = pwconv1
        self.act = act
        self.pwconv2 = pwconv2
        if gamma is not None:
            self.gamma = nn.Parameter(gamma.clone(), requires_grad=False)
        else:
            self.gamma = None

    #: the pointwise MLP as 1x1 convolutions on NCHW (no permutes, bias and layer scale folded into
    #: the weights): the compact (ONNX export) formulation, equal up to float rounding
    pointwise_as_conv = False

    def forward(self, x):
        residual = x
        if self.pointwise_as_conv:
            x = self.norm(self.dwconv(x))
            x = F.conv2d(x, self.pwconv1.weight[:, :, None, None], self.pwconv1.bias)
            weight, bias = self.pwconv2.weight, self.pwconv2.bias
            if self.gamma is not None:
                weight, bias = self.gamma[:, None] * weight, None if bias is None else self.gamma * bias
            return residual + F.conv2d(self.act(x), weight[:, :, None, None], bias)
        x = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(x)))
        if self.gamma is not None:
            x = self.gamma * x
        return residual + x.permute(0, 3, 1, 2)
