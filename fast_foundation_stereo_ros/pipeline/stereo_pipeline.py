"""Camera pair in, camera-resolution disparity out, over any backend.

This is the one place where encodings are converted and images are fitted to
the backend, so the node, the CLI and the benchmarks share the same pre/post
step.
"""
import time

from .encodings import pair_to_rgb8
from .image_fitting import plan_fit

#: DisparityImage.delta_d at the network input resolution, in pixels. A network
#: regresses continuous disparity, so there is no true quantum; 1/16 px is (a)
#: what stereo_image_proc and the ZED wrapper publish, so tools tuned for them
#: behave the same, (b) the exact quantum of the SGBM fallback (4 fractional
#: bits), and (c) the FP16 resolution of a TensorRT engine for disparities of
#: 64-128 px. It is multiplied by the fit's disparity scale when the images are
#: resized for the network (one input pixel = scale camera pixels).
DELTA_D_INPUT_PIXELS = 1.0 / 16.0


class StereoPipeline:
    def __init__(self, backend, scale=1.0, fit_mode='letterbox'):
        self.backend = backend
        self.scale = scale
        self.fit_mode = fit_mode
        self._fit = None
        #: seconds spent in the last call, by stage
        self.last_timings = {}

    def fit_for(self, camera_size):
        """The FitTransform for a camera size (cached: sizes rarely change)."""
        if self._fit is None or self._fit.camera_size != tuple(camera_size):
            self._fit = plan_fit(camera_size, self.backend.input_size, self.backend.size_multiple,
                                 self.scale, self.fit_mode)
        return self._fit

    @property
    def max_disparity(self):
        """Largest disparity the backend can report, in camera pixels."""
        fit = self._fit
        scale = fit.disparity_scale if fit is not None else 1.0
        return self.backend.max_disparity * scale

    def searched_range(self, camera):
        """(min, max) DisparityImage disparity of the search, after the cx correction."""
        maximum = self.max_disparity - camera.cx_offset
        return max(0.0, -camera.cx_offset), maximum

    def delta_d(self, camera):
        """Smallest disparity step in camera pixels (DisparityImage.delta_d)."""
        fit = self.fit_for((camera.height, camera.width))
        return DELTA_D_INPUT_PIXELS * fit.disparity_scale

    @property
    def has_confidence(self):
        """Whether `compute_with_confidence` returns a confidence map with this backend."""
        return self.backend.has_confidence

    def compute(self, left, right, left_encoding='rgb8', right_encoding='rgb8'):
        """Return float32 disparity (NaN = invalid) at the camera's resolution."""
        return self._compute(left, right, left_encoding, right_encoding, False)[0]

    def compute_with_confidence(self, left, right, left_encoding='rgb8', right_encoding='rgb8'):
        """(disparity, confidence) at the camera's resolution: confidence float32 0..1 restored with the
        same crop/resize as the disparity (values not rescaled), or None when the backend has none."""
        return self._compute(left, right, left_encoding, right_encoding, True)

    def _compute(self, left, right, left_encoding, right_encoding, with_confidence):
        start = time.perf_counter()
        left_rgb, right_rgb = pair_to_rgb8(left, left_encoding, right, right_encoding)
        fit = self.fit_for(left_rgb.shape[:2])
        left_in, right_in = fit.apply(left_rgb), fit.apply(right_rgb)
        converted = time.perf_counter()
        if with_confidence:
            disparity, confidence = self.backend.infer_with_confidence(left_in, right_in)
        else:
            disparity, confidence = self.backend.infer(left_in, right_in), None
        inferred = time.perf_counter()
        disparity = fit.restore(disparity)
        if confidence is not None:
            confidence = fit.restore_map(confidence)
        done = time.perf_counter()
        self.last_timings = {'convert': converted - start, 'infer': inferred - converted,
                             'restore': done - inferred}
        return disparity, confidence
