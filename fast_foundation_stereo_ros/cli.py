"""`ffs-stereo` command line: one sub-command per module in `commands/`.

Each command module defines `register(subparsers)` (adds its parser and sets
`func`) so commands can be added without touching the others. Errors derived
from `FFSError` are printed as one line and exit with status 2.
"""
import argparse
import importlib
import sys

from .errors import FFSError

COMMAND_MODULES = (
    'demo',          # synthetic scene through the pipeline (embedded default)
    'infer',         # one pair through a model file
    'convert',       # .pth -> native safetensors + manifest
    'export',        # checkpoint -> ONNX, verified with ONNX Runtime
    'build_engine',  # checkpoint/ONNX -> verified TensorRT engine + sidecar
    'verify_engine', # repeat an engine's check against ONNX Runtime
    'run',           # pairs, folders or rosbag2 through a backend
    'eval',          # metrics against ground truth
    'bench',         # per-stage, per-backend latency
    'doctor',        # what this machine can run, and how to install what is missing
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='ffs-stereo',
        description='Fast-FoundationStereo disparity, depth and point clouds.')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f'{__package__}.commands.{name}')
        except ModuleNotFoundError as exc:
            if exc.name != f'{__package__}.commands.{name}':
                raise
            continue  # command not built yet
        module.register(subparsers)
    return parser


def main(argv: list = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except FFSError as exc:
        print(f'ffs-stereo {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
