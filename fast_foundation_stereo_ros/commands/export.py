"""`ffs-stereo export`: checkpoint -> one verified ONNX graph for a fixed size."""
import argparse

from .. import defaults

#: what `export` writes when --precision is not given: the mixed-precision graph engines are built from
DEFAULT_PRECISION = 'fp16'


def register(subparsers):
    parser = subparsers.add_parser(
        'export', help='export a checkpoint to ONNX (whole network, fixed size), verified with ONNX Runtime',
        description='Export the whole network (normalisation, cost volumes, unrolled GRU, upsampling) for '
                    'one input size. The graph takes left/right 1x3xHxW float32 RGB 0..255 and returns '
                    'disparity 1x1xHxW and (unless --no-confidence) confidence 1x1xHxW in 0..1. It is '
                    'constant-folded, checked against the TensorRT op list, '
                    'onnx.checker and ONNX Runtime vs the fp32 PyTorch model before it is written; the node '
                    'count by op type and per GRU iteration is printed.')
    parser.add_argument('--model', required=True, help='released .pth, a folder holding one, or a native model dir')
    parser.add_argument('--height', type=int, required=True, help='input height, a multiple of 32')
    parser.add_argument('--width', type=int, required=True, help='input width, a multiple of 32')
    parser.add_argument('--max-disp', type=int, default=defaults.MAX_DISP,
                        help=f'largest disparity at input size (default {defaults.MAX_DISP})')
    parser.add_argument('--valid-iters', type=int, default=defaults.VALID_ITERS,
                        help=f'GRU refinement steps, unrolled (default {defaults.VALID_ITERS})')
    parser.add_argument('--opset', type=int, default=defaults.OPSET, help=f'ONNX opset (default {defaults.OPSET})')
    parser.add_argument('--precision', choices=('fp16', 'fp32'), default=DEFAULT_PRECISION,
                        help='fp16: strongly typed mixed-precision graph (FP16 except the FP32 islands: disparity '
                             'state, lookup, soft-argmin, normalisations, final upsampling; I/O float32), what '
                             'TensorRT engines are built from; fp32: all float32 (default %(default)s)')
    parser.add_argument('--tolerance', type=float, default=None,
                        help='max abs disparity difference ONNX Runtime vs fp32 PyTorch (default '
                             f'{defaults.EXPORT_TOLERANCE_PX} px for fp32, {defaults.EXPORT_FP16_TOLERANCE_PX} px for fp16)')
    parser.add_argument('--no-confidence', dest='confidence', action='store_false',
                        help='leave out the second output `confidence` (a single-output graph; '
                             'the backends then report no confidence)')
    parser.add_argument('--output', required=True, help='output .onnx file (written atomically)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export.onnx_export import export_onnx
    from ..files.atomic import check_output_file
    check_output_file(args.output)   # before the export and its verification, which take a while
    result = export_onnx(args.model, args.output, args.height, args.width, args.max_disp, args.valid_iters,
                         args.opset, verify=True, tolerance=args.tolerance, precision=args.precision,
                         confidence=args.confidence)
    print(f'wrote {result.path} ({args.precision}, export {result.export_seconds:.1f} s, verification '
          f'{result.verification.seconds:.1f} s)')
    return 0
