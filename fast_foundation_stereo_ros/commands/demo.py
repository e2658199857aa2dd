"""`ffs-stereo demo`: a synthetic scene through the pipeline, with its accuracy.

The default job: needs no data and no checkpoint (SGBM by default), runs in
seconds on a CPU, and writes everything a user wants to look at.
"""
import argparse
import os
import time

import cv2
import numpy as np

from ..errors import InputError
from ..files.colormap import colorize_disparity
from ..files.disparity_files import write_disparity
from ..files.images import write_rgb_png
from ..files.output_folders import output_folder
from ..files.ply import write_ply
from ..files.visualization import colorize_depth
from ..geometry.metrics import evaluate_regions, format_table
from ..geometry.synthetic_scenes import SCENE_KINDS, make_scene
from ..pipeline.frame_stage import FrameStage, OutputRequest, reported_stages
from .backend_options import add_backend_arguments, build_pipeline


def register(subparsers):
    parser = subparsers.add_parser(
        'demo', help='synthetic stereo scene -> disparity, depth, point cloud and accuracy',
        description='Render a synthetic rectified stereo scene with exact ground truth, run it through '
                    'the pipeline, write the results and print the accuracy.')
    parser.add_argument('--output', default=os.path.join('output', 'demo'),
                        help='output folder (default output/demo): new, empty, or an earlier demo output, whose files '
                             'are replaced on success; files of your own are never touched')
    parser.add_argument('--scene', default='mixed', choices=SCENE_KINDS)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--seed', type=int, default=0)
    add_backend_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    scene = make_scene(args.scene, args.width, args.height, seed=args.seed)
    render_time = time.perf_counter() - start
    pipeline = build_pipeline(args)
    outputs = FrameStage(pipeline).compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera,
                                           OutputRequest(disparity=True, depth=True, points=True))
    with output_folder(args.output, replace=True) as folder:
        files = _write_outputs(folder, scene, outputs)
    camera = scene.camera
    print(f'scene: {args.scene} seed {args.seed}, {camera.width}x{camera.height}, fx {camera.fx:.1f} px, '
          f'baseline {camera.baseline:.3f} m, disparity {scene.disparity.min():.1f}..'
          f'{scene.disparity.max():.1f} px, {100 * scene.occlusion.mean():.1f} % occluded')
    # the scene's truth is raw x_l - x_r; the stage's disparity has cx_l - cx_r removed
    truth = scene.disparity - np.float32(camera.cx_offset)
    print(format_table(evaluate_regions(outputs.disparity, truth, scene.occlusion)))
    timings = ', '.join(f'{stage} {seconds * 1000:.1f} ms'
                        for stage, seconds in reported_stages(outputs.timings).items())
    print(f'timings: render {render_time * 1000:.1f} ms, {timings}')
    print(f'wrote {len(files)} files to {args.output}: {", ".join(files)}')
    print(f'evaluate again with: ffs-stereo eval --pred {os.path.join(args.output, "disparity.pfm")} '
          f'--gt {os.path.join(args.output, "gt_disparity.pfm")} '
          f'--mask-occ {os.path.join(args.output, "gt_occlusion.png")}')
    return 0


def _write_outputs(folder, scene, outputs):
    path = folder.path
    write_rgb_png(path('left.png'), scene.left)
    write_rgb_png(path('right.png'), scene.right)
    write_disparity(path('disparity.pfm'), outputs.raw_disparity)   # x_l - x_r, as dataset files
    write_disparity(path('disparity.png'), outputs.raw_disparity)
    high = float(np.nanmax(scene.disparity)) * 1.1  # one scale for prediction and truth
    write_rgb_png(path('disparity_color.png'), colorize_disparity(outputs.raw_disparity, 0.0, high))
    np.save(path('depth.npy'), outputs.depth)
    depth_range = (float(scene.depth.min()), float(scene.depth.max()))
    write_rgb_png(path('depth_color.png'), colorize_depth(outputs.depth, depth_range))
    write_ply(path('cloud.ply'), outputs.xyz, outputs.point_colours)
    write_disparity(path('gt_disparity.pfm'), scene.disparity)
    if not cv2.imwrite(path('gt_occlusion.png'), scene.occlusion.astype(np.uint8) * 255):
        raise InputError(f"could not write gt_occlusion.png into '{folder.directory}'")
    return sorted(folder.names)
