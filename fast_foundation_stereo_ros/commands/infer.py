"""`ffs-stereo infer`: one stereo pair through a model, disparity to a file.

The output format follows the extension: .npy (float32), .pfm, or 16-bit
.png (disparity x 256, KITTI convention, 0 = invalid). The file is written
atomically, so a failed run leaves any existing output untouched.
"""
import os

import cv2
import numpy as np

from ..errors import InputError
from ..files.atomic import check_output_file
from ..files.disparity_files import disparity_format, write_disparity
from ..pipeline.predictor import load_predictor


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
                        help='largest disparity searched, multiple of 32 (default 192)')
    parser.add_argument('--valid-iters', type=int, default=None,
                        help='GRU refinement iterations, >= 1 (default 8)')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--output', required=True, help='disparity file: .npy, .pfm or .png')
    parser.set_defaults(func=run)


def read_rgb(path, name):
    """8-bit image file -> HxWx3 RGB (or HxW grey) uint8."""
    if not os.path.isfile(path):
        raise InputError(f"{name} image '{path}' does not exist")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot decode {name} image '{path}': use PNG/JPEG/PPM")
    if image.dtype != np.uint8:
        raise InputError(f"{name} image '{path}' is {image.dtype}, not 8-bit: convert it to 8-bit")
    if image.ndim == 3 and image.shape[2] == 4:
        raise InputError(f"{name} image '{path}' has an alpha channel: save it as RGB")
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def run(args):
    disparity_format(args.output)  # reject an unknown extension or an unwritable place before any work
    check_output_file(args.output)
    left = read_rgb(args.left, 'left')
    right = read_rgb(args.right, 'right')
    predictor = load_predictor(args.model, device=args.device)
    disparity = predictor.predict(left, right, valid_iters=args.valid_iters, max_disp=args.max_disp)
    write_disparity(args.output, disparity)
    finite = disparity[np.isfinite(disparity)]
    print(f'wrote {args.output}: {disparity.shape[1]}x{disparity.shape[0]}, disparity '
          f'{finite.min():.2f}..{finite.max():.2f} px' if finite.size else f'wrote {args.output}')
    return 0
