"""The input/output contract of an exported graph or engine, shared by export and the runtimes.

Inputs `left` and `right` are 1x3xHxW float32 RGB in 0..255 (normalisation is
inside the graph); the output `disparity` is 1x1xHxW float32 x_l - x_r in
network-input pixels. Graphs exported with confidence (the default) have a
second output `confidence`, 1x1xHxW float32 in 0..1; older single-output
graphs and engines still load and report no confidence.
"""
import numpy as np

INPUT_NAMES = ('left', 'right')
OUTPUT_NAME = 'disparity'
CONFIDENCE_NAME = 'confidence'


def to_nchw(image):
    """HxWx3 uint8 RGB -> 1x3xHxW float32 0..255, the graph's input layout."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


class GraphOutputs:
    """`infer` / `infer_with_confidence` of a backend that runs an exported graph or engine.

    The backend provides `_run(left_rgb, right_rgb, names)` -> one HxW float32
    array per output name, and `has_confidence` (the graph has CONFIDENCE_NAME).
    """

    def infer(self, left_rgb, right_rgb):
        return self._run(left_rgb, right_rgb, [OUTPUT_NAME])[0]

    def infer_with_confidence(self, left_rgb, right_rgb):
        if not self.has_confidence:
            return self.infer(left_rgb, right_rgb), None
        disparity, confidence = self._run(left_rgb, right_rgb, [OUTPUT_NAME, CONFIDENCE_NAME])
        return disparity, confidence
