"""scripts/verify_gpu.py in --cpu-smoke mode: it runs on this CPU machine, reports the CUDA parts as skipped."""
import json
import os
import subprocess
import sys

from ..paths import REPO_ROOT

SCRIPT = REPO_ROOT / 'scripts' / 'verify_gpu.py'


def run_script(*args, out=None):
    environment = {**os.environ, 'PYTHONPATH': str(REPO_ROOT), 'CUDA_VISIBLE_DEVICES': ''}
    if out is not None:
        environment['OUT'] = str(out)
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_cpu_smoke_on_the_checkpoint_and_on_a_prepared_architecture(tmp_path, fixture_dir):
    prepared = tmp_path / 'prepared'
    result = run_script('--fixture', str(fixture_dir), '--prepare', str(prepared))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(prepared)) == ['architecture.json', 'left.png', 'reference.npz', 'right.png']
    assert os.path.getsize(prepared / 'architecture.json') < 1 << 20

    reports = {}
    for label, fixture in (('checkpoint', fixture_dir), ('architecture', prepared)):
        out = tmp_path / label
        out.mkdir()
        result = run_script('--cpu-smoke', '--fixture', str(fixture), out=out)
        assert result.returncode == 0, result.stderr
        assert 'network cuda fp32 vs cpu           skipped: no CUDA' in result.stdout
        assert 'cuda-python runtime                skipped: no CUDA' in result.stdout
        reports[label] = json.load(open(out / 'verify_gpu.json'))
    for report in reports.values():
        assert report['network cpu fp32']['shape'] == [64, 96] and report['network cpu fp32']['finite']
        assert report['latency 480x640'] == 'skipped: no CUDA'
        assert report['total seconds'] < 120
    assert reports['checkpoint']['weights'].startswith('fixture checkpoint ')
    assert reports['architecture']['weights'].endswith('with seeded random weights')
    # the same architecture with other weights computes something else
    assert reports['checkpoint']['network cpu fp32']['mean_px'] != reports['architecture']['network cpu fp32']['mean_px']


def test_missing_fixture_is_one_line_and_exit_2(tmp_path):
    result = run_script('--cpu-smoke', '--fixture', str(tmp_path))
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr.startswith(f'verify_gpu: error: no fixture in {tmp_path}: give --fixture DIR')
    assert result.stderr.count('\n') == 1
