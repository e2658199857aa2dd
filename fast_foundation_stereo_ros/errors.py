"""Exception types shared by every layer.

Each carries a message that names the problem *and* the fix, so the CLI and the
node can print it as one line without a traceback.
"""


class FFSError(Exception):
    """Base class for every error this package raises on bad input."""


class CheckpointError(FFSError):
    """A checkpoint or native model directory is missing, corrupt or unsafe."""


class InputError(FFSError):
    """An image pair, camera_info or runtime setting is unusable."""


class EngineError(FFSError):
    """An ONNX graph or TensorRT engine is missing, corrupt or built elsewhere."""


class ConfigError(FFSError):
    """A parameter or command-line value is out of range or inconsistent."""
