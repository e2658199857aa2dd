"""One synchronised stereo set in, the requested ROS output messages out.

Everything the node does per frame except subscribing and publishing, so it
can be tested and benchmarked without a running graph. Only the requested
outputs are computed (the node asks for those with subscribers).

Output conventions (see docs in ros_conversions and geometry):
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
- points2: organised, stereo_image_proc layout, NaN xyz for invalid points.

Outputs are computed straight into reusable buffers that the disparity,
depth and points2 messages take as their data without a copy: a
ProcessedFrame (messages and arrays) is valid until the next `process` call;
the node publishes, which serialises, before that. Copy what you keep.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..files.colormap import colorize_disparity
from ..geometry.stereo import CloudBuilder, CloudLayout, correct_disparity, depth_to_millimetres, disparity_to_depth
from ..pipeline.encodings import check_encoding, pair_to_rgb8
from .messages import (MessageBuffer, array_to_image, camera_info_key, camera_info_with_header, disparity_image,
                       image_to_array, point_cloud2, stereo_camera_from_infos)

#: fine timing stage -> the stage reported on /diagnostics
STAGE_OF = {
    'to_array': 'convert', 'to_rgb': 'convert', 'camera_info': 'convert', 'prepare': 'convert',
    'infer': 'infer',
    'restore': 'geometry', 'correct': 'geometry', 'depth': 'geometry', 'depth_mm': 'geometry',
    'cloud': 'geometry', 'colormap': 'geometry',
    'build_disparity': 'build', 'build_depth': 'build', 'build_points': 'build',
    'build_color': 'build',
}


class BackendFailure(RuntimeError):
    """The backend raised while inferring one frame (the cause is chained)."""


class BadFrame(InputError):
    """An input set that cannot be processed; `cause` groups it for counting."""

    def __init__(self, cause, message):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class StereoFrame:
    """The four synchronised input messages."""
    left_image: object
    right_image: object
    left_info: object
    right_info: object


@dataclass(frozen=True)
class OutputRequest:
    """Which outputs to compute (normally: those with subscribers)."""
    disparity: bool = False
    disparity_color: bool = False
    depth: bool = False        # depth/image (+ depth/camera_info)
    depth_mm: bool = False     # depth/image_mm (+ depth/camera_info)
    points: bool = False

    @property
    def needs_inference(self):
        return self.disparity or self.disparity_color or self.needs_depth

    @property
    def needs_depth(self):
        return self.depth or self.depth_mm or self.points


@dataclass(frozen=True)
class GeometryOptions:
    use_color: bool = True
    avoid_point_cloud_padding: bool = False
    min_depth: float = 0.0
    max_depth: float = float('inf')
    point_cloud_decimation: int = 1

    @property
    def depth_range(self):
        return (self.min_depth, self.max_depth)


@dataclass
class ProcessedFrame:
    messages: dict                    # output name -> ROS message
    timings: dict = field(default_factory=dict)   # fine stage -> seconds
    disparity: np.ndarray = None      # corrected disparity (tests, tools)
    depth: np.ndarray = None

    def stage_timings(self):
        """Seconds per reported stage (convert, infer, geometry, build)."""
        totals = {}
        for stage, seconds in self.timings.items():
            group = STAGE_OF.get(stage, stage)
            totals[group] = totals.get(group, 0.0) + seconds
        return totals


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


class FrameProcessor:
    def __init__(self, pipeline, options=GeometryOptions()):
        self.pipeline = pipeline
        self.options = options
        self.layout = CloudLayout.for_options(options.use_color, options.avoid_point_cloud_padding)
        self._camera_cache = (None, None)
        self._cloud_builder = None
        self._buffers = {}   # output name -> MessageBuffer

    def process(self, frame, request):
        """Compute the requested outputs of one StereoFrame; raises BadFrame."""
        if not request.needs_inference:
            return ProcessedFrame({})
        watch = _Stopwatch()
        left, right = self._image_arrays(frame)
        watch.lap('to_array')
        camera = self._camera(frame, left.shape[1], left.shape[0])
        watch.lap('camera_info')
        left_rgb, right_rgb = pair_to_rgb8(left, frame.left_image.encoding, right, frame.right_image.encoding)
        watch.lap('to_rgb')
        raw = self._infer(left_rgb, right_rgb, watch)
        shape = raw.shape
        disparity = correct_disparity(raw, camera, out=self._buffer('disparity', shape, np.float32).array)
        watch.lap('correct')
        header = frame.left_image.header
        messages = {}
        self._disparity_outputs(disparity, camera, header, request, messages, watch)
        depth = None
        if request.needs_depth:
            depth = disparity_to_depth(disparity, camera, self.options.depth_range,
                                       out=self._buffer('depth', shape, np.float32).array)
            watch.lap('depth')
            self._depth_outputs(depth, frame, header, request, messages, watch)
            if request.points:
                self._cloud_output(depth, left_rgb, camera, header, messages, watch)
        return ProcessedFrame(messages, watch.timings, disparity, depth)

    # -- steps -------------------------------------------------------------
    def _image_arrays(self, frame):
        left = self._image_array('left', frame.left_image)
        right = self._image_array('right', frame.right_image)
        if left.shape[:2] != right.shape[:2]:
            raise BadFrame('size_mismatch',
                           f'left and right images differ in size ({left.shape[1]}x{left.shape[0]} vs '
                           f'{right.shape[1]}x{right.shape[0]}): publish rectified images of one resolution')
        return left, right

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
        key = (camera_info_key(frame.left_info, frame.right_info), width, height)
        cached_key, camera = self._camera_cache
        if key != cached_key:
            try:
                camera = stereo_camera_from_infos(frame.left_info, frame.right_info, width, height)
            except InputError as exc:
                raise BadFrame('camera_info', str(exc)) from None
            self._camera_cache = (key, camera)
        return camera

    def _infer(self, left_rgb, right_rgb, watch):
        try:
            raw = self.pipeline.compute(left_rgb, right_rgb, 'rgb8', 'rgb8')
        except InputError as exc:
            raise BadFrame('network_input', str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any backend failure is one frame's failure
            raise BackendFailure(f'{type(exc).__name__}: {exc}') from exc
        stages = self.pipeline.last_timings
        watch.record({'prepare': stages.get('convert', 0.0), 'infer': stages.get('infer', 0.0),
                      'restore': stages.get('restore', 0.0)})
        return raw

    def _disparity_outputs(self, disparity, camera, header, request, messages, watch):
        low, high = self.pipeline.searched_range(camera)
        if request.disparity:
            messages['disparity'] = disparity_image(disparity, header, camera, low, high, self.pipeline.delta_d(camera),
                                                    data=self._buffers['disparity'].data)
            watch.lap('build_disparity')
        if request.disparity_color:
            colour = colorize_disparity(disparity, low, high)
            watch.lap('colormap')
            messages['disparity_color'] = array_to_image(colour, 'rgb8', header)
            watch.lap('build_color')

    def _depth_outputs(self, depth, frame, header, request, messages, watch):
        if request.depth or request.depth_mm:
            # the left rectified info describes both depth images (same pixels)
            messages['depth_info'] = camera_info_with_header(frame.left_info, header)
        if request.depth:
            messages['depth'] = array_to_image(depth, '32FC1', header, data=self._buffers['depth'].data)
            watch.lap('build_depth')
        if request.depth_mm:
            millimetres = self._buffer('depth_mm', depth.shape, np.uint16)
            depth_to_millimetres(depth, out=millimetres.array)
            watch.lap('depth_mm')
            messages['depth_mm'] = array_to_image(millimetres.array, '16UC1', header, data=millimetres.data)
            watch.lap('build_depth')

    def _cloud_output(self, depth, left_rgb, camera, header, messages, watch):
        step = self.options.point_cloud_decimation
        if step > 1:
            depth, left_rgb, camera = depth[::step, ::step], left_rgb[::step, ::step], camera.decimated(step)
        builder, data = self._cloud_builder_for(camera)
        points = builder.fill(depth, left_rgb if self.layout.has_color else None)
        watch.lap('cloud')
        # no copy: the message takes the builder's reusable array (valid until the next frame)
        messages['points'] = point_cloud2(points, self.layout, header, data=data)
        watch.lap('build_points')

    def _buffer(self, name, shape, dtype):
        """The reusable MessageBuffer of one output (re-made when the size changes)."""
        buffer = self._buffers.get(name)
        if buffer is None or not buffer.fits(shape, dtype):
            buffer = self._buffers[name] = MessageBuffer(shape, dtype)
        return buffer

    def _cloud_builder_for(self, camera):
        """CloudBuilder writing into a MessageBuffer (re-made when the camera changes)."""
        if self._cloud_builder is None or self._cloud_builder[0].camera != camera:
            buffer = MessageBuffer((camera.height, camera.width, self.layout.point_step), np.uint8)
            self._cloud_builder = (CloudBuilder(camera, self.layout, buffer.array), buffer.data)
        return self._cloud_builder
