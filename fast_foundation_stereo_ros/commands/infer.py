"""`ffs-stereo infer`: one stereo pair through a model, disparity to a file.

The output format follows the extension: .npy (float32), .pfm, or 16-bit
.png (disparity x 256, KITTI convention, 0 = invalid). The file is written
atomically, so a failed run leaves any existing output untouched.
"""
import argparse

import numpy as np

from .. import defaults
from ..backends import backend_kind
from ..files.atomic import check_output_file
from ..files.disparity_files import disparity_format, write_disparity
from ..files.images import read_image
from ..pipeline.encodings import to_rgb8
from ..pipeline.predictor import PipelinePredictor


def register(subparsers):
    parser = subparsers.add_parser(
        'infer', help='run one stereo pair through a model',
        description='Compute the disparity of one rectified stereo pair.')
    parser.add_argument('--model', required=True,
                        help="released .pth, a directory holding one, a native model directory, "
                             "an .onnx, a TensorRT .engine/.plan, or 'sgbm'")
    parser.add_argument('--left', required=True, help='left image (8-bit RGB/grey)')
    parser.add_argument('--right', required=True, help='right image (8-bit RGB/grey)')
    parser.add_argument('--max-disp', type=int, default=None,
                        help=f'largest disparity searched, multiple of 32 (default {defaults.MAX_DISP})')
    parser.add_argument('--valid-iters', type=int, default=None,
                        help=f'GRU refinement iterations, >= 1 (default {defaults.VALID_ITERS})')
    parser.add_argument('--device', default=defaults.DEVICE, choices=('auto', 'cpu', 'cuda'),
                        help='auto (default): CUDA when available, else the CPU')
    parser.add_argument('--output', required=True, help='disparity file: .npy, .pfm or .png')
    parser.set_defaults(func=run)


def load_predictor(model_path, device=defaults.DEVICE):
    """StereoModel for checkpoints / native directories (max_disp and iterations per call),
    PipelinePredictor for graphs, engines and SGBM; both offer `predict(left, right, valid_iters, max_disp)`."""
    if backend_kind(model_path) == 'pytorch':
        from ..loading.stereo_model import load_model
        return load_model(model_path, device=device)
    return PipelinePredictor(model_path, device)


def run(args: argparse.Namespace) -> int:
    disparity_format(args.output)  # reject an unknown extension or an unwritable place before any work
    check_output_file(args.output)
    left, right = (to_rgb8(*read_image(path, side, allow_alpha=False, allow_16bit=False))
                   for path, side in ((args.left, 'left'), (args.right, 'right')))
    predictor = load_predictor(args.model, device=args.device)
    disparity = predictor.predict(left, right, valid_iters=args.valid_iters, max_disp=args.max_disp)
    write_disparity(args.output, disparity)
    finite = disparity[np.isfinite(disparity)]
    print(f'wrote {args.output}: {disparity.shape[1]}x{disparity.shape[0]}, disparity '
          f'{finite.min():.2f}..{finite.max():.2f} px' if finite.size else f'wrote {args.output}')
    return 0
