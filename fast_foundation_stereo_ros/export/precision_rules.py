"""Which ONNX nodes must stay float32 in an FP16 TensorRT engine (the "FP32 islands").

FP16 has a 0.125 px step at 128-256 px, so the disparity state, the column
coordinates, the sampling indices/weights, the soft-argmin and the final
weighted upsampling must not run in half precision; nor may the L2/mean
reductions of the normalisations (design doc 5.5). The rule is kept to two
lines so it survives network refactors:

1. every node in the network's *own* scope, i.e. not inside a learned
   sub-module. In `FastFoundationStereoNet` that is exactly the glue arithmetic
   listed above: input normalisation, GWC normalisation and shifted products,
   soft-argmin, the geometry lookup (GeometryEncoding is a plain class, so its
   floor/gather/weights land in this scope), the `disp + delta` updates and
   `convex_upsample`. The legacy exporter names nodes by module path, and
   onnx_export wraps the network as attribute `network`, so those nodes are
   '/network/<Op>[_N]' while sub-module nodes are '/network/<module>/.../<Op>';
2. wherever they occur, the op types in FP32_OP_TYPES (normalisation reductions,
   softmax, gathers and rounding).

Only layers whose outputs are all floating point get pinned: integer/bool
layers (index casts, comparisons) are exact at any precision, and forcing a
float precision on them can leave TensorRT without a legal implementation.
"""

FP32_OP_TYPES = frozenset((
    'ReduceL2', 'ReduceMean', 'ReduceSumSquare', 'LayerNormalization',  # normalisations
    'Softmax',                                                          # soft-argmin, upsampling weights
    'Gather', 'GatherElements', 'GatherND', 'Floor', 'Ceil',            # 1-D lookup
))


#: scope of FastFoundationStereoNet's own forward in the exported graph
NETWORK_SCOPE = '/network/'


def is_top_level(node_name):
    """True for nodes written in the network's own forward ('/network/Add_3')."""
    return node_name.startswith(NETWORK_SCOPE) and '/' not in node_name[len(NETWORK_SCOPE):]


def fp32_nodes(model):
    """Names of the ONNX nodes that the rule above pins to float32."""
    return {node.name for node in model.graph.node
            if node.name and (is_top_level(node.name) or node.op_type in FP32_OP_TYPES)}


def fp32_tensors(model):
    """Output tensor names of the pinned nodes (TensorRT keeps ONNX tensor names)."""
    pinned = fp32_nodes(model)
    return {output for node in model.graph.node if node.name in pinned for output in node.output}
