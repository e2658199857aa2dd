"""Classical OpenCV semi-global block matching: the weight-free default.

It lets the node, the CLI and the tests run on a fresh machine with no
checkpoint and no GPU. It is announced as such wherever it is chosen.

Confidence: OpenCV's StereoSGBM does not expose its matching costs, so the
uniqueness of the cost minimum cannot be read out. The proxy is left-right
consistency: a second SGBM pass on the mirrored pair (mirrored right image as
the left one) gives the right view's disparity; the residual
r = |d_left(x) - d_right(x - d_left(x))| (LR_RESIDUAL_CAP_PX where either view
has no match) is averaged over a LR_WINDOW x LR_WINDOW window and mapped to
exp(-mean r / LR_RESIDUAL_SCALE_PX); pixels without a disparity get 0. Wrong
matches (occlusions, repetitive or weak texture) rarely agree from both views
and come in patches, so the window mean ranks pixels near them below those
inside consistent areas (a per-pixel residual is 0 for most pixels, which
would leave most of them tied). test/backends/test_confidence.py asserts the
sparsification curve on synthetic scenes falls. It costs a second SGBM pass
(about 1.1x the first), paid only when confidence is asked for.
"""
import cv2
import numpy as np

from .. import defaults
from ..errors import ConfigError
from .base import StereoBackend

SGBM_MODES = {'sgbm': cv2.STEREO_SGBM_MODE_SGBM, '3way': cv2.STEREO_SGBM_MODE_SGBM_3WAY,
              'hh': cv2.STEREO_SGBM_MODE_HH, 'hh4': cv2.STEREO_SGBM_MODE_HH4}

#: left-right residual (px) at which SGBM confidence has fallen to 1/e
LR_RESIDUAL_SCALE_PX = 1.0
#: residual (px) counted where a view has no match; larger residuals are clipped to it
LR_RESIDUAL_CAP_PX = 4.0
#: side of the square window the residual is averaged over (px)
LR_WINDOW = 7


def left_right_confidence(left_disparity, right_disparity, scale=LR_RESIDUAL_SCALE_PX, window=LR_WINDOW):
    """exp(-(window mean of min(|d_L(x) - d_R(x - d_L(x))|, cap)) / scale); 0 where d_L is NaN.

    Both are HxW float32 maps of the same pair: `left_disparity` of the left
    view, `right_disparity` of the right view (x_l = x_r + d), NaN = no match.
    The right view is sampled at the nearest column the left disparity points
    to; a missing match on either side counts as LR_RESIDUAL_CAP_PX.
    """
    width = left_disparity.shape[1]
    columns = np.arange(width, dtype=np.float32)[None, :] - left_disparity
    valid = np.isfinite(columns) & (columns > -0.5) & (columns < width - 0.5)
    columns = np.clip(np.rint(np.nan_to_num(columns)), 0, width - 1).astype(np.intp)
    residual = np.abs(left_disparity - np.take_along_axis(right_disparity, columns, axis=1))
    residual[~valid | ~np.isfinite(residual)] = LR_RESIDUAL_CAP_PX
    np.minimum(residual, LR_RESIDUAL_CAP_PX, out=residual)
    if window > 1:
        residual = cv2.blur(residual, (window, window))
    confidence = np.exp(residual * np.float32(-1.0 / scale))
    confidence[~np.isfinite(left_disparity)] = 0.0
    return confidence.astype(np.float32, copy=False)


class SGBMBackend(StereoBackend):
    """cv2.StereoSGBM with settings tuned on Middlebury Motorcycle and the synthetic scenes."""

    name = 'sgbm'
    has_confidence = True

    # Defaults tuned on Middlebury 2014 Motorcycle (quarter size, test/backends/test_sgbm_real_data.py)
    # without losing accuracy on the synthetic scenes: a 3x3 block and a low pre-filter cap keep thin
    # structures and fine texture; disp12MaxDiff 2 and a 150-pixel speckle window keep more correct
    # pixels than 1 / 100. 3-way mode: HH is 0.1 px better on the scenes but 4x slower.
    def __init__(self, max_disp=defaults.MAX_DISP, block_size=3, uniqueness_ratio=5, speckle_window=150,
                 speckle_range=2, disp12_max_diff=2, p1_per_pixel=8, p2_per_pixel=32,
                 pre_filter_cap=15, mode='3way'):
        if max_disp <= 0 or max_disp % defaults.SGBM_DISPARITY_MULTIPLE:
            raise ConfigError(f'SGBM max_disp must be a positive multiple of 16, got {max_disp}')
        if block_size < 1 or block_size % 2 == 0:
            raise ConfigError(f'SGBM block_size must be odd and >= 1, got {block_size}')
        if mode not in SGBM_MODES:
            raise ConfigError(f"SGBM mode must be one of {', '.join(SGBM_MODES)}, got '{mode}'")
        self.max_disparity = float(max_disp)
        channels = 3
        self._matcher = cv2.StereoSGBM_create(
            minDisparity=0,
            numDisparities=int(max_disp),
            blockSize=block_size,
            P1=p1_per_pixel * channels * block_size ** 2,
            P2=p2_per_pixel * channels * block_size ** 2,
            disp12MaxDiff=disp12_max_diff,
            preFilterCap=pre_filter_cap,
            uniquenessRatio=uniqueness_ratio,
            speckleWindowSize=speckle_window,
            speckleRange=speckle_range,
            mode=SGBM_MODES[mode],
        )

    def infer(self, left_rgb, right_rgb):
        return self._match(left_rgb, right_rgb)

    def infer_with_confidence(self, left_rgb, right_rgb):
        disparity = self._match(left_rgb, right_rgb)
        # the right view's disparity: the mirrored pair, matched the same way, mirrored back
        right_disparity = self._match(right_rgb[:, ::-1], left_rgb[:, ::-1])[:, ::-1]
        return disparity, left_right_confidence(disparity, right_disparity)

    def _match(self, left_rgb, right_rgb):
        # SGBM leaves the first numDisparities columns unmatched; padding both
        # images on the left lets it search the whole row, then we crop.
        pad = int(self.max_disparity)
        left = cv2.copyMakeBorder(left_rgb, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        right = cv2.copyMakeBorder(right_rgb, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        fixed_point = self._matcher.compute(left, right)[:, pad:]
        disparity = fixed_point.astype(np.float32)
        disparity *= 1.0 / 16.0  # OpenCV returns 4 fractional bits
        # OpenCV marks unmatched pixels with (minDisparity - 1) * 16 -> -1 px;
        # a match at x - d < 0 lies in the replicated padding, not in the right
        # image, so it is invented: both are invalid (NaN).
        columns = np.arange(disparity.shape[1], dtype=np.float32)
        disparity[(fixed_point < 0) | (disparity > columns)] = np.nan
        return disparity
