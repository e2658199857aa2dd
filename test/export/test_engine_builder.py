"""Engine build logic without a GPU (a stand-in `tensorrt` for both lines), and the real build where TensorRT exists."""
import json
import os
import types

import pytest

from fast_foundation_stereo_ros.backends.engine_sidecar import sidecar_path
from fast_foundation_stereo_ros.backends.graph_io import INPUT_NAMES, OUTPUT_NAME
from fast_foundation_stereo_ros.backends.tensorrt_runtime import tensorrt_available
from fast_foundation_stereo_ros.errors import ConfigError, EngineError
from fast_foundation_stereo_ros.export.engine_builder import (build_engine, build_serialized_engine,
                                                              check_requested_precision, choose_reference,
                                                              load_timing_cache, network_creation_flags, onnx_settings)
from fast_foundation_stereo_ros.export.onnx_export import ort_cpu_session

from ..backends.helpers import fake_tensorrt, install_fake_tensorrt
from .helpers import EXPORT_HEIGHT, EXPORT_ITERS, EXPORT_WIDTH, exported_fixture_onnx

needs_no_tensorrt = pytest.mark.skipif(tensorrt_available(), reason='checks the behaviour without TensorRT')


@pytest.fixture(scope='module')
def exported(tmp_path_factory, fixture_dir):
    return exported_fixture_onnx(tmp_path_factory, fixture_dir)[0]


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
    engine, sidecar = build_engine(exported, str(tmp_path))
    assert sidecar['height'] == EXPORT_HEIGHT and sidecar['strongly_typed']
    assert sidecar['verification']['passed']
    backend = TensorRTBackend(engine)
    assert backend.input_size == (EXPORT_HEIGHT, EXPORT_WIDTH)
    backend.warmup()
    backend.close()


# --- one builder for TensorRT 10 and 11 (stand-in tensorrt module) -----------------------------

def test_network_flags_strongly_typed_flag_on_10_none_on_11():
    flags = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5)
    assert network_creation_flags('10.3.0', flags) == 1 << 5
    assert network_creation_flags('10.13.2', flags) == 1 << 5
    assert network_creation_flags('11.1.0', None) == 0  # TensorRT 11 may not have the flag at all
    with pytest.raises(EngineError, match='TensorRT 8.6.1 is too old'):
        network_creation_flags('8.6.1', flags)


@pytest.mark.parametrize('version, flags', [('10.3.0', 1 << 5), ('11.1.0', 0)])
def test_build_is_strongly_typed_and_never_sets_weak_typing(version, flags):
    trt = fake_tensorrt(version, 128, 160)
    engine, io = build_serialized_engine(trt, 'model.onnx', workspace_gib=2, log=lambda line: None)
    assert engine == f'fake engine {version} 128x160'.encode()
    assert ('create_network', flags) in trt.record
    assert not [call for call in trt.record if call[0] == 'set_flag']  # no FP16 / OBEY_PRECISION_CONSTRAINTS
    assert ('set_memory_pool_limit', 'workspace', 2 << 30) in trt.record
    assert io['inputs'][0] == {'name': 'left', 'shape': [1, 3, 128, 160], 'dtype': 'float32'}
    assert io['outputs'] == [{'name': 'disparity', 'shape': [1, 1, 128, 160], 'dtype': 'float32'}]


def _timing_cache_run(trt, path):
    logs = []
    config = trt.Builder(None).create_builder_config()
    save = load_timing_cache(config, path, logs.append)
    return config, save, logs


def test_timing_cache_new_file_is_created_strictly(tmp_path):
    trt = fake_tensorrt()
    path = tmp_path / 'cache.bin'
    config, save, logs = _timing_cache_run(trt, str(path))
    assert save and logs == []
    assert [call for call in trt.record if call[0] == 'set_timing_cache'] == [('set_timing_cache', b'', False)]
    build_serialized_engine(trt, 'model.onnx', timing_cache=str(path), log=lambda line: None)
    assert path.read_bytes() == b'cache for 10.3.0'


def test_timing_cache_from_this_device_is_reused(tmp_path):
    trt = fake_tensorrt()
    path = tmp_path / 'cache.bin'
    path.write_bytes(b'cache for 10.3.0')
    config, save, logs = _timing_cache_run(trt, str(path))
    assert save and config.cache.data == b'cache for 10.3.0'
    assert logs == [f'timing cache {path}: reused']


def test_foreign_timing_cache_is_refused_fresh_cache_used_file_left_unchanged(tmp_path):
    trt = fake_tensorrt()
    path = tmp_path / 'cache.bin'
    path.write_bytes(b'foreign cache from an RTX 4090')
    logs = []
    build_serialized_engine(trt, 'model.onnx', timing_cache=str(path), log=logs.append)
    cache_calls = [call for call in trt.record if call[0] == 'set_timing_cache']
    assert cache_calls == [('set_timing_cache', b'foreign cache from an RTX 4090', False),
                           ('set_timing_cache', b'', False)]
    assert logs[0] == (f'timing cache {path} was refused (made by another GPU or TensorRT version, or damaged): '
                       f'building with a fresh cache; {path} is left unchanged (give another --timing-cache path '
                       'to keep one for this device)')
    assert path.read_bytes() == b'foreign cache from an RTX 4090'


def test_engine_precision_is_the_graphs():
    assert check_requested_precision('m.onnx', {'precision': 'fp16'}, None) == 'fp16'
    assert check_requested_precision('m.onnx', {}, None) == 'fp32'  # exports before the key existed
    assert check_requested_precision('m.onnx', {'precision': 'fp32'}, 'fp32') == 'fp32'
    with pytest.raises(ConfigError) as caught:
        check_requested_precision('m.onnx', {'precision': 'fp32'}, 'fp16')
    assert str(caught.value) == ("'m.onnx' is an fp32 graph and an engine has its graph's precision: omit "
                                 '--precision, or export an fp16 graph with ffs-stereo export --precision fp16')


def test_reference_choice(tmp_path, exported):
    assert choose_reference('m.onnx', 'fp32') == ('m.onnx', 'fp32', '')
    assert choose_reference('m16.onnx', 'fp16', exported_reference='m32.onnx') == ('m32.onnx', 'fp32', '')
    path, precision, note = choose_reference('m16.onnx', 'fp16')
    assert (path, precision) == ('m16.onnx', 'fp16') and '--reference-onnx' in note
    assert choose_reference('m16.onnx', 'fp16', exported) == (exported, 'fp32', '')
    with pytest.raises(ConfigError, match='--reference-onnx .* does not exist'):
        choose_reference('m16.onnx', 'fp16', str(tmp_path / 'missing.onnx'))


def _onnx_engine(path, offset=0.0):
    """The stand-in engine's arithmetic: ONNX Runtime on the real graph, plus `offset` px."""
    session = ort_cpu_session(path)

    def compute(left, right):
        return session.run([OUTPUT_NAME], {INPUT_NAMES[0]: left, INPUT_NAMES[1]: right})[0] + offset
    return compute


def test_build_checks_the_engine_then_writes_it_with_its_verification(tmp_path, monkeypatch, exported):
    trt = install_fake_tensorrt(monkeypatch, fake_tensorrt('11.1.0', EXPORT_HEIGHT, EXPORT_WIDTH,
                                                           _onnx_engine(exported, 0.01)))
    output = tmp_path / 'engines'
    output.mkdir()
    logs = []
    engine, sidecar = build_engine(exported, str(output), runs=3, log=logs.append)
    assert os.path.basename(engine) == f'ffs_{EXPORT_HEIGHT}x{EXPORT_WIDTH}_d192_i{EXPORT_ITERS}_fp32_orin-nvgpu_sm87_trt11.1.0.engine'
    assert sorted(os.listdir(output)) == sorted([os.path.basename(engine), os.path.basename(sidecar_path(engine))])
    stored = json.load(open(sidecar_path(engine)))
    assert stored == sidecar
    verification = stored['verification']
    assert verification['passed'] and stored['precision'] == 'fp32' and stored['builder_path'] == 'strongly-typed'
    synthetic = verification['pairs']['synthetic']
    assert abs(synthetic['mean_abs_px'] - 0.01) < 1e-4 and synthetic['over_1px_share'] == 0.0
    assert verification['pairs']['cuda graph']['max_abs_px'] == 0.0
    assert verification['latency']['plain']['runs'] == 3 and verification['latency']['cuda_graph']['runs'] == 3
    assert verification['reference'] == {'onnx': exported, 'precision': 'fp32', 'provider': 'ONNX Runtime CPU'}
    assert stored['reference_onnx'] == os.path.abspath(exported)
    assert any(line.startswith('  synthetic    max abs 0.01') for line in logs)
    assert not [call for call in trt.record if call[0] == 'set_flag']


def test_engine_beyond_tolerance_is_not_written_unless_accepted(tmp_path, monkeypatch, exported):
    install_fake_tensorrt(monkeypatch, fake_tensorrt('10.3.0', EXPORT_HEIGHT, EXPORT_WIDTH,
                                                     _onnx_engine(exported, 1.5)))
    output = tmp_path / 'engines'
    output.mkdir()
    (output / 'keep.txt').write_text('user file')
    with pytest.raises(EngineError) as caught:
        build_engine(exported, str(output), runs=1, log=lambda line: None)
    message = str(caught.value)
    assert message.startswith('the engine is beyond tolerance of the reference (synthetic: mean abs 1.5000 px > '
                              '0.1 px; synthetic: 100.00% of pixels off by > 1 px (limit 0.50%)): no engine was '
                              'written')
    assert '--accept-out-of-tolerance' in message
    assert os.listdir(output) == ['keep.txt']
    logs = []
    engine, sidecar = build_engine(exported, str(output), runs=1, accept_out_of_tolerance=True, log=logs.append)
    assert os.path.isfile(engine) and sidecar['verification']['accepted_out_of_tolerance']
    assert not sidecar['verification']['passed']
    assert any(line.startswith('WARNING: keeping an engine BEYOND TOLERANCE') for line in logs)
    assert (output / 'keep.txt').read_text() == 'user file'


def test_build_from_checkpoint_keeps_the_fp32_reference_for_verify_engine(tmp_path, monkeypatch, exported,
                                                                         fixture_dir):
    from fast_foundation_stereo_ros.cli import main

    from .helpers import CHECKPOINT_NAME, EXPORT_MAX_DISP
    install_fake_tensorrt(monkeypatch, fake_tensorrt('10.3.0', EXPORT_HEIGHT, EXPORT_WIDTH, _onnx_engine(exported)))
    checkpoint = str(fixture_dir / CHECKPOINT_NAME)
    output = tmp_path / 'engines'
    output.mkdir()
    engine, sidecar = build_engine(checkpoint, str(output), EXPORT_HEIGHT, EXPORT_WIDTH, EXPORT_MAX_DISP,
                                   EXPORT_ITERS, precision='fp32', runs=1, log=lambda line: None)
    stem = os.path.splitext(os.path.basename(engine))[0]
    kept = output / (stem + '.reference_fp32.onnx')
    assert sorted(os.listdir(output)) == sorted([stem + '.engine', stem + '.json', kept.name])
    assert sidecar['reference_onnx'] == str(kept) == sidecar['verification']['reference']['onnx']
    assert sidecar['verification']['passed'] and sidecar['source_model'] == checkpoint
    assert sidecar['verification']['pairs']['synthetic']['max_abs_px'] < 1e-3  # same network, same size
    assert main(['verify-engine', engine, '--runs', '1']) == 0
