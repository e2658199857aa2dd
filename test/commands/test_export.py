"""`ffs-stereo export`, `build-engine`, `bench` and ONNX/SGBM prediction from the command line."""
import os
import re

import numpy as np
import pytest

from fast_foundation_stereo_ros.backends.tensorrt_runtime import tensorrt_available
from fast_foundation_stereo_ros.cli import main
from fast_foundation_stereo_ros.commands.infer import load_predictor
from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.pipeline.predictor import PipelinePredictor

from ..export.helpers import EXPORT_HEIGHT, EXPORT_ITERS, EXPORT_WIDTH, exported_fixture_onnx


@pytest.fixture(scope='module')
def onnx_export(tmp_path_factory, fixture_dir):
    return exported_fixture_onnx(tmp_path_factory, fixture_dir)


def test_export_command_writes_verified_graph(onnx_export):
    path, output = onnx_export
    assert os.path.getsize(path) > 10_000_000
    match = re.search(r'max abs ([0-9.]+) px, mean abs ([0-9.]+) px', output)
    assert match and float(match.group(1)) <= 0.05
    assert f'exported {EXPORT_HEIGHT}x{EXPORT_WIDTH}, max_disp 192, {EXPORT_ITERS} iterations' in output


def test_export_rejects_bad_size_without_writing(tmp_path, fixture_dir, capsys):
    output = tmp_path / 'model.onnx'
    status = main(['export', '--model', str(fixture_dir / 'model_best_bp2_serialize.pth'), '--height', '100',
                   '--width', '160', '--output', str(output)])
    assert status == 2 and os.listdir(tmp_path) == []
    assert 'multiples of 32' in capsys.readouterr().err


def test_export_rejects_non_onnx_output(tmp_path, fixture_dir, capsys):
    status = main(['export', '--model', str(fixture_dir / 'model_best_bp2_serialize.pth'), '--height', '64',
                   '--width', '64', '--output', str(tmp_path / 'model.bin')])
    assert status == 2 and 'must end with .onnx' in capsys.readouterr().err


@pytest.mark.skipif(tensorrt_available(), reason='checks the behaviour without TensorRT')
def test_build_engine_without_tensorrt_exits_2_and_leaves_nothing(tmp_path, fixture_dir, capsys):
    output = tmp_path / 'engines'
    status = main(['build-engine', '--model', str(fixture_dir / 'model_best_bp2_serialize.pth'),
                   '--height', '160', '--width', '224', '--output', str(output)])
    assert status == 2 and not output.exists() and os.listdir(tmp_path) == []
    err = capsys.readouterr().err
    assert 'TensorRT is not installed' in err and 'pip install tensorrt' in err


@pytest.mark.skipif(tensorrt_available(), reason='checks the behaviour without TensorRT')
def test_build_engine_console_script_entry_point(tmp_path, capsys):
    from fast_foundation_stereo_ros.commands.build_engine import main as build_engine_main
    assert build_engine_main(['--model', 'x.onnx', '--output', str(tmp_path / 'out')]) == 2
    assert 'TensorRT is not installed' in capsys.readouterr().err


def test_onnx_model_predicts_at_camera_size(onnx_export, fixture_dir):
    reference = np.load(fixture_dir / 'reference.npz')
    predictor = load_predictor(onnx_export[0])
    assert isinstance(predictor, PipelinePredictor)
    disparity = predictor.predict(reference['left'], reference['right'])
    assert disparity.shape == reference['left'].shape[:2] and np.isfinite(disparity).all()
    with pytest.raises(ConfigError, match='built with valid_iters 2, not 8'):
        predictor.predict(reference['left'], reference['right'], valid_iters=8)


def test_sgbm_predictor_honours_max_disp(fixture_dir):
    reference = np.load(fixture_dir / 'reference.npz')
    predictor = load_predictor('sgbm')
    disparity = predictor.predict(reference['left'], reference['right'], max_disp=64)
    assert disparity.shape == reference['left'].shape[:2]
    assert predictor.describe().startswith('sgbm')


def test_bench_command_prints_table(capsys):
    status = main(['bench', '--sizes', '64x96,32x64', '--backends', 'sgbm,tensorrt', '--runs', '2'])
    output = capsys.readouterr().out
    assert status == 0
    assert re.search(r'sgbm on cpu\s+[0-9.]+ /\s+[0-9.]+\s+[0-9.]+ /', output)
    if not tensorrt_available():
        assert 'skipped: TensorRT not installed' in output
    assert 'convert' in output and 'restore' in output


def test_infer_command_runs_onnx_graph(onnx_export, fixture_dir, tmp_path, capsys):
    output = tmp_path / 'disparity.npy'
    status = main(['infer', '--model', onnx_export[0], '--left', str(fixture_dir / 'left.png'),
                   '--right', str(fixture_dir / 'right.png'), '--output', str(output)])
    assert status == 0, capsys.readouterr().err
    disparity = np.load(output)
    assert disparity.shape == (160, 224) and disparity.dtype == np.float32
