"""Helpers for the export / engine / backend tests (no TensorRT needed).

The fixture checkpoint is exported once per test session (shared across
test modules through `exported_fixture_onnx`), at a small size and few
iterations so the whole set stays fast on two cores.
"""
import contextlib
import io
import os

import numpy as np

from fast_foundation_stereo_ros.backends.engine_sidecar import (DeviceFingerprint, engine_stem, make_sidecar,
                                                                write_sidecar)

EXPORT_HEIGHT, EXPORT_WIDTH = 128, 160
EXPORT_ITERS = 2
EXPORT_MAX_DISP = 192
#: the fp16 export is checked on the fixture pair itself (160x224)
FP16_HEIGHT, FP16_WIDTH = 160, 224
CHECKPOINT_NAME = 'model_best_bp2_serialize.pth'

_SESSION_CACHE = {}


def exported_fixture_onnx(tmp_path_factory, fixture_dir, precision='fp32'):
    """(onnx path, CLI stdout) of `ffs-stereo export --precision P` on the fixture checkpoint, made once.

    fp32: at EXPORT_HEIGHT x EXPORT_WIDTH; fp16: at the fixture pair's own size.
    """
    if precision not in _SESSION_CACHE:
        from fast_foundation_stereo_ros.cli import main
        height, width = (FP16_HEIGHT, FP16_WIDTH) if precision == 'fp16' else (EXPORT_HEIGHT, EXPORT_WIDTH)
        path = str(tmp_path_factory.mktemp('onnx_export') / f'ffs_fixture_{precision}.onnx')
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            status = main(['export', '--model', str(fixture_dir / CHECKPOINT_NAME),
                           '--height', str(height), '--width', str(width),
                           '--max-disp', str(EXPORT_MAX_DISP), '--valid-iters', str(EXPORT_ITERS),
                           '--precision', precision, '--output', path])
        assert status == 0, output.getvalue()
        _SESSION_CACHE[precision] = (path, output.getvalue())
    return _SESSION_CACHE[precision]


def fixture_model(fixture_dir):
    """The fixture checkpoint loaded on CPU, once per session."""
    if 'model' not in _SESSION_CACHE:
        from fast_foundation_stereo_ros.loading.stereo_model import load_model
        _SESSION_CACHE['model'] = load_model(str(fixture_dir / CHECKPOINT_NAME), device='cpu')
    return _SESSION_CACHE['model']


def tiny_onnx_model(op_type='Relu', domain='', rank=4, attributes=None):
    """A one-node float graph x -> op -> y (ir/opset pinned so onnx.checker accepts it)."""
    from onnx import TensorProto, helper
    shape = [1, 2, 3, 4, 5, 6, 7, 8, 9][:rank]
    node = helper.make_node(op_type, ['x'], ['y'], name=f'/network/{op_type}', domain=domain,
                            **(attributes or {}))
    graph = helper.make_graph([node], 'tiny', [helper.make_tensor_value_info('x', TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    opsets = [helper.make_opsetid('', 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def reshape_model(rank):
    """x (1x2x3x4) reshaped to a rank-`rank` tensor of ones-padded shape."""
    from onnx import TensorProto, helper, numpy_helper
    target = [1, 2, 3, 4] + [1] * (rank - 4)
    shape = numpy_helper.from_array(np.array(target, np.int64), 'shape')
    node = helper.make_node('Reshape', ['x', 'shape'], ['y'], name='/network/Reshape')
    graph = helper.make_graph([node], 'reshape', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)], [shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)


# --- synthetic engines (no TensorRT) -------------------------------------------------------------

ORIN = DeviceFingerprint('Orin (nvgpu)', '8.7', '10.3.0', '12.6')

SETTINGS = {'height': 480, 'width': 640, 'max_disp': 192, 'valid_iters': 8, 'precision': 'fp16',
            'source_model': '/models/23-36-37/model_best_bp2_serialize.pth'}

IO_TENSORS = {'inputs': [{'name': 'left', 'shape': [1, 3, 480, 640], 'dtype': 'float32'},
                         {'name': 'right', 'shape': [1, 3, 480, 640], 'dtype': 'float32'}],
              'outputs': [{'name': 'disparity', 'shape': [1, 1, 480, 640], 'dtype': 'float32'}]}


#: the I/O of an engine built from a graph exported with confidence
IO_TENSORS_WITH_CONFIDENCE = {
    'inputs': IO_TENSORS['inputs'],
    'outputs': IO_TENSORS['outputs'] + [{'name': 'confidence', 'shape': [1, 1, 480, 640], 'dtype': 'float32'}]}


def write_fake_engine(directory, fingerprint=ORIN, settings=SETTINGS, payload=b'fake engine bytes' * 64,
                      io_tensors=IO_TENSORS):
    """An engine-shaped file plus a genuine sidecar, as build_engine writes them."""
    stem = engine_stem(settings['height'], settings['width'], settings['max_disp'], settings['valid_iters'],
                       settings['precision'], fingerprint)
    engine_path = os.path.join(str(directory), stem + '.engine')
    with open(engine_path, 'wb') as stream:
        stream.write(payload)
    record = make_sidecar(engine_path, fingerprint, settings, io_tensors, {'build_time': 'test'})
    write_sidecar(engine_path, record)
    return engine_path
