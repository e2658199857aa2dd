"""`ffs-stereo export`: checkpoint -> one verified ONNX graph for a fixed size."""
import argparse

from .. import defaults


def register(subparsers):
    parser = subparsers.add_parser(
        'export', help='export a checkpoint to ONNX (whole network, fixed size), verified with ONNX Runtime',
        description='Export the whole network (normalisation, cost volumes, unrolled GRU, upsampling) for '
                    'one input size. The graph takes left/right 1x3xHxW float32 RGB 0..255 and returns '
                    'disparity 1x1xHxW. It is checked against the TensorRT op list, onnx.checker and '
                    'ONNX Runtime vs PyTorch before it is written.')
    parser.add_argument('--model', required=True, help='released .pth, a folder holding one, or a native model dir')
    parser.add_argument('--height', type=int, required=True, help='input height, a multiple of 32')
    parser.add_argument('--width', type=int, required=True, help='input width, a multiple of 32')
    parser.add_argument('--max-disp', type=int, default=defaults.MAX_DISP,
                        help=f'largest disparity at input size (default {defaults.MAX_DISP})')
    parser.add_argument('--valid-iters', type=int, default=defaults.VALID_ITERS,
                        help=f'GRU refinement steps, unrolled (default {defaults.VALID_ITERS})')
    parser.add_argument('--opset', type=int, default=defaults.OPSET, help=f'ONNX opset (default {defaults.OPSET})')
    parser.add_argument('--tolerance', type=float, default=defaults.EXPORT_TOLERANCE_PX,
                        help=f'max abs disparity difference ONNX Runtime vs PyTorch (default {defaults.EXPORT_TOLERANCE_PX} px)')
    parser.add_argument('--output', required=True, help='output .onnx file (written atomically)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export.onnx_export import export_onnx
    from ..files.atomic import check_output_file
    check_output_file(args.output)   # before the export and its verification, which take a while
    result = export_onnx(args.model, args.output, args.height, args.width, args.max_disp, args.valid_iters,
                         args.opset, verify=True, tolerance=args.tolerance)
    print(f'wrote {result.path} (export {result.export_seconds:.1f} s, verification '
          f'{result.verification.seconds:.1f} s)')
    return 0
