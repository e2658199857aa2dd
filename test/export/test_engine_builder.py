"""Engine build logic that needs no GPU, and the real build where TensorRT exists."""
import types

import pytest

from fast_foundation_stereo_ros.backends.tensorrt_runtime import tensorrt_available
from fast_foundation_stereo_ros.errors import ConfigError, EngineError
from fast_foundation_stereo_ros.export.engine_builder import (_network_flags, build_engine, onnx_settings,
                                                              pin_fp32_layers)

from .helpers import EXPORT_HEIGHT, EXPORT_ITERS, EXPORT_WIDTH, FakeLayer, FakeNetwork, exported_fixture_onnx, fake_trt

needs_no_tensorrt = pytest.mark.skipif(tensorrt_available(), reason='checks the behaviour without TensorRT')


@pytest.fixture(scope='module')
def exported(tmp_path_factory, fixture_dir):
    return exported_fixture_onnx(tmp_path_factory, fixture_dir)[0]


def test_pinning_matches_names_and_tensors_and_skips_integer_layers():
    trt = fake_trt()
    layers = [
        FakeLayer('/network/Add_3', 'elementwise', [('/network/Add_3_output_0', 'float32')]),
        FakeLayer('renamed_by_parser', 'gather', [('/network/GatherElements_output_0', 'float32')]),
        FakeLayer('/network/Cast_7', 'cast', [('/network/Cast_7_output_0', 'int32')]),
        FakeLayer('/network/Constant_1', 'constant', [('/network/Constant_1_output_0', 'float32')]),
        FakeLayer('/network/feature/stem/Conv', 'conv', [('/network/feature/stem/Conv_output_0', 'float32')]),
    ]
    pinned = pin_fp32_layers(trt, FakeNetwork(layers),
                             {'/network/Add_3', '/network/Cast_7', '/network/Constant_1'},
                             {'/network/GatherElements_output_0'})
    assert pinned == 2
    assert [layer.precision for layer in layers] == ['float32', 'float32', None, None, None]
    assert layers[0].output_types == {0: 'float32'} and layers[2].output_types == {}


def test_explicit_batch_flag_only_before_tensorrt_10():
    flag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    assert _network_flags(types.SimpleNamespace(__version__='10.3.0', NetworkDefinitionCreationFlag=flag)) == 0
    assert _network_flags(types.SimpleNamespace(__version__='8.6.1', NetworkDefinitionCreationFlag=flag)) == 1


def test_onnx_settings_come_from_metadata_and_must_agree(exported):
    settings, metadata = onnx_settings(exported)
    assert settings == {'height': EXPORT_HEIGHT, 'width': EXPORT_WIDTH, 'max_disp': 192, 'valid_iters': EXPORT_ITERS}
    assert len(metadata['source_sha256']) == 64
    with pytest.raises(ConfigError, match='exported with height 128, not 256'):
        onnx_settings(exported, height=256)


@needs_no_tensorrt
@pytest.mark.parametrize('model', ['ffs.pth', 'model.onnx'])
def test_build_without_tensorrt_fails_clearly_and_writes_nothing(tmp_path, model):
    output = tmp_path / 'engines'
    with pytest.raises(EngineError) as caught:
        build_engine(str(tmp_path / model), str(output), 160, 224)
    message = str(caught.value)
    assert message.startswith('TensorRT is not installed:')
    assert 'install it on the target device (JetPack / pip install tensorrt) and run this command there' in message
    assert not output.exists()


def test_real_engine_build_on_gpu(tmp_path, exported):
    pytest.importorskip('tensorrt', reason='TensorRT is not installed: engine build runs only on a GPU device')
    from fast_foundation_stereo_ros.backends.tensorrt import TensorRTBackend
    engine, sidecar = build_engine(exported, str(tmp_path), precision='fp16')
    assert sidecar['height'] == EXPORT_HEIGHT and sidecar['fp32_pinned_layers'] > 0
    backend = TensorRTBackend(engine)
    assert backend.input_size == (EXPORT_HEIGHT, EXPORT_WIDTH)
    backend.warmup()
    backend.close()
