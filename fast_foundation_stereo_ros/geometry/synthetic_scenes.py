"""Synthetic rectified stereo scenes with exact ground truth, made on the fly.

Each view is ray-cast analytically: every pixel's ray is intersected with a
few primitives (planes, oriented boxes, spheres) and the nearest hit wins.
Surfaces carry a *solid* texture, a function of the 3-D hit point, so a point
seen by both cameras has exactly the same colour in both images and the
ground-truth disparity d = f*B/Z reproduces the pair (up to resampling).

Conventions follow geometry.py: left rectified optical frame (x right, y
down, z forward, metres); the right camera sits at (baseline, 0, 0) with the
same intrinsics, so raw disparity x_l - x_r equals f*B/Z. Rays are scaled to
unit z, which makes the ray parameter t the depth Z itself.
"""
from dataclasses import dataclass

import numpy as np

from .stereo import StereoCamera

SCENE_KINDS = ('plane', 'slanted', 'boxes', 'spheres', 'mixed')

_NO_HIT = np.inf
_MIN_DEPTH = 1e-3          # hits closer than this (or behind) are ignored
_OCCLUSION_TOLERANCE = 1e-5  # relative depth slack when testing "first hit"


# --------------------------------------------------------------------------
# Solid texture: multi-octave value noise, faded out below the pixel size
# --------------------------------------------------------------------------

_TABLE_BITS = 6  # 64^3 lattice table, periodic; octaves are rotated so periods never line up
_TABLE_MASK = (1 << _TABLE_BITS) - 1
_OCTAVES = 6


class SolidTexture:
    """Value noise sampled at 3-D points, with per-octave level of detail.

    An octave whose lattice spacing is smaller than about two pixels at the
    hit depth would alias differently in the two views, so it is faded out
    (like mip-mapping); the surviving octaves are sampled exactly, which keeps
    left and right consistent.
    """

    def __init__(self, coarsest_spacing, seed=0):
        rng = np.random.default_rng(10_000 + seed)
        self.table = rng.random(1 << (3 * _TABLE_BITS), dtype=np.float32)
        self.spacings = coarsest_spacing / 2.0 ** np.arange(_OCTAVES)
        self.amplitudes = 0.8 ** np.arange(_OCTAVES)
        self.rotations = [_random_rotation(rng) for _ in range(_OCTAVES)]
        self.offsets = rng.uniform(0, 1 << _TABLE_BITS, size=(_OCTAVES, 3))

    def sample(self, points, pixel_size):
        """Texture value in about [-0.5, 0.5] at Nx3 `points` (metres).

        `pixel_size` (N, metres) is the width of one pixel at each point.
        """
        total = np.zeros(len(points), np.float32)
        norm = np.zeros(len(points), np.float32)
        points = points.astype(np.float32)
        inverse_pixel = (1.0 / pixel_size).astype(np.float32)
        for spacing, amplitude, rotation, offset in zip(self.spacings, self.amplitudes,
                                                        self.rotations, self.offsets):
            # 0 below 1 px lattice spacing, 1 above 2 px, linear between
            weight = np.clip(np.float32(spacing) * inverse_pixel - 1.0, 0.0, 1.0)
            weight *= np.float32(amplitude)
            norm += weight
            active = np.flatnonzero(weight)
            if active.size == 0:
                continue
            subset = slice(None) if active.size == len(points) else active
            lattice = _transform(points[subset], (rotation / spacing).T.astype(np.float32))
            lattice += offset.astype(np.float32)
            total[subset] += weight[subset] * (self._value_noise(lattice) - 0.5)
        # keep contrast independent of how many octaves survive, but let a
        # surface far beyond the finest octave fade to its base colour
        return total / np.maximum(norm, 0.5)

    def _value_noise(self, lattice):
        cell = np.floor(lattice)
        frac = lattice - cell
        smooth = frac * frac * (3.0 - 2.0 * frac)
        corner = cell.astype(np.int32)
        # per-axis table indices and weights of the two lattice corners
        axis_index, axis_weight = [], []
        for axis, shift in enumerate((2 * _TABLE_BITS, _TABLE_BITS, 0)):
            low = (corner[:, axis] & _TABLE_MASK) << shift
            high = ((corner[:, axis] + 1) & _TABLE_MASK) << shift
            axis_index.append((low, high))
            axis_weight.append((1.0 - smooth[:, axis], smooth[:, axis]))
        result = np.zeros(len(lattice), np.float32)
        for ix, wx in zip(axis_index[0], axis_weight[0]):
            for iy, wy in zip(axis_index[1], axis_weight[1]):
                ixy, wxy = ix | iy, wx * wy
                for iz, wz in zip(axis_index[2], axis_weight[2]):
                    result += (wxy * wz) * self.table[ixy | iz]
        return result


def _transform(rows, matrix):
    """`rows @ matrix` for N x 3 rows and a 3-vector or 3 x K matrix, without BLAS.

    BLAS would multi-thread these skinny products, which costs far more than
    it gains (5x slower on a busy 2-core machine); three fused multiply-adds
    per row are what is needed.
    """
    rows = np.asarray(rows)
    return rows[..., 0, None] * matrix[0] + rows[..., 1, None] * matrix[1] + rows[..., 2, None] * matrix[2] \
        if np.ndim(matrix) == 2 else rows[..., 0] * matrix[0] + rows[..., 1] * matrix[1] + rows[..., 2] * matrix[2]


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _rotation(yaw=0.0, pitch=0.0, roll=0.0):
    """Rotation about y (yaw), then x (pitch), then z (roll), radians."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_y @ about_x @ about_z


# --------------------------------------------------------------------------
# Primitives: each returns the ray parameter (= depth) of its nearest hit
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Plane:
    """Plane through `point` with unit `normal`; a rectangle if `half_size` is set.

    The rectangle spans `half_size[0]` along `axis_u` and `half_size[1]`
    along `normal x axis_u`.
    """
    point: np.ndarray
    normal: np.ndarray
    axis_u: np.ndarray = None
    half_size: tuple = None

    def intersect(self, origins, dirs):
        denom = _transform(dirs, self.normal)
        with np.errstate(divide='ignore', invalid='ignore'):
            t = _transform(self.point - origins, self.normal) / denom
        hit = np.isfinite(t) & (t > _MIN_DEPTH)
        if self.half_size is not None:
            local = origins + t[:, None] * dirs - self.point
            axis_v = np.cross(self.normal, self.axis_u)
            hit &= (np.abs(_transform(local, self.axis_u)) <= self.half_size[0])
            hit &= (np.abs(_transform(local, axis_v)) <= self.half_size[1])
        return np.where(hit, t, _NO_HIT)


@dataclass(frozen=True)
class Sphere:
    centre: np.ndarray
    radius: float

    def intersect(self, origins, dirs):
        offset = origins - self.centre
        a = np.einsum('ij,ij->i', dirs, dirs)
        b = _transform(dirs * offset, np.ones(3)) if offset.ndim == 2 else _transform(dirs, offset)
        c = _transform(offset * offset, np.ones(3))
        disc = b * b - a * (c - self.radius ** 2)
        with np.errstate(invalid='ignore'):
            t = (-b - np.sqrt(disc)) / a
        return np.where((disc >= 0) & (t > _MIN_DEPTH), t, _NO_HIT)


@dataclass(frozen=True)
class Box:
    """Oriented box: `rotation` columns are its axes, `half_size` along each."""
    centre: np.ndarray
    rotation: np.ndarray
    half_size: np.ndarray

    def intersect(self, origins, dirs):
        # Only rays that pass the bounding sphere get the (costlier) slab test;
        # boxes cover a small part of the image.
        bound = Sphere(self.centre, float(np.linalg.norm(self.half_size)))
        candidates = np.flatnonzero(np.isfinite(bound.intersect(origins, dirs)))
        depth = np.full(len(dirs), _NO_HIT)
        if candidates.size:
            cand_origins = origins if origins.ndim == 1 else origins[candidates]
            depth[candidates] = self._slab_test(cand_origins, dirs[candidates])
        return depth

    def _slab_test(self, origins, dirs):
        local_origin = _transform(origins - self.centre, self.rotation)
        local_dir = _transform(dirs, self.rotation)
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (-self.half_size - local_origin) / local_dir
            t2 = (self.half_size - local_origin) / local_dir
        t_near = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf).max(axis=1)
        t_far = np.nan_to_num(np.maximum(t1, t2), nan=np.inf).min(axis=1)
        hit = (t_far >= t_near) & (t_near > _MIN_DEPTH)
        return np.where(hit, t_near, _NO_HIT)


@dataclass(frozen=True)
class SceneObject:
    shape: object
    colour: np.ndarray   # base RGB in [0, 1]
    texture: SolidTexture


# --------------------------------------------------------------------------
# Ray casting and shading
# --------------------------------------------------------------------------

def cast(objects, origins, dirs):
    """Nearest hit per ray: (depth, object index); depth inf where nothing is hit."""
    depths = np.stack([obj.shape.intersect(origins, dirs) for obj in objects])
    index = depths.argmin(axis=0)
    return depths[index, np.arange(len(index))], index


def shade(objects, points, index, pixel_size):
    """RGB in [0, 1] of hit `points` on objects `index`."""
    colour = np.zeros((len(points), 3), np.float32)
    for i, obj in enumerate(objects):
        mask = index == i
        if not mask.any():
            continue
        value = obj.texture.sample(points[mask], pixel_size[mask])
        # strong luminance texture plus a slight colour shift, so both grey
        # and colour matchers see structure
        luminance = 0.55 + 1.3 * value
        colour[mask] = obj.colour * luminance[:, None]
        colour[mask, 2] += 0.15 * value
    return np.clip(colour, 0.0, 1.0)


@dataclass(frozen=True)
class Hits:
    """Nearest hits of one camera's pixel rays (flattened, row-major)."""
    origin: np.ndarray   # camera centre (3,)
    dirs: np.ndarray     # N x 3 unit-z ray directions
    depth: np.ndarray    # N, metres (inf = no hit)
    index: np.ndarray    # N, object index

    @property
    def points(self):
        return self.origin + self.depth[:, None] * self.dirs


def cast_pixels(objects, camera, side, dx=0.0, dy=0.0):
    """Cast the rays through every pixel centre (+ sub-pixel offset) of one camera."""
    origin_x, cx = (0.0, camera.cx) if side == 'left' else (camera.baseline, camera.cx_right)
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    dirs = np.empty((u.size, 3))
    dirs[:, 0] = (u.ravel() + dx - cx) / camera.fx
    dirs[:, 1] = (v.ravel() + dy - camera.cy) / camera.fy
    dirs[:, 2] = 1.0
    origin = np.array([origin_x, 0.0, 0.0])
    depth, index = cast(objects, origin, dirs)
    return Hits(origin, dirs, depth, index)


def render_view(objects, camera, side, supersample=1, centre_hits=None):
    """HxWx3 uint8 RGB image of the left or right camera.

    `centre_hits` (the pixel-centre cast, if already done) is reused when
    there is no supersampling.
    """
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    accumulated = np.zeros((camera.height * camera.width, 3), np.float32)
    for dy in offsets:
        for dx in offsets:
            if supersample == 1 and centre_hits is not None:
                hits = centre_hits
            else:
                hits = cast_pixels(objects, camera, side, dx, dy)
            accumulated += shade(objects, hits.points, hits.index, hits.depth / camera.fx)
    accumulated *= 255.0 / supersample ** 2
    return np.rint(accumulated).astype(np.uint8).reshape(camera.height, camera.width, 3)


def occluded_in_right(objects, camera, left_hits):
    """True where a left pixel's 3-D point is not visible in the right image.

    Visible means: it is the first hit along the right camera's ray through
    it, and it projects inside the right image.
    """
    points, depth = left_hits.points, left_hits.depth
    right_origin = np.array([camera.baseline, 0.0, 0.0])
    right_dirs = (points - right_origin) / depth[:, None]
    right_depth, _ = cast(objects, right_origin, right_dirs)
    hidden = right_depth < depth * (1.0 - _OCCLUSION_TOLERANCE)
    x_right = right_dirs[:, 0] * camera.fx + camera.cx_right
    outside = (x_right < -0.5) | (x_right > camera.width - 0.5)
    return (hidden | outside).reshape(camera.height, camera.width)


# --------------------------------------------------------------------------
# Scene layouts
# --------------------------------------------------------------------------

class _Layout:
    """Places objects by image position and depth, so scenes scale with the camera."""

    def __init__(self, camera, rng):
        self.camera = camera
        self.rng = rng
        self.objects = []

    def add(self, shape, texture_spacing):
        colour = self.rng.uniform(0.35, 0.95, size=3).astype(np.float32)
        seed = int(self.rng.integers(1 << 30))
        self.objects.append(SceneObject(shape, colour, SolidTexture(texture_spacing, seed)))

    def point_at(self, u_fraction, v_fraction, depth):
        cam = self.camera
        u, v = u_fraction * cam.width, v_fraction * cam.height
        return np.array([(u - cam.cx) * depth / cam.fx, (v - cam.cy) * depth / cam.fy, depth])

    def size_at(self, image_fraction, depth):
        """Metric length spanning `image_fraction` of the image width at `depth`."""
        return image_fraction * self.camera.width * depth / self.camera.fx

    def spacing_at(self, depth):
        """Coarsest texture lattice spacing: ~1/6 of the image width at `depth`."""
        return self.size_at(1.0 / 6.0, depth)

    def random_placement(self, near, far):
        depth = self.rng.uniform(near, far)
        return depth, self.point_at(self.rng.uniform(0.15, 0.85), self.rng.uniform(0.2, 0.8), depth)

    # -- building blocks --------------------------------------------------
    def fronto_plane(self, depth):
        self.add(Plane(np.array([0.0, 0.0, depth]), np.array([0.0, 0.0, 1.0])), self.spacing_at(depth))

    def slanted_plane(self, depth, half_size=None, centre=None):
        yaw = np.radians(self.rng.uniform(20, 35)) * self.rng.choice([-1, 1])
        pitch = np.radians(self.rng.uniform(10, 20)) * self.rng.choice([-1, 1])
        rotation = _rotation(yaw, pitch)
        centre = np.array([0.0, 0.0, depth]) if centre is None else centre
        self.add(Plane(centre, rotation[:, 2], rotation[:, 0], half_size), self.spacing_at(depth))

    def floor(self, height_below_camera, far):
        # y points down, so the floor is the plane Y = +height with normal -y
        self.add(Plane(np.array([0.0, height_below_camera, 0.0]), np.array([0.0, -1.0, 0.0])),
                 self.spacing_at(far / 2))

    def box(self, near, far):
        depth, centre = self.random_placement(near, far)
        half = np.array([self.size_at(self.rng.uniform(0.05, 0.12), depth) for _ in range(3)])
        rotation = _rotation(np.radians(self.rng.uniform(-40, 40)), np.radians(self.rng.uniform(-15, 15)))
        self.add(Box(centre, rotation, half), self.spacing_at(depth) / 2)

    def sphere(self, near, far):
        depth, centre = self.random_placement(near, far)
        radius = self.size_at(self.rng.uniform(0.06, 0.12), depth)
        centre = centre + np.array([0.0, 0.0, radius])  # keep the visible cap near `depth`
        self.add(Sphere(centre, radius), self.spacing_at(depth) / 2)


def _build_objects(kind, camera, rng, near, far):
    layout = _Layout(camera, rng)
    mid = 0.5 * (near + far)
    if kind == 'plane':
        layout.fronto_plane(rng.uniform(near + 0.2 * (far - near), mid))
    elif kind == 'slanted':
        layout.slanted_plane(rng.uniform(near + 0.3 * (far - near), mid))
    elif kind == 'boxes':
        layout.fronto_plane(far)
        for _ in range(4):
            layout.box(near, mid)
    elif kind == 'spheres':
        layout.fronto_plane(far)
        for _ in range(5):
            layout.sphere(near, mid)
    elif kind == 'mixed':
        layout.fronto_plane(far)
        layout.floor(0.25 * far * camera.height / camera.fy, far)
        depth = rng.uniform(near + 0.3 * (far - near), mid)
        layout.slanted_plane(depth, half_size=(layout.size_at(0.15, depth), layout.size_at(0.12, depth)),
                             centre=layout.point_at(rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.6), depth))
        for _ in range(2):
            layout.box(near, mid)
        for _ in range(2):
            layout.sphere(near, mid)
    else:
        raise ValueError(f"unknown scene kind '{kind}': use one of {', '.join(SCENE_KINDS)}")
    return layout.objects


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

@dataclass
class StereoScene:
    """A rendered rectified pair with exact left-view ground truth."""
    kind: str
    seed: int
    left: np.ndarray        # HxWx3 uint8 RGB
    right: np.ndarray       # HxWx3 uint8 RGB
    disparity: np.ndarray   # HxW float32 px, x_l - x_r, > 0 everywhere
    depth: np.ndarray       # HxW float32 metres along optical z
    occlusion: np.ndarray   # HxW bool, left pixels not visible in the right image
    camera: StereoCamera

    @property
    def non_occluded(self):
        return ~self.occlusion

    def camera_info(self, side='left'):
        """The rectified camera_info of one side, as a dict of CameraInfo fields."""
        return camera_info_dict(self.camera, side)


def camera_info_dict(camera, side='left'):
    """sensor_msgs/CameraInfo fields (lower-case ROS 2 names) of a rectified camera.

    Keys: width, height, distortion_model, d, k, r, p. Distortion is zero and
    R the identity because the images are already rectified.
    """
    if side not in ('left', 'right'):
        raise ValueError(f"side must be 'left' or 'right', got '{side}'")
    projection = camera.projection_left() if side == 'left' else camera.projection_right()
    cx = camera.cx if side == 'left' else camera.cx_right
    return {
        'width': camera.width,
        'height': camera.height,
        'distortion_model': 'plumb_bob',
        'd': [0.0] * 5,
        'k': [camera.fx, 0.0, cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0],
        'r': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        'p': list(projection),
    }


def make_camera(width=640, height=480, fx=None, baseline=0.12):
    """Rectified pinhole pair with square pixels and a centred principal point."""
    fx = 0.9 * width if fx is None else float(fx)
    return StereoCamera(width=int(width), height=int(height), fx=fx, fy=fx,
                        cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, baseline=float(baseline))


def make_scene(kind='mixed', width=640, height=480, fx=None, baseline=0.12, seed=0,
               near=1.8, far=7.0, supersample=1, noise_std=0.0):
    """Render a synthetic rectified stereo scene with exact ground truth.

    kind: 'plane' (fronto-parallel), 'slanted', 'boxes', 'spheres' or 'mixed'.
    near/far: depth range in metres (objects between near and the middle,
    background wall at far). supersample: NxN samples per pixel for
    anti-aliased colours (ground truth stays at pixel centres). noise_std:
    Gaussian sensor noise (grey levels) added independently to each image.
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"unknown scene kind '{kind}': use one of {', '.join(SCENE_KINDS)}")
    if not 0 < near < far:
        raise ValueError(f'need 0 < near < far, got near={near}, far={far}')
    camera = make_camera(width, height, fx, baseline)
    rng = np.random.default_rng(seed)
    objects = _build_objects(kind, camera, rng, near, far)
    left_hits = cast_pixels(objects, camera, 'left')
    left = render_view(objects, camera, 'left', supersample, centre_hits=left_hits)
    right = render_view(objects, camera, 'right', supersample)
    if noise_std > 0:
        left, right = (_add_noise(image, noise_std, rng) for image in (left, right))
    depth = left_hits.depth.reshape(camera.height, camera.width).astype(np.float32)
    occlusion = occluded_in_right(objects, camera, left_hits)
    disparity = (np.float32(camera.focal_baseline) / depth).astype(np.float32)
    disparity += np.float32(camera.cx_offset)  # raw x_l - x_r (zero offset here)
    return StereoScene(kind, seed, left, right, disparity, depth, occlusion, camera)


def _add_noise(image, std, rng):
    noisy = image.astype(np.float32) + rng.normal(0.0, std, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
