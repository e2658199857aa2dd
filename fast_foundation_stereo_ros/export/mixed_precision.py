"""FP16 mixed-precision ONNX: ModelOpt AutoCast with our FP32 islands as exclusions.

`to_mixed_precision` converts a float32 graph into a strongly typed one: every
node outside the islands of `precision_rules.fp32_nodes` computes in FP16
(initializers converted, Casts inserted at the island borders), graph inputs
and outputs stay float32. The precision is therefore decided in the ONNX
file, which is what TensorRT 11 (weak typing removed) and TensorRT 10's
STRONGLY_TYPED networks build from.

AutoCast (`nvidia-modelopt`, `modelopt.onnx.autocast.convert_to_mixed_precision`)
runs on CPU. It is installed without its `[onnx]` extra (requirements-autocast.txt,
--no-deps) because that extra would replace onnxruntime (CPU) by
onnxruntime-gpu. Its data-range calibration (`data_max`) is switched off: it
runs the whole graph with every intermediate as an output, which does not fit
a 480x640 export in memory; the islands plus the export's verification
against the fp32 PyTorch model take its place.

LayerNormalization nodes run in FP16 with float32 statistics (`stash_type`,
written by `pin_layer_norm_statistics`; see precision_rules).

`precision_summary` reports how many compute nodes (the island-border Casts
apart) and what share of the multiply-adds (Conv, ConvTranspose, MatMul,
Gemm) run in FP16.
test/export/test_mixed_precision.py checks typing, islands and accuracy.
"""
import contextlib
import logging
import re
from dataclasses import dataclass

from ..errors import EngineError
from .precision_rules import fp32_nodes

PRECISIONS = ('fp32', 'fp16')
#: tensor element types (onnx.TensorProto)
FLOAT, FLOAT16 = 1, 10
_MAC_OPS = ('Conv', 'ConvTranspose', 'MatMul', 'Gemm')


def autocast_available():
    """True when modelopt's AutoCast imports (requirements-autocast.txt is installed)."""
    try:
        with _quiet_modelopt():
            import modelopt.onnx.autocast  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return False
    return True


@contextlib.contextmanager
def _quiet_modelopt():
    """AutoCast logs every node it classifies at INFO and sets its loggers' levels on import; keep its errors."""
    saved = {}

    def quieten():
        for name in [key for key in logging.root.manager.loggerDict if key.startswith('modelopt')] + ['modelopt']:
            logger = logging.getLogger(name)
            saved.setdefault(name, logger.level)
            logger.setLevel(logging.ERROR)
    quieten()
    try:
        yield quieten
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def to_mixed_precision(path, model=None):
    """The FP16 mixed-precision ModelProto of the float32 graph saved at `path`.

    `model` is that graph already loaded (saves a read); the islands come from it.
    """
    import onnx
    model = model if model is not None else onnx.load(path)
    islands = sorted(fp32_nodes(model))
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    opset = next((entry.version for entry in model.opset_import if entry.domain in ('', 'ai.onnx')), None)
    try:
        with _quiet_modelopt() as quieten:
            from modelopt.onnx.autocast import convert_to_mixed_precision
            quieten()
            converted = convert_to_mixed_precision(
                str(path), low_precision_type='fp16',
                nodes_to_exclude=['^' + re.escape(name) + '$' for name in islands],
                keep_io_types=True, data_max=float('inf'), opset=opset)
    except ImportError as exc:
        raise EngineError(f'--precision fp16 needs ModelOpt AutoCast ({exc}): install it with '
                          '`pip install --no-deps -r requirements-autocast.txt`, or export --precision fp32') from None
    except Exception as exc:  # noqa: BLE001 - report any converter failure as one line
        raise EngineError(f'AutoCast could not convert the graph to FP16: {type(exc).__name__}: {exc}') from None
    onnx.helper.set_model_props(converted, metadata)
    pin_layer_norm_statistics(converted)
    return converted


def pin_layer_norm_statistics(model):
    """Write `stash_type` = 1 (float32 mean and variance) on every LayerNormalization, in place.

    It is ONNX's default already; written out, the file itself says that its
    FP16 LayerNormalizations reduce in float32 (precision_rules), and a graph
    from another exporter with stash_type = FP16 gets float32 statistics too.
    Returns the number of nodes.
    """
    import onnx
    nodes = [node for node in model.graph.node if node.op_type == 'LayerNormalization']
    for node in nodes:
        kept = [attribute for attribute in node.attribute if attribute.name != 'stash_type']
        del node.attribute[:]
        node.attribute.extend(kept + [onnx.helper.make_attribute('stash_type', FLOAT)])
    return len(nodes)


@dataclass(frozen=True)
class PrecisionSummary:
    nodes: int
    fp16_nodes: int
    casts: int
    macs: int
    fp16_macs: int

    @property
    def fp16_mac_share(self):
        return self.fp16_macs / self.macs if self.macs else 0.0

    def summary(self):
        return (f'FP16: {self.fp16_nodes} of {self.nodes - self.casts} compute nodes (+ {self.casts} Casts), '
                f'{100 * self.fp16_mac_share:.1f} % of {self.macs / 1e9:.2f} G multiply-adds')


def _inferred_types(model):
    """{tensor name: (elem_type, static shape or None)} after ONNX shape inference."""
    import onnx
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    for value in values:
        tensor = value.type.tensor_type
        dims = [dim.dim_value if dim.HasField('dim_value') else None for dim in tensor.shape.dim]
        types[value.name] = (tensor.elem_type, None if None in dims else dims)
    for initializer in inferred.graph.initializer:
        types[initializer.name] = (initializer.data_type, list(initializer.dims))
    return inferred, types


def _product(values):
    result = 1
    for value in values:
        result *= value
    return result


def _macs(node, types):
    """Multiply-adds of one Conv/ConvTranspose/MatMul/Gemm node (0 when shapes are unknown)."""
    shapes = [types.get(name, (None, None))[1] for name in list(node.input[:2]) + [node.output[0]]]
    if any(shape is None for shape in shapes):
        return 0
    first, second, output = shapes
    if node.op_type == 'Conv':
        return _product(output) * _product(second[1:])                      # out x (Cin/g * k...)
    if node.op_type == 'ConvTranspose':
        return _product(first) * _product(second[1:])                       # in x (Cout/g * k...)
    return _product(output) * first[-1]                                     # MatMul / Gemm: out x K


def precision_summary(model):
    """Nodes and multiply-adds computing in FP16 (a node is FP16 when its first output is; Casts apart)."""
    inferred, types = _inferred_types(model)
    fp16_nodes = casts = macs = fp16_macs = 0
    for node in inferred.graph.node:
        is_cast = node.op_type == 'Cast'
        is_fp16 = types.get(node.output[0], (None,))[0] == FLOAT16
        fp16_nodes += is_fp16 and not is_cast
        casts += is_cast
        if node.op_type in _MAC_OPS:
            count = _macs(node, types)
            macs += count
            fp16_macs += count if is_fp16 else 0
    return PrecisionSummary(len(inferred.graph.node), fp16_nodes, casts, macs, fp16_macs)


def type_conflicts(model):
    """Nodes whose floating-point inputs disagree in type (empty for a strongly typed graph).

    Casts convert by definition and index/shape inputs are integer, so only
    float inputs of the other nodes are compared (Resize: its data input only).
    """
    _, types = _inferred_types(model)
    conflicts = []
    for node in model.graph.node:
        if node.op_type == 'Cast':
            continue
        # Resize's roi/scales are float32 by the ONNX spec whatever the data type
        inputs = node.input[:1] if node.op_type == 'Resize' else node.input
        float_types = {types[name][0] for name in inputs if name in types and types[name][0] in (FLOAT, FLOAT16)}
        if len(float_types) > 1:
            conflicts.append(node.name)
    return conflicts
