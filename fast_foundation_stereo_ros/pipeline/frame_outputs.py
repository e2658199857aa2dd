"""One stereo pair through the pipeline to the offline outputs (numpy only).

The offline tools (run on files, folders and bags; demo; eval) share this
step; it follows the node's conventions (frame_processor.py) without
needing rclpy: disparity corrected by cx_l - cx_r with NaN for invalid
pixels, depth 32FC1 metres with NaN (DisparityImage range and delta_d come
from StereoPipeline, as in the node).
"""
import time
from dataclasses import dataclass, field

import numpy as np

from ..geometry.stereo import correct_disparity, disparity_to_depth, invalidate_disparity
from .encodings import pair_to_rgb8


@dataclass
class StereoOutputs:
    left_rgb: np.ndarray          # HxWx3 uint8, colours for the point cloud
    raw_disparity: np.ndarray     # x_l - x_r as the backend returned it, NaN invalid
    disparity: np.ndarray         # corrected by cx_l - cx_r (== raw without a camera)
    depth: np.ndarray = None      # metres, NaN invalid; None without a camera
    camera: object = None         # geometry.StereoCamera or None
    timings: dict = field(default_factory=dict)   # stage -> seconds


def compute_outputs(pipeline, left, left_encoding, right, right_encoding, camera=None):
    """Disparity (and depth when `camera` is known) of one rectified pair."""
    start = time.perf_counter()
    left_rgb, right_rgb = pair_to_rgb8(left, left_encoding, right, right_encoding)
    raw = pipeline.compute(left_rgb, right_rgb, 'rgb8', 'rgb8')
    timings = dict(pipeline.last_timings)
    geometry_start = time.perf_counter()
    raw = invalidate_disparity(raw.astype(np.float32))   # a copy: the backend may keep its output
    depth = None
    if camera is not None:
        disparity = correct_disparity(raw, camera)
        depth = disparity_to_depth(disparity, camera)
    else:
        disparity = raw
    end = time.perf_counter()
    timings['geometry'] = end - geometry_start
    timings['total'] = end - start
    return StereoOutputs(left_rgb, raw, disparity, depth, camera, timings)
