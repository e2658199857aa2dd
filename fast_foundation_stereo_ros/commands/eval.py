"""`ffs-stereo eval`: disparity accuracy against ground truth.

Either a predicted disparity file against a ground-truth file (PFM with inf
= invalid as Middlebury/Scene Flow, and 0 = unknown; KITTI 16-bit PNG with
0 = invalid; 8-bit Middlebury 2001-2005 PNG/PGM with --gt-scale, 0 =
unknown; or .npy with NaN), or a backend on a generated synthetic scene. With
`--confidence FILE` (the confidence.npy / .pfm `ffs-stereo run` writes beside
the disparity) it also prints the sparsification curve: EPE and bad-2 of the
pixels kept as the least-confident 10 %, 20 %, ... are removed, with the
confidence threshold that keeps them, so a `min_confidence` can be chosen.
"""
import argparse
import time

import cv2

from ..errors import InputError
from ..files.disparity_files import read_disparity
from ..geometry.metrics import evaluate_regions, format_sparsification, format_table, sparsification
from ..geometry.synthetic_scenes import SCENE_KINDS, make_scene
from .backend_options import add_backend_arguments, build_pipeline


def register(subparsers):
    parser = subparsers.add_parser(
        'eval', help='EPE / bad-N / D1 of a disparity against ground truth',
        description='Evaluate a disparity file against ground truth (--pred/--gt), or a backend on a '
                    'synthetic scene with exact ground truth (--scene).')
    files = parser.add_argument_group('files')
    files.add_argument('--pred', help='predicted disparity (.pfm, .png KITTI 16-bit, .npy)')
    files.add_argument('--gt', help='ground-truth disparity (.pfm inf or 0 = invalid, .png 0 = invalid, .npy NaN; '
                                    '8-bit .png/.pgm with --gt-scale)')
    files.add_argument('--gt-scale', type=float,
                       help='scale of an 8-bit ground truth (Middlebury 2003 quarter size: 4), 0 = unknown')
    masks = files.add_mutually_exclusive_group()
    masks.add_argument('--mask-occ', help='occlusion mask image: non-zero = occluded (left pixel not '
                                          'visible in the right view); adds the non-occluded row')
    masks.add_argument('--mask-noc', help='Middlebury-style mask0nocc.png: 255 = non-occluded, other '
                                          'values excluded from the non-occluded row')
    files.add_argument('--confidence', help='per-pixel confidence of --pred (.npy or .pfm, 0..1, as written '
                                            'by ffs-stereo run): adds the sparsification curve per decile')
    scene = parser.add_argument_group('synthetic scene')
    scene.add_argument('--scene', choices=SCENE_KINDS, help='evaluate the backend on this generated scene')
    scene.add_argument('--seed', type=int, default=0)
    scene.add_argument('--width', type=int, default=640)
    scene.add_argument('--height', type=int, default=480)
    add_backend_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.scene:
        if args.pred or args.gt or args.confidence:
            raise InputError('give either --scene or --pred/--gt (and --confidence), not both')
        prediction, truth, occlusion, timing = _scene_prediction(args)
        print(f'scene {args.scene} seed {args.seed} ({args.width}x{args.height}), '
              f'inference {timing * 1000:.1f} ms')
    else:
        if not (args.pred and args.gt):
            raise InputError('give --pred and --gt disparity files (or --scene KIND to evaluate a backend)')
        prediction, truth = read_disparity(args.pred), read_disparity(args.gt, args.gt_scale)
        occlusion = _occlusion_mask(args, truth.shape)
    print(format_table(evaluate_regions(prediction, truth, occlusion)))
    if args.confidence:
        _print_sparsification(prediction, truth, _read_confidence(args.confidence))
    return 0


def _read_confidence(path):
    if not str(path).lower().endswith(('.npy', '.pfm')):
        raise InputError(f"--confidence '{path}' must be a .npy or .pfm file (what ffs-stereo run writes)")
    return read_disparity(path)


def _print_sparsification(prediction, truth, confidence):
    rows = sparsification(prediction, truth, confidence)
    if not rows:
        print('sparsification: no predicted pixel has ground truth and a finite confidence')
        return
    print('\nsparsification (least-confident pixels removed first; keep EPE/bad-2 of the rest):')
    print(format_sparsification(rows))


def _scene_prediction(args):
    scene = make_scene(args.scene, args.width, args.height, seed=args.seed)
    pipeline = build_pipeline(args)
    start = time.perf_counter()
    prediction = pipeline.compute(scene.left, scene.right)
    return prediction, scene.disparity, scene.occlusion, time.perf_counter() - start


def _occlusion_mask(args, shape):
    path = args.mask_occ or args.mask_noc
    if not path:
        return None
    mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise InputError(f"cannot read mask image '{path}': give a single-channel PNG")
    if mask.shape != shape:
        raise InputError(f"mask '{path}' is {mask.shape[1]}x{mask.shape[0]} but the ground truth is "
                         f'{shape[1]}x{shape[0]}: use the mask of this ground truth')
    return mask > 0 if args.mask_occ else mask != 255
