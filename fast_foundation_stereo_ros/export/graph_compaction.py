"""Constant folding and node statistics of an exported graph.

The TorchScript exporter leaves thousands of Constant nodes and shape
arithmetic behind; `compact_graph` folds them with onnxslim (pure Python,
works with the pinned onnx / onnxruntime) into initializers and removes dead
and duplicate nodes. onnxslim's MatMul+Add -> Gemm fusion is skipped: on the
4-D channels-last linear layers of this network it wraps every Gemm in two
Reshapes, one node more than it removes, and TensorRT fuses MatMul + bias
itself.

`fold_scales_into_matmuls` then removes the constant per-channel scaling
after the channels-last linear layers that onnxslim leaves (MatMul + Add +
Mul, EdgeNeXt's layer scale): it becomes part of the MatMul's constant
weights; values change only by float rounding. At the default opset (20)
every GELU is one `Gelu` node; below 20 it is an erf chain whose 0.5 is left
alone, because ONNX Runtime fuses that pattern only with it (folded, the
unfused GELUs cost about 2 % of a CPU run).

`nodes_per_iteration` counts the nodes of one unrolled GRU step from the
graph's data flow (each step starts with the lookup's GatherElements), so
it needs no node names; `confidence_head_nodes` counts the nodes that only
the `confidence` output needs (what confidence adds to the graph).
test/export/test_onnx_export.py checks these figures on the exported fixture
graph.
"""
from ..errors import EngineError

#: onnxslim fusions left out (see module docstring)
SKIPPED_FUSIONS = ('FusionGemm',)
#: the op that starts every GRU step: the geometry lookup's single gather
ITERATION_MARKER_OP = 'GatherElements'


def compact_graph(model):
    """Constant-folded, dead-node-free copy of the ModelProto `model` (metadata kept), scalings folded."""
    import onnxslim
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    try:
        slimmed = onnxslim.slim(model, skip_fusion_patterns=list(SKIPPED_FUSIONS))
    except Exception as exc:  # noqa: BLE001 - report any optimiser failure as one line
        raise EngineError(f'onnxslim could not fold the exported graph: {type(exc).__name__}: {exc}') from None
    if metadata:
        import onnx
        onnx.helper.set_model_props(slimmed, metadata)
    fold_scales_into_matmuls(slimmed)
    return slimmed


def fold_scales_into_matmuls(model):
    """Fold per-channel Muls into the preceding MatMul + Add, in place; returns the number removed.

    MatMul(x, W) -> Add(b) -> Mul(g), g constant over the last axis, becomes
    MatMul(x, W*g) -> Add(b*g). Only single-consumer chains with initializer
    operands are rewritten.
    """
    from onnx import numpy_helper
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    outputs = {value.name for value in graph.output}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(tensor):
        users = consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in outputs else None

    def constant(node, exclude):
        names = [name for name in node.input if name != exclude]
        if len(names) == 1 and names[0] in initializers:
            return names[0], numpy_helper.to_array(initializers[names[0]])
        return None, None

    def replace(old_name, array, hint):
        fresh = numpy_helper.from_array(array.astype(numpy_helper.to_array(initializers[old_name]).dtype),
                                        f'{hint}_folded_{len(initializers)}')
        graph.initializer.append(fresh)
        initializers[fresh.name] = fresh
        return fresh.name

    removed = []
    for node in list(graph.node):
        if node.op_type != 'MatMul' or node.input[1] not in initializers:
            continue
        weight_name = node.input[1]
        weight = numpy_helper.to_array(initializers[weight_name])
        add = only_consumer(node.output[0])
        if add is None or add.op_type != 'Add':
            continue
        bias_name, bias = constant(add, node.output[0])
        mul = only_consumer(add.output[0])
        if bias is None or mul is None or mul.op_type != 'Mul':
            continue
        gain = constant(mul, add.output[0])[1]
        if gain is None or gain.size not in (1, weight.shape[-1]) or gain.size != (gain.shape[-1] if gain.ndim else 1):
            continue    # not constant along everything but the output channels
        gain = gain.reshape(-1)
        node.input[1] = replace(weight_name, weight * gain, node.name)
        add.input[list(add.input).index(bias_name)] = replace(bias_name, bias * gain, add.name)
        add.output[0], mul.output[0] = mul.output[0], add.output[0]   # Add now feeds the Mul's consumers
        removed.append(mul)
    for node in removed:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(init)
    return len(removed)


def op_counts(model):
    """{op_type: count} of the graph's nodes, most frequent first."""
    counts = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def iteration_of_nodes(model):
    """{node name: number of lookup gathers upstream of it, itself included}.

    Nodes are in topological order (an ONNX requirement), so one pass
    suffices. Step k of the GRU (k >= 1) is exactly the set of nodes whose
    value is k: its lookup gather, the update block, the disparity update and
    the next step's index arithmetic; the last step's set also holds the
    final upsampling.
    """
    level_of_tensor, levels = {}, {}
    for index, node in enumerate(model.graph.node):
        level = max((level_of_tensor.get(name, 0) for name in node.input), default=0)
        level += node.op_type == ITERATION_MARKER_OP
        levels[node.name or f'#{index}'] = level
        for output in node.output:
            level_of_tensor[output] = level
    return levels


def nodes_per_iteration(model):
    """Nodes of one unrolled GRU step (the largest of steps 1..n-1), or None for a single step."""
    counts = {}
    for level in iteration_of_nodes(model).values():
        counts[level] = counts.get(level, 0) + 1
    steps = max(counts, default=0)
    inner = [counts.get(step, 0) for step in range(1, steps)]
    return max(inner) if inner else None


def confidence_head_nodes(model, disparity_output='disparity'):
    """Names of the nodes no path to `disparity_output` needs: the confidence head (empty without one)."""
    producers = {output: node for node in model.graph.node for output in node.output}
    needed, stack = set(), [producers[disparity_output]] if disparity_output in producers else []
    while stack:
        node = stack.pop()
        if id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(producers[name] for name in node.input if name in producers)
    return [node.name for node in model.graph.node if id(node) not in needed]


def describe_counts(model):
    """Printable lines: total nodes, nodes per GRU step and of the confidence head, then the count of every op type."""
    counts = op_counts(model)
    per_step = nodes_per_iteration(model)
    step_text = f', {per_step} per GRU iteration' if per_step is not None else ''
    head = len(confidence_head_nodes(model))
    step_text += f', {head} for confidence' if head else ''
    by_op = ', '.join(f'{op} {count}' for op, count in counts.items())
    return [f'graph: {len(model.graph.node)} nodes{step_text}', f'nodes by op type: {by_op}']
