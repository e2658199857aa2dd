"""Disparity files: .npy (float32), .pfm (Middlebury/Scene Flow), 16-bit .png (KITTI).

Every file holds x_l - x_r in left-image pixels, as the datasets do (no cx
offset). Ground truth may also be an 8-bit .png/.pgm (Middlebury 2001-2005:
disparity times a scale, 0 = unknown).

KITTI convention: value = round(disparity * 256), 0 = invalid. PFM stores
rows bottom-to-top with a negative scale for little-endian data; invalid
values are written as +inf (Middlebury's convention).
"""
import os

import cv2
import numpy as np

from ..errors import InputError
from .atomic import atomic_path

DISPARITY_EXTENSIONS = ('.npy', '.pfm', '.png')


def disparity_format(path):
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in DISPARITY_EXTENSIONS:
        raise InputError(f"cannot tell the disparity format of '{path}': use a name ending in "
                         f"{', '.join(DISPARITY_EXTENSIONS)}")
    return ext


def write_disparity(path, disparity):
    """Write float32 HxW disparity (NaN/inf or <= 0 = invalid where the format needs it)."""
    ext = disparity_format(path)
    disparity = np.asarray(disparity, np.float32)
    with atomic_path(path) as tmp:
        if ext == '.npy':
            with open(tmp, 'wb') as handle:
                np.save(handle, disparity)
        elif ext == '.pfm':
            write_pfm(tmp, np.where(np.isfinite(disparity), disparity, np.inf).astype(np.float32))
        else:
            if not cv2.imwrite(tmp, disparity_to_png16(disparity, path)):
                raise InputError(f"could not encode '{path}' as 16-bit PNG")


def read_disparity(path, scale8=None):
    """Read a disparity file written in any supported format; invalid -> NaN.

    8-bit .png/.pgm ground truth (Middlebury 2001-2005: disparity x `scale8`,
    0 = unknown) needs its scale; 16-bit PNG is KITTI's d*256.
    """
    ext = os.path.splitext(str(path))[1].lower()
    if ext != '.pgm':
        ext = disparity_format(path)
    if not os.path.isfile(path):
        raise InputError(f"disparity file '{path}' does not exist")
    if ext == '.pgm' or (ext == '.png' and _is_8bit_image(path)):
        return _read_8bit_disparity(path, scale8)
    if ext == '.npy':
        return np.load(path, allow_pickle=False).astype(np.float32)
    if ext == '.pfm':
        data = read_pfm(path)
        if data.ndim == 3:
            data = data[..., 0]
        return np.where(np.isfinite(data), data, np.nan).astype(np.float32)
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise InputError(f"'{path}' is not a single-channel 16-bit PNG disparity (KITTI format)")
    return png16_to_disparity(raw)


#: largest disparity a KITTI 16-bit PNG holds (65535 / 256)
PNG16_MAX_DISPARITY = 65535 / 256.0


def _is_8bit_image(path):
    with open(path, 'rb') as handle:
        header = handle.read(25)
    # PNG IHDR: bit depth at byte 24
    return len(header) == 25 and header[:8] == b'\x89PNG\r\n\x1a\n' and header[24] == 8


def _read_8bit_disparity(path, scale8):
    if scale8 is None:
        raise InputError(f"'{path}' is an 8-bit image: give its disparity scale with --gt-scale (Middlebury "
                         '2003 Cones/Teddy quarter size: 4; 2001 and half-size 2005: 8 / 2)')
    if not scale8 > 0:
        raise InputError(f'the 8-bit disparity scale must be positive, got {scale8}')
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint8:
        raise InputError(f"'{path}' is not an 8-bit grey disparity image")
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    disparity = raw.astype(np.float32) / np.float32(scale8)
    disparity[raw == 0] = np.nan   # 0 = unknown in the 2001-2005 ground truth
    return disparity


def disparity_to_png16(disparity, path='16-bit PNG'):
    """KITTI encoding; refuses values above its range rather than clipping them silently."""
    scaled = np.nan_to_num(disparity, nan=0.0, posinf=0.0, neginf=0.0) * 256.0
    rounded = np.rint(scaled)
    if rounded.size and rounded.max() > 65535:
        raise InputError(f"disparity up to {float(np.nanmax(disparity[np.isfinite(disparity)])):.2f} px does "
                         f"not fit '{path}' (16-bit PNG holds d*256 <= 65535, d <= {PNG16_MAX_DISPARITY:.3f} "
                         'px): write .pfm or .npy, or lower max_disp')
    return np.clip(rounded, 0, 65535).astype(np.uint16)


def png16_to_disparity(raw):
    disparity = raw.astype(np.float32) / 256.0
    disparity[raw == 0] = np.nan
    return disparity


def write_pfm(path, data):
    data = np.asarray(data, np.float32)
    colour = data.ndim == 3 and data.shape[2] == 3
    height, width = data.shape[:2]
    with open(path, 'wb') as handle:
        handle.write(b'PF\n' if colour else b'Pf\n')
        handle.write(f'{width} {height}\n'.encode())
        handle.write(b'-1.0\n')  # negative scale = little endian
        handle.write(np.ascontiguousarray(np.flipud(data)).astype('<f4').tobytes())


def read_pfm(path):
    with open(path, 'rb') as handle:
        try:
            header = handle.readline().strip()
            if header not in (b'PF', b'Pf'):
                raise ValueError('missing PF/Pf header')
            dims = handle.readline().split()
            while not dims:  # tolerate blank/comment-free spacing
                dims = handle.readline().split()
            width, height = int(dims[0]), int(dims[1])
            scale = float(handle.readline().strip())
        except (ValueError, IndexError) as exc:
            raise InputError(f"'{path}' is not a valid PFM file ({exc})") from None
        channels = 3 if header == b'PF' else 1
        dtype = '<f4' if scale < 0 else '>f4'
        count = width * height * channels
        data = np.frombuffer(handle.read(), dtype=dtype)
    if data.size < count:
        raise InputError(f"'{path}' is truncated: expected {count} values, found {data.size}")
    data = data[:count].reshape((height, width, channels) if channels == 3 else (height, width))
    return np.flipud(data).astype(np.float32)
