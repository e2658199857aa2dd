"""Fast-FoundationStereo for ROS 2: network, backends, stereo geometry and node.

Importing the package is cheap: heavy modules (torch, rclpy) load on first use.
"""

from . import defaults
from .version import __version__


def load_model(path, device=defaults.DEVICE):
    """Load a released `.pth` checkpoint or a native model directory.

    Returns a `StereoModel` whose `predict(left, right, valid_iters=None,
    max_disp=None)` maps two HxWx3 uint8 RGB images to float32 disparity.
    """
    from .loading.stereo_model import load_model as _load_model
    return _load_model(path, device=device)


__all__ = ['load_model', '__version__']
