"""`predict(left, right, valid_iters, max_disp)` over any backend, for `ffs-stereo infer`.

StereoModel.predict is the PyTorch entry point; this gives .onnx, .engine
and 'sgbm' models the same call, going through create_backend and the shared
StereoPipeline (so camera images are fitted to a fixed-size graph and the
disparity comes back at camera resolution). Graphs and engines have
max_disp / valid_iters baked in: asking for other values is an error, not a
silent substitution.
"""
from .. import defaults
from ..backends import backend_kind, create_backend
from ..errors import ConfigError
from .stereo_pipeline import StereoPipeline


class PipelinePredictor:
    def __init__(self, model_path, device=defaults.DEVICE, backend='auto'):
        self.model_path = model_path
        self.device = device
        self.kind = backend_kind(model_path, backend)
        self._pipeline = None

    def _pipeline_for(self, max_disp):
        if self.kind == 'sgbm':
            max_disp = defaults.MAX_DISP if max_disp is None else int(max_disp)
            if self._pipeline is None or self._pipeline.backend.max_disparity != max_disp:
                self._pipeline = StereoPipeline(create_backend('sgbm', max_disp=max_disp))
        elif self._pipeline is None:
            self._pipeline = StereoPipeline(create_backend(self.model_path, self.kind, self.device))
        return self._pipeline

    def _check_baked(self, backend, valid_iters, max_disp):
        check_baked_settings(backend, {'valid_iters': valid_iters, 'max_disp': max_disp}, self.model_path,
                             lambda key: f"omit --{key.replace('_', '-')}")

    def predict(self, left, right, valid_iters=None, max_disp=None):
        pipeline = self._pipeline_for(max_disp)
        if self.kind != 'sgbm':
            self._check_baked(pipeline.backend, valid_iters, max_disp)
        encoding = 'mono8' if left.ndim == 2 else 'rgb8'
        return pipeline.compute(left, right, encoding, encoding)

    def describe(self):
        return self._pipeline.backend.describe() if self._pipeline else f'{self.kind} ({self.model_path})'


def check_baked_settings(backend, requested, model_path, how_to_omit):
    """Refuse settings the backend cannot honour: `requested` {'max_disp'/'valid_iters': value or None
    (not set)} against the values baked into an ONNX graph or engine (StereoBackend.baked_settings);
    `how_to_omit(key)` says how the user drops the setting (CLI option or node parameter)."""
    baked = backend.baked_settings()
    for key, wanted in requested.items():
        found = baked.get(key)
        if wanted is not None and found is not None and found != int(wanted):
            raise ConfigError(f"'{model_path}' was built with {key} {found}, not {wanted}: {how_to_omit(key)} "
                              'or export/build it again with that value')
