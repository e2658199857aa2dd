"""Rectified stereo intrinsics from FFS K.txt, Middlebury calib.txt, ROS calibration YAML and camera_info records.

Everything returns a geometry.StereoCamera. Malformed input raises
InputError naming the file and what to fix.
"""
from dataclasses import replace

import numpy as np
import yaml

from ..errors import InputError
from .stereo import StereoCamera

# ----------------------------------------------------------------- K.txt --

def camera_from_k_txt(path, width, height):
    """StereoCamera from the Fast-FoundationStereo `K.txt` format.

    Line 1: the 9 numbers of the 3x3 intrinsic matrix K, row-major (of the
    rectified left image). Line 2: the baseline in metres. The file holds no
    image size, so the caller passes the size of the images it belongs to.
    """
    lines = [line.split() for line in _read_text(path, 'intrinsics').splitlines() if line.strip()]
    fix = ("K.txt must hold two lines: the 9 numbers of K (row-major 'fx 0 cx 0 fy cy 0 0 1') "
           'and the baseline in metres')
    if len(lines) < 2 or len(lines[0]) != 9 or len(lines[1]) != 1:
        raise InputError(f"'{path}' is not a K.txt file: {fix}")
    try:
        k = np.array([float(value) for value in lines[0]]).reshape(3, 3)
        baseline = float(lines[1][0])
    except ValueError as exc:
        raise InputError(f"'{path}' has a non-numeric value ({exc}): {fix}") from None
    if not np.all(np.isfinite(k)) or not np.isfinite(baseline):
        raise InputError(f"'{path}' holds a non-finite value: {fix}")
    if baseline <= 0:
        raise InputError(f"'{path}' gives baseline {baseline:g} m: the second line must be the positive "
                         'distance between the camera centres in metres (e.g. 0.12)')
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InputError(f"'{path}' has focal lengths fx={k[0, 0]:g}, fy={k[1, 1]:g}: K's first line must "
                         "be 'fx 0 cx 0 fy cy 0 0 1' with positive fx and fy")
    return _camera(path, width=width, height=height, fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2],
                   baseline=baseline)


# ---------------------------------------------------- Middlebury calib --

MIDDLEBURY_DOFFS_TOLERANCE_PX = 0.01


def camera_from_middlebury_calib(path):
    """StereoCamera from a Middlebury stereo `calib.txt` (2005-2021 datasets).

    cam0/cam1 = [f 0 cx; 0 f cy; 0 0 1] of the rectified left/right images,
    doffs = cx1 - cx0, baseline in millimetres, width and height; the other
    keys (ndisp, vmin, ...) are read over. Middlebury disparity files hold
    x_l - x_r and depth = f * baseline / (d + doffs), which is this package's
    camera with cx_right = cx0 + doffs (correct_disparity subtracts cx - cx_right).
    """
    fields = {}
    for number, line in enumerate(_read_text(path, 'Middlebury calibration').splitlines(), 1):
        if line.strip():
            key, sep, value = line.partition('=')
            if not sep:
                raise InputError(f"'{path}' line {number} is not 'key=value': give a Middlebury calib.txt")
            fields[key.strip()] = value.strip()
    missing = [key for key in ('cam0', 'cam1', 'baseline', 'width', 'height') if key not in fields]
    if missing:
        raise InputError(f"'{path}' lacks {', '.join(missing)}: a Middlebury calib.txt holds cam0, cam1, doffs, "
                         'baseline (mm), width and height')
    try:
        cam0, cam1 = (_middlebury_matrix(fields[key]) for key in ('cam0', 'cam1'))
        baseline_mm = float(fields['baseline'])
        width, height = int(fields['width']), int(fields['height'])
        doffs = float(fields['doffs']) if 'doffs' in fields else cam1[0, 2] - cam0[0, 2]
    except ValueError as exc:
        raise InputError(f"'{path}' has a malformed value ({exc}): cam0/cam1 are '[f 0 cx; 0 f cy; 0 0 1]', "
                         'baseline, doffs numbers, width/height integers') from None
    if not (np.all(np.isfinite(cam0)) and np.all(np.isfinite(cam1)) and np.isfinite(baseline_mm)
            and np.isfinite(doffs)):
        raise InputError(f"'{path}' holds a non-finite value: give the calib.txt of a rectified pair")
    if abs(cam1[0, 2] - cam0[0, 2] - doffs) > MIDDLEBURY_DOFFS_TOLERANCE_PX:
        raise InputError(f"'{path}': doffs {doffs:g} is not cam1 cx - cam0 cx = {cam1[0, 2] - cam0[0, 2]:g}: "
                         'use an unedited calib.txt')
    if abs(cam1[0, 0] - cam0[0, 0]) > 1e-6 * abs(cam0[0, 0]):
        raise InputError(f"'{path}': cam0 and cam1 focal lengths differ ({cam0[0, 0]:g} vs {cam1[0, 0]:g}): "
                         'the pair is not rectified together')
    return _camera(path, width=width, height=height, fx=cam0[0, 0], fy=cam0[1, 1], cx=cam0[0, 2],
                   cy=cam0[1, 2], baseline=baseline_mm / 1000.0, cx_right=cam0[0, 2] + doffs)


def _middlebury_matrix(text):
    rows = [row.split() for row in text.strip().lstrip('[').rstrip(']').split(';')]
    if len(rows) != 3 or any(len(row) != 3 for row in rows):
        raise ValueError(f"'{text}' is not a 3x3 matrix")
    return np.array([[float(value) for value in row] for row in rows])


def camera_from_intrinsics_file(path, width, height):
    """StereoCamera from --intrinsics: a Middlebury calib.txt (has 'cam0=') or a K.txt.

    K.txt holds no image size, so `width`/`height` complete it; calib.txt
    carries its own size and is checked against them when given.
    """
    if 'cam0=' in _read_text(path, 'intrinsics').replace(' ', ''):
        camera = camera_from_middlebury_calib(path)
        if width is not None:
            check_image_size(camera, width, height, f"Middlebury calibration '{path}'")
        return camera
    return camera_from_k_txt(path, width, height)


# ------------------------------------------------------ calibration YAML --

def camera_from_calibration_yaml(left_path, right_path):
    """StereoCamera from a camera_calibration / camera_info_manager YAML pair.

    The rectified geometry comes from each file's projection_matrix: focal
    length and principal points from both, baseline from the right file's
    P[3] = -fx * baseline.
    """
    left = _calibration(left_path)
    right = _calibration(right_path)
    if (left['width'], left['height']) != (right['width'], right['height']):
        raise InputError(f"'{left_path}' is for {left['width']}x{left['height']} images but '{right_path}' "
                         f"for {right['width']}x{right['height']}: use the two files of one stereo calibration")
    if right['p'][3] == 0:
        raise InputError(f"'{right_path}' has projection_matrix P[3] = 0, so the baseline is zero: pass the "
                         'RIGHT camera file of a stereo calibration (its P[3] is -fx * baseline) as the right '
                         'calibration, not a monocular calibration or the left file')
    try:
        camera = StereoCamera.from_projections(left['p'], right['p'], left['width'], left['height'])
    except InputError as exc:
        raise InputError(f"calibration '{left_path}' + '{right_path}': {exc}") from None
    return _with_doffs(camera, left, right, left_path, right_path)


def _with_doffs(camera, left, right, left_path, right_path):
    """Apply an optional `doffs` key (Middlebury's cx_right - cx_left) of either YAML file.

    P matrices that already differ in cx must agree with it; equal ones
    (cx offset not encoded in P) take it.
    """
    given = {path: entry['doffs'] for path, entry in ((left_path, left), (right_path, right))
             if entry['doffs'] is not None}
    if not given:
        return camera
    if len(set(given.values())) > 1:
        raise InputError(f"'{left_path}' and '{right_path}' give different doffs: keep one value")
    path, doffs = next(iter(given.items()))
    encoded = camera.cx_right - camera.cx
    if encoded != 0 and abs(encoded - doffs) > MIDDLEBURY_DOFFS_TOLERANCE_PX:
        raise InputError(f"'{path}': doffs {doffs:g} disagrees with the projection matrices "
                         f'(cx_right - cx_left = {encoded:g}): remove doffs or fix P')
    return replace(camera, cx_right=camera.cx + doffs)


def _calibration(path):
    text = _read_text(path, 'calibration')
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"'{path}' is not valid YAML ({str(exc).splitlines()[0]}): give a "
                         'camera_calibration YAML file') from None
    if not isinstance(data, dict):
        raise InputError(f"'{path}' is not a camera calibration: expected keys image_width, image_height, "
                         'camera_matrix, projection_matrix')
    missing = [key for key in ('image_width', 'image_height', 'projection_matrix') if key not in data]
    if missing:
        raise InputError(f"'{path}' lacks {', '.join(missing)}: give the camera_calibration YAML "
                         '(camera_info_manager format) of the rectified camera')
    try:
        width, height = int(data['image_width']), int(data['image_height'])
    except (TypeError, ValueError):
        raise InputError(f"'{path}' has a non-integer image_width/image_height") from None
    doffs = data.get('doffs')
    if doffs is not None:
        try:
            doffs = float(doffs)
        except (TypeError, ValueError):
            raise InputError(f"'{path}': doffs must be a number (cx_right - cx_left in pixels)") from None
        if not np.isfinite(doffs):
            raise InputError(f"'{path}': doffs must be finite, got {doffs}")
    return {'width': width, 'height': height, 'doffs': doffs,
            'p': _matrix(path, data['projection_matrix'], 'projection_matrix', 3, 4)}


def _matrix(path, entry, name, rows, cols):
    """The `data` list of a {rows, cols, data} YAML matrix, checked."""
    fix = f'{name} must be {{rows: {rows}, cols: {cols}, data: [{rows * cols} numbers]}}'
    if not isinstance(entry, dict) or 'data' not in entry:
        raise InputError(f"'{path}': {fix}")
    if (entry.get('rows', rows), entry.get('cols', cols)) != (rows, cols):
        raise InputError(f"'{path}': {name} is {entry.get('rows')}x{entry.get('cols')}; {fix}")
    try:
        values = [float(value) for value in entry['data']]
    except (TypeError, ValueError):
        raise InputError(f"'{path}': {name} has non-numeric data; {fix}") from None
    if len(values) != rows * cols or not np.all(np.isfinite(values)):
        raise InputError(f"'{path}': {name} has {len(values)} values; {fix}")
    return values


# ----------------------------------------------------------- camera_info --

def camera_from_infos(left_info, right_info, width=None, height=None, source='camera_info'):
    """StereoCamera of a rectified pair from its two camera_info records; the one validator.

    `left_info`/`right_info` are plain dicts: width, height, p (12 numbers),
    and optionally binning_x, binning_y and roi = (x_offset, y_offset, width,
    height) (see pipeline.frame_stage.camera_info_fields for messages). The
    images are `width`x`height` (default: the left info's size). Checks, in
    order: each info describes images of that size, P is filled in, no
    binning or ROI (the images must be full rectified frames), the right P[3]
    every P and K entry finite, positive focal lengths, principal points
    inside the image; StereoCamera.from_projections then checks the focal
    lengths agree and the baseline sign. A right P[3] of 0 gives a camera
    with baseline 0 (disparity only, `has_depth` False). `k` (9 numbers) is
    optional. `source` names the infos in errors.
    """
    if width is None:
        width, height = left_info['width'], left_info['height']
    for side, info in (('left', left_info), ('right', right_info)):
        if (info['width'], info['height']) != (width, height):
            raise InputError(
                f"{source}: {side} camera_info is for {info['width']}x{info['height']} images but the images "
                f'are {width}x{height}: use the camera_info of the rectified stream (after any resize/crop), '
                'the two infos of one rectified pair')
        projection = np.asarray(info['p'], dtype=np.float64)
        if not np.any(projection):
            raise InputError(f'{source}: {side} camera_info has an all-zero projection matrix P: the camera is '
                             'not calibrated; run camera_calibration and publish rectified camera_info')
        for name in ('p', 'k'):
            values = np.asarray(info.get(name, ()), dtype=np.float64)
            if not np.all(np.isfinite(values)):
                raise InputError(f'{source}: {side} camera_info {name.upper()} holds a non-finite value '
                                 f'({_first_non_finite(values)}): publish a calibration whose matrices are '
                                 'finite numbers')
        if not (projection[0] > 0 and projection[5] > 0):
            raise InputError(f'{source}: {side} camera_info P has focal lengths fx={projection[0]:g}, '
                             f'fy={projection[5]:g}: both must be positive; publish the rectified calibration')
        cx, cy = projection[2], projection[6]
        if not (0 <= cx < width and 0 <= cy < height):
            raise InputError(f'{source}: {side} camera_info principal point ({cx:g}, {cy:g}) lies outside the '
                             f'{width}x{height} image: the info belongs to another resolution or P is wrong; '
                             'publish the camera_info of the rectified images')
        if info.get('binning_x', 0) > 1 or info.get('binning_y', 0) > 1 or _has_roi(info):
            raise InputError(f'{source}: {side} camera_info uses binning or an ROI: give full-frame '
                             'rectified images with matching camera_info')
    # right P[3] = 0 (Tx = 0, as stereo_image_proc's own disparity test publishes) gives a camera without
    # a baseline: the disparity is still computed, depth and points are not (StereoCamera.has_depth)
    try:
        return StereoCamera.from_projections(left_info['p'], right_info['p'], width, height)
    except InputError as exc:
        raise InputError(f'{source}: {exc}') from None


def _first_non_finite(values):
    index = int(np.flatnonzero(~np.isfinite(values))[0])
    return f'entry {index} is {values[index]}'


def _has_roi(info):
    """True when the info's ROI is set and is not the full image."""
    roi = info.get('roi')
    if not roi:
        return False
    x_offset, y_offset, roi_width, roi_height = roi
    return bool(x_offset or y_offset or (roi_width and roi_width != info['width'])
                or (roi_height and roi_height != info['height']))


# ---------------------------------------------------------------- helpers --

def check_image_size(camera, width, height, source):
    """Raise unless the intrinsics belong to images of this size."""
    if (camera.width, camera.height) != (width, height):
        raise InputError(f'{source} is for {camera.width}x{camera.height} images but the images are '
                         f'{width}x{height}: use the calibration of the rectified images you process')


def _camera(path, **fields):
    try:
        return StereoCamera(**fields)
    except InputError as exc:
        raise InputError(f"'{path}': {exc}") from None


def _read_text(path, what):
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputError(f"{what} file '{path}' does not exist: check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} file '{path}' ({exc}): give a readable text file") from None
