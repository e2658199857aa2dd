"""build-engine, verify-engine, doctor and bench from the command line, on this machine (no TensorRT, no GPU)."""
import contextlib
import io
import json
import os

import pytest

from fast_foundation_stereo_ros.backends.engine_sidecar import sidecar_path
from fast_foundation_stereo_ros.backends.graph_io import INPUT_NAMES, OUTPUT_NAME
from fast_foundation_stereo_ros.backends.tensorrt_runtime import tensorrt_available
from fast_foundation_stereo_ros.cli import main
from fast_foundation_stereo_ros.commands import doctor
from fast_foundation_stereo_ros.export.onnx_export import ort_cpu_session

from ..backends.helpers import fake_tensorrt, install_fake_tensorrt
from ..export.helpers import EXPORT_HEIGHT, EXPORT_WIDTH, exported_fixture_onnx, write_fake_engine

needs_no_tensorrt = pytest.mark.skipif(tensorrt_available(), reason='checks the behaviour without TensorRT')


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@needs_no_tensorrt
def test_build_engine_without_tensorrt_exits_2_with_one_line_and_writes_nothing(tmp_path):
    output = tmp_path / 'engines'
    status, out, err = run_cli('build-engine', '--model', str(tmp_path / 'm.onnx'), '--output', str(output))
    assert status == 2 and out == ''
    assert err.count('\n') == 1 and err.startswith('ffs-stereo build-engine: error: TensorRT is not installed:')
    assert not output.exists()


@needs_no_tensorrt
def test_verify_engine_without_tensorrt_exits_2_with_one_line(tmp_path):
    engine = write_fake_engine(tmp_path)
    status, out, err = run_cli('verify-engine', engine)
    assert status == 2 and out == ''
    assert err.count('\n') == 1 and err.startswith('ffs-stereo verify-engine: error: TensorRT is not installed:')


def test_verify_engine_refuses_missing_or_damaged_engine_before_needing_tensorrt(tmp_path):
    status, _, err = run_cli('verify-engine', str(tmp_path / 'ffs_480x640_d192_i8_fp16_x_sm87_trt10.3.0.engine'))
    assert status == 2 and 'the engine file does not exist (nor its sidecar)' in err
    engine = write_fake_engine(tmp_path)
    with open(engine, 'ab') as stream:
        stream.write(b'x')
    status, _, err = run_cli('verify-engine', engine)
    assert status == 2 and 'engine_size mismatch' in err and err.count('\n') == 1


def test_verify_engine_without_a_reference_names_the_export_command(tmp_path, monkeypatch):
    install_fake_tensorrt(monkeypatch, fake_tensorrt())
    engine = write_fake_engine(tmp_path)
    status, _, err = run_cli('verify-engine', engine)
    assert status == 2
    assert (f"no reference graph for '{engine}': pass --reference-onnx MODEL.onnx, an fp32 graph from ffs-stereo "
            'export --precision fp32 --height 480 --width 640 --max-disp 192 --valid-iters 8') in err


@pytest.mark.parametrize('offset, expected_status', [(0.0, 0), (3.0, 1)])
def test_verify_engine_repeats_the_check(tmp_path, monkeypatch, tmp_path_factory, fixture_dir, offset,
                                         expected_status):
    reference = exported_fixture_onnx(tmp_path_factory, fixture_dir)[0]
    session = ort_cpu_session(reference)

    def engine_arithmetic(left, right):
        return session.run([OUTPUT_NAME], {INPUT_NAMES[0]: left, INPUT_NAMES[1]: right})[0] + offset
    install_fake_tensorrt(monkeypatch, fake_tensorrt('10.3.0', EXPORT_HEIGHT, EXPORT_WIDTH, engine_arithmetic))
    settings = {'height': EXPORT_HEIGHT, 'width': EXPORT_WIDTH, 'max_disp': 192, 'valid_iters': 2,
                'precision': 'fp32', 'source_model': reference}
    engine = write_fake_engine(tmp_path, settings=settings)
    record = json.load(open(sidecar_path(engine)))
    shapes = {'left': [1, 3, EXPORT_HEIGHT, EXPORT_WIDTH], 'right': [1, 3, EXPORT_HEIGHT, EXPORT_WIDTH],
              'disparity': [1, 1, EXPORT_HEIGHT, EXPORT_WIDTH]}
    for tensor in record['inputs'] + record['outputs']:
        tensor['shape'] = shapes[tensor['name']]
    record['reference_onnx'] = reference
    json.dump(record, open(sidecar_path(engine), 'w'))
    status, out, _ = run_cli('verify-engine', engine, '--runs', '2')
    assert status == expected_status
    assert f'engine vs ONNX Runtime CPU on fp32 graph {reference}:' in out
    assert 'latency plain     : p50' in out and 'over 2 runs' in out
    assert ('within tolerance' in out) is (offset == 0.0)
    assert ('BEYOND TOLERANCE: synthetic: mean abs 3.0000 px' in out) is (offset != 0.0)


# --- doctor ------------------------------------------------------------------------------------------

def test_doctor_json_on_this_machine():
    status, out, _ = run_cli('doctor', '--json')
    assert status == 0
    checks = {check['name']: check for check in json.loads(out)}
    assert list(checks)[:4] == ['gpu', 'cuda driver', 'torch', 'tensorrt']
    assert checks['onnxruntime']['status'] == 'ok' and 'CPUExecutionProvider' in checks['onnxruntime']['found']
    assert checks['torch']['found'].startswith(__import__('torch').__version__)
    if not tensorrt_available():
        assert checks['tensorrt']['status'] == 'missing'
        assert "pip install 'tensorrt>=10'" in checks['tensorrt']['fix']
        assert 'JetPack 6' in checks['tensorrt']['fix']
    for name in ('fastdds profile', 'allocator', 'ros', 'rmw', 'cuda-python', 'pycuda'):
        assert name in checks


def test_doctor_table_is_readable():
    status, out, _ = run_cli('doctor')
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ['check', 'status', 'found']
    assert any(line.startswith('onnxruntime') and ' ok ' in line for line in lines)


def test_doctor_bindings_vs_driver():
    too_new = doctor.bindings_check({'cuda-python': '13.0.3', 'cuda-bindings': '13.0.3'}, 12060)
    assert too_new.status == 'warn' and too_new.fix == "pip install 'cuda-python>=12.6,<13'"
    assert 'needs a newer driver than this one (CUDA 12.6): cudaErrorInsufficientDriver' in too_new.found
    matching = doctor.bindings_check({'cuda-python': '12.6.2'}, 12060)
    assert matching.status == 'ok' and matching.found == '12.6.2 (CUDA 12 line), matches driver CUDA 12.6'
    missing = doctor.bindings_check({}, 13000)
    assert missing.status == 'missing' and missing.fix == "pip install 'cuda-python>=13,<14'"


def test_doctor_fastdds_profile_and_allocator(tmp_path):
    profile = tmp_path / 'fastdds_large_messages.xml'
    profile.write_text('<dds/>')
    active = {'FASTDDS_DEFAULT_PROFILES_FILE': str(profile), 'MALLOC_MMAP_THRESHOLD_': '33554432',
              'MALLOC_TRIM_THRESHOLD_': '536870912'}
    assert doctor.fastdds_profile_check(active).status == 'ok'
    assert doctor.allocator_check(active).status == 'ok'
    unset = doctor.fastdds_profile_check({})
    assert unset.status == 'missing' and unset.fix.startswith('export FASTDDS_DEFAULT_PROFILES_FILE=')
    gone = doctor.fastdds_profile_check({'FASTDDS_DEFAULT_PROFILES_FILE': str(tmp_path / 'gone.xml')})
    assert gone.status == 'warn' and 'does not exist' in gone.found
    assert doctor.fastdds_profile_check({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}).status == 'info'
    half = doctor.allocator_check({'MALLOC_MMAP_THRESHOLD_': '33554432'})
    assert half.status == 'missing' and half.found.startswith('MALLOC_TRIM_THRESHOLD_=unset')
    assert half.fix == 'export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=536870912'


# --- bench ---------------------------------------------------------------------------------------------

def test_bench_rows_name_backend_and_device():
    status, out, _ = run_cli('bench', '--sizes', '64x96', '--backends', 'sgbm,tensorrt', '--runs', '2',
                             '--warmup', '0')
    assert status == 0
    rows = out.splitlines()
    assert any(row.startswith('sgbm on cpu ') for row in rows)
    if not tensorrt_available():
        assert any(row.startswith('tensorrt ') and 'skipped: TensorRT not installed' in row for row in rows)


def test_bench_with_an_engine_runs_tensorrt_at_its_size(tmp_path, monkeypatch):
    install_fake_tensorrt(monkeypatch, fake_tensorrt())
    engine = write_fake_engine(tmp_path)
    status, out, _ = run_cli('bench', '--model', engine, '--runs', '2', '--warmup', '0')
    assert status == 0
    table = out.split('latency per frame')[1].splitlines()
    assert table[1].split()[-1] == '480x640'
    assert table[2].startswith('tensorrt on cuda:0 (Orin (nvgpu))')
    assert os.path.isfile(engine)
