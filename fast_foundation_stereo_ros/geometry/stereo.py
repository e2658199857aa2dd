"""Stereo geometry on numpy arrays (no ROS): camera model, depth, organised point clouds.

Conventions (REP 103/105, stereo_msgs/DisparityImage, REP 117/118):
- everything lives in the left rectified *optical* frame: x right, y down,
  z forward, metres;
- disparity d = x_left - x_right - (cx_left - cx_right), so depth Z = f*B/d
  with f the rectified focal length and B > 0 the baseline;
- invalid disparity, depth and points are NaN (depth 16UC1: 0).
"""
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..errors import InputError

FOCAL_TOLERANCE = 1e-3  # relative; rectified left/right focal lengths must agree


@dataclass(frozen=True)
class StereoCamera:
    """Rectified stereo pair at one image resolution."""
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float
    cx_right: float = None

    def __post_init__(self):
        if self.cx_right is None:
            object.__setattr__(self, 'cx_right', self.cx)
        values = {name: getattr(self, name) for name in ('fx', 'fy', 'cx', 'cy', 'cx_right', 'baseline')}
        bad = [f'{name}={value}' for name, value in values.items() if not np.isfinite(value)]
        if bad:
            raise InputError(f"camera parameters must be finite, got {', '.join(bad)}: publish rectified "
                             'camera_info with every P entry a finite number')
        if not (self.fx > 0 and self.fy > 0):
            raise InputError(f'focal lengths must be positive, got fx={self.fx}, fy={self.fy}: '
                             'publish rectified camera_info with P filled in')
        # zero is allowed: a pair without a baseline still has a disparity (stereo_image_proc publishes
        # one); depth and points need has_depth
        if not self.baseline >= 0:
            raise InputError(
                f'stereo baseline must be positive, got {self.baseline:g} m (B = -P_right[3]/P_right[0]): '
                'the right camera_info needs P[3] = -fx * baseline; check that left and right are not swapped')
        if self.width <= 0 or self.height <= 0:
            raise InputError(f'image size must be positive, got {self.width}x{self.height}')

    @classmethod
    def from_projections(cls, p_left, p_right, width, height):
        """Build from the 3x4 rectified projection matrices (camera_info P)."""
        p_left = np.asarray(p_left, dtype=np.float64).reshape(3, 4)
        p_right = np.asarray(p_right, dtype=np.float64).reshape(3, 4)
        fx, fx_right = p_left[0, 0], p_right[0, 0]
        if fx <= 0 or fx_right <= 0:
            raise InputError('camera_info P has a zero focal length: the camera is not calibrated or P is '
                             'not filled in; run camera_calibration and publish rectified camera_info')
        if abs(fx - fx_right) > FOCAL_TOLERANCE * fx:
            raise InputError(f'left and right rectified focal lengths differ ({fx:g} vs {fx_right:g}): '
                             'the pair is not rectified together; use the stereo calibration for both')
        baseline = -p_right[0, 3] / fx_right + 0.0   # + 0.0: P[3] = 0 gives 0, not -0
        return cls(width=int(width), height=int(height), fx=float(fx), fy=float(p_left[1, 1]),
                   cx=float(p_left[0, 2]), cy=float(p_left[1, 2]), baseline=float(baseline),
                   cx_right=float(p_right[0, 2]))

    @property
    def has_depth(self):
        """False for a zero baseline: disparity only, no depth or points."""
        return self.baseline > 0

    @property
    def cx_offset(self):
        """cx_left - cx_right, removed from raw disparity (DisparityImage spec)."""
        return self.cx - self.cx_right

    @property
    def focal_baseline(self):
        """f * B in pixel-metres: depth = focal_baseline / disparity."""
        return self.fx * self.baseline

    def scaled(self, sx, sy):
        """The same camera at an image resized by (sx, sy), pixel-centre convention."""
        return replace(self, width=round(self.width * sx), height=round(self.height * sy),
                       fx=self.fx * sx, fy=self.fy * sy,
                       cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5,
                       cx_right=(self.cx_right + 0.5) * sx - 0.5)

    def decimated(self, step):
        """Camera of `image[::step, ::step]` (pixel i of the result is pixel step*i)."""
        return replace(self, width=-(-self.width // step), height=-(-self.height // step),
                       fx=self.fx / step, fy=self.fy / step, cx=self.cx / step, cy=self.cy / step,
                       cx_right=self.cx_right / step)

    def projection_left(self):
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]

    def projection_right(self):
        return [self.fx, 0.0, self.cx_right, -self.fx * self.baseline,
                0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]


def correct_disparity(raw_disparity, camera, out=None):
    """x_left - x_right -> DisparityImage disparity; non-finite or <= 0 -> NaN."""
    out = np.subtract(raw_disparity, np.float32(camera.cx_offset), out=out, dtype=np.float32)
    return invalidate_disparity(out)


def invalidate_disparity(disparity):
    """Set non-finite or <= 0 float32 disparity to NaN, in place; returns it.

    NaN stays NaN; d <= 0 has no finite depth, d = +inf would give depth 0.
    """
    invalid = np.less_equal(disparity, 0)
    np.logical_or(invalid, np.isposinf(disparity), out=invalid)
    np.copyto(disparity, np.float32(np.nan), where=invalid)
    return disparity


def disparity_to_depth(disparity, camera, depth_range=(0.0, np.inf), out=None):
    """Metric depth (32FC1 metres, NaN invalid) from corrected disparity."""
    if not camera.has_depth:
        raise ValueError('a camera without a baseline has no depth (check camera.has_depth)')
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        depth = np.divide(np.float32(camera.focal_baseline), disparity, out=out, dtype=np.float32)
    # a disparity too small for float32 (f*B/d overflows) is "too far to tell", not +inf (REP 117
    # reads +inf as "nothing there", which would clear obstacles)
    np.copyto(depth, np.float32(np.nan), where=np.isinf(depth))
    znear, zfar = depth_range
    if znear > 0 or np.isfinite(zfar):
        depth[(depth < znear) | (depth > zfar)] = np.nan
    return depth


def depth_to_millimetres(depth, out=None):
    """16UC1 millimetres with 0 = invalid (REP 118 OpenNI raw convention)."""
    millimetres = np.multiply(depth, np.float32(1000.0), dtype=np.float32)
    valid = np.isfinite(millimetres) & (millimetres >= 0.5) & (millimetres < 65535.5)
    if out is None:
        out = np.zeros(depth.shape, np.uint16)
    else:
        out[...] = 0
    np.rint(millimetres, out=millimetres)
    out[valid] = millimetres[valid]
    return out


class PointProjector:
    """Reprojects depth to organised xyz, with per-row/column factors cached.

    X = (u - cx) Z / fx, Y = (v - cy) Z / fy: two broadcasts per frame, no
    per-pixel index arrays.
    """

    def __init__(self, camera):
        self.camera = camera
        self._x_factor = ((np.arange(camera.width, dtype=np.float32) - np.float32(camera.cx))
                          / np.float32(camera.fx))
        self._y_factor = ((np.arange(camera.height, dtype=np.float32) - np.float32(camera.cy))
                          / np.float32(camera.fy))[:, None]
        # X = Z (u - cx) / fx can overflow float32 only where a factor exceeds 1 (tiny focal lengths);
        # those cameras pay two more passes that turn +-inf into NaN
        self._may_overflow = max(np.abs(self._x_factor).max(), np.abs(self._y_factor).max()) > 1.0

    def project(self, depth, x_out, y_out, z_out):
        """Write X, Y, Z of `depth` (HxW, NaN invalid) into three HxW views."""
        with np.errstate(over='ignore', invalid='ignore'):
            np.multiply(depth, self._x_factor, out=x_out)
            np.multiply(depth, self._y_factor, out=y_out)
        z_out[...] = depth
        if self._may_overflow:
            for plane in (x_out, y_out):
                np.copyto(plane, np.float32(np.nan), where=np.isinf(plane))

    def points(self, depth):
        """HxWx3 float32 xyz (NaN invalid)."""
        xyz = np.empty(depth.shape + (3,), np.float32)
        self.project(depth, xyz[..., 0], xyz[..., 1], xyz[..., 2])
        return xyz


def pack_rgb(rgb):
    """HxWx3 uint8 -> HxW float32 holding 0x00RRGGBB bits (PCL/RViz 'rgb')."""
    packed = np.empty(rgb.shape[:2], np.uint32)
    pack_rgb_into(rgb, packed)
    return packed.view(np.float32)


def pack_rgb_into(rgb, out_u32):
    """Write 0x00RRGGBB of an RGB image into a uint32 HxW view."""
    np.left_shift(rgb[..., 0], 16, out=out_u32, dtype=np.uint32)
    out_u32 |= rgb[..., 1].astype(np.uint32) << 8
    out_u32 |= rgb[..., 2]


@dataclass(frozen=True)
class CloudLayout:
    """Byte layout of one PointCloud2 point, as stereo_image_proc writes it."""
    fields: tuple   # ((name, byte offset), ...), all FLOAT32
    point_step: int

    @classmethod
    def for_options(cls, use_color=True, avoid_padding=False):
        if avoid_padding:
            fields = (('x', 0), ('y', 4), ('z', 8)) + ((('rgb', 12),) if use_color else ())
            return cls(fields, 16 if use_color else 12)
        # setPointCloud2FieldsByString("xyz", "rgb"): xyz padded to 16 bytes, rgb to 16
        fields = (('x', 0), ('y', 4), ('z', 8)) + ((('rgb', 16),) if use_color else ())
        return cls(fields, 32 if use_color else 16)

    @property
    def has_color(self):
        return any(name == 'rgb' for name, _ in self.fields)


class CloudBuilder:
    """Fills an organised point-cloud byte buffer in place, reused every frame.

    x, y, z (and rgb) are computed as contiguous planes and interleaved into
    their words of every point in one cv2.mixChannels pass, instead of one
    strided pass per field over a 10-30 MB buffer; padding words are zeroed
    once and never rewritten. `buffer` may be memory a message will take
    without a copy (ros.messages.MessageBuffer).
    """

    def __init__(self, camera, layout, buffer=None):
        self.camera = camera
        self.layout = layout
        self.projector = PointProjector(camera)
        shape = (camera.height, camera.width)
        if buffer is None:
            buffer = np.zeros(shape + (layout.point_step,), np.uint8)
        elif buffer.shape != shape + (layout.point_step,) or buffer.dtype != np.uint8:
            raise ValueError(f'cloud buffer must be uint8 {shape + (layout.point_step,)}, got {buffer.shape}')
        self.buffer = buffer
        self._words = buffer.view(np.float32)  # H x W x point_step/4
        self._x, self._y, self._z = (np.empty(shape, np.float32) for _ in range(3))
        self._no_color = np.zeros(shape, np.float32)
        self._bgra = np.empty(shape + (4,), np.uint8) if layout.has_color else None
        offsets = dict(layout.fields)
        names = ('x', 'y', 'z', 'rgb') if layout.has_color else ('x', 'y', 'z')
        # mixChannels pairs: plane i -> float word of the point
        self._plane_to_word = [index for plane, name in enumerate(names)
                               for index in (plane, offsets[name] // 4)]

    def fill(self, depth, rgb=None):
        """Write points (and colour) for `depth` (HxW, NaN invalid); returns the buffer."""
        self.projector.project(depth, self._x, self._y, self._z)
        planes = [self._x, self._y, self._z]
        if self._bgra is not None:
            planes.append(self._packed_rgb(rgb))
        cv2.mixChannels(planes, [self._words], self._plane_to_word)
        return self.buffer

    def _packed_rgb(self, rgb):
        if rgb is None:
            return self._no_color
        # little-endian BGRA is the uint32 0xAARRGGBB; clearing alpha gives 0x00RRGGBB
        cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA, dst=self._bgra)
        packed = self._bgra.view(np.uint32)[..., 0]
        packed &= np.uint32(0x00FFFFFF)
        return packed.view(np.float32)
