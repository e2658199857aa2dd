"""Disparity to an RGB colour image for quick looks (RViz, rqt_image_view).

Near (large disparity) is warm, far is cold, over the fixed searched range
[min_disparity, max_disparity] so colours mean the same depth in every frame;
invalid pixels are black.
"""
import cv2
import numpy as np


def colorize_disparity(disparity, min_disparity, max_disparity, colormap=cv2.COLORMAP_TURBO):
    """HxW float32 disparity (NaN invalid) -> HxWx3 uint8 RGB."""
    span = max(float(max_disparity) - float(min_disparity), 1e-6)
    scaled = np.subtract(disparity, np.float32(min_disparity), dtype=np.float32)
    scaled *= np.float32(255.0 / span)
    invalid = ~np.isfinite(scaled)
    scaled[invalid] = 0.0
    np.clip(scaled, 0.0, 255.0, out=scaled)
    bgr = cv2.applyColorMap(scaled.astype(np.uint8), colormap)
    bgr[invalid] = 0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
