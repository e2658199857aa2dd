"""Checkpoint or ONNX -> TensorRT engine + JSON sidecar, built on the device that runs it.

Steps: refuse early when TensorRT is missing (no output is touched), export
the checkpoint to ONNX in a temporary folder (or take a given .onnx), check
its ops against TensorRT, parse it, pin the FP32 islands of
`precision_rules` when building FP16 (like `trtexec --fp16` plus
OBEY_PRECISION_CONSTRAINTS), build, then write the engine and its sidecar
atomically under a name unique per size, settings, GPU and TensorRT version.

UNVERIFIED ON A GPU in the session that wrote it (no TensorRT there): the
TensorRT calls follow the documented TensorRT 10 Python API. The pure parts
(settings, naming, layer pinning on fake layers) are unit-tested.
"""
import datetime
import os
import tempfile
import time

from ..backends.engine_sidecar import PRECISIONS, engine_stem, file_sha256, make_sidecar, write_sidecar
from ..backends.tensorrt_runtime import import_tensorrt, probe_fingerprint
from ..errors import ConfigError, EngineError
from ..files.atomic import atomic_path, check_writable_dir
from ..version import __version__
from .onnx_export import (DEFAULT_MAX_DISP, DEFAULT_OPSET, DEFAULT_VALID_ITERS, check_export_size, export_onnx,
                          read_metadata)
from .precision_rules import fp32_nodes, fp32_tensors
from .tensorrt_ops import assert_trt_compatible


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


def pin_fp32_layers(trt, network, node_names, tensor_names):
    """Force float32 on the layers of the FP32 islands; returns how many were pinned.

    A TensorRT layer is matched by its name (the ONNX node name) or by any
    output tensor name (the parser keeps ONNX tensor names). Constants and
    shape layers carry no arithmetic, and integer/bool layers are exact at
    any precision, so only float-producing layers are pinned.
    """
    skipped_types = (trt.LayerType.CONSTANT, trt.LayerType.SHAPE)
    float_types = (trt.float32, trt.float16)
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type in skipped_types:
            continue
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        matched = layer.name in node_names or any(tensor.name in tensor_names for tensor in outputs)
        if not matched or not all(tensor.dtype in float_types for tensor in outputs):
            continue
        layer.precision = trt.float32
        for i in range(layer.num_outputs):
            layer.set_output_type(i, trt.float32)
        pinned += 1
    return pinned


def network_io(trt, network):
    """{'inputs': [...], 'outputs': [...]} with name, shape and numpy dtype name."""
    import numpy as np

    def describe(tensor):
        return {'name': tensor.name, 'shape': [int(size) for size in tensor.shape],
                'dtype': np.dtype(trt.nptype(tensor.dtype)).name}
    return {'inputs': [describe(network.get_input(i)) for i in range(network.num_inputs)],
            'outputs': [describe(network.get_output(i)) for i in range(network.num_outputs)]}


def _network_flags(trt):
    # TensorRT 10 networks are always explicit-batch (the flag is deprecated);
    # 8.x needs it set to parse ONNX.
    if int(trt.__version__.split('.')[0]) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def _parse_onnx(trt, builder, logger, onnx_path):
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for index in range(parser.num_errors):
            error = parser.get_error(index)
            node = error.node_name() if hasattr(error, 'node_name') else error.node()
            errors.append(f'node {node}: {error.desc()}')
        raise EngineError(f"TensorRT's ONNX parser rejected '{onnx_path}': {'; '.join(errors[:5])}")
    return network, parser  # the parser must outlive the network (it owns weights)


def _load_timing_cache(config, path):
    data = b''
    if path and os.path.isfile(path):
        with open(path, 'rb') as stream:
            data = stream.read()
    cache = config.create_timing_cache(data)
    # ignore_mismatch=True: a cache from another device/version is simply not reused
    config.set_timing_cache(cache, True)


def _save_timing_cache(config, path):
    if not path:
        return
    serialized = config.get_timing_cache().serialize()
    with atomic_path(path) as tmp, open(tmp, 'wb') as stream:
        stream.write(serialized)


def build_serialized_engine(trt, onnx_path, precision, workspace_gib=None, timing_cache=None, log=print):
    """(engine bytes, io description, number of FP32-pinned layers) for an ONNX file."""
    import onnx
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, onnx_path)
    config = builder.create_builder_config()
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(float(workspace_gib) * (1 << 30)))
    pinned = 0
    if precision == 'fp16':
        config.set_flag(trt.BuilderFlag.FP16)
        graph = onnx.load(str(onnx_path), load_external_data=False)
        pinned = pin_fp32_layers(trt, network, fp32_nodes(graph), fp32_tensors(graph))
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log(f'FP16 build with {pinned} of {network.num_layers} layers pinned to FP32')
    _load_timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError('TensorRT could not build the engine (see its log above). Usual causes: GPU '
                          'memory (try a smaller --height/--width, fewer --valid-iters or --max-disp, or '
                          '--workspace) or no tactic for a layer on this TensorRT version')
    _save_timing_cache(config, timing_cache)
    return bytes(serialized), network_io(trt, network), pinned


def build_engine(model, output_dir, height=None, width=None, max_disp=None, valid_iters=None,
                 precision='fp16', workspace_gib=None, timing_cache=None, opset=DEFAULT_OPSET, log=print):
    """Build `<stem>.engine` + `<stem>.json` in `output_dir`; return (engine path, sidecar).

    For an ONNX `model` the settings come from its metadata (given ones must
    agree); for a checkpoint height/width are required and max_disp /
    valid_iters default to DEFAULT_MAX_DISP / DEFAULT_VALID_ITERS.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    trt = import_tensorrt()          # before touching anything: no partial output without TensorRT
    fingerprint = probe_fingerprint()
    check_writable_dir(output_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='ffs_engine_') as workdir:
        if is_onnx(model):
            onnx_path = model
        else:
            if height is None or width is None:
                raise ConfigError('--height and --width are required when --model is a checkpoint')
            check_export_size(height, width)
            max_disp = DEFAULT_MAX_DISP if max_disp is None else max_disp
            valid_iters = DEFAULT_VALID_ITERS if valid_iters is None else valid_iters
            onnx_path = os.path.join(workdir, 'model.onnx')
            export_onnx(model, onnx_path, height, width, max_disp, valid_iters, opset, log=log)
        settings, metadata = onnx_settings(onnx_path, height, width, max_disp, valid_iters)
        import onnx
        assert_trt_compatible(onnx.load(str(onnx_path), load_external_data=False), log)
        engine_bytes, io_tensors, pinned = build_serialized_engine(
            trt, onnx_path, precision, workspace_gib, timing_cache, log)
        onnx_sha256 = file_sha256(onnx_path)
    stem = engine_stem(settings['height'], settings['width'], settings['max_disp'], settings['valid_iters'],
                       precision, fingerprint)
    engine_path = os.path.join(output_dir, stem + '.engine')
    with atomic_path(engine_path) as tmp, open(tmp, 'wb') as stream:
        stream.write(engine_bytes)
    sidecar = make_sidecar(engine_path, fingerprint, {
        **settings, 'precision': precision, 'source_model': os.path.abspath(model)}, io_tensors, {
        'source_sha256': metadata.get('source_sha256', ''), 'onnx_sha256': onnx_sha256,
        'normalize': metadata.get('normalize', 'unknown'), 'fp32_pinned_layers': pinned,
        'workspace_gib': workspace_gib, 'build_seconds': round(time.perf_counter() - start, 1),
        'build_time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'package_version': __version__})
    try:
        write_sidecar(engine_path, sidecar)
    except BaseException:
        os.remove(engine_path)  # an engine without its sidecar would only be refused later
        raise
    log(f"wrote {engine_path} ({sidecar['engine_size'] / 2**20:.1f} MiB) in {sidecar['build_seconds']} s")
    return engine_path, sidecar
