"""Which ONNX nodes stay float32 in the mixed-precision (FP16) graph: the "FP32 islands".

FP16 has a 0.125 px step at 128-256 px, so the disparity state and its
updates, the column coordinates, the lookup indices and weights, the
soft-argmin and the final convex upsampling must not run in half precision;
nor may the normalisation reductions (design doc 5.5). Everything else (all
convolutions, attention, the cost volumes and their aggregation) runs in FP16.

LayerNormalization is the exception among the normalisations: its FP16 node
keeps the reductions in float32 by itself. ONNX defines `stash_type` = 1
(float32, the default, which mixed_precision writes out explicitly) as
"compute mean and variance in float32", and TensorRT's ONNX parser turns it
into the normalisation layer's compute precision. So LayerNormalization runs
with FP16 input and output and costs no Casts (54 of them at 8 iterations
when it was an island). InstanceNormalization has no such attribute and the
parser leaves its compute precision to TensorRT's default, so it stays an
island, as do the L2 norms of the cross-covariance attention (ReduceL2).

The rule reads the graph, not a list of node names, so it survives network
refactors. It relies on two facts of the export:

1. the network's own glue arithmetic sits in its own scope: the legacy
   exporter names nodes by module path and onnx_export wraps the network as
   attribute `network`, so glue nodes are '/network/<Op>[_N]' while learned
   sub-module nodes are '/network/<module>/.../<Op>';
2. the glue splits by data flow: glue that feeds the cost volume (input
   normalisation, GWC and concat volumes) may run in FP16; glue downstream of
   the disparity classifier (soft-argmin, lookup, `disp + delta`, convex
   upsampling) and glue that only builds the lookup tables (all-pairs
   correlation, pyramid levels) is an island.

On top of that, wherever they occur, the op types in FP32_OP_TYPES
(normalisation reductions, lookup gathers and rounding) are islands. The
soft-argmin and upsampling-weight softmaxes are glue after the classifier,
hence islands; the attention softmaxes inside learned blocks run in FP16
(TensorRT and ONNX Runtime normalise them with the row maximum). The
confidence head (probability mass near the disparity, its convex upsampling;
`network.fast_foundation_stereo.classifier_confidence`) is glue after the
classifier too, so it is an island by the same rule: its window weights and
sums of probabilities need float32 as much as the soft-argmin does.
Only float-producing nodes matter: integer/bool nodes (index casts,
comparisons) are exact at any precision. test/export/test_mixed_precision.py
checks the islands on the exported fixture graph.
"""

FP32_OP_TYPES = frozenset((
    'ReduceL2', 'ReduceMean', 'ReduceSumSquare', 'InstanceNormalization',  # normalisation reductions
    'GatherElements', 'GatherND', 'Floor', 'Ceil',                      # 1-D lookup
))

#: scope of FastFoundationStereoNet's own forward in the exported graph
NETWORK_SCOPE = '/network/'
#: scope of the module whose output is the disparity distribution (soft-argmin follows)
CLASSIFIER_SCOPE = '/network/classifier/'
#: scope of the first layer that consumes the cost volume
VOLUME_CONSUMER_SCOPE = '/network/corr_stem/'


def is_top_level(node_name):
    """True for nodes written in the network's own forward ('/network/Add_3')."""
    return node_name.startswith(NETWORK_SCOPE) and '/' not in node_name[len(NETWORK_SCOPE):]


def _producers(graph):
    return {output: node for node in graph.node for output in node.output}


def _reachable(seeds, neighbours):
    """Names of the nodes reachable from `seeds` (included) through `neighbours(node)`."""
    seen, stack = set(), list(seeds)
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(neighbours(node))
    return seen


def _ancestors(graph, seeds):
    """Names of all nodes upstream of (and including) the nodes in `seeds`."""
    producers = _producers(graph)
    return _reachable(seeds, lambda node: [producers[name] for name in node.input if name in producers])


def _descendants(graph, seeds):
    """Names of all nodes downstream of (and including) the nodes in `seeds`."""
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return _reachable(seeds, lambda node: [consumer for output in node.output
                                           for consumer in consumers.get(output, ())])


def fp32_nodes(model):
    """Names of the ONNX nodes that the rule above keeps in float32."""
    graph = model.graph
    nodes = [node for node in graph.node if node.name]
    after_classifier = _descendants(graph, [n for n in nodes if n.name.startswith(CLASSIFIER_SCOPE)])
    feeds_volume = _ancestors(graph, [n for n in nodes if n.name.startswith(VOLUME_CONSUMER_SCOPE)])
    lookup_gathers = [n for n in nodes if n.op_type == 'GatherElements' and n.name in after_classifier]
    builds_tables = _ancestors(graph, lookup_gathers)
    islands = set()
    for node in nodes:
        if node.op_type in FP32_OP_TYPES:
            islands.add(node.name)
        elif is_top_level(node.name) and (node.name in after_classifier
                                          or (node.name in builds_tables and node.name not in feeds_volume)):
            islands.add(node.name)
    return islands


def fp32_tensors(model):
    """Output tensor names of the island nodes (TensorRT keeps ONNX tensor names)."""
    pinned = fp32_nodes(model)
    return {output for node in model.graph.node if node.name in pinned for output in node.output}
