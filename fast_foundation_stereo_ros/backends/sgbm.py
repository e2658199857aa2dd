"""Classical OpenCV semi-global block matching: the weight-free default.

It lets the node, the CLI and the tests run on a fresh machine with no
checkpoint and no GPU. It is announced as such wherever it is chosen.
"""
import cv2
import numpy as np

from .. import defaults
from ..errors import ConfigError
from .base import StereoBackend

SGBM_MODES = {'sgbm': cv2.STEREO_SGBM_MODE_SGBM, '3way': cv2.STEREO_SGBM_MODE_SGBM_3WAY,
              'hh': cv2.STEREO_SGBM_MODE_HH, 'hh4': cv2.STEREO_SGBM_MODE_HH4}


class SGBMBackend(StereoBackend):
    """cv2.StereoSGBM with settings tuned on Middlebury Motorcycle and the synthetic scenes."""

    name = 'sgbm'

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
