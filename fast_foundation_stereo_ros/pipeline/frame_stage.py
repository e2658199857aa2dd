"""One stereo frame in, the requested outputs out: the per-frame stage of the node and the offline tools.

`FrameStage.compute` works on arrays (pairs, folders, demo); `FrameProcessor`
wraps it for sensor_msgs messages (node, bags), building the output messages
through a `MessageFactory` (rclpy: ros.messages.RclpyMessageFactory;
rosbags: offline.bag_messages.RosbagsMessageFactory). Both take the same
`FrameOptions` (depth range, point-cloud decimation, colour, padding) and the
same `OutputRequest`, so every tool honours every option the node has.
Only the requested outputs are computed.

Output conventions:
- every header is the LEFT IMAGE's header (stamp and optical frame), never
  now(), so outputs line up with the images they were computed from;
- disparity: 32FC1, d = x_l - x_r - (cx_l - cx_r). Invalid pixels are NaN,
  not a value below min_disparity: NaN cannot be mistaken for a far point
  by a consumer that computes f*t/d without checking (a -1 would give a
  negative depth, a 0 an infinite one), it is what depth and points use
  (REP 117), and every consumer already needs an isfinite() test for float
  images;
- depth/image: 32FC1 metres along optical z, NaN invalid or outside the
  depth range (REP 117/118); depth/image_mm: 16UC1 millimetres, 0 invalid;
- points2: organised, stereo_image_proc layout, NaN xyz for invalid points;
- confidence: 32FC1 in 0..1 (1 = trusted) at camera resolution, from backends
  that have it (StereoBackend.has_confidence). `FrameOptions.min_confidence`
  > 0 makes disparity, depth and points NaN where confidence is below it,
  right after inference and before any geometry.

Outputs are computed straight into reusable buffers made by the factory
(rclpy: array.array that the messages take as their data without a copy):
a result is valid until the next call; the node publishes (serialises) and
the bag writer serialises before that. Copy what you keep.

Verified by test/pipeline/test_frame_stage.py (arrays, options, buffers),
test/ros/test_frame_processor.py (rclpy messages) and
test/offline/test_bags.py (rosbags messages, every option).
"""
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from .. import defaults
from ..defaults import round_up
from ..errors import ConfigError, InputError
from ..files.colormap import colorize_disparity
from ..geometry.intrinsics import camera_from_infos, check_image_size
from ..geometry.stereo import (CloudBuilder, CloudLayout, StereoCamera, correct_disparity, depth_to_millimetres,
                               disparity_to_depth, invalidate_disparity)
from .encodings import check_encoding, check_same_size, image_to_array, pair_to_rgb8
from .stereo_pipeline import StereoPipeline

#: fine timing stage -> the stage reported on /diagnostics
STAGE_OF = {
    'to_array': 'convert', 'to_rgb': 'convert', 'camera_info': 'convert', 'prepare': 'convert',
    'infer': 'infer', 'min_confidence': 'geometry',
    'restore': 'geometry', 'correct': 'geometry', 'depth': 'geometry', 'depth_mm': 'geometry',
    'cloud': 'geometry', 'colormap': 'geometry',
    'build_disparity': 'build', 'build_depth': 'build', 'build_points': 'build',
    'build_color': 'build', 'build_confidence': 'build',
}
#: largest point-cloud decimation step (the node parameter's bound)
MAX_DECIMATION = 16


def reported_stages(timings):
    """Fine stage timings summed per reported stage (convert, infer, geometry, build)."""
    totals = {}
    for stage, seconds in timings.items():
        group = STAGE_OF.get(stage, stage)
        totals[group] = totals.get(group, 0.0) + seconds
    return totals


class OptionError(ConfigError):
    """A FrameOptions value out of range; names the option, its value and what is allowed,
    so the node can report it as the parameter of the same name."""

    def __init__(self, option, value, allowed):
        super().__init__(f'{option} = {value!r} is invalid; allowed: {allowed}')
        self.option, self.value, self.allowed = option, value, allowed


class BackendFailure(RuntimeError):
    """The backend raised while inferring one frame (the cause is chained)."""


class BadFrame(InputError):
    """An input set that cannot be processed; `cause` groups it for counting."""

    def __init__(self, cause, message):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class OutputRequest:
    """Which outputs to compute (the node: those with subscribers)."""
    disparity: bool = False
    disparity_color: bool = False
    depth: bool = False        # depth/image (+ depth/camera_info)
    depth_mm: bool = False     # depth/image_mm (+ depth/camera_info)
    points: bool = False
    confidence: bool = False   # confidence (32FC1, 0..1)

    @property
    def needs_inference(self) -> bool:
        return self.disparity or self.disparity_color or self.needs_depth or self.confidence

    @property
    def needs_depth(self) -> bool:
        return self.depth or self.depth_mm or self.points


@dataclass(frozen=True)
class FrameOptions:
    """What the node's geometry parameters set; checked here once for every tool."""
    use_color: bool = True
    avoid_point_cloud_padding: bool = False
    min_depth: float = 0.0
    max_depth: float = float('inf')     # inf = no limit
    point_cloud_decimation: int = 1
    # pixels whose match x - d lies left of the right image get no depth or point, as the official
    # demo's remove_invisible (on by default there); SGBM never reports them anyway
    invalidate_out_of_view: bool = True
    min_confidence: float = 0.0         # 0 = off; else pixels less confident become NaN

    def __post_init__(self):
        if not self.min_depth >= 0:
            raise OptionError('min_depth', self.min_depth, '>= 0 (metres)')
        if not self.max_depth > self.min_depth:
            raise OptionError('max_depth', self.max_depth, f'0 (no limit) or > min_depth ({self.min_depth})')
        step = self.point_cloud_decimation
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 1 <= step <= MAX_DECIMATION:
            raise OptionError('point_cloud_decimation', step, f'an integer in 1..{MAX_DECIMATION}')
        if not 0.0 <= self.min_confidence <= 1.0:
            raise OptionError('min_confidence', self.min_confidence, '0..1 (0 = off)')

    @property
    def depth_range(self):
        return (self.min_depth, self.max_depth)


class ArrayBuffer:
    """A reusable numpy output array; `data` is its bytes (what a rosbags message holds)."""

    def __init__(self, shape, dtype):
        self.array = np.zeros(shape, dtype)
        self.data = self.array.reshape(-1).view(np.uint8)

    def fits(self, shape, dtype) -> bool:
        return self.array.shape == tuple(shape) and self.array.dtype == np.dtype(dtype)


#: disparities at or above this share of the searched maximum count as "at the top of the range": the
#: scene may be nearer than f*B/max_disp there, where the search cannot see the true match
TOP_OF_RANGE_FRACTION = 0.97
#: headroom of the suggested max_disp over the largest disparity seen
TOP_OF_RANGE_MARGIN = 1.25


@dataclass(frozen=True)
class TopOfRange:
    """Share of pixels at the top of the searched range, and the max_disp (network-input pixels, a
    multiple of defaults.SIZE_MULTIPLE) that would cover them (None when no pixel is there)."""
    share: float
    suggested_max_disp: int = None


def _invalidate_above(disparity, maximum):
    """NaN where the disparity exceeds the searched range (a network may regress past max_disp; such
    values are not measurements, and a clamped value would put the obstacle farther than it is)."""
    np.copyto(disparity, np.float32(np.nan), where=disparity > np.float32(maximum))


@dataclass
class FrameArrays:
    """The computed outputs of one frame (views of the stage's reusable buffers)."""
    left_rgb: np.ndarray              # HxWx3 uint8
    disparity: np.ndarray             # corrected by cx_l - cx_r (raw without a camera), NaN invalid
    camera: StereoCamera = None
    disparity_range: tuple = None     # (min, max) DisparityImage range of the search (with a camera)
    delta_d: float = None             # DisparityImage.delta_d (with a camera)
    depth: np.ndarray = None          # metres, NaN invalid or outside the depth range
    depth_mm: np.ndarray = None       # uint16 millimetres, 0 invalid
    points: np.ndarray = None         # organised cloud, rows x cols x point_step bytes (decimated)
    layout: CloudLayout = None
    point_colours: np.ndarray = None  # rows x cols x 3 uint8 colours of the points (None without colour)
    colour: np.ndarray = None         # HxWx3 rgb8 disparity colour map
    confidence: np.ndarray = None     # HxW float32 0..1 (requested and the backend has it)
    timings: dict = field(default_factory=dict)   # fine stage -> seconds
    backend_disparity: np.ndarray = None   # the pipeline's x_l - x_r before any check (may be its buffer)
    top_of_range: TopOfRange = TopOfRange(0.0)
    low_confidence: np.ndarray = None      # HxW bool: pixels min_confidence invalidated (None: off)

    @property
    def raw_disparity(self):
        """x_l - x_r, the convention of disparity files (Middlebury, KITTI, Scene Flow), NaN invalid:
        a new array from the backend's output, independent of the camera's cx offset (the disparity
        itself without a camera). Used only where files are written, never on the node's path."""
        if self.camera is None or self.backend_disparity is None:
            return self.disparity
        raw = invalidate_disparity(self.backend_disparity.astype(np.float32))
        if self.low_confidence is not None:
            raw[self.low_confidence] = np.nan
        return raw

    @property
    def xyz(self):
        """rows x cols x 3 float32 view of the cloud's x, y, z (NaN invalid)."""
        return self.points.view(np.float32)[..., 0:3]


class _Stopwatch:
    def __init__(self):
        self.timings = {}
        self._last = time.perf_counter()

    def lap(self, stage):
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._last
        self._last = now

    def record(self, measured):
        """Take stages timed elsewhere (which cover the time since the last lap)."""
        self.timings.update(measured)
        self._last = time.perf_counter()


class FrameStage:
    """Rectified pair + camera -> disparity, depth, millimetre depth, cloud, colour map (arrays).

    `new_buffer(shape, dtype)` makes the reusable output buffers (an object
    with `.array`, `.data` and `.fits`); ArrayBuffer by default, a message
    factory's `buffer` when the outputs become messages without a copy.
    """

    def __init__(self, pipeline: StereoPipeline, options: FrameOptions = FrameOptions(), new_buffer=ArrayBuffer):
        self.pipeline = pipeline
        self.options = options
        self.layout = CloudLayout.for_options(options.use_color, options.avoid_point_cloud_padding)
        self._new_buffer = new_buffer
        self._buffers = {}        # output name -> buffer
        self._cloud_builder = None
        self._columns = None      # 1 x W column indices (x) for the out-of-view test
        self.check_options(options)

    def check_options(self, options: FrameOptions):
        """Refuse options this stage's backend cannot honour (ConfigError naming the option)."""
        if options.min_confidence > 0 and not self.pipeline.has_confidence:
            raise OptionError('min_confidence', options.min_confidence,
                              f'0 with the {self.pipeline.backend.name} backend: its model has no confidence '
                              'output (re-export the ONNX graph / rebuild the engine without --no-confidence)')

    def set_options(self, options: FrameOptions):
        """Use `options` from the next `compute` on (the node's live reconfiguration, called by the
        thread that computes, between frames); the cloud layout follows colour and padding."""
        self.check_options(options)
        self.options = options
        self.layout = CloudLayout.for_options(options.use_color, options.avoid_point_cloud_padding)
        self._cloud_builder = None

    def buffer(self, name, shape=None, dtype=None):
        """The reusable buffer of one output (re-made when its size changes)."""
        buffer = self._buffers.get(name)
        if shape is not None and (buffer is None or not buffer.fits(shape, dtype)):
            buffer = self._buffers[name] = self._new_buffer(shape, dtype)
        return buffer

    def compute(self, left: np.ndarray, left_encoding: str, right: np.ndarray, right_encoding: str,
                camera: StereoCamera = None, request: OutputRequest = OutputRequest(disparity=True),
                watch: _Stopwatch = None) -> FrameArrays:
        """The requested outputs of one pair; depth, millimetres and points need `camera`.

        Raises BadFrame (cause 'size_mismatch', 'encoding', 'network_input')
        for input the pair cannot be computed from, BackendFailure when the
        backend itself fails.
        """
        watch = watch or _Stopwatch()
        if camera is None and (request.needs_depth or request.disparity_color):
            raise ValueError('only the disparity can be computed without the camera')
        for side, encoding in (('left', left_encoding), ('right', right_encoding)):
            try:
                check_encoding(encoding)
            except InputError as exc:
                raise BadFrame('encoding', f'{side} image: {exc}') from None
        try:
            check_same_size(left, right)
        except InputError as exc:
            raise BadFrame('size_mismatch', str(exc)) from None
        try:
            left_rgb, right_rgb = pair_to_rgb8(left, left_encoding, right, right_encoding)
        except InputError as exc:
            raise BadFrame('encoding', str(exc)) from None
        watch.lap('to_rgb')
        raw, confidence = self._infer(left_rgb, right_rgb, watch, request.confidence)
        disparity = self.buffer('disparity', raw.shape, np.float32).array
        top = self.top_of_range(raw)
        published = None
        if request.confidence and confidence is not None:
            published = confidence = self._confidence_output(confidence)
        if camera is None:
            np.copyto(disparity, raw, casting='same_kind')
            invalidate_disparity(disparity)
            _invalidate_above(disparity, self.pipeline.max_disparity)
            watch.lap('correct')
            low = self._apply_min_confidence(disparity, confidence, watch)
            return FrameArrays(left_rgb, disparity, confidence=published, timings=watch.timings, top_of_range=top,
                               low_confidence=low)
        correct_disparity(raw, camera, out=disparity)
        disparity_range = self.pipeline.searched_range(camera)
        _invalidate_above(disparity, disparity_range[1])
        watch.lap('correct')
        low = self._apply_min_confidence(disparity, confidence, watch)
        arrays = FrameArrays(left_rgb, disparity, camera, disparity_range, self.pipeline.delta_d(camera),
                             confidence=published, timings=watch.timings, backend_disparity=raw,
                             top_of_range=top, low_confidence=low)
        if request.disparity_color:
            arrays.colour = colorize_disparity(disparity, *arrays.disparity_range)
            watch.lap('colormap')
        if request.needs_depth and not camera.has_depth:
            return arrays   # zero baseline: disparity only (the caller says so)
        if request.needs_depth:
            arrays.depth = disparity_to_depth(disparity, camera, self.options.depth_range,
                                              out=self.buffer('depth', raw.shape, np.float32).array)
            self._invalidate_out_of_view(arrays.depth, raw)
            watch.lap('depth')
            if request.depth_mm:
                arrays.depth_mm = depth_to_millimetres(
                    arrays.depth, out=self.buffer('depth_mm', raw.shape, np.uint16).array)
                watch.lap('depth_mm')
            if request.points:
                arrays.points, arrays.point_colours = self._cloud(arrays.depth, left_rgb, camera)
                arrays.layout = self.layout
                watch.lap('cloud')
        return arrays

    def _invalidate_out_of_view(self, depth, raw):
        """NaN depth (so no point) where the raw match x - d < 0 lies outside the right image.

        As the official demo's `remove_invisible`: the disparity keeps the network's value there (the
        demo's disparity output does too), depth and the cloud drop it. The SGBM backend already returns
        NaN for such matches. Off with options.invalidate_out_of_view = False.
        """
        if not self.options.invalidate_out_of_view:
            return
        width = raw.shape[1]
        if self._columns is None or self._columns.shape[1] != width:
            self._columns = np.arange(width, dtype=np.float32)[None, :]
        np.copyto(depth, np.float32(np.nan), where=raw > self._columns)

    def top_of_range(self, raw):
        """TopOfRange of the backend's disparity (camera pixels, before any check)."""
        maximum = self.pipeline.max_disparity
        near_top = np.count_nonzero(raw >= np.float32(TOP_OF_RANGE_FRACTION * maximum))
        if not near_top:
            return TopOfRange(0.0, None)
        largest = float(np.nanmax(raw))
        backend_max = self.pipeline.backend.max_disparity
        input_largest = largest * backend_max / maximum   # back in network-input pixels
        suggested = max(round_up(int(np.ceil(input_largest * TOP_OF_RANGE_MARGIN)), defaults.SIZE_MULTIPLE),
                        round_up(int(backend_max) + 1, defaults.SIZE_MULTIPLE))
        return TopOfRange(near_top / raw.size, suggested)

    def _confidence_output(self, confidence):
        """The confidence in its reusable buffer (messages take the buffer's data without a copy)."""
        buffer = self.buffer('confidence', confidence.shape, np.float32).array
        np.copyto(buffer, confidence, casting='same_kind')
        return buffer

    def _apply_min_confidence(self, disparity, confidence, watch):
        """NaN where confidence < min_confidence, before depth and points are derived; returns the
        mask of those pixels (None when the threshold is off)."""
        threshold = self.options.min_confidence
        if threshold <= 0 or confidence is None:
            return None
        low = confidence < np.float32(threshold)
        np.copyto(disparity, np.float32(np.nan), where=low)
        watch.lap('min_confidence')
        return low

    def _infer(self, left_rgb, right_rgb, watch, confidence_requested=False):
        """(disparity, confidence or None) at camera size; confidence is computed when requested
        or needed for min_confidence."""
        try:
            if confidence_requested or self.options.min_confidence > 0:
                raw, confidence = self.pipeline.compute_with_confidence(left_rgb, right_rgb, 'rgb8', 'rgb8')
            else:
                raw, confidence = self.pipeline.compute(left_rgb, right_rgb, 'rgb8', 'rgb8'), None
        except InputError as exc:
            raise BadFrame('network_input', str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any backend failure is one frame's failure
            raise BackendFailure(f'{type(exc).__name__}: {exc}') from exc
        stages = self.pipeline.last_timings
        watch.record({'prepare': stages.get('convert', 0.0), 'infer': stages.get('infer', 0.0),
                      'restore': stages.get('restore', 0.0)})
        return raw, confidence

    def _cloud(self, depth, left_rgb, camera):
        """(points buffer, the colours used or None) of the (decimated) depth."""
        step = self.options.point_cloud_decimation
        if step > 1:
            depth, left_rgb, camera = depth[::step, ::step], left_rgb[::step, ::step], camera.decimated(step)
        if self._cloud_builder is None or self._cloud_builder.camera != camera:
            buffer = self.buffer('points', (camera.height, camera.width, self.layout.point_step), np.uint8)
            self._cloud_builder = CloudBuilder(camera, self.layout, buffer.array)
        colours = left_rgb if self.layout.has_color else None
        return self._cloud_builder.fill(depth, colours), colours


# ------------------------------------------------------------------ messages --

@dataclass(frozen=True)
class StereoFrame:
    """The four synchronised input messages (infos may be None when the camera is given)."""
    left_image: object
    right_image: object
    left_info: object = None
    right_info: object = None


@dataclass
class ProcessedFrame:
    messages: dict                    # output name -> message
    timings: dict = field(default_factory=dict)   # fine stage -> seconds
    disparity: np.ndarray = None      # corrected disparity (tests, tools)
    depth: np.ndarray = None
    top_of_range: TopOfRange = TopOfRange(0.0)
    no_baseline: bool = False         # depth/points were asked for but the camera has no baseline

    def stage_timings(self):
        """Seconds per reported stage (convert, infer, geometry, build)."""
        return reported_stages(self.timings)


class MessageFactory(ABC):
    """Builds the output messages of one message library (rclpy or rosbags).

    `data`, where given, is the `.data` of the factory's own buffer that the
    array is a view of: the message takes it without a copy.
    """

    @abstractmethod
    def buffer(self, shape, dtype):
        """A reusable output buffer: `.array` (numpy view), `.data` (what a message holds), `.fits`."""

    @abstractmethod
    def image(self, pixels, encoding, header, data=None):
        """sensor_msgs/Image of `pixels` in `encoding` under `header`."""

    @abstractmethod
    def disparity_image(self, disparity, header, camera, min_disparity, max_disparity, delta_d, data=None):
        """stereo_msgs/DisparityImage: f = fx, t = baseline, full valid window, NaN invalid."""

    @abstractmethod
    def point_cloud(self, points, layout, header, data=None):
        """Organised sensor_msgs/PointCloud2 of a CloudBuilder buffer (H x W x point_step bytes)."""

    @abstractmethod
    def camera_info(self, info, header):
        """A copy of CameraInfo `info` under `header` (depth/camera_info = the left info)."""


def camera_info_fields(info):
    """The plain record geometry.camera_from_infos validates, of an rclpy or rosbags CameraInfo."""
    roi = info.roi
    return {'width': info.width, 'height': info.height, 'p': info.p, 'k': info.k, 'binning_x': info.binning_x,
            'binning_y': info.binning_y, 'roi': (roi.x_offset, roi.y_offset, roi.width, roi.height)}


def camera_info_key(left_info, right_info):
    """Hashable summary of everything the camera depends on (cache key)."""
    return tuple((tuple(fields.pop('p')), tuple(fields.pop('k')), tuple(sorted(fields.items())))
                 for fields in (camera_info_fields(left_info), camera_info_fields(right_info)))


class FrameProcessor:
    """StereoFrame of messages -> the requested output messages, through one FrameStage.

    `camera`: a StereoCamera that replaces the frames' camera_info (offline
    --intrinsics); the image size is still checked against it.
    """

    def __init__(self, pipeline: StereoPipeline, factory: MessageFactory, options: FrameOptions = FrameOptions(),
                 camera: StereoCamera = None):
        self.stage = FrameStage(pipeline, options, factory.buffer)
        self.factory = factory
        self.camera_override = camera
        self._camera_cache = (None, None)

    @property
    def pipeline(self):
        return self.stage.pipeline

    @property
    def options(self):
        return self.stage.options

    def process(self, frame: StereoFrame, request: OutputRequest) -> ProcessedFrame:
        """Compute the requested outputs of one StereoFrame; raises BadFrame or BackendFailure."""
        if not request.needs_inference:
            return ProcessedFrame({})
        watch = _Stopwatch()
        left = self._image_array('left', frame.left_image)
        right = self._image_array('right', frame.right_image)
        watch.lap('to_array')
        camera = self._camera(frame, left.shape[1], left.shape[0])
        watch.lap('camera_info')
        arrays = self.stage.compute(left, frame.left_image.encoding, right, frame.right_image.encoding,
                                    camera, request, watch)
        messages = self._messages(arrays, frame, request, watch)
        return ProcessedFrame(messages, watch.timings, arrays.disparity, arrays.depth, arrays.top_of_range,
                              no_baseline=request.needs_depth and not camera.has_depth)

    def _messages(self, arrays, frame, request, watch):
        factory, stage, header = self.factory, self.stage, frame.left_image.header
        messages = {}
        if request.disparity:
            low, high = arrays.disparity_range
            messages['disparity'] = factory.disparity_image(arrays.disparity, header, arrays.camera, low, high,
                                                            arrays.delta_d, data=stage.buffer('disparity').data)
            watch.lap('build_disparity')
        if request.disparity_color:
            messages['disparity_color'] = factory.image(arrays.colour, 'rgb8', header)
            watch.lap('build_color')
        if arrays.depth is None:
            return messages   # zero baseline: disparity only
        if (request.depth or request.depth_mm) and frame.left_info is not None:
            # the left rectified info describes the depth images too (same pixels)
            messages['depth_info'] = factory.camera_info(frame.left_info, header)
        if request.depth:
            messages['depth'] = factory.image(arrays.depth, '32FC1', header, data=stage.buffer('depth').data)
            watch.lap('build_depth')
        if request.depth_mm:
            messages['depth_mm'] = factory.image(arrays.depth_mm, '16UC1', header, data=stage.buffer('depth_mm').data)
            watch.lap('build_depth')
        if request.points:
            messages['points'] = factory.point_cloud(arrays.points, arrays.layout, header,
                                                     data=stage.buffer('points').data)
            watch.lap('build_points')
        if request.confidence and arrays.confidence is not None:
            messages['confidence'] = factory.image(arrays.confidence, '32FC1', header,
                                                   data=stage.buffer('confidence').data)
            watch.lap('build_confidence')
        return messages

    @staticmethod
    def _image_array(side, image):
        try:
            check_encoding(image.encoding)
        except InputError as exc:
            raise BadFrame('encoding', f'{side} image: {exc}') from None
        try:
            return image_to_array(image)
        except InputError as exc:
            raise BadFrame('corrupt_image', f'{side} image: {exc}') from None

    def _camera(self, frame, width, height):
        if self.camera_override is not None:
            try:
                check_image_size(self.camera_override, width, height, 'the given intrinsics')
            except InputError as exc:
                raise BadFrame('camera_info', str(exc)) from None
            return self.camera_override
        key = (camera_info_key(frame.left_info, frame.right_info), width, height)
        cached_key, camera = self._camera_cache
        if key != cached_key:
            try:
                camera = camera_from_infos(camera_info_fields(frame.left_info),
                                           camera_info_fields(frame.right_info), width, height)
            except InputError as exc:
                raise BadFrame('camera_info', str(exc)) from None
            self._camera_cache = (key, camera)
        return camera
