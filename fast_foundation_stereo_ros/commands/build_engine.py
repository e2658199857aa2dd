"""`ffs-stereo build-engine` (also the `build_engine` executable): TensorRT engine + sidecar.

Run it on the device that will use the engine: TensorRT engines only load on
the GPU model and TensorRT version they were built with.
"""
import sys

from .. import defaults
from ..backends.engine_sidecar import PRECISIONS


def register(subparsers):
    parser = subparsers.add_parser(
        'build-engine', help='build a TensorRT engine (+ JSON sidecar) for this GPU from a checkpoint or ONNX',
        description='Export (if given a checkpoint) and build a TensorRT engine on this device. Writes '
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
    parser.add_argument('--precision', choices=PRECISIONS, default='fp16',
                        help='fp16 (FP32 kept for disparity/coordinates/sampling/normalisation) or fp32')
    parser.add_argument('--workspace', type=float, metavar='GiB', help='TensorRT workspace limit in GiB')
    parser.add_argument('--timing-cache', metavar='PATH', help='TensorRT timing cache file (read and updated)')
    parser.add_argument('--output', required=True, help='output folder for the engine and its sidecar')


def run(args):
    from ..export.engine_builder import build_engine
    engine_path, _ = build_engine(args.model, args.output, args.height, args.width, args.max_disp,
                                  args.valid_iters, args.precision, args.workspace, args.timing_cache)
    print(engine_path)
    return 0


def main(argv=None):
    """Console script `build_engine`: same as `ffs-stereo build-engine`."""
    from ..cli import main as cli_main
    return cli_main(['build-engine', *(sys.argv[1:] if argv is None else argv)])


if __name__ == '__main__':
    sys.exit(main())
