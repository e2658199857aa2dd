"""Organised point clouds written straight into the message's byte array.

Same bytes as geometry.CloudBuilder (the pure-numpy reference; the tests
assert equality), built for the node's per-frame budget:

- the buffer is an array.array('B') that the PointCloud2 message takes as
  its `data` without a copy (see ros_conversions); numpy works on a view;
- one interleaving pass: x, y, z (and rgb) are computed as contiguous planes
  and cv2.mixChannels writes them into their words of every point at once,
  instead of one strided numpy pass per field (3-4 passes over a 10-30 MB
  buffer); padding words are zeroed once at allocation and never rewritten;
- rgb is packed by cv2.cvtColor(RGB2BGRA), whose little-endian uint32 is
  0xAARRGGBB, with the alpha byte cleared to 0x00RRGGBB.

The buffer is reused: a message built from it is valid until the next
`fill` (the node publishes, which serialises, before the next frame).
"""
import cv2
import numpy as np

from .geometry import PointProjector
from .ros_conversions import MessageBuffer

_RGB_MASK = np.uint32(0x00FFFFFF)


class PointCloudWriter:
    def __init__(self, camera, layout):
        self.camera = camera
        self.layout = layout
        shape = (camera.height, camera.width)
        buffer = MessageBuffer(shape + (layout.point_step,), np.uint8)
        self.data = buffer.data
        #: H x W x point_step uint8 view of `data`
        self.points = buffer.array
        self._words = self.points.view(np.float32)          # H x W x point_step/4
        self._x, self._y, self._z = (np.empty(shape, np.float32) for _ in range(3))
        # X = depth * x_factor[u], Y = depth * y_factor[v]: the reference
        # projector's own factors, read back by projecting a depth of 1
        PointProjector(camera).project(np.ones(shape, np.float32), self._x, self._y, self._z)
        self._x_factor, self._y_factor = self._x[0].copy(), self._y[:, :1].copy()
        self._zero = np.zeros(shape, np.float32)             # rgb when no image is given
        self._bgra = np.empty(shape + (4,), np.uint8) if layout.has_color else None
        # plane i -> float word of the point; padding words are never written (stay 0)
        offsets = dict(layout.fields)
        names = ('x', 'y', 'z', 'rgb') if layout.has_color else ('x', 'y', 'z')
        self._plane_to_word = [index for plane, name in enumerate(names) for index in (plane, offsets[name] // 4)]

    def fill(self, depth, rgb=None):
        """Write the points of `depth` (HxW, NaN invalid) and colours of `rgb` (HxWx3)."""
        np.multiply(depth, self._x_factor, out=self._x)
        np.multiply(depth, self._y_factor, out=self._y)
        z = depth
        if not (depth.flags.c_contiguous and depth.dtype == np.float32):   # e.g. a decimated view
            np.copyto(self._z, depth)
            z = self._z
        planes = [self._x, self._y, z]
        if self._bgra is not None:
            planes.append(self._packed_rgb(rgb))
        cv2.mixChannels(planes, [self._words], self._plane_to_word)
        return self.points

    def _packed_rgb(self, rgb):
        if rgb is None:
            return self._zero
        cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA, dst=self._bgra)
        packed = self._bgra.view(np.uint32)[..., 0]
        packed &= _RGB_MASK
        return packed.view(np.float32)
