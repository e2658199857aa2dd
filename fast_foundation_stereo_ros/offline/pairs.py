"""Image pairs and folders of pairs through a backend, results to files.

Per pair (named after the left image): disparity (x_l - x_r, the datasets'
convention, whatever the intrinsics) in the chosen format, a colour-mapped
disparity PNG, and with intrinsics the depth (.npy, metres, NaN invalid),
optionally 16-bit millimetre depth (.png, 0 invalid) and a PLY point cloud.
Pairs go through the node's per-frame stage (pipeline.frame_stage) with the
node's options: the depth range applies to depth and cloud, decimation and
colour to the cloud.

All files of a run are first written to a hidden staging folder inside the
output folder and moved into place only when every pair succeeded, so a
failed run leaves existing outputs untouched; the output folder must be new,
empty or one of ours, and only our earlier outputs are replaced
(files.output_folders).
"""
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import InputError
from ..files.colormap import colorize_disparity
from ..files.disparity_files import write_disparity
from ..files.images import read_image, write_rgb_png
from ..files.output_folders import output_folder
from ..files.ply import write_ply
from ..files.progress import ProgressBar
from ..files.visualization import robust_range
from ..geometry.intrinsics import camera_from_calibration_yaml, camera_from_intrinsics_file, check_image_size
from ..pipeline.frame_stage import BadFrame, FrameOptions, FrameStage, OutputRequest, reported_stages

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
DISPARITY_FORMATS = ('pfm', 'png', 'npy')


@dataclass(frozen=True)
class OfflineOptions:
    disparity_format: str = 'pfm'
    intrinsics: str = None        # FFS K.txt or Middlebury calib.txt
    calib_left: str = None        # camera_calibration YAML pair
    calib_right: str = None
    write_cloud: bool = True
    write_depth_mm: bool = False  # also <stem>_depth_mm.png (16UC1 millimetres, 0 invalid)
    write_confidence: bool = True  # <stem>_confidence.npy (float32 0..1) with backends that have it
    frame: FrameOptions = field(default_factory=FrameOptions)   # the node's geometry options
    show_progress: bool = True
    fail_fast: bool = False       # the first bad pair ends the run (else it is skipped and named)


# ----------------------------------------------------------------- inputs --

def list_image_pairs(left_dir, right_dir):
    """[(left, right)] paired by sorted file name; counts must match."""
    lefts, rights = _images_in(left_dir, 'left'), _images_in(right_dir, 'right')
    if len(lefts) != len(rights):
        raise InputError(f"'{left_dir}' holds {len(lefts)} images but '{right_dir}' holds {len(rights)}: "
                         'give folders with one right image per left image (paired by sorted name)')
    if not lefts:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in '{left_dir}' and '{right_dir}'")
    return list(zip(lefts, rights))


def _images_in(directory, side):
    if not os.path.isdir(directory):
        raise InputError(f"{side} image folder '{directory}' does not exist: check --{side}-dir")
    names = sorted(name for name in os.listdir(directory) if name.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(directory, name) for name in names]


def output_stems(pairs):
    """Output name per pair (left file stem); must be unique."""
    stems = [os.path.splitext(os.path.basename(left))[0] for left, _ in pairs]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise InputError(f"left images share the name stem(s) {', '.join(duplicates)}: their outputs would "
                         'overwrite each other; rename them')
    return stems


def load_camera(options, width=None, height=None):
    """StereoCamera from --intrinsics or --calib-left/--calib-right, or None.

    K.txt holds no image size, so it needs `width`/`height`; a calibration
    YAML pair is checked against them when they are given.
    """
    if options.intrinsics and (options.calib_left or options.calib_right):
        raise InputError('give either --intrinsics K.txt or --calib-left/--calib-right, not both')
    if options.intrinsics:
        return camera_from_intrinsics_file(options.intrinsics, width, height)
    if options.calib_left or options.calib_right:
        if not (options.calib_left and options.calib_right):
            raise InputError('--calib-left and --calib-right go together: give both YAML files of the '
                             'stereo calibration')
        camera = camera_from_calibration_yaml(options.calib_left, options.calib_right)
        if width is not None:
            check_image_size(camera, width, height, f"calibration '{options.calib_left}'")
        return camera
    return None


# ---------------------------------------------------------------- outputs --

def pair_request(options, camera):
    """The stage outputs the files of `options` need (depth and points only with a camera)."""
    with_camera = camera is not None
    return OutputRequest(disparity=True, depth=with_camera, depth_mm=with_camera and options.write_depth_mm,
                         points=with_camera and options.write_cloud, confidence=options.write_confidence)


def write_pair_outputs(staged, stem, arrays, options):
    """Files of one pair's FrameArrays; returns their names."""
    names = [f'{stem}_disparity.{options.disparity_format}', f'{stem}_disparity_color.png']
    # files hold x_l - x_r, as Middlebury, KITTI and Scene Flow files do; the cx offset belongs to
    # DisparityImage and to depth, not to the file
    raw_disparity = arrays.raw_disparity
    write_disparity(staged.path(names[0]), raw_disparity)
    _, high = robust_range(raw_disparity)
    write_rgb_png(staged.path(names[1]), colorize_disparity(raw_disparity, 0.0, high))
    if arrays.confidence is not None:
        names.append(f'{stem}_confidence.npy')
        np.save(staged.path(names[-1]), arrays.confidence)
    if arrays.depth is not None:
        names.append(f'{stem}_depth.npy')
        np.save(staged.path(names[-1]), arrays.depth)
    if arrays.depth_mm is not None:
        names.append(f'{stem}_depth_mm.png')
        if not cv2.imwrite(staged.path(names[-1]), arrays.depth_mm):
            raise InputError(f"could not write '{names[-1]}': check the output folder")
    if arrays.points is not None:
        names.append(f'{stem}_cloud.ply')
        write_ply(staged.path(names[-1]), arrays.xyz, arrays.point_colours)
    return names


# -------------------------------------------------------------------- run --

@dataclass
class RunSummary:
    pairs: int                    # pairs written
    files: list
    mean_timings: dict
    skipped: list = field(default_factory=list)   # [(left image, reason)] of pairs that failed


def run_pairs(pairs, pipeline, output_dir, options=OfflineOptions()):
    """Process [(left_path, right_path)] into `output_dir`; returns a RunSummary.

    A pair that cannot be read or computed is skipped and named in the summary (with
    `options.fail_fast` it ends the run, nothing written); bad intrinsics and I/O errors always end it.
    When no pair succeeds the run fails and writes nothing.
    """
    if options.disparity_format not in DISPARITY_FORMATS:
        raise InputError(f"disparity format must be one of {', '.join(DISPARITY_FORMATS)}, "
                         f"got '{options.disparity_format}'")
    stems = output_stems(pairs)
    stage = FrameStage(pipeline, options.frame)
    camera, camera_loaded, files, totals, skipped = None, False, [], {}, []
    with output_folder(output_dir) as staged, \
            ProgressBar(len(pairs), 'stereo pairs', enabled=options.show_progress) as progress:
        for (left_path, right_path), stem in zip(pairs, stems):
            try:
                left, left_encoding = read_image(left_path, 'left')
                right, right_encoding = read_image(right_path, 'right')
                _check_same_size(left, right, left_path, right_path)
            except InputError as exc:
                _skip(skipped, left_path, exc, options)
                progress.update()
                continue
            if not camera_loaded:   # the intrinsics' size comes from the first readable pair
                camera, camera_loaded = load_camera(options, left.shape[1], left.shape[0]), True
            try:
                if camera is not None:
                    check_image_size(camera, left.shape[1], left.shape[0], 'the intrinsics')
                arrays = stage.compute(left, left_encoding, right, right_encoding, camera,
                                       pair_request(options, camera))
            except (BadFrame, InputError) as exc:
                _skip(skipped, left_path, InputError(f"pair '{left_path}' + '{right_path}': {exc}"), options)
                progress.update()
                continue
            files += write_pair_outputs(staged, stem, arrays, options)
            for name, seconds in reported_stages(arrays.timings).items():
                totals[name] = totals.get(name, 0.0) + seconds
            progress.update()
        if skipped and len(skipped) == len(pairs):
            raise InputError(f'all {len(pairs)} pair(s) failed, nothing written; the first: {skipped[0][1]}')
    done = len(pairs) - len(skipped)
    mean = {stage: seconds / done for stage, seconds in totals.items()}
    return RunSummary(done, files, mean, skipped)


def _skip(skipped, left_path, error, options):
    if options.fail_fast:
        raise error
    skipped.append((left_path, str(error)))


def _check_same_size(left, right, left_path, right_path):
    if left.shape[:2] != right.shape[:2]:
        raise InputError(f"left image '{left_path}' is {left.shape[1]}x{left.shape[0]} but right image "
                         f"'{right_path}' is {right.shape[1]}x{right.shape[0]}: give a rectified pair of "
                         'one size')
