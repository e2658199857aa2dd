"""The stereo node's parameters: declaration with descriptors, and validation.

Every parameter is declared with a description and, where numeric, an
IntegerRange/FloatingPointRange, so `ros2 param describe` documents it.
Invalid values (out of range, wrong type, unknown choice, inconsistent pair)
become one ConfigError naming the parameter and what is allowed; the node
prints it as a single line and exits non-zero.
"""
import math
import re
from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from .. import defaults
from ..backends import BACKEND_NAMES
from ..errors import ConfigError
from ..pipeline.frame_stage import MAX_DECIMATION, FrameOptions, OptionError
from ..pipeline.image_fitting import FIT_MODES
from .qos import QOS_PRESETS, RELIABILITY_CHOICES


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: object
    description: str
    bounds: tuple = None     # (low, high) or (low, high, step) for numbers
    choices: tuple = None    # allowed strings

    def allowed(self):
        """Human-readable allowed values."""
        if self.choices is not None:
            return 'one of ' + ', '.join(repr(c) for c in self.choices)
        if self.bounds is not None:
            text = f'in [{self.bounds[0]}, {self.bounds[1]}]'
            if len(self.bounds) == 3:
                text += f' in steps of {self.bounds[2]}'
            return text
        return f'a {type(self.default).__name__}'

    def descriptor(self):
        # Not read_only: a run-time change of a parameter that needs a restart is refused by the node's
        # set-parameters callback (ros/reconfigure.py) with the reason, which rclpy's read-only check cannot give.
        descriptor = ParameterDescriptor(name=self.name, description=self.description, read_only=False)
        if self.choices is not None:
            descriptor.additional_constraints = self.allowed()
        if self.bounds is not None and isinstance(self.default, bool):
            raise TypeError(f'{self.name}: bool parameters take no bounds')
        if self.bounds is not None and isinstance(self.default, int):
            low, high, *step = self.bounds
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=step[0] if step else 1)]
        elif self.bounds is not None:
            low, high = self.bounds
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high),
                                                                  step=0.0)]
        return descriptor


_QOS_NAMES = tuple(QOS_PRESETS)
_RELIABILITIES = tuple(RELIABILITY_CHOICES)

PARAMETERS = (
    # -- model --------------------------------------------------------------
    ParameterSpec('model', '', "Model file: .engine/.plan (TensorRT), .onnx (ONNX Runtime), .pth or a "
                  "model directory (PyTorch); '' or 'sgbm' = classical OpenCV SGBM, no weights"),
    ParameterSpec('backend', 'auto', "Backend; 'auto' chooses from the model path", choices=BACKEND_NAMES),
    ParameterSpec('device', defaults.DEVICE, "Device for PyTorch / ONNX Runtime: 'auto' (CUDA when available, else the CPU; the "
                  "choice is logged), 'cuda', 'cuda:1', 'cpu'"),
    ParameterSpec('scale', 1.0, 'Image scale before inference for backends of any input size (0 < scale <= 1); '
                  'disparity is mapped back to camera resolution', bounds=(0.0, 1.0)),
    ParameterSpec('fit_mode', 'letterbox', 'How camera images meet a fixed network input size',
                  choices=FIT_MODES),
    ParameterSpec('max_disp', defaults.MAX_DISP, 'Largest disparity searched, in network-input pixels (multiple of 16)',
                  bounds=(16, 1024, 16)),
    ParameterSpec('valid_iters', defaults.VALID_ITERS, 'Refinement iterations (PyTorch backend)', bounds=(1, 64)),
    ParameterSpec('cuda_graph', False, 'TensorRT: replay the engine as a CUDA graph captured once (less '
                  'launch overhead); a failed capture is logged once and the engine runs without it'),
    ParameterSpec('warmup', True, 'Run one dummy inference at start so the first frame is not slow'),
    ParameterSpec('input_transport', 'raw', "Input images: 'raw' (sensor_msgs/Image on left/image_rect, "
                  "right/image_rect) or 'compressed' (sensor_msgs/CompressedImage, jpeg/png, on "
                  "left/image_rect/compressed, right/image_rect/compressed)", choices=('raw', 'compressed')),
    ParameterSpec('cameras', [], 'Stereo heads served by the one backend, as namespaces (e.g. [front, rear]: '
                  'front/left/image_rect ... -> front/disparity ...); empty = one head at the node namespace'),
    # -- geometry -----------------------------------------------------------
    ParameterSpec('min_depth', 0.0, 'Nearest depth (m) kept in depth and points; nearer -> NaN',
                  bounds=(0.0, 10000.0)),
    ParameterSpec('max_depth', 0.0, 'Farthest depth (m) kept in depth and points; 0 = no limit',
                  bounds=(0.0, 10000.0)),
    ParameterSpec('use_color', True, 'Add the packed rgb field (left image colours) to points2'),
    ParameterSpec('avoid_point_cloud_padding', False, 'Packed points2 layout (16/12 bytes per point) '
                  'instead of the padded stereo_image_proc default (32/16)'),
    ParameterSpec('point_cloud_decimation', 1, 'Publish every n-th row and column in points2',
                  bounds=(1, MAX_DECIMATION)),
    ParameterSpec('invalidate_out_of_view', True, 'No depth or point where the match x - d lies left of the '
                  "right image (the official demo's remove_invisible; the disparity keeps its value as in the "
                  'demo; SGBM never reports those pixels)'),
    ParameterSpec('min_confidence', 0.0, 'Pixels whose confidence (0..1) is below this become NaN in '
                  'disparity, depth and points; 0 = off (needs a backend with confidence)', bounds=(0.0, 1.0)),
    # -- outputs --------------------------------------------------------------
    ParameterSpec('publish_disparity', True, 'Advertise disparity (stereo_msgs/DisparityImage)'),
    ParameterSpec('publish_disparity_color', True, 'Advertise disparity/color (rgb8 colour map)'),
    ParameterSpec('publish_depth', True, 'Advertise depth/image (32FC1 m) and depth/camera_info'),
    ParameterSpec('publish_depth_mm', False, 'Advertise depth/image_mm (16UC1 mm, 0 = invalid)'),
    ParameterSpec('publish_points', True, 'Advertise points2 (sensor_msgs/PointCloud2)'),
    ParameterSpec('publish_confidence', True, 'Advertise confidence (32FC1, 0..1, backends that have it)'),
    # -- synchronisation and QoS --------------------------------------------------
    ParameterSpec('approximate_sync', False, 'Match inputs by nearest stamps instead of equal stamps'),
    ParameterSpec('approximate_sync_tolerance_seconds', 0.0, 'Largest stamp spread of one approximate '
                  'set; 0 = unbounded (nearest stamps)', bounds=(0.0, 10.0)),
    ParameterSpec('queue_size', 5, 'Unmatched messages kept per input topic', bounds=(1, 100)),
    ParameterSpec('input_qos', 'SENSOR_DATA', 'QoS preset of the four subscriptions', choices=_QOS_NAMES),
    ParameterSpec('input_qos_reliability', '', "Override the input reliability ('' = preset's)",
                  choices=_RELIABILITIES),
    ParameterSpec('input_qos_depth', 0, 'Override the input history depth (0 = preset\'s)', bounds=(0, 1000)),
    ParameterSpec('output_qos', 'DEFAULT', 'QoS preset of the outputs', choices=_QOS_NAMES),
    ParameterSpec('output_qos_reliability', '', "Override the output reliability ('' = preset's)",
                  choices=_RELIABILITIES),
    ParameterSpec('output_qos_depth', 1, 'Override the output history depth (0 = preset\'s)', bounds=(0, 1000)),
    # -- observability --------------------------------------------------------
    ParameterSpec('diagnostics_period', 1.0, 'Seconds between /diagnostics messages', bounds=(0.1, 60.0)),
    ParameterSpec('log_period', 10.0, 'Seconds between status log lines (0 = off)', bounds=(0.0, 3600.0)),
    ParameterSpec('bad_input_log_period', 5.0, 'Seconds between two log lines for the same bad-input cause',
                  bounds=(0.0, 3600.0)),
)
SPECS = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeConfig:
    """Validated parameter values (attribute per parameter)."""
    model: str
    backend: str
    device: str
    scale: float
    fit_mode: str
    max_disp: int
    valid_iters: int
    cuda_graph: bool
    warmup: bool
    min_depth: float
    max_depth: float
    use_color: bool
    avoid_point_cloud_padding: bool
    point_cloud_decimation: int
    invalidate_out_of_view: bool
    min_confidence: float
    publish_disparity: bool
    publish_disparity_color: bool
    publish_depth: bool
    publish_depth_mm: bool
    publish_points: bool
    publish_confidence: bool
    approximate_sync: bool
    approximate_sync_tolerance_seconds: float
    queue_size: int
    input_qos: str
    input_qos_reliability: str
    input_qos_depth: int
    output_qos: str
    output_qos_reliability: str
    output_qos_depth: int
    diagnostics_period: float
    log_period: float
    bad_input_log_period: float
    input_transport: str = 'raw'
    cameras: tuple = ()

    @property
    def depth_range(self):
        return (self.min_depth, self.max_depth if self.max_depth > 0 else math.inf)

    @property
    def frame_options(self):
        """The per-frame stage's options (checked by FrameOptions, as for every tool)."""
        return FrameOptions(use_color=self.use_color, avoid_point_cloud_padding=self.avoid_point_cloud_padding,
                            min_depth=self.depth_range[0], max_depth=self.depth_range[1],
                            point_cloud_decimation=self.point_cloud_decimation,
                            invalidate_out_of_view=self.invalidate_out_of_view,
                            min_confidence=self.min_confidence)

    @property
    def sync_tolerance_ns(self):
        """0 = exact; None = unbounded approximate; else the approximate window."""
        if not self.approximate_sync:
            return 0
        if self.approximate_sync_tolerance_seconds == 0.0:
            return None
        return int(round(self.approximate_sync_tolerance_seconds * 1e9))


def declare_parameters(node):
    """Declare every parameter on `node` and return the validated NodeConfig."""
    values = {}
    for spec in PARAMETERS:
        # an empty list has no parameter type: declare string arrays by type (unset = the empty default)
        default = Parameter.Type.STRING_ARRAY if isinstance(spec.default, list) else spec.default
        try:
            value = node.declare_parameter(spec.name, default, spec.descriptor()).value
            values[spec.name] = spec.default if value is None else value
        except InvalidParameterTypeException:
            expected = type(spec.default).__name__
            hint = ' (write a decimal point, e.g. 1.0 instead of 1)' if expected == 'float' else ''
            raise ConfigError(f"parameter '{spec.name}' must be a {expected}{hint}; allowed: "
                              f'{spec.allowed()}') from None
        except InvalidParameterValueException as exc:
            raise ConfigError(f"parameter '{spec.name}' is invalid ({_rclpy_reason(exc, spec.name)}); "
                              f'allowed: {spec.allowed()}') from None
    return validate(values)


def validate(values):
    """NodeConfig from a {name: value} dict (missing names take defaults)."""
    unknown = set(values) - set(SPECS)
    if unknown:
        raise ConfigError(f'unknown parameter(s): {", ".join(sorted(unknown))}')
    merged = {spec.name: values.get(spec.name, spec.default) for spec in PARAMETERS}
    for spec in PARAMETERS:
        _check_value(spec, merged[spec.name])
    merged['cameras'] = tuple(merged['cameras'])
    if merged['scale'] <= 0.0:
        _reject('scale', merged['scale'], '0 < scale <= 1')
    config = NodeConfig(**merged)
    try:
        config.frame_options  # noqa: B018 - built to be checked
    except OptionError as exc:
        _reject(exc.option, merged[exc.option], exc.allowed)
    return config


def _check_value(spec, value):
    if isinstance(spec.default, list):
        _check_camera_names(spec.name, value)
        return
    if isinstance(spec.default, bool) or isinstance(spec.default, str):
        if type(value) is not type(spec.default):
            _reject(spec.name, value, spec.allowed())
    elif isinstance(spec.default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            _reject(spec.name, value, spec.allowed())
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        _reject(spec.name, value, spec.allowed())
    if spec.choices is not None and value not in spec.choices:
        _reject(spec.name, value, spec.allowed())
    if spec.bounds is not None:
        low, high, *step = spec.bounds
        if not low <= value <= high or (step and (value - low) % step[0]):
            _reject(spec.name, value, spec.allowed())


def _check_camera_names(name, value):
    allowed = 'a list of distinct namespaces of letters, digits and _ (e.g. [front, rear])'
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        _reject(name, value, allowed)
    if len(set(value)) != len(value) or not all(_CAMERA_NAME.fullmatch(item) for item in value):
        _reject(name, list(value), allowed)


_CAMERA_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*')


def _reject(name, value, allowed):
    raise ConfigError(f"parameter '{name}' = {value!r} is invalid; allowed: {allowed}")


def _rclpy_reason(exc, name):
    reason = str(exc).split('Reason: ', 1)[-1]
    return reason[:-len(name) - 2] if reason.endswith(f': {name}') else reason


def explicit_network_settings(config):
    """{'max_disp', 'valid_iters'}: the value where the user changed it from the default, else None (so an
    ONNX graph or engine with other baked values is refused only for settings the user asked for)."""
    return {key: value if value != SPECS[key].default else None
            for key, value in (('max_disp', config.max_disp), ('valid_iters', config.valid_iters))}
