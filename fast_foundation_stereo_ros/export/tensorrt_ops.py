"""Will TensorRT's ONNX parser accept this graph? Checked before any engine build.

The op list is the "Supported = Y" set of onnx-tensorrt's docs/operators.md for
TensorRT 10.x, written down here from that table (ops marked N, experimental
or absent are left out on purpose: a false "unsupported" costs a re-export, a
false "supported" costs a failed multi-minute build on a Jetson).

Besides the op list, a few patterns that parse but are known to break or to
fail at build time for this network are flagged (design doc section 5.5):
tensors of rank > 5 (the official GWC unfold path), pooling whose window is
really a whole-image adaptive pool (kernel limit, NVlabs issue #30), and
Einsum (restricted in TRT; the all-pairs correlation must be a MatMul).
"""
from dataclasses import dataclass

from ..errors import EngineError

TRT10_SUPPORTED_OPS = frozenset('''
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool
BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Compress Concat
Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand
EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax
Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean Min Mish Mod Mul Neg NonMaxSuppression NonZero Not
OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal
RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round
ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid
Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze
Upsample Where Xor
'''.split())

#: highest default-domain opset TensorRT 10.0 documents; newer graphs may still parse
TRT10_MAX_OPSET = 20
#: TensorRT tensors have at most 8 dimensions (Dims.MAX_DIMS); its
#: convolution/pooling/resize layers handle at most 5, and the 6-D GWC volumes
#: of the official code were what kept it out of one engine
MAX_TRT_RANK = 8
MAX_SAFE_RANK = 5
#: a pooling window this large is a disguised global pool; TRT rejects big
#: windows (480x272 failed in NVlabs issue #30), ReduceMean/ReduceMax do not
MAX_POOL_WINDOW = 10000
_DEFAULT_DOMAINS = ('', 'ai.onnx')


@dataclass(frozen=True)
class OpIssue:
    severity: str   # 'error' (the build will fail) or 'warning' (risky, may work)
    node: str       # node name (or '<graph>' for graph-level issues)
    op_type: str
    message: str

    def __str__(self):
        return f"{self.severity}: node '{self.node}' ({self.op_type}): {self.message}"


def check_trt_compatibility(model):
    """All OpIssues of an onnx.ModelProto against TensorRT 10.x, errors first."""
    issues = _opset_issues(model) + _node_issues(model.graph) + _rank_issues(model)
    return sorted(issues, key=lambda issue: issue.severity != 'error')


def assert_trt_compatible(model, log=None):
    """Raise EngineError naming every blocking node; pass warnings to `log`."""
    issues = check_trt_compatibility(model)
    errors = [issue for issue in issues if issue.severity == 'error']
    if log:
        for issue in issues:
            if issue.severity == 'warning':
                log(f'TensorRT compatibility {issue}')
    if errors:
        listed = '; '.join(str(issue) for issue in errors[:10])
        more = f' (and {len(errors) - 10} more)' if len(errors) > 10 else ''
        raise EngineError(
            f'the ONNX graph cannot be converted by the TensorRT 10 ONNX parser: {listed}{more}. '
            'Rewrite these ops in the network with TensorRT-supported ones and export again')
    return issues


def _opset_issues(model):
    for opset in model.opset_import:
        if opset.domain in _DEFAULT_DOMAINS and opset.version > TRT10_MAX_OPSET:
            return [OpIssue('warning', '<graph>', 'opset', f'opset {opset.version} is newer than the '
                            f'{TRT10_MAX_OPSET} documented for TensorRT 10.0; export with --opset {TRT10_MAX_OPSET}')]
    return []


def _node_issues(graph):
    issues = []
    for index, node in enumerate(graph.node):
        name = node.name or f'#{index}'
        if node.domain not in _DEFAULT_DOMAINS:
            issues.append(OpIssue('error', name, node.op_type,
                                  f"custom-domain op '{node.domain}::{node.op_type}' needs a TensorRT plugin"))
        elif node.op_type not in TRT10_SUPPORTED_OPS:
            issues.append(OpIssue('error', name, node.op_type,
                                  'not supported by the TensorRT 10 ONNX parser'))
        else:
            issues.extend(_pattern_issues(node, name))
        for attribute in node.attribute:  # If/Loop/Scan bodies
            if attribute.g.node:
                issues.extend(_node_issues(attribute.g))
            for subgraph in attribute.graphs:
                issues.extend(_node_issues(subgraph))
    return issues


def _pattern_issues(node, name):
    if node.op_type == 'Einsum':
        equation = _attribute(node, 'equation', b'').decode()
        if '...' in equation:
            return [OpIssue('error', name, 'Einsum', f"ellipsis in equation '{equation}' is unsupported")]
        return [OpIssue('warning', name, 'Einsum', f"'{equation}' is restricted in TensorRT; "
                        'a batched MatMul is the safe form')]
    if node.op_type in ('AveragePool', 'MaxPool', 'LpPool'):
        window = 1
        for size in _attribute(node, 'kernel_shape', []):
            window *= size
        if window > MAX_POOL_WINDOW:
            return [OpIssue('error', name, node.op_type,
                            f'pooling window of {window} elements exceeds what TensorRT builds; '
                            'replace the adaptive pooling by ReduceMean/ReduceMax over H, W')]
    return []


def _rank_issues(model):
    """Flag tensors of rank > 5 (warning) or > 8 (error), using ONNX shape inference."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is advisory; the parser decides
        return []
    producers = {output: node for node in inferred.graph.node for output in node.output}
    issues = []
    values = list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    for value in values:
        tensor_type = value.type.tensor_type
        rank = len(tensor_type.shape.dim) if tensor_type.HasField('shape') else 0
        if rank > MAX_SAFE_RANK:
            node = producers.get(value.name)
            severity = 'error' if rank > MAX_TRT_RANK else 'warning'
            issues.append(OpIssue(severity, node.name if node else value.name,
                                  node.op_type if node else 'input',
                                  f"tensor '{value.name}' has rank {rank} (TensorRT: at most "
                                  f'{MAX_TRT_RANK}, {MAX_SAFE_RANK} for conv/pool/resize); '
                                  'keep cost volumes at most 5-D'))
    return issues


def _attribute(node, name, default):
    import onnx
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default
