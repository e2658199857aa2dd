"""Classical OpenCV semi-global block matching: the weight-free default.

It lets the node, the CLI and the tests run on a fresh machine with no
checkpoint and no GPU. It is announced as such wherever it is chosen.
"""
import cv2
import numpy as np

from .. import defaults
from ..errors import ConfigError
from .base import StereoBackend


class SGBMBackend(StereoBackend):
    """cv2.StereoSGBM with the 3-way mode and settings tuned on textured scenes."""

    name = 'sgbm'

    def __init__(self, max_disp=defaults.MAX_DISP, block_size=5, uniqueness_ratio=5, speckle_window=100,
                 speckle_range=2, disp12_max_diff=1):
        if max_disp <= 0 or max_disp % defaults.SGBM_DISPARITY_MULTIPLE:
            raise ConfigError(f'SGBM max_disp must be a positive multiple of 16, got {max_disp}')
        if block_size < 1 or block_size % 2 == 0:
            raise ConfigError(f'SGBM block_size must be odd and >= 1, got {block_size}')
        self.max_disparity = float(max_disp)
        channels = 3
        self._matcher = cv2.StereoSGBM_create(
            minDisparity=0,
            numDisparities=int(max_disp),
            blockSize=block_size,
            P1=8 * channels * block_size ** 2,
            P2=32 * channels * block_size ** 2,
            disp12MaxDiff=disp12_max_diff,
            uniquenessRatio=uniqueness_ratio,
            speckleWindowSize=speckle_window,
            speckleRange=speckle_range,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
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
        # the geometry layer treats non-finite values as invalid.
        disparity[fixed_point < 0] = np.nan
        return disparity
