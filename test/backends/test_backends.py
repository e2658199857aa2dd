"""Backend factory, ONNX Runtime / PyTorch backends through the shared pipeline, TensorRT skips."""
import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.backends import backend_kind, create_backend
from fast_foundation_stereo_ros.backends.onnx_runtime import OnnxRuntimeBackend, choose_providers
from fast_foundation_stereo_ros.backends.tensorrt_runtime import tensorrt_available
from fast_foundation_stereo_ros.errors import ConfigError, EngineError, InputError
from fast_foundation_stereo_ros.export.onnx_export import run_torch
from fast_foundation_stereo_ros.pipeline.image_fitting import plan_fit
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline

from ..export.helpers import (CHECKPOINT_NAME, EXPORT_HEIGHT, EXPORT_ITERS, EXPORT_MAX_DISP, EXPORT_WIDTH,
                              fixture_model, write_fake_engine)


@pytest.mark.parametrize('path, kind', [('sgbm', 'sgbm'), ('', 'sgbm'), ('m/ffs.engine', 'tensorrt'),
                                        ('m/ffs.PLAN', 'tensorrt'), ('m/ffs.onnx', 'onnxruntime'),
                                        ('m/model_best_bp2_serialize.pth', 'pytorch')])
def test_backend_kind_from_model_path(path, kind):
    assert backend_kind(path) == kind


def test_backend_kind_directory_override_and_unknown(tmp_path):
    assert backend_kind(str(tmp_path)) == 'pytorch'
    assert backend_kind('m/ffs.onnx', 'pytorch') == 'pytorch'
    with pytest.raises(ConfigError, match='cannot tell the backend'):
        backend_kind('m/weights.bin')


def test_factory_builds_onnxruntime_and_pytorch_backends(onnx_path, fixture_dir):
    backend = create_backend(onnx_path)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.name == 'onnxruntime'
    torch_backend = create_backend(str(fixture_dir / CHECKPOINT_NAME), max_disp=96, valid_iters=2)
    assert torch_backend.name == 'pytorch' and torch_backend.input_size is None
    assert torch_backend.size_multiple == 32 and torch_backend.max_disparity == 96.0


def test_onnxruntime_backend_reads_size_and_settings_from_graph(onnx_path):
    backend = OnnxRuntimeBackend(onnx_path)
    assert backend.input_size == (EXPORT_HEIGHT, EXPORT_WIDTH)
    assert backend.max_disparity == float(EXPORT_MAX_DISP)
    assert backend.providers == ['CPUExecutionProvider']
    assert backend.describe() == f'onnxruntime ({EXPORT_WIDTH}x{EXPORT_HEIGHT}, CPU, max_disp 192, 2 iterations)'
    with pytest.raises(InputError, match='run it through StereoPipeline'):
        backend.infer(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.uint8))


def test_onnxruntime_pipeline_rescales_disparity_to_camera_size(onnx_path, fixture_pair, fixture_dir):
    """Camera 224x160 -> graph 160x128 (letterbox): values scale by 224/160, size returns to the camera's."""
    left, right = fixture_pair
    pipeline = StereoPipeline(OnnxRuntimeBackend(onnx_path))
    disparity = pipeline.compute(left, right)
    assert disparity.shape == left.shape[:2] and disparity.dtype == np.float32
    assert set(pipeline.last_timings) == {'convert', 'infer', 'restore'}

    fit = plan_fit(left.shape[:2], (EXPORT_HEIGHT, EXPORT_WIDTH))
    network = fixture_model(fixture_dir).network
    at_input = run_torch(network, fit.apply(left), fit.apply(right), EXPORT_ITERS, EXPORT_MAX_DISP)
    scaled_h, scaled_w = fit.scaled_size
    top, _, left_pad, _ = fit.padding   # centred, as the official demo pads
    expected = cv2.resize(at_input[top:top + scaled_h, left_pad:left_pad + scaled_w],
                          (left.shape[1], left.shape[0]),
                          interpolation=cv2.INTER_NEAREST) * (left.shape[1] / scaled_w)
    assert abs(left.shape[1] / scaled_w - 1.4) < 1e-9
    assert np.abs(disparity - expected).max() <= 0.05 * 1.4


def test_onnxruntime_backend_refuses_missing_or_corrupt_file(tmp_path):
    with pytest.raises(EngineError, match='does not exist: create it with ffs-stereo export'):
        OnnxRuntimeBackend(str(tmp_path / 'none.onnx'))
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'not a protobuf')
    with pytest.raises(EngineError, match='ONNX Runtime cannot load'):
        OnnxRuntimeBackend(str(corrupt))


def test_provider_choice():
    available = ['CUDAExecutionProvider', 'CPUExecutionProvider']
    assert choose_providers('cuda:1', available)[0] == ('CUDAExecutionProvider', {'device_id': 1})
    assert choose_providers('cuda', ['CPUExecutionProvider']) == ['CPUExecutionProvider']
    assert choose_providers('cpu', available) == ['CPUExecutionProvider']


def test_torch_backend_matches_model_predict(fixture_dir, fixture_pair):
    left, right = fixture_pair
    backend = create_backend(str(fixture_dir / CHECKPOINT_NAME), max_disp=EXPORT_MAX_DISP, valid_iters=1)
    disparity = StereoPipeline(backend).compute(left, right)
    expected = fixture_model(fixture_dir).predict(left, right, valid_iters=1, max_disp=EXPORT_MAX_DISP)
    assert disparity.shape == left.shape[:2]
    assert np.abs(disparity - expected).max() < 1e-3  # 160x224 is already a multiple of 32: no padding


@pytest.mark.skipif(tensorrt_available(), reason='checks the behaviour without TensorRT')
def test_tensorrt_backend_without_tensorrt_is_a_clear_error(tmp_path):
    engine = write_fake_engine(tmp_path)
    with pytest.raises(EngineError, match='TensorRT is not installed'):
        create_backend(engine)


def test_tensorrt_backend_refuses_foreign_engine_on_gpu(tmp_path):
    pytest.importorskip('tensorrt', reason='TensorRT is not installed: needs a GPU device with TensorRT')
    engine = write_fake_engine(tmp_path)  # sidecar names a Jetson Orin + TensorRT 10.3.0
    with pytest.raises(EngineError, match='ffs-stereo build-engine'):
        create_backend(engine)


def test_onnx_runtime_without_cuda_provider_says_so_in_one_line(caplog):
    from fast_foundation_stereo_ros.backends.onnx_runtime import choose_providers
    with caplog.at_level('WARNING'):
        assert choose_providers('cuda', ['CPUExecutionProvider']) == ['CPUExecutionProvider']
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 and '\n' not in lines[0]
    assert "device 'cuda' asked for, but this onnxruntime has no CUDA provider" in lines[0]
    assert 'running on the CPU' in lines[0] and 'onnxruntime-gpu' in lines[0]
    caplog.clear()
    with caplog.at_level('WARNING'):
        assert choose_providers('cpu', ['CPUExecutionProvider']) == ['CPUExecutionProvider']
        assert choose_providers('cuda:1', ['CUDAExecutionProvider', 'CPUExecutionProvider'])[0] == (
            'CUDAExecutionProvider', {'device_id': 1})
    assert not caplog.records


def test_one_default_device_rule_for_node_and_cli():
    from fast_foundation_stereo_ros import defaults
    from fast_foundation_stereo_ros.cli import build_parser
    from fast_foundation_stereo_ros.ros.parameters import SPECS
    assert defaults.DEVICE == 'auto' and SPECS['device'].default == 'auto'
    parser = build_parser()
    for argv in (['infer', '--model', 'm', '--left', 'l', '--right', 'r', '--output', 'o.pfm'],
                 ['run', '--left', 'l', '--right', 'r', '--output', 'o'], ['demo']):
        assert parser.parse_args(argv).device == 'auto', argv
    import torch
    assert defaults.resolve_device('auto') == ('cuda' if torch.cuda.is_available() else 'cpu')
    assert defaults.resolve_device('cpu') == 'cpu'
