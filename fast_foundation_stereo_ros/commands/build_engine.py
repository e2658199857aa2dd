"""`ffs-stereo build-engine` (also the `build_engine` executable): verified TensorRT engine + sidecar.

Run it on the device that will use the engine: TensorRT engines only load on
the GPU model and TensorRT version they were built with. The engine is run
against ONNX Runtime CPU on the fp32 graph before it is written
(export/engine_verification); an engine beyond tolerance is not written.
"""
import sys

from .. import defaults
from ..backends.engine_sidecar import PRECISIONS
from ..export.engine_verification import DEFAULT_RUNS


def register(subparsers):
    parser = subparsers.add_parser(
        'build-engine', help='build and verify a TensorRT engine (+ JSON sidecar) for this GPU',
        description='Export (if given a checkpoint), build a strongly typed TensorRT engine on this device '
                    '(TensorRT 10 or 11), check it against ONNX Runtime CPU on the fp32 graph, and write '
                    'ffs_<H>x<W>_d<max_disp>_i<iters>_<precision>_<gpu>_sm<cc>_trt<version>.engine and a '
                    'same-stem .json sidecar into --output.')
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser):
    parser.add_argument('--model', required=True,
                        help='released .pth / native model dir (exported first) or an .onnx from ffs-stereo export')
    parser.add_argument('--height', type=int, help='input height, multiple of 32 (required for a checkpoint)')
    parser.add_argument('--width', type=int, help='input width, multiple of 32 (required for a checkpoint)')
    parser.add_argument('--max-disp', type=int, help=f'largest disparity (default {defaults.MAX_DISP}; taken from an .onnx)')
    parser.add_argument('--valid-iters', type=int, help=f'GRU steps (default {defaults.VALID_ITERS}; taken from an .onnx)')
    parser.add_argument('--precision', choices=PRECISIONS,
                        help='graph precision for a checkpoint (default fp16: mixed precision with FP32 islands); '
                             "an .onnx carries its own and the engine's precision is the graph's")
    parser.add_argument('--workspace', type=float, metavar='GiB', help='TensorRT workspace limit in GiB')
    parser.add_argument('--timing-cache', metavar='PATH',
                        help='TensorRT timing cache file (reused only when made on this GPU and TensorRT)')
    parser.add_argument('--output', required=True, help='output folder for the engine and its sidecar')
    add_check_arguments(parser)
    parser.add_argument('--accept-out-of-tolerance', action='store_true',
                        help='write the engine even when it is beyond tolerance of the reference (recorded '
                             'in its sidecar)')


def add_check_arguments(parser):
    """Options of the engine check shared with verify-engine."""
    group = parser.add_argument_group('engine check')
    group.add_argument('--reference-onnx', metavar='ONNX',
                       help='fp32 graph ONNX Runtime CPU runs as the reference (default: the fp32 graph exported '
                            'beside a checkpoint build, or the given .onnx itself)')
    group.add_argument('--left', help='also check on this left image (resized to the engine size)')
    group.add_argument('--right', help='right image of that pair')
    group.add_argument('--runs', type=int, default=DEFAULT_RUNS,
                       help=f'timed runs for the latency p50/p99, with and without a CUDA graph (default {DEFAULT_RUNS})')


def run(args):
    from ..export.engine_builder import build_engine
    engine_path, _ = build_engine(args.model, args.output, args.height, args.width, args.max_disp,
                                  args.valid_iters, args.precision, args.workspace, args.timing_cache,
                                  reference_onnx=args.reference_onnx, left=args.left, right=args.right,
                                  runs=args.runs, accept_out_of_tolerance=args.accept_out_of_tolerance)
    print(engine_path)
    return 0


def main(argv=None):
    """Console script `build_engine`: same as `ffs-stereo build-engine`."""
    from ..cli import main as cli_main
    return cli_main(['build-engine', *(sys.argv[1:] if argv is None else argv)])


if __name__ == '__main__':
    sys.exit(main())
