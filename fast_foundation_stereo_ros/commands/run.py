"""`ffs-stereo run`: a pair, two folders of pairs, or a rosbag2 through a backend.

Pairs and bags go through the node's per-frame stage with the node's
geometry options (--min-depth, --max-depth, --point-cloud-decimation,
--no-color, --avoid-point-cloud-padding, --depth-mm; bags also
--disparity-color), named like the node's parameters.
"""
import argparse
import math
import os
import sys

from ..errors import InputError
from ..offline.bags import BagOptions, BagTopics, first_image_size, process_bag
from ..offline.pairs import DISPARITY_FORMATS, OfflineOptions, list_image_pairs, load_camera, run_pairs
from ..pipeline.frame_stage import MAX_DECIMATION, FrameOptions
from .backend_options import add_backend_arguments, build_pipeline


def register(subparsers):
    parser = subparsers.add_parser(
        'run', help='run image pairs, folders or a rosbag2 through a backend',
        description='Disparity, depth and point clouds for a stereo pair, two folders of pairs (matched '
                    'by sorted file name) or a rosbag2 (.mcap/.db3; the result is a new bag).')
    source = parser.add_argument_group('input (one of)')
    source.add_argument('--left', help='left rectified image')
    source.add_argument('--right', help='right rectified image')
    source.add_argument('--left-dir', help='folder of left rectified images')
    source.add_argument('--right-dir', help='folder of right rectified images')
    source.add_argument('--bag', help='rosbag2 folder or .mcap/.db3 file')

    files = parser.add_argument_group('file outputs (pairs and folders)')
    files.add_argument('--output', default=os.path.join('output', 'run'), help='output folder (default output/run)')
    files.add_argument('--format', default='pfm', choices=DISPARITY_FORMATS,
                       help='disparity file format: pfm (float), png (16-bit KITTI, d*256) or npy')
    files.add_argument('--no-cloud', action='store_true', help='do not write PLY point clouds')
    files.add_argument('--no-confidence', action='store_true',
                       help='do not write <stem>_confidence.npy (float32 0..1, for eval --confidence; written '
                            'when the backend has confidence)')

    camera = parser.add_argument_group('intrinsics (needed for depth and points)')
    camera.add_argument('--intrinsics', help='Fast-FoundationStereo K.txt (K row-major, then baseline in m) '
                                             'or a Middlebury calib.txt (cam0, cam1, doffs, baseline in mm)')
    camera.add_argument('--calib-left', help='left camera_calibration YAML')
    camera.add_argument('--calib-right', help='right camera_calibration YAML (its P[3] gives the baseline)')

    bag = parser.add_argument_group('rosbag2')
    defaults = BagTopics()
    bag.add_argument('--output-bag', help='new bag to write (default: <input>_ffs beside the input)')
    bag.add_argument('--overwrite', action='store_true', help='replace an existing --output-bag')
    bag.add_argument('--left-topic', default=defaults.left)
    bag.add_argument('--right-topic', default=defaults.right)
    bag.add_argument('--left-info-topic', default=defaults.left_info)
    bag.add_argument('--right-info-topic', default=defaults.right_info)
    bag.add_argument('--output-namespace', default='',
                     help='prefix of the written topics disparity, depth/image, points2 (default: none)')
    bag.add_argument('--output-storage', choices=('mcap', 'sqlite3'), help='default: like the input bag')
    bag.add_argument('--disparity-color', action='store_true', help='also write disparity/color (rgb8 colour map)')

    geometry = parser.add_argument_group('geometry (as the node\'s parameters of the same names)')
    geometry.add_argument('--min-depth', type=float, default=0.0, help='metres; nearer depth/points become NaN')
    geometry.add_argument('--max-depth', type=float, default=0.0,
                          help='metres; farther depth/points become NaN; 0 = no limit (default)')
    geometry.add_argument('--point-cloud-decimation', type=int, default=1,
                          help=f'the cloud keeps every n-th row and column, 1..{MAX_DECIMATION} (default 1)')
    geometry.add_argument('--no-color', action='store_true', help='point clouds without colour')
    geometry.add_argument('--avoid-point-cloud-padding', action='store_true',
                          help='16-byte x,y,z,rgb points instead of the padded 32-byte stereo_image_proc layout')
    geometry.add_argument('--keep-out-of-view', action='store_true',
                          help='keep depth and points where the match x - d lies left of the right image '
                               '(dropped by default, as the official demo\'s remove_invisible; the disparity file '
                               'always keeps them; node: invalidate_out_of_view)')
    geometry.add_argument('--min-confidence', type=float, default=0.0,
                          help='0..1; less confident pixels become NaN in disparity, depth and points (0 = off)')
    geometry.add_argument('--depth-mm', action='store_true',
                          help='also 16-bit millimetre depth (0 invalid): <stem>_depth_mm.png / depth/image_mm')

    bag.add_argument('--sync-tolerance', type=float, default=0.0, metavar='SECONDS',
                     help='pair images and camera_info whose stamps differ by up to SECONDS (default 0: equal '
                          'stamps only), as the node\'s approximate_sync_tolerance_seconds')
    parser.add_argument('--fail-fast', action='store_true',
                        help='stop at the first bad pair or stereo set (exit 2, nothing written); by default it '
                             'is skipped, named in the summary, and the exit status is 1')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar on stderr')
    add_backend_arguments(parser)
    parser.set_defaults(func=run)


def frame_options(args):
    """The node's geometry options from the command line (max_depth 0 = no limit, as in the node)."""
    return FrameOptions(use_color=not args.no_color, avoid_point_cloud_padding=args.avoid_point_cloud_padding,
                        min_depth=args.min_depth, max_depth=math.inf if args.max_depth == 0 else args.max_depth,
                        point_cloud_decimation=args.point_cloud_decimation,
                        invalidate_out_of_view=not args.keep_out_of_view, min_confidence=args.min_confidence)


def run(args: argparse.Namespace) -> int:
    mode = _input_mode(args)
    frame = frame_options(args)
    if mode == 'bag':
        return _run_bag(args, frame)
    if args.disparity_color:
        raise InputError('--disparity-color applies to --bag input; pairs always get <stem>_disparity_color.png')
    pairs = [(args.left, args.right)] if mode == 'pair' else list_image_pairs(args.left_dir, args.right_dir)
    options = OfflineOptions(disparity_format=args.format, intrinsics=args.intrinsics,
                             calib_left=args.calib_left, calib_right=args.calib_right,
                             write_cloud=not args.no_cloud, write_depth_mm=args.depth_mm, frame=frame,
                             write_confidence=not args.no_confidence,
                             show_progress=not args.no_progress, fail_fast=args.fail_fast)
    pipeline = build_pipeline(args)
    summary = run_pairs(pairs, pipeline, args.output, options)
    print(f'processed {summary.pairs} pair(s) into {args.output} ({len(summary.files)} files); '
          f'{_timing_line(summary.mean_timings)}')
    if not (args.intrinsics or args.calib_left):
        print('no intrinsics given: wrote disparity only; pass --intrinsics K.txt or '
              '--calib-left/--calib-right for depth and point clouds', file=sys.stderr)
    return _report_skipped(summary.skipped, len(pairs), 'pair(s)')


def _report_skipped(skipped, total, what):
    """Name every skipped input on stderr; exit status 1 when anything was skipped, else 0."""
    if not skipped:
        return 0
    print(f'skipped {len(skipped)} of {total} {what} (--fail-fast stops at the first):', file=sys.stderr)
    for name, reason in skipped:
        print(f'  {name}: {reason}', file=sys.stderr)
    return 1


def _run_bag(args, frame):
    output_bag = args.output_bag or os.path.splitext(os.path.abspath(args.bag).rstrip(os.sep))[0] + '_ffs'
    camera = None
    if args.intrinsics or args.calib_left or args.calib_right:
        camera = _camera_for_bag(args)
    topics = BagTopics(args.left_topic, args.right_topic, args.left_info_topic, args.right_info_topic)
    options = BagOptions(output_namespace=args.output_namespace, overwrite=args.overwrite,
                         output_storage=args.output_storage, frame=frame, depth_mm=args.depth_mm,
                         disparity_color=args.disparity_color, show_progress=not args.no_progress,
                         sync_tolerance_ns=_tolerance_ns(args.sync_tolerance), fail_fast=args.fail_fast)
    summary = process_bag(args.bag, output_bag, lambda: build_pipeline(args), topics, camera, options)
    print(f'wrote {summary.output_bag}: {summary.frames} stereo set(s); {_timing_line(summary.mean_timings)}')
    unmatched = {topic: count for topic, count in summary.unmatched.items() if count}
    if unmatched:
        print('unpaired messages (no partner within the stamp tolerance; see --sync-tolerance): '
              + ', '.join(f'{topic}: {count}' for topic, count in unmatched.items()), file=sys.stderr)
    return _report_skipped([(f'stamp {stamp}', reason) for stamp, reason in summary.skipped],
                           summary.frames + len(summary.skipped), 'stereo set(s)')


def _tolerance_ns(seconds):
    if not (math.isfinite(seconds) and 0.0 <= seconds <= 10.0):
        raise InputError(f'--sync-tolerance must be 0..10 seconds, got {seconds}')
    return int(round(seconds * 1e9))


def _camera_for_bag(args):
    """Intrinsics from files for a bag; K.txt has no image size, so take the first image's."""
    width = height = None
    if args.intrinsics:
        width, height = first_image_size(args.bag, args.left_topic)
    options = OfflineOptions(intrinsics=args.intrinsics, calib_left=args.calib_left,
                             calib_right=args.calib_right)
    return load_camera(options, width, height)


def _input_mode(args):
    given = {'pair': bool(args.left or args.right), 'folders': bool(args.left_dir or args.right_dir),
             'bag': bool(args.bag)}
    chosen = [mode for mode, present in given.items() if present]
    if len(chosen) != 1:
        raise InputError('give exactly one input: --left and --right, --left-dir and --right-dir, or --bag')
    mode = chosen[0]
    if mode == 'pair' and not (args.left and args.right):
        raise InputError('--left and --right go together: give both images of the pair')
    if mode == 'folders' and not (args.left_dir and args.right_dir):
        raise InputError('--left-dir and --right-dir go together: give both folders')
    if mode != 'bag' and (args.output_bag or args.overwrite):
        raise InputError('--output-bag/--overwrite apply to --bag input only; use --output for files')
    return mode


def _timing_line(timings):
    if not timings:
        return 'no timings'
    parts = [f'{stage} {seconds * 1000:.1f} ms' for stage, seconds in timings.items()]
    return 'mean per pair: ' + ', '.join(parts)
