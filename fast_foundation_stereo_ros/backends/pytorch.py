"""PyTorch backend: the reimplemented network on a released checkpoint or native model.

Takes any size that is a multiple of 32 (the pipeline pads to it), so
`input_size` is None.
"""
from .. import defaults
from ..errors import ConfigError
from .base import StereoBackend


class TorchBackend(StereoBackend):
    name = 'pytorch'
    input_size = None
    size_multiple = defaults.SIZE_MULTIPLE
    has_confidence = True

    def __init__(self, path, device=defaults.DEVICE, max_disp=defaults.MAX_DISP, valid_iters=defaults.VALID_ITERS):
        import torch

        from ..loading.stereo_model import load_model
        if str(device).startswith('cuda') and not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' requested but PyTorch sees no CUDA GPU: use device 'cpu' "
                              '(or install a CUDA build of PyTorch)')
        self.model = load_model(path, device=device)
        check = getattr(self.model.network, 'check_max_disp', None)
        if check is not None:
            check(max_disp)
        if int(valid_iters) < 1:
            raise ConfigError(f'valid_iters must be >= 1, got {valid_iters}')
        self.device = str(device)
        self.max_disp = int(max_disp)
        self.valid_iters = int(valid_iters)
        self.max_disparity = float(max_disp)

    def infer(self, left_rgb, right_rgb):
        return self.model.predict(left_rgb, right_rgb, valid_iters=self.valid_iters, max_disp=self.max_disp)

    def infer_with_confidence(self, left_rgb, right_rgb):
        return self.model.predict_with_confidence(left_rgb, right_rgb, valid_iters=self.valid_iters,
                                                  max_disp=self.max_disp)

    def close(self):
        self.model = None

    def describe(self):
        return (f'pytorch ({self.device}, any size, max_disp {self.max_disp}, '
                f'{self.valid_iters} iterations)')
