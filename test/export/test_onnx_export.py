"""ONNX export of the fixture checkpoint: compact graph, TensorRT op-support checks, FP32 island rule."""
import collections
import os
import re

import numpy as np
import onnx
import pytest

from fast_foundation_stereo_ros.errors import ConfigError, EngineError
from fast_foundation_stereo_ros.export.graph_compaction import (confidence_head_nodes, iteration_of_nodes,
                                                                nodes_per_iteration)
from fast_foundation_stereo_ros.export.onnx_export import (check_export_size, export_onnx, ort_cpu_session,
                                                           read_metadata, run_torch, to_nchw, verification_pair)
from fast_foundation_stereo_ros.export.precision_rules import fp32_nodes, is_top_level
from fast_foundation_stereo_ros.export.tensorrt_ops import assert_trt_compatible, check_trt_compatibility

from .helpers import (EXPORT_HEIGHT, EXPORT_ITERS, EXPORT_MAX_DISP, EXPORT_WIDTH, exported_fixture_onnx, fixture_model,
                      reshape_model, tiny_onnx_model)


@pytest.fixture(scope='session')
def exported(tmp_path_factory, fixture_dir):
    return exported_fixture_onnx(tmp_path_factory, fixture_dir)


@pytest.fixture(scope='session')
def graph(exported):
    return onnx.load(exported[0])


def test_onnx_runtime_matches_pytorch_on_fixture_pair(exported, fixture_dir):
    """ORT on the exported graph vs our PyTorch network on the fixture pair (fitted to the graph size)."""
    import cv2
    model = fixture_model(fixture_dir)
    reference = np.load(fixture_dir / 'reference.npz')
    left, right = (cv2.resize(reference[side], (EXPORT_WIDTH, EXPORT_HEIGHT), interpolation=cv2.INTER_AREA)
                   for side in ('left', 'right'))
    expected = run_torch(model.network, left, right, EXPORT_ITERS, EXPORT_MAX_DISP)
    found = ort_cpu_session(exported[0]).run(['disparity'], {'left': to_nchw(left), 'right': to_nchw(right)})[0]
    difference = np.abs(found[0, 0] - expected)
    assert found.shape == (1, 1, EXPORT_HEIGHT, EXPORT_WIDTH) and found.dtype == np.float32
    assert difference.max() <= 0.05, f'max abs {difference.max():.5f} px, mean {difference.mean():.6f} px'


def test_compact_export_reproduces_the_eager_network_within_1e4_px(exported, fixture_dir):
    """The compact graph (matmul GWC, gather volumes, one-gather lookup) vs the eager default formulation."""
    model = fixture_model(fixture_dir)
    left, right = verification_pair(EXPORT_HEIGHT, EXPORT_WIDTH)
    expected = run_torch(model.network, left, right, EXPORT_ITERS, EXPORT_MAX_DISP)
    found = ort_cpu_session(exported[0]).run(['disparity'], {'left': to_nchw(left), 'right': to_nchw(right)})[0]
    difference = np.abs(found[0, 0].astype(np.float64) - expected)
    print(f'compact ONNX vs eager PyTorch: max abs {difference.max():.2e} px, mean {difference.mean():.2e} px')
    assert difference.max() <= 1e-4 and np.ptp(expected) > 1


def test_confidence_output_matches_pytorch_and_is_a_probability(exported, fixture_dir):
    model = fixture_model(fixture_dir)
    left, right = verification_pair(EXPORT_HEIGHT, EXPORT_WIDTH)
    expected_disparity, expected = run_torch(model.network, left, right, EXPORT_ITERS, EXPORT_MAX_DISP,
                                             confidence=True)
    disparity, found = ort_cpu_session(exported[0]).run(['disparity', 'confidence'],
                                                         {'left': to_nchw(left), 'right': to_nchw(right)})
    assert np.array_equal(expected_disparity, run_torch(model.network, left, right, EXPORT_ITERS, EXPORT_MAX_DISP))
    assert found.shape == (1, 1, EXPORT_HEIGHT, EXPORT_WIDTH) and found.dtype == np.float32
    assert found.min() >= 0.0 and found.max() <= 1.0 and np.ptp(found) > 1e-3
    assert np.abs(found[0, 0].astype(np.float64) - expected).max() <= 1e-4
    assert 'confidence max abs' in exported[1]


def test_confidence_head_is_an_fp32_island(graph):
    head = confidence_head_nodes(graph)
    assert head and set(head) <= fp32_nodes(graph)


def test_compact_graph_meets_the_node_targets(graph, exported):
    """Issue #8: <= 1,500 nodes at 8 steps with the confidence head. Today (fixture checkpoint, any H, W):
    83 per GRU step, 1,289 disparity nodes at 8 steps + 22 for confidence = 1,311."""
    per_step = nodes_per_iteration(graph)
    confidence_nodes = len(confidence_head_nodes(graph))
    total = len(graph.graph.node)
    at_8_iterations = total - confidence_nodes + (8 - EXPORT_ITERS) * per_step
    print(f'{total} nodes at {EXPORT_ITERS} iterations ({confidence_nodes} for confidence), {per_step} per '
          f'iteration, {at_8_iterations} + {confidence_nodes} at 8')
    assert per_step <= 84 and at_8_iterations <= 1295 and at_8_iterations + confidence_nodes <= 1320
    assert 10 <= confidence_nodes <= 30
    head = set(confidence_head_nodes(graph))
    ops = collections.Counter(node.op_type for node in graph.graph.node if node.name not in head)
    assert ops['Constant'] == 0 and 'AveragePool' not in ops       # folded; no pooling over a B*H*W batch
    assert ops['GatherElements'] == EXPORT_ITERS                      # one lookup gather per GRU step
    assert ops['Slice'] < 40 and ops['Pad'] < 10                       # no per-disparity slice/pad chains
    steps = collections.Counter(iteration_of_nodes(graph).values())
    assert sorted(steps) == list(range(EXPORT_ITERS + 1))
    assert f'graph: {total} nodes, {per_step} per GRU iteration, {confidence_nodes} for confidence' in exported[1]
    assert re.search(r'nodes by op type: Conv \d+, ', exported[1])


def test_export_prints_its_verification(exported):
    output = exported[1]
    assert 'ONNX Runtime vs PyTorch: max abs' in output and 'mean abs' in output and 'OK' in output


def test_graph_interface_and_metadata(graph, fixture_dir):
    inputs = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim] for value in graph.graph.input}
    outputs = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim] for value in graph.graph.output}
    assert inputs == {'left': [1, 3, EXPORT_HEIGHT, EXPORT_WIDTH], 'right': [1, 3, EXPORT_HEIGHT, EXPORT_WIDTH]}
    assert outputs == {name: [1, 1, EXPORT_HEIGHT, EXPORT_WIDTH] for name in ('disparity', 'confidence')}
    assert [value.name for value in graph.graph.output] == ['disparity', 'confidence']
    metadata = read_metadata(graph)
    assert (metadata['height'], metadata['width'], metadata['max_disp'], metadata['valid_iters']) == (
        EXPORT_HEIGHT, EXPORT_WIDTH, EXPORT_MAX_DISP, EXPORT_ITERS)
    assert metadata['source_sha256'] == fixture_model(fixture_dir).source_sha256
    assert metadata['normalize'] == 'true' and metadata['package_version'] and metadata['opset'] == 20
    assert metadata['precision'] == 'fp32' and metadata['outputs'] == 'disparity,confidence'
    assert {value.type.tensor_type.elem_type for value in graph.graph.input} == {onnx.TensorProto.FLOAT}
    assert graph.opset_import[0].version == 20


def test_exported_graph_is_one_tensorrt_ready_graph(graph):
    issues = check_trt_compatibility(graph)
    assert [issue for issue in issues if issue.severity == 'error'] == []
    ops = collections.Counter(node.op_type for node in graph.graph.node)
    assert not {'Einsum', 'GridSample', 'Loop', 'Unique'} & set(ops)
    assert ops['GatherElements'] > 0 and ops['Conv'] > 0  # lookup and cost volume are inside


def test_fp32_islands_cover_lookup_and_regression_not_convolutions(graph):
    pinned = fp32_nodes(graph)
    by_name = {node.name: node.op_type for node in graph.graph.node}
    pinned_ops = collections.Counter(by_name[name] for name in pinned)
    assert pinned_ops['GatherElements'] == sum(1 for op in by_name.values() if op == 'GatherElements')
    assert pinned_ops['Floor'] > 0 and pinned_ops['Softmax'] > 0 and pinned_ops['ReduceL2'] > 0
    assert pinned_ops['Conv'] == 0 and pinned_ops['ConvTranspose'] == 0
    assert any(is_top_level(name) and op == 'Add' for name, op in by_name.items())  # disp + delta


def test_checker_rejects_unsupported_and_custom_ops():
    with pytest.raises(EngineError) as caught:
        assert_trt_compatible(tiny_onnx_model('Unique'))
    assert "node '/network/Unique' (Unique): not supported by the TensorRT 10 ONNX parser" in str(caught.value)
    with pytest.raises(EngineError) as caught:
        assert_trt_compatible(tiny_onnx_model('GwcVolume', domain='com.example'))
    assert "custom-domain op 'com.example::GwcVolume' needs a TensorRT plugin" in str(caught.value)


def test_checker_flags_known_problem_patterns():
    warnings = []
    assert_trt_compatible(tiny_onnx_model('Einsum', attributes={'equation': 'bchw->bhwc'}), warnings.append)
    assert any('Einsum' in line and 'MatMul' in line for line in warnings)
    with pytest.raises(EngineError, match='ellipsis'):
        assert_trt_compatible(tiny_onnx_model('Einsum', attributes={'equation': '...c->c...'}))
    with pytest.raises(EngineError, match='pooling window of 130560'):
        assert_trt_compatible(tiny_onnx_model('MaxPool', attributes={'kernel_shape': [480, 272]}))
    six_d = check_trt_compatibility(reshape_model(6))
    assert [issue.severity for issue in six_d] == ['warning'] and 'rank 6' in six_d[0].message
    with pytest.raises(EngineError, match='rank 9'):
        assert_trt_compatible(reshape_model(9))


@pytest.mark.parametrize('height, width', [(150, 224), (160, 0), (-32, 64)])
def test_size_must_be_multiple_of_32(height, width):
    with pytest.raises(ConfigError, match='multiples of 32'):
        check_export_size(height, width)


def test_failed_verification_leaves_no_file(tmp_path, fixture_dir):
    output = tmp_path / 'bad.onnx'
    with pytest.raises(EngineError, match='does not reproduce PyTorch'):
        export_onnx(fixture_model(fixture_dir), str(output), 64, 64, max_disp=32, valid_iters=1,
                    tolerance=-1.0, log=lambda line: None)
    assert os.listdir(tmp_path) == []


def test_verification_pair_is_deterministic_and_textured():
    left, right = verification_pair(64, 96)
    again, _ = verification_pair(64, 96)
    assert left.shape == (64, 96, 3) and left.dtype == np.uint8 and np.array_equal(left, again)
    assert left.std() > 10 and not np.array_equal(left, right)


def test_layer_scale_folds_into_the_matmul_weights():
    """MatMul -> Add -> Mul(per-channel) becomes MatMul -> Add with scaled constants, same values."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from fast_foundation_stereo_ros.export.graph_compaction import fold_scales_into_matmuls
    generator = np.random.default_rng(0)
    weights = {'w': generator.normal(size=(4, 3)), 'b': generator.normal(size=3), 'g': generator.normal(size=3),
               'h': generator.normal(size=(3, 2))}
    nodes = [helper.make_node('MatMul', ['x', 'w'], ['m'], name='mm'),
             helper.make_node('Add', ['m', 'b'], ['a'], name='add'),
             helper.make_node('Mul', ['a', 'g'], ['s'], name='scale'),
             helper.make_node('MatMul', ['s', 'h'], ['y'], name='mm2')]
    initializers = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()]
    graph = helper.make_graph(nodes, 'fold', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2, 5, 4])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [2, 5, 2])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)
    feed = {'x': generator.normal(size=(2, 5, 4)).astype(np.float32)}

    def run(proto):
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=['CPUExecutionProvider'])
        return session.run(None, feed)[0]
    before = run(model)
    assert fold_scales_into_matmuls(model) == 1
    onnx.checker.check_model(model)
    assert [node.op_type for node in model.graph.node] == ['MatMul', 'Add', 'MatMul']
    assert np.allclose(before, run(model), atol=1e-5) and len(model.graph.initializer) == 3   # w*g, b*g, h
