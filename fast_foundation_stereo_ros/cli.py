"""`ffs-stereo` command line: one sub-command per module in `commands/`.

Each command module defines `register(subparsers)` (adds its parser and sets
`func`) so commands can be added without touching the others. Errors derived
from `FFSError`, and OSError (unwritable output, full disk, missing folder),
are printed as one line and exit with status 2.
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


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: the path, the system's reason and what to check."""
    reason = exc.strerror or str(exc)
    paths = [path for path in (exc.filename, exc.filename2) if path is not None]
    where = f" on '{paths[-1]}'" if paths else ''
    return (f'file system error{where}: {reason}; check that the path exists and is writable and that '
            'the disk has free space')


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
    except OSError as exc:
        # unwritable output, missing folder, full disk, unreadable input: the file system's own
        # reason in one line (a traceback would not tell the user more)
        print(f'ffs-stereo {args.command}: error: {describe_os_error(exc)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
