"""Point clouds to PLY files (binary little-endian, as PCL/Open3D/MeshLab read).

Each vertex is `float x, y, z` (metres, left optical frame) and
`uchar red, green, blue`; points with a non-finite coordinate are skipped.
"""
import numpy as np

from ..errors import InputError
from .atomic import atomic_path

VERTEX_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'),
                         ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')])


def write_ply(path, points, colours=None):
    """Write HxWx3 or Nx3 `points` (NaN = invalid) with optional uint8 RGB `colours`.

    Returns the number of points written. The file appears atomically.
    """
    points = np.asarray(points, np.float32).reshape(-1, 3)
    if colours is None:
        colours = np.full(points.shape, 255, np.uint8)
    colours = np.asarray(colours).reshape(-1, 3)
    if colours.shape != points.shape or colours.dtype != np.uint8:
        raise InputError(f'PLY colours must be uint8 with one RGB triple per point, got '
                         f'{colours.dtype} {colours.shape} for {points.shape[0]} points')
    keep = np.isfinite(points).all(axis=1)
    vertices = np.empty(int(keep.sum()), VERTEX_DTYPE)
    for axis, name in enumerate('xyz'):
        vertices[name] = points[keep, axis]
    for channel, name in enumerate(('red', 'green', 'blue')):
        vertices[name] = colours[keep, channel]
    with atomic_path(path) as tmp, open(tmp, 'wb') as handle:
        handle.write(_header(len(vertices)).encode('ascii'))
        handle.write(vertices.tobytes())
    return len(vertices)


def read_ply(path):
    """(Nx3 float32 points, Nx3 uint8 colours) of a PLY written by `write_ply`."""
    with open(path, 'rb') as handle:
        header = []
        while True:
            line = handle.readline()
            if not line:
                raise InputError(f"'{path}' is not a PLY file: the header has no end_header line")
            header.append(line.decode('ascii', 'replace').strip())
            if header[-1] == 'end_header':
                break
        if header[:2] != ['ply', 'format binary_little_endian 1.0']:
            raise InputError(f"'{path}' is not a binary little-endian PLY file")
        count = next(int(line.split()[2]) for line in header if line.startswith('element vertex'))
        vertices = np.frombuffer(handle.read(count * VERTEX_DTYPE.itemsize), VERTEX_DTYPE)
    points = np.stack([vertices[name] for name in 'xyz'], axis=1)
    colours = np.stack([vertices[name] for name in ('red', 'green', 'blue')], axis=1)
    return points, colours


def _header(count):
    return ('ply\n'
            'format binary_little_endian 1.0\n'
            'comment fast_foundation_stereo_ros: left rectified optical frame, metres\n'
            f'element vertex {count}\n'
            'property float x\nproperty float y\nproperty float z\n'
            'property uchar red\nproperty uchar green\nproperty uchar blue\n'
            'end_header\n')
