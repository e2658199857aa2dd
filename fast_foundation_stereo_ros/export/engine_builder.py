"""Checkpoint or ONNX -> verified TensorRT engine + JSON sidecar, built on the device that runs it.

One builder for both TensorRT lines. Precision is decided in the ONNX (the
graph's `precision` metadata, fp16 mixed precision or fp32, written by
`ffs-stereo export`), and the network is parsed strongly typed: TensorRT 10
(JetPack 6) through NetworkDefinitionCreationFlag.STRONGLY_TYPED, TensorRT 11
(desktop pip) always. No weak-typing flag (BuilderFlag.FP16,
OBEY_PRECISION_CONSTRAINTS) or per-layer precision is ever set; older
TensorRT is refused (`tensorrt_runtime.builder_path`).

Steps: refuse early when TensorRT is missing (no output is touched), export
the checkpoint to ONNX in a temporary folder (or take a given .onnx), check
its ops against TensorRT, parse, build with a strict timing cache, then stage
the engine and its sidecar in a hidden folder of the output directory, run it
against ONNX Runtime CPU on the fp32 graph (`engine_verification`), and only
move it to its final name (unique per size, settings, GPU and TensorRT
version) when it is within tolerance.

Verified here without TensorRT: the version decisions, flags, timing-cache
handling and the whole build sequence against a small stand-in `tensorrt`
module (test/export/test_engine_builder.py); the engine check's statistics on
real arrays. The TensorRT calls follow the TensorRT 10 and 11 Python APIs.
"""
import datetime
import os
import shutil
import tempfile
import time

from ..backends.engine_sidecar import PRECISIONS, engine_stem, file_sha256, make_sidecar, sidecar_path, write_sidecar
from ..backends.tensorrt_runtime import builder_path, import_tensorrt, probe_fingerprint
from ..errors import ConfigError, EngineError
from ..files.atomic import atomic_path, check_writable_dir
from ..version import __version__
from .engine_verification import DEFAULT_RUNS, check_engine, format_report
from .onnx_export import (DEFAULT_MAX_DISP, DEFAULT_OPSET, DEFAULT_VALID_ITERS, check_export_size, export_onnx,
                          load_for_export, read_metadata)
from .tensorrt_ops import assert_trt_compatible

#: graphs exported before the `precision` metadata key existed are fp32 graphs
UNMARKED_PRECISION = 'fp32'
REFERENCE_SUFFIX = '.reference_fp32.onnx'


def is_onnx(path):
    return str(path).lower().endswith('.onnx')


def onnx_settings(onnx_path, height=None, width=None, max_disp=None, valid_iters=None):
    """Settings baked into an exported ONNX; explicit arguments must agree with them."""
    metadata = read_metadata(onnx_path)
    given = {'height': height, 'width': width, 'max_disp': max_disp, 'valid_iters': valid_iters}
    settings = {}
    for key, value in given.items():
        baked = metadata.get(key)
        if isinstance(baked, int) and value is not None and int(value) != baked:
            raise ConfigError(f"'{onnx_path}' was exported with {key} {baked}, not {value}: omit --"
                              f"{key.replace('_', '-')} or export again with ffs-stereo export")
        settings[key] = baked if isinstance(baked, int) else value
        if settings[key] is None:
            raise ConfigError(f"'{onnx_path}' does not record {key} (not exported by ffs-stereo export): "
                              f"pass --{key.replace('_', '-')}")
    return settings, metadata


def network_io(trt, network):
    """{'inputs': [...], 'outputs': [...]} with name, shape and numpy dtype name."""
    import numpy as np

    def describe(tensor):
        return {'name': tensor.name, 'shape': [int(size) for size in tensor.shape],
                'dtype': np.dtype(trt.nptype(tensor.dtype)).name}
    return {'inputs': [describe(network.get_input(i)) for i in range(network.num_inputs)],
            'outputs': [describe(network.get_output(i)) for i in range(network.num_outputs)]}




def graph_precision(metadata):
    """The precision an exported graph carries ('fp16' or 'fp32'), i.e. its engine's precision."""
    precision = metadata.get('precision', UNMARKED_PRECISION)
    if precision not in PRECISIONS:
        raise ConfigError(f"the ONNX graph records precision '{precision}', expected one of "
                          f"{', '.join(PRECISIONS)}: export it again with ffs-stereo export")
    return precision


def check_requested_precision(onnx_path, metadata, requested):
    """The graph's precision; a different --precision is refused (the engine's precision is the graph's)."""
    precision = graph_precision(metadata)
    if requested and requested != precision:
        raise ConfigError(f"'{onnx_path}' is an {precision} graph and an engine has its graph's precision: omit "
                          f'--precision, or export an {requested} graph with ffs-stereo export --precision '
                          f'{requested}')
    return precision


def network_creation_flags(trt_version, creation_flags=None):
    """Flags for builder.create_network: STRONGLY_TYPED on TensorRT 10, none on 11+ (always strongly typed).

    `creation_flags` is trt.NetworkDefinitionCreationFlag (only read on 10.x;
    on 11 the member may not exist).
    """
    if builder_path(trt_version) == 'strongly-typed-flag':
        return 1 << int(creation_flags.STRONGLY_TYPED)
    return 0


def _parse_onnx(trt, builder, logger, onnx_path):
    network = builder.create_network(network_creation_flags(trt.__version__,
                                                            getattr(trt, 'NetworkDefinitionCreationFlag', None)))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for index in range(parser.num_errors):
            error = parser.get_error(index)
            node = error.node_name() if hasattr(error, 'node_name') else error.node()
            errors.append(f'node {node}: {error.desc()}')
        raise EngineError(f"TensorRT's ONNX parser rejected '{onnx_path}': {'; '.join(errors[:5])}")
    return network, parser  # the parser must outlive the network (it owns weights)


def load_timing_cache(config, path, log):
    """Attach a timing cache to `config`, strictly; return whether to save it to `path` after the build.

    A cache from another GPU or TensorRT version is refused by TensorRT
    (ignore_mismatch=False: reusing it risks functional and performance
    bugs); the build then starts from a fresh cache and the refused file is
    left as it is.
    """
    data = b''
    if path and os.path.isfile(path):
        with open(path, 'rb') as stream:
            data = stream.read()
    if data:
        try:
            cache = config.create_timing_cache(data)
            accepted = cache is not None and bool(config.set_timing_cache(cache, False))
        except Exception:  # noqa: BLE001 - TensorRT raises its own types for unreadable caches
            accepted = False
        if accepted:
            log(f'timing cache {path}: reused')
            return True
        log(f'timing cache {path} was refused (made by another GPU or TensorRT version, or damaged): building '
            f'with a fresh cache; {path} is left unchanged (give another --timing-cache path to keep one for '
            'this device)')
    if not config.set_timing_cache(config.create_timing_cache(b''), False):
        raise EngineError('TensorRT refused an empty timing cache: reinstall TensorRT')
    return bool(path) and not data


def _save_timing_cache(config, path):
    serialized = config.get_timing_cache().serialize()
    with atomic_path(path) as tmp, open(tmp, 'wb') as stream:
        stream.write(serialized)


def build_serialized_engine(trt, onnx_path, workspace_gib=None, timing_cache=None, log=print):
    """(engine bytes, io description) for an ONNX file, built as a strongly typed network."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, onnx_path)
    config = builder.create_builder_config()
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(float(workspace_gib) * (1 << 30)))
    save_cache = load_timing_cache(config, timing_cache, log)
    log(f'building a strongly typed network ({network.num_layers} layers) with TensorRT {trt.__version__}')
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError('TensorRT could not build the engine (see its log above). Usual causes: GPU '
                          'memory (try a smaller --height/--width, fewer --valid-iters or --max-disp, or '
                          '--workspace) or no tactic for a layer on this TensorRT version')
    if save_cache:
        _save_timing_cache(config, timing_cache)
    return bytes(serialized), network_io(trt, network)


def export_graph(stereo, path, height, width, max_disp, valid_iters, opset, precision, log):
    """export_onnx at `precision` (fp16: the strongly typed mixed-precision graph)."""
    return export_onnx(stereo, path, height, width, max_disp, valid_iters, opset, precision=precision, log=log)


def choose_reference(onnx_path, precision, reference_onnx=None, exported_reference=None):
    """(path, precision, note) of the graph ONNX Runtime CPU runs to check the engine against.

    Order: --reference-onnx; the fp32 graph exported beside a checkpoint
    build; the engine's own graph when it is fp32; else the fp16 graph itself
    (the check then measures TensorRT against the same graph, not the loss
    of FP16, and says so).
    """
    if reference_onnx:
        if not os.path.isfile(reference_onnx):
            raise ConfigError(f"--reference-onnx '{reference_onnx}' does not exist: export it with ffs-stereo "
                              'export --precision fp32 at the engine size')
        return reference_onnx, graph_precision(read_metadata(reference_onnx)), ''
    if exported_reference:
        return exported_reference, 'fp32', ''
    if precision == 'fp32':
        return onnx_path, 'fp32', ''
    return onnx_path, precision, ('no fp32 reference given: checking the engine against its own fp16 graph; pass '
                                  '--reference-onnx MODEL_fp32.onnx to measure it against fp32')


def build_engine(model, output_dir, height=None, width=None, max_disp=None, valid_iters=None,
                 precision=None, workspace_gib=None, timing_cache=None, opset=DEFAULT_OPSET,
                 reference_onnx=None, left=None, right=None, runs=DEFAULT_RUNS, accept_out_of_tolerance=False,
                 log=print):
    """Build, check and write `<stem>.engine` + `<stem>.json` in `output_dir`; return (engine path, sidecar).

    For an ONNX `model` the settings and precision come from its metadata
    (given ones must agree); for a checkpoint height/width are required,
    max_disp / valid_iters default to DEFAULT_MAX_DISP / DEFAULT_VALID_ITERS,
    precision to fp16, and the fp32 reference graph is kept beside the engine
    as `<stem>.reference_fp32.onnx` for `ffs-stereo verify-engine`. An engine
    beyond tolerance is not written unless `accept_out_of_tolerance`.
    """
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    trt = import_tensorrt()          # before touching anything: no partial output without TensorRT
    fingerprint = probe_fingerprint()
    check_writable_dir(output_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='ffs_engine_') as workdir:
        exported_reference = None
        if is_onnx(model):
            onnx_path = model
        else:
            if height is None or width is None:
                raise ConfigError('--height and --width are required when --model is a checkpoint')
            check_export_size(height, width)
            max_disp = DEFAULT_MAX_DISP if max_disp is None else max_disp
            valid_iters = DEFAULT_VALID_ITERS if valid_iters is None else valid_iters
            precision = precision or 'fp16'
            stereo = load_for_export(model)
            onnx_path = os.path.join(workdir, f'model_{precision}.onnx')
            export_graph(stereo, onnx_path, height, width, max_disp, valid_iters, opset, precision, log)
            exported_reference = onnx_path
            if precision != 'fp32':
                exported_reference = os.path.join(workdir, 'model_fp32.onnx')
                export_graph(stereo, exported_reference, height, width, max_disp, valid_iters, opset, 'fp32', log)
        settings, metadata = onnx_settings(onnx_path, height, width, max_disp, valid_iters)
        precision = check_requested_precision(onnx_path, metadata, precision)
        reference, reference_precision, note = choose_reference(onnx_path, precision, reference_onnx,
                                                                exported_reference)
        if note:
            log(f'NOTE: {note}')
        import onnx
        assert_trt_compatible(onnx.load(str(onnx_path), load_external_data=False), log)
        engine_bytes, io_tensors = build_serialized_engine(trt, onnx_path, workspace_gib, timing_cache, log)
        stem = engine_stem(settings['height'], settings['width'], settings['max_disp'], settings['valid_iters'],
                           precision, fingerprint)
        extra = {'source_sha256': metadata.get('source_sha256', ''), 'onnx_sha256': file_sha256(onnx_path),
                 'normalize': metadata.get('normalize', 'unknown'), 'strongly_typed': True,
                 'builder_path': builder_path(trt.__version__), 'workspace_gib': workspace_gib,
                 'build_seconds': round(time.perf_counter() - start, 1),
                 'build_time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                 'package_version': __version__}
        engine_path, sidecar = _check_and_write(
            output_dir, stem, engine_bytes, fingerprint,
            {**settings, 'precision': precision, 'source_model': os.path.abspath(model)}, io_tensors, extra,
            (reference, reference_precision, exported_reference is not None),
            dict(left=left, right=right, runs=runs, accept=accept_out_of_tolerance), log)
    log(f"wrote {engine_path} ({sidecar['engine_size'] / 2**20:.1f} MiB) in {sidecar['build_seconds']} s")
    return engine_path, sidecar


def _check_and_write(output_dir, stem, engine_bytes, fingerprint, settings, io_tensors, extra, reference, check,
                     log):
    """Stage the engine in a hidden folder of `output_dir`, check it, then move it to `<stem>.engine`."""
    reference_path, reference_precision, keep_reference = reference
    engine_path = os.path.join(output_dir, stem + '.engine')
    staging = tempfile.mkdtemp(prefix='.ffs_engine_', dir=output_dir)
    try:
        staged = os.path.join(staging, stem + '.engine')
        with open(staged, 'wb') as stream:
            stream.write(engine_bytes)
        sidecar = make_sidecar(staged, fingerprint, settings, io_tensors, extra)
        write_sidecar(staged, sidecar)
        record = check_engine(staged, reference_path, reference_precision, check['left'], check['right'],
                              check['runs'], verify_hash=False, log=log)
        for line in format_report(record):
            log(line)
        if not record['passed']:
            if not check['accept']:
                raise EngineError('the engine is beyond tolerance of the reference (' + '; '.join(record['reasons'])
                                  + '): no engine was written. Build an fp32 engine (--precision fp32) or '
                                    'pass --accept-out-of-tolerance to keep it anyway')
            record['accepted_out_of_tolerance'] = True
            log('WARNING: keeping an engine BEYOND TOLERANCE because --accept-out-of-tolerance was given; '
                'its sidecar records this')
        if keep_reference:
            kept = os.path.join(output_dir, stem + REFERENCE_SUFFIX)
            with atomic_path(kept) as tmp:
                shutil.copyfile(reference_path, tmp)
            reference_path = kept
            record['reference']['onnx'] = os.path.abspath(kept)
        sidecar.update(verification=record, reference_onnx=os.path.abspath(reference_path))
        write_sidecar(staged, sidecar)
        os.replace(staged, engine_path)
        try:
            os.replace(sidecar_path(staged), sidecar_path(engine_path))
        except BaseException:
            os.remove(engine_path)  # an engine without its sidecar would only be refused later
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return engine_path, sidecar
