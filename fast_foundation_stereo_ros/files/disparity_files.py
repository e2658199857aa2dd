"""Disparity files: .npy (float32), .pfm (Middlebury/Scene Flow), 16-bit .png (KITTI).

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
            if not cv2.imwrite(tmp, disparity_to_png16(disparity)):
                raise InputError(f"could not encode '{path}' as 16-bit PNG")


def read_disparity(path):
    """Read a disparity file written in any supported format; invalid -> NaN."""
    ext = disparity_format(path)
    if not os.path.isfile(path):
        raise InputError(f"disparity file '{path}' does not exist")
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


def disparity_to_png16(disparity):
    scaled = np.nan_to_num(disparity, nan=0.0, posinf=0.0, neginf=0.0) * 256.0
    return np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)


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
