"""Whole-network ONNX export for one fixed size, verified against PyTorch.

One graph holds everything from raw 0..255 RGB to full-resolution disparity:
normalisation, features, both cost volumes, aggregation, `valid_iters`
unrolled GRU steps and the learned upsampling; by default also the second
output `confidence` (see `network.fast_foundation_stereo.classifier_confidence`;
its nodes are FP32 islands of an fp16 graph). H, W, max_disp and
valid_iters are baked in (TensorRT builds fastest engines for static shapes,
and the loop must be unrolled anyway).

Exporter: torch 2.13 still ships the TorchScript-based exporter
(`dynamo=False`). The dynamo exporter is not used: with the pinned
onnxscript 0.5.6 it fails to import on torch 2.13, and the design notes it
cannot lower adaptive_max_pool2d. The legacy exporter traces, so Python-int
settings become constants, which is exactly the fixed-settings graph we want.

The network is traced in its "compact" formulation (cost volumes and lookup
as a few tensor ops each, the ConvNeXt-style blocks' pointwise MLPs as 1x1
convolutions without permutes), then constant-folded (`graph_compaction`). With
precision 'fp16' the graph becomes strongly typed mixed precision
(`mixed_precision`: FP16 except the FP32 islands of `precision_rules`,
float32 I/O) and metadata key `precision` says which it is.

Every export is checked before it is kept (written atomically, so a failed
export leaves no file): TensorRT op support, onnx.checker, then ONNX Runtime
CPU against the fp32 PyTorch network on a synthetic textured pair
(test/export/test_onnx_export.py, test_mixed_precision.py).
"""
import contextlib
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .. import defaults
from ..backends.graph_io import CONFIDENCE_NAME, INPUT_NAMES, OUTPUT_NAME, to_nchw
from ..errors import ConfigError, EngineError
from ..files.atomic import atomic_path
from ..version import __version__
from .graph_compaction import compact_graph, describe_counts, nodes_per_iteration, op_counts
from .mixed_precision import PRECISIONS, precision_summary, to_mixed_precision
from .tensorrt_ops import assert_trt_compatible

SIZE_MULTIPLE = defaults.SIZE_MULTIPLE
DEFAULT_OPSET = defaults.OPSET
DEFAULT_MAX_DISP = defaults.MAX_DISP
DEFAULT_VALID_ITERS = defaults.VALID_ITERS
TOLERANCE_PX = defaults.EXPORT_TOLERANCE_PX
FP16_TOLERANCE_PX = defaults.EXPORT_FP16_TOLERANCE_PX
#: metadata_props keys whose values are integers
INT_METADATA = ('height', 'width', 'max_disp', 'valid_iters', 'opset')


@dataclass(frozen=True)
class Verification:
    max_abs: float
    mean_abs: float
    tolerance: float
    seconds: float
    share_over_1px: float = 0.0
    #: max |ONNX Runtime - PyTorch| confidence, None for a graph without confidence
    confidence_max_abs: float = None

    @property
    def passed(self):
        return self.max_abs <= self.tolerance

    def summary(self):
        verdict = 'OK' if self.passed else 'FAILED'
        return (f'ONNX Runtime vs PyTorch: max abs {self.max_abs:.5f} px, mean abs {self.mean_abs:.5f} px, '
                f'{100 * self.share_over_1px:.3f} % of pixels off by > 1 px (tolerance {self.tolerance} px)'
                + ('' if self.confidence_max_abs is None else
                   f', confidence max abs {self.confidence_max_abs:.5f}') + f' {verdict}')


@dataclass(frozen=True)
class ExportResult:
    path: str
    metadata: dict
    op_counts: dict
    export_seconds: float
    verification: Verification = None
    nodes_per_iteration: int = None
    precision: object = None   # mixed_precision.PrecisionSummary of an fp16 export


def check_export_size(height, width):
    """Raise ConfigError unless H and W are positive multiples of 32."""
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        def up(value):
            return max(SIZE_MULTIPLE, -(-value // SIZE_MULTIPLE) * SIZE_MULTIPLE)
        raise ConfigError(f'--height/--width must be positive multiples of {SIZE_MULTIPLE} (the network '
                          f'downsamples by 32), got {height}x{width}; e.g. --height {up(height)} '
                          f'--width {up(width)} (camera images are resized/padded to it at run time)')


def load_for_export(model):
    """A StereoModel from a path (loaded on CPU) or an already loaded one."""
    if isinstance(model, (str, bytes)) or hasattr(model, '__fspath__'):
        from ..loading.stereo_model import load_model
        return load_model(model, device='cpu')
    return model


def export_onnx(model, output, height, width, max_disp=DEFAULT_MAX_DISP, valid_iters=DEFAULT_VALID_ITERS,
                opset=DEFAULT_OPSET, verify=True, tolerance=None, log=print, precision='fp32', confidence=True):
    """Export `model` (checkpoint path or StereoModel) to `output`; return an ExportResult.

    `precision` 'fp32' writes a float32 graph; 'fp16' a strongly typed
    mixed-precision graph (FP16 except the FP32 islands, float32 I/O). The
    graph is constant-folded, then checked against the TensorRT op list,
    onnx.checker and ONNX Runtime vs the fp32 PyTorch model; `tolerance`
    (max abs px) defaults to TOLERANCE_PX for fp32 and FP16_TOLERANCE_PX for
    fp16. `confidence` adds the second output `confidence` (metadata `outputs`
    lists the outputs). Raises ConfigError for bad settings and EngineError when the graph
    cannot go to TensorRT or is beyond tolerance; nothing is written then.
    """
    if not str(output).lower().endswith('.onnx'):
        raise ConfigError(f"--output must end with .onnx (the backend is chosen by extension), got '{output}'")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    check_export_size(height, width)
    if int(valid_iters) < 1:
        raise ConfigError(f'--valid-iters must be >= 1, got {valid_iters}')
    if tolerance is None:
        tolerance = FP16_TOLERANCE_PX if precision == 'fp16' else TOLERANCE_PX
    stereo = load_for_export(model)
    _check_max_disp(stereo.network, max_disp)
    metadata = export_metadata(stereo, model, height, width, max_disp, valid_iters, opset, precision, confidence)
    with atomic_path(output) as tmp:
        start = time.perf_counter()
        traced = trace_to_onnx(stereo.network, tmp, height, width, max_disp, valid_iters, opset, confidence)
        log(f'traced: {len(traced.graph.node)} nodes')
        graph = compact_graph(traced)
        del traced
        _set_metadata(graph, metadata)
        _declare_output_shape(graph, height, width)
        precision_info = None
        if precision == 'fp16':
            _save_and_check(graph, tmp)
            graph = to_mixed_precision(tmp, graph)
            _declare_output_shape(graph, height, width)
            precision_info = precision_summary(graph)
            log(precision_info.summary())
        assert_trt_compatible(graph, log)
        _save_and_check(graph, tmp)
        seconds = time.perf_counter() - start
        log(f'exported {height}x{width}, max_disp {max_disp}, {valid_iters} iterations, {precision}: '
            f'{len(graph.graph.node)} nodes in {seconds:.1f} s')
        for line in describe_counts(graph):
            log(line)
        verification = None
        if verify:
            verification = verify_onnx(tmp, stereo.network, height, width, max_disp, valid_iters, tolerance)
            log(verification.summary())
            if not verification.passed:
                raise EngineError(f'the exported graph does not reproduce PyTorch: {verification.summary()}; '
                                  'no ONNX file was written')
    return ExportResult(str(output), metadata, op_counts(graph), seconds, verification,
                        nodes_per_iteration(graph), precision_info)


def _check_max_disp(network, max_disp):
    check = getattr(network, 'check_max_disp', None)
    if check is not None:
        check(max_disp)
    elif int(max_disp) <= 0 or int(max_disp) % 4:
        raise ConfigError(f'--max-disp must be a positive multiple of 4, got {max_disp}')


def export_metadata(stereo, source, height, width, max_disp, valid_iters, opset, precision='fp32',
                    confidence=True):
    """String metadata_props stored in the graph (read back by `read_metadata`).

    `precision` ('fp32' | 'fp16') is the contract with the engine builder:
    an 'fp16' graph is already mixed precision and is built strongly typed.
    """
    args = getattr(stereo, 'args', None) or {}
    normalize = getattr(stereo.network, 'normalize', args.get('normalize'))
    source_model = os.path.abspath(source) if isinstance(source, str) else getattr(stereo, 'path', '')
    return {
        'producer': 'fast_foundation_stereo_ros',
        'package_version': __version__,
        'height': str(height), 'width': str(width),
        'max_disp': str(max_disp), 'valid_iters': str(valid_iters),
        'opset': str(opset),
        'precision': precision,
        'normalize': str(bool(normalize)).lower() if normalize is not None else 'unknown',
        'source_sha256': str(getattr(stereo, 'source_sha256', '') or ''),
        # for a native model directory: the SHA-256 of the .pth it was converted from
        'origin_sha256': str(getattr(stereo, 'origin_sha256', '') or ''),
        'source_model': str(source_model or ''),
        'input_format': 'left/right: 1x3xHxW float32 RGB 0..255 (normalised inside the graph)',
        'output_format': 'disparity: 1x1xHxW float32, left-image pixels at input size'
                         + ('; confidence: 1x1xHxW float32, 0..1' if confidence else ''),
        'outputs': ','.join(graph_output_names(confidence)),
    }


def graph_output_names(confidence):
    """Output names of a graph exported with or without confidence."""
    return [OUTPUT_NAME, CONFIDENCE_NAME] if confidence else [OUTPUT_NAME]


def read_metadata(model_or_path):
    """metadata_props of an ONNX file or ModelProto as a dict, integers parsed."""
    import onnx
    model = model_or_path
    if not isinstance(model_or_path, onnx.ModelProto):
        try:
            model = onnx.load(model_or_path, load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several types
            raise EngineError(f"cannot read ONNX file '{model_or_path}': {exc}") from None
    props = {prop.key: prop.value for prop in model.metadata_props}
    for key in INT_METADATA:
        if props.get(key, '').isdigit():
            props[key] = int(props[key])
    return props


def _set_metadata(graph, metadata):
    import onnx
    onnx.helper.set_model_props(graph, metadata)


def _declare_output_shape(graph, height, width):
    """The tracer leaves the output dims symbolic; state the static 1x1xHxW shape of every output."""
    for output in graph.graph.output:
        for dim, size in zip(output.type.tensor_type.shape.dim, (1, 1, height, width)):
            dim.Clear()
            dim.dim_value = size


def _save_and_check(graph, path):
    import onnx
    onnx.save(graph, path)
    try:
        onnx.checker.check_model(path, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise EngineError(f'onnx.checker rejected the exported graph: {exc}') from None


# --- tracing ----------------------------------------------------------------------------------

def _fixed_settings_module(network, valid_iters, max_disp, confidence=False):
    """nn.Module with forward(left, right) calling `network` with baked-in settings."""
    import torch

    class FixedSettings(torch.nn.Module):
        # The attribute name sets the node scope '/network/...' that
        # precision_rules.NETWORK_SCOPE relies on.
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, left, right):
            return self.network(left, right, int(valid_iters), int(max_disp), return_confidence=confidence)
    return FixedSettings().eval()


@contextlib.contextmanager
def _export_mode(network, formulation='compact'):
    """Run `network` in float32 with `formulation`, restoring the settings after.

    Tracing uses the "compact" formulation (a few tensor ops per cost volume);
    the verification reference is the eager default ("fast").
    """
    saved = {key: getattr(network, key) for key in ('formulation', 'mixed_precision') if hasattr(network, key)}
    for key, value in (('formulation', formulation), ('mixed_precision', False)):
        if key in saved:
            setattr(network, key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(network, key, value)


def trace_to_onnx(network, path, height, width, max_disp, valid_iters, opset=DEFAULT_OPSET, confidence=False):
    """torch.onnx.export (TorchScript exporter) of the fixed-settings network; returns the ModelProto."""
    import onnx
    import torch
    generator = torch.Generator().manual_seed(0)
    left = torch.rand(1, 3, height, width, generator=generator) * 255.0
    right = torch.rand(1, 3, height, width, generator=generator) * 255.0
    network = network.eval()
    if next(network.parameters()).device.type != 'cpu':
        raise ConfigError('export the network from a CPU-loaded model (load_model(path, device="cpu"))')
    wrapper = _fixed_settings_module(network, valid_iters, max_disp, confidence)
    with _export_mode(network), torch.no_grad(), warnings.catch_warnings():
        # The exporter's deprecation notice and TracerWarnings about Python
        # ints are expected here (the settings are meant to be constants).
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(wrapper, (left, right), path, dynamo=False, opset_version=int(opset),
                              input_names=list(INPUT_NAMES), output_names=graph_output_names(confidence),
                              do_constant_folding=True, export_params=True)
        except Exception as exc:  # noqa: BLE001 - report any exporter failure as one line
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
            raise EngineError(f'torch.onnx.export failed: {type(exc).__name__}: {first_line}') from exc
    return onnx.load(path)


# --- verification -----------------------------------------------------------------------------

def verification_pair(height, width, seed=0):
    """A deterministic textured stereo pair (HxWx3 uint8 RGB each) with real parallax."""
    from ..geometry.synthetic_scenes import make_scene
    scene = make_scene('mixed', width=width, height=height, seed=seed)
    return scene.left, scene.right


def run_torch(network, left, right, valid_iters, max_disp, confidence=False):
    """Eager fp32 disparity (HxW), or (disparity, confidence) with `confidence`."""
    import torch
    with _export_mode(network, 'fast'), torch.no_grad():
        output = network(torch.from_numpy(to_nchw(left)), torch.from_numpy(to_nchw(right)),
                         int(valid_iters), int(max_disp), return_confidence=confidence)
    if confidence:
        return tuple(tensor[0, 0].numpy() for tensor in output)
    return output[0, 0].numpy()


def ort_cpu_session(path, threads=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def verify_onnx(path, network, height, width, max_disp, valid_iters, tolerance=TOLERANCE_PX):
    """Max/mean abs disparity difference and share of pixels off by > 1 px: ONNX Runtime (CPU) vs fp32 PyTorch.

    The reference is the eager network in its default formulation and float32,
    so an fp16 graph is measured against what PyTorch users get.
    """
    start = time.perf_counter()
    left, right = verification_pair(height, width)
    session = ort_cpu_session(path)
    names = [output.name for output in session.get_outputs()]
    confidence = CONFIDENCE_NAME in names
    expected = run_torch(network, left, right, valid_iters, max_disp, confidence)
    found = session.run(graph_output_names(confidence),
                        {INPUT_NAMES[0]: to_nchw(left), INPUT_NAMES[1]: to_nchw(right)})
    confidence_max_abs = None
    if confidence:
        expected, expected_confidence = expected
        confidence_max_abs = float(np.abs(found[1][0, 0].astype(np.float64) - expected_confidence).max())
    difference = np.abs(found[0][0, 0].astype(np.float64) - expected.astype(np.float64))
    if not np.all(np.isfinite(difference)):
        return Verification(float('inf'), float('inf'), tolerance, time.perf_counter() - start, 1.0,
                            confidence_max_abs)
    return Verification(float(difference.max()), float(difference.mean()), tolerance,
                        time.perf_counter() - start, float((difference > 1.0).mean()), confidence_max_abs)
