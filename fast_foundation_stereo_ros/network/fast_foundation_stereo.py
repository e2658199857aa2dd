"""The Fast-FoundationStereo network: features, volumes, hourglass, GRU, upsampling.

`FastFoundationStereoNet.forward(left, right, valid_iters, max_disp)` maps a
B x 3 x H x W float32 RGB pair in 0..255 (H, W multiples of 32) to a
B x 1 x H x W float32 disparity; with `return_confidence=True` it returns
(disparity, confidence), confidence a B x 1 x H x W float32 in 0..1 (see
`classifier_confidence`), the disparity computed by exactly the same operations.
Normalisation happens inside, so an exported graph takes raw pixels. Sub-modules
are built from a checkpoint manifest by `loading.network_builders`; attribute
names equal the official ones, so the released state dict loads with strict=True.
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import defaults
from ..errors import ConfigError, InputError
from .blocks import ConvNeXtStyleEncoder, call_with_feature
from .cost_volume import (FORMULATIONS, GeometryEncoding, concat_volume, concat_volume_reference,
                          group_correlation_volume, group_correlation_volume_matmul, group_correlation_volume_reference)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE_MULTIPLE = defaults.SIZE_MULTIPLE   # EdgeNeXt stride 32
DISPARITY_MULTIPLE = 32  # D = max_disp/4 must survive three stride-2 levels and a stride-4 patch


def normalize_image(image):
    """0..255 RGB -> ImageNet-normalised, in the reference's operation order."""
    mean = image.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image / 255.0 - mean) / std


def disparity_regression(prob):
    """Soft-argmin: expected disparity index under `prob` (B, D, H, W)."""
    values = torch.arange(prob.shape[1], dtype=prob.dtype, device=prob.device)
    return torch.sum(prob * values.view(1, -1, 1, 1), 1, keepdim=True)


#: Half-width, in 1/4-resolution disparity bins, of the window whose probability mass is the
#: confidence; mass beyond it fades out linearly over CONFIDENCE_FADE_BINS.
CONFIDENCE_HALF_WIDTH_BINS = 1.0
CONFIDENCE_FADE_BINS = 0.5


def classifier_confidence(prob, disp):
    """Probability mass of the classifier near the regressed disparity, 0..1.

    `prob` (B, D, h, w) is the classifier's softmax over the D = max_disp/4 bins
    of the 1/4-resolution volume, `disp` (B, 1, h, w) the final (GRU-refined)
    disparity at 1/4 resolution in bins. Each bin i is weighted by
    clamp((1.5 - |i - disp|) / 0.5, 0, 1): full weight within +-1 bin (+-4 px
    at full resolution), falling to 0 at +-1.5 bins, so the measure is
    continuous in disp. Why this and not +-0.25 bins (+-1 full-res px) or the peak
    probability: bins are 4 full-res px apart, so a +-0.25-bin window holds at
    most one bin and jumps between 0 and that bin's probability as disp moves;
    and the soft-argmin represents a sub-bin disparity by splitting mass between
    two neighbouring bins, which the peak probability would score as half as
    confident. With this window a distribution concentrated on the two bins
    around disp scores 1, a flat or multi-modal one scores low, and a GRU
    refinement that leaves the classifier's mode scores low. Verified by
    test/network/test_confidence.py (range, peaked vs flat, bit-identical
    disparity).
    """
    bins = torch.arange(prob.shape[1], dtype=prob.dtype, device=prob.device).view(1, -1, 1, 1)
    reach = CONFIDENCE_HALF_WIDTH_BINS + CONFIDENCE_FADE_BINS
    weights = torch.clamp((reach - torch.abs(bins - disp)) / CONFIDENCE_FADE_BINS, 0.0, 1.0)
    return torch.clamp(torch.sum(prob * weights, 1, keepdim=True), 0.0, 1.0)


def convex_upsample(disp, weights):
    """Learned 4x upsampling: each full-res pixel mixes the 3x3 low-res neighbourhood.

    `weights` (B, 9, 4h, 4w) are softmax-normalised; neighbours are taken in
    row-major (ky, kx) order with zero padding (equal to F.unfold(3, pad 1)),
    built by pad + slice so the graph stays export-friendly.
    """
    batch, _, height, width = disp.shape
    padded = F.pad(disp, (1, 1, 1, 1))
    neighbours = torch.cat([padded[:, :, ky:ky + height, kx:kx + width]
                            for ky in range(3) for kx in range(3)], dim=1)
    neighbours = F.interpolate(neighbours, (height * 4, width * 4), mode='nearest')
    return (neighbours * weights).sum(1, keepdim=True)


class FeatureExtractor(nn.Module):
    """`Feature`: EdgeNeXt stem/stages + IN decoder -> features at 1/4, 1/8, 1/16, 1/32."""

    def __init__(self, stem, stages, deconv32_16, deconv16_8, deconv8_4, conv4, extra=None):
        super().__init__()
        self.stem = stem
        self.stages = stages
        self.deconv32_16 = deconv32_16
        self.deconv16_8 = deconv16_8
        self.deconv8_4 = deconv8_4
        self.conv4 = conv4
        for name, module in (extra or {}).items():  # optional conv8/conv16/conv32 heads
            setattr(self, name, module)
        self.has_extra_heads = bool(extra)

    def forward(self, x):
        x4 = self.stages[0](self.stem(x))
        x8 = self.stages[1](x4)
        x16 = self.stages[2](x8)
        x32 = self.stages[3](x16)
        x16 = self.deconv32_16(x32, x16)
        x8 = self.deconv16_8(x16, x8)
        x4 = self.conv4(self.deconv8_4(x8, x4))
        if self.has_extra_heads:
            x8, x16, x32 = self.conv8(x8), self.conv16(x16), self.conv32(x32)
        return [x4, x8, x16, x32]


class ContextNet(nn.Module):
    """`ContextNetSharedBackbone`: GRU initial state and context from the 1/4 features."""

    def __init__(self, conv04):
        super().__init__()
        self.conv04 = conv04

    def forward(self, features04):
        return [conv(features04) for conv in self.conv04]


class Hourglass(nn.Module):
    """Cost aggregation (`hourglass`), NAS path or code-default path.

    Releases replace `conv1`/`conv2` by Identity and move their layers into the
    `feature_att_*` ForwardHelpers, and use the `post*` PostForwardHelpers for
    the decoder. If a `post*` block is absent the code-default branch it
    replaces is used instead (its modules are then live, not dead).
    """

    def __init__(self, modules):
        super().__init__()
        for name, module in modules.items():
            setattr(self, name, module)

    def forward(self, x, features):
        conv1 = call_with_feature(self.feature_att_8, self.conv1(x), features[1])
        conv2 = call_with_feature(self.feature_att_16, self.conv2(conv1), features[2])
        conv3 = call_with_feature(self.feature_att_32, self.conv3(conv2), features[3])
        if hasattr(self, 'post32_to_16'):
            conv2 = self.post32_to_16(conv2, conv3, features[2])
        else:
            conv2 = self.agg_0(torch.cat((self.conv3_up(conv3), conv2), dim=1))
            conv2 = call_with_feature(self.feature_att_up_16, conv2, features[2])
        if hasattr(self, 'post16_to_8'):
            conv1 = self.post16_to_8(conv1, conv2, features[1])
        else:
            conv1 = self.agg_1(torch.cat((self.conv2_up(conv2), conv1), dim=1))
            conv1 = call_with_feature(self.feature_att_up_8, conv1, features[1])
        conv = self.conv1_up(conv1)
        if hasattr(self, 'post8_to_4'):
            # NAS release: the upsampled decoder output is the transformed branch
            # and the hourglass *input* is the skip.
            return self.post8_to_4(x, conv)
        patch = self.atts['4'](self.conv_patch(x))
        patch = F.interpolate(patch, scale_factor=4, mode='trilinear', align_corners=False)
        return self.conv_out(conv + patch)


class FastFoundationStereoNet(nn.Module):
    """Whole-pair network; see module docstring for the forward contract."""

    def __init__(self, modules, config):
        super().__init__()
        for name, module in modules.items():
            setattr(self, name, module)
        self.cv_group = int(config['cv_group'])
        self.corr_levels = int(config['corr_levels'])
        self.corr_radius = int(config['corr_radius'])
        self.normalize = bool(config['normalize'])
        limit = config['max_disp_limit']   # None: every positional table resizes, no bound
        self.max_disp_limit = None if limit is None else int(limit)
        self.mixed_precision = False   # fp16 autocast, honoured on CUDA only
        self.formulation = 'fast'      # or 'compact' (ONNX export), 'reference' (benchmarks / tests)
        self.stage_hook = None         # optional callable(name) -> context manager

    @property
    def formulation(self):
        return self._formulation

    @formulation.setter
    def formulation(self, value):
        """Also switches the ConvNeXt-style blocks' pointwise MLPs to 1x1 convolutions for 'compact'."""
        self._formulation = value
        for module in self.modules():
            if isinstance(module, ConvNeXtStyleEncoder):
                module.pointwise_as_conv = value == 'compact'

    # ---- helpers -----------------------------------------------------------------------
    def _stage(self, name):
        return self.stage_hook(name) if self.stage_hook is not None else contextlib.nullcontext()

    def _uses_autocast(self, device):
        return self.mixed_precision and device.type == 'cuda'

    def _autocast(self, device):
        """fp16 autocast for the convolutional parts (CUDA only)."""
        if not self._uses_autocast(device):
            return contextlib.nullcontext()
        return torch.autocast(device_type='cuda', dtype=torch.float16)

    def _float32_region(self, device):
        """Disparity, coordinates, sampling and soft-argmin always run in float32."""
        if not self._uses_autocast(device):
            return contextlib.nullcontext()
        return torch.autocast(device_type='cuda', enabled=False)

    def check_inputs(self, left, right, valid_iters, max_disp):
        """Raise InputError/ConfigError for anything the network cannot process."""
        if not isinstance(left, torch.Tensor) or not isinstance(right, torch.Tensor):
            raise InputError('left and right must be torch tensors (B x 3 x H x W)')
        if left.dim() != 4 or left.shape != right.shape:
            raise InputError(f'left {tuple(left.shape)} and right {tuple(right.shape)} must '
                             'have the same B x 3 x H x W shape')
        if left.shape[1] != 3:
            raise InputError(f'images must have 3 (RGB) channels, got {left.shape[1]}')
        if not left.is_floating_point() or not right.is_floating_point():
            raise InputError(f'images must be float tensors in 0..255, got {left.dtype}')
        height, width = left.shape[-2:]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise InputError(f'image size {height}x{width} must be a multiple of '
                             f'{SIZE_MULTIPLE}: pad it (StereoModel.predict does)')
        if int(valid_iters) < 1:
            raise ConfigError(f'valid_iters must be >= 1, got {valid_iters}')
        self.check_max_disp(max_disp)

    def check_max_disp(self, max_disp):
        """max_disp must be a multiple of 32 within the positional tables' reach."""
        if int(max_disp) <= 0 or int(max_disp) % DISPARITY_MULTIPLE:
            raise ConfigError(f'max_disp must be a positive multiple of {DISPARITY_MULTIPLE}, '
                              f'got {max_disp}')
        if self.max_disp_limit is not None and int(max_disp) > self.max_disp_limit:
            raise ConfigError(
                f'max_disp {max_disp} exceeds {self.max_disp_limit}, the largest this '
                'checkpoint supports (its disparity positional table is that short)')

    # ---- stages ------------------------------------------------------------------------
    def extract_features(self, left, right):
        batch = left.shape[0]
        features = self.feature(torch.cat([left, right], dim=0))
        return [f[:batch] for f in features], [f[batch:] for f in features]

    def build_volume(self, left04, right04, num_disp):
        if self.formulation == 'reference':
            gwc = group_correlation_volume_reference(left04, right04, num_disp, self.cv_group,
                                                     self.normalize)
            build_concat = concat_volume_reference
        else:
            build_gwc = group_correlation_volume_matmul if self.formulation == 'compact' else group_correlation_volume
            gwc = build_gwc(left04, right04, num_disp, self.cv_group, self.normalize)
            build_concat = concat_volume
        concat = build_concat(self.proj_cmb(left04), self.proj_cmb(right04), num_disp)
        return torch.cat([gwc, concat], dim=1)

    def aggregate(self, volume, features_left):
        volume = self.corr_stem(volume)
        volume = call_with_feature(self.corr_feature_att, volume, features_left[0])
        return self.cost_agg(volume, features_left)

    def classifier_probabilities(self, volume):
        """Softmax over the disparity bins (B, D, h, w), float32."""
        logits = self.classifier(volume).squeeze(1)
        with self._float32_region(volume.device):
            return F.softmax(logits.float(), dim=1)

    def initial_disparity(self, prob):
        """Soft-argmin over the classifier's probabilities, in 1/4-resolution bins."""
        with self._float32_region(prob.device):
            return disparity_regression(prob)

    def context(self, features04):
        net_raw, inp_raw = self.cnet(features04)[:2]
        hidden = torch.tanh(net_raw)
        context = torch.relu(inp_raw)
        context = self.cam(context) * context
        return hidden, context, self.sam(context)

    def upsample_weights(self, mask_features, stem_2x):
        """Convex upsampling weights (B, 9, H, W), softmax-normalised over the 9 neighbours."""
        return F.softmax(self.spx_gru(self.spx_2_gru(mask_features, stem_2x)), 1)

    def upsample(self, disp, weights):
        """1/4-resolution disparity in bins -> full-resolution disparity in pixels."""
        with self._float32_region(disp.device):
            return convex_upsample(disp.float() * 4.0, weights.float())

    # ---- forward -----------------------------------------------------------------------
    def forward(self, left, right, valid_iters: int, max_disp: int, return_confidence: bool = False):
        self.check_inputs(left, right, valid_iters, max_disp)
        if self.formulation not in FORMULATIONS:
            raise ConfigError(f'unknown formulation {self.formulation!r}')
        num_disp = int(max_disp) // 4
        left = normalize_image(left)
        right = normalize_image(right)
        device = left.device
        with self._autocast(device):
            with self._stage('features'):
                features_left, features_right = self.extract_features(left, right)
                stem_2x = self.stem_2(left)
            with self._stage('volumes'):
                volume = self.build_volume(features_left[0], features_right[0], num_disp)
            with self._stage('aggregation'):
                volume = self.aggregate(volume, features_left)
                prob = self.classifier_probabilities(volume)
                disp = self.initial_disparity(prob)
                hidden, context, attention = self.context(features_left[0])
        with self._stage('gru'):
            with self._float32_region(device):
                geometry = GeometryEncoding(features_left[0], features_right[0], volume,
                                            self.corr_levels, self.corr_radius, self.formulation)
            disp = disp.float()
            for _ in range(int(valid_iters)):
                with self._float32_region(device):
                    geo_features = geometry.lookup(disp)
                with self._autocast(device):
                    hidden, mask_features, delta = self.update_block(
                        hidden, context, geo_features, disp, attention)
                disp = disp + delta.float()
        with self._stage('upsampling'):
            with self._autocast(device):
                weights = self.upsample_weights(mask_features, stem_2x)
                disparity = self.upsample(disp, weights)
            if not return_confidence:
                return disparity
            with self._float32_region(device):
                # Same convex weights as the disparity: a convex mix keeps 0..1.
                confidence = convex_upsample(classifier_confidence(prob, disp), weights.float())
            return disparity, confidence
