"""`ffs-stereo verify-engine ENGINE`: repeat an engine's build-time check on this device.

Runs the engine on the built-in synthetic pair (and --left/--right) against
ONNX Runtime CPU on its fp32 reference graph, times it with and without a
CUDA graph, and prints the figures beside those recorded when it was built.
Exit status: 0 within tolerance, 1 beyond it, 2 when it cannot run here (no
TensorRT or GPU, foreign or damaged engine, no reference graph).
"""
import os

from .build_engine import add_check_arguments


def register(subparsers):
    parser = subparsers.add_parser('verify-engine', help="repeat a TensorRT engine's accuracy and latency check",
                                   description=__doc__.split('\n\n')[0])
    parser.add_argument('engine', help='.engine file written by ffs-stereo build-engine (its .json beside it)')
    add_check_arguments(parser)
    parser.set_defaults(func=run)


def reference_for(engine_path, sidecar, given):
    """The reference graph: --reference-onnx, else the one recorded in the sidecar if it still exists."""
    from ..errors import ConfigError
    if given:
        return given
    recorded = sidecar.get('reference_onnx')
    if recorded and os.path.isfile(recorded):
        return recorded
    where = f" (the sidecar names '{recorded}', which is gone)" if recorded else ''
    raise ConfigError(f"no reference graph for '{engine_path}'{where}: pass --reference-onnx MODEL.onnx, an fp32 "
                      f"graph from ffs-stereo export --precision fp32 --height {sidecar.get('height')} --width "
                      f"{sidecar.get('width')} --max-disp {sidecar.get('max_disp')} --valid-iters "
                      f"{sidecar.get('valid_iters')}")


def run(args):
    from ..backends.engine_sidecar import check_engine_file, read_sidecar
    from ..backends.tensorrt_runtime import import_tensorrt
    from ..export.engine_builder import graph_precision
    from ..export.engine_verification import check_engine, format_report
    from ..export.onnx_export import read_metadata
    sidecar = read_sidecar(args.engine)
    check_engine_file(args.engine, sidecar)
    import_tensorrt()  # no GPU work, and no reference graph needed, to learn that this machine cannot run it
    reference = reference_for(args.engine, sidecar, args.reference_onnx)
    record = check_engine(args.engine, reference, graph_precision(read_metadata(reference)), args.left, args.right,
                          args.runs, verify_hash=False)
    print('\n'.join(format_report(record)))
    built = sidecar.get('verification')
    if built:
        plain = built['latency'].get('plain', {})
        synthetic = built['pairs'].get('synthetic', {})
        print(f"at build time ({built.get('time', '?')}): synthetic mean abs {synthetic.get('mean_abs_px')} px, "
              f"> 1 px {synthetic.get('over_1px_share')}, latency p50 {plain.get('p50_ms')} ms")
    return 0 if record['passed'] else 1
