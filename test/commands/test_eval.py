"""`ffs-stereo eval` on files (PFM / KITTI PNG / npy, masks) and on synthetic scenes."""
import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.files.disparity_files import write_disparity

from ..offline.helpers import error_lines, run_cli


def _row(stdout, label):
    line = next(line for line in stdout.splitlines() if line.startswith(label))
    return [float(value) for value in line[len(label):].split()]


@pytest.fixture
def files(tmp_path):
    truth = np.full((20, 30), 16.0, np.float32)
    truth[0, :] = np.nan                      # no ground truth in the first row
    prediction = truth + 0.5
    prediction[5, :10] = 30.0                 # 10 gross errors (14 px)
    occlusion = np.zeros(truth.shape, np.uint8)
    occlusion[5, :10] = 255                   # ... all in the occluded region
    paths = {}
    for name, ext in (('gt', '.pfm'), ('gt', '.png'), ('gt', '.npy')):
        paths[name + ext] = str(tmp_path / f'{name}{ext}')
        write_disparity(paths[name + ext], truth)
    paths['pred'] = str(tmp_path / 'pred.pfm')
    write_disparity(paths['pred'], prediction)
    paths['occ'] = str(tmp_path / 'occ.png')
    cv2.imwrite(paths['occ'], occlusion)
    paths['noc'] = str(tmp_path / 'noc.png')
    cv2.imwrite(paths['noc'], np.where(occlusion > 0, 128, 255).astype(np.uint8))
    return paths


@pytest.mark.parametrize('gt', ['gt.pfm', 'gt.png', 'gt.npy'])
def test_file_metrics_for_every_ground_truth_format(files, capsys, gt):
    status, stdout, _ = run_cli(capsys, 'eval', '--pred', files['pred'], '--gt', files[gt],
                                '--mask-occ', files['occ'])
    assert status == 0
    epe, bad1, bad2, bad3, d1, density, pixels = _row(stdout, 'all valid')
    assert pixels == 19 * 30
    assert bad3 == pytest.approx(100 * 10 / 570, abs=0.01) and d1 == pytest.approx(bad3)
    assert epe == pytest.approx((560 * 0.5 + 10 * 14.0) / 570, abs=1e-3)
    noc = _row(stdout, 'non-occluded')
    assert noc[0] == pytest.approx(0.5, abs=1e-3) and noc[3] == 0.0 and noc[6] == 560


def test_middlebury_noc_mask(files, capsys):
    status, stdout, _ = run_cli(capsys, 'eval', '--pred', files['pred'], '--gt', files['gt.pfm'],
                                '--mask-noc', files['noc'])
    assert status == 0 and _row(stdout, 'non-occluded')[3] == 0.0


def test_scene_evaluation(capsys):
    status, stdout, stderr = run_cli(capsys, 'eval', '--model', 'sgbm', '--scene', 'slanted',
                                     '--width', 320, '--height', 240)
    assert status == 0
    assert 'SGBM' in stderr
    epe, bad1, bad2 = _row(stdout, 'non-occluded')[:3]
    assert epe < 0.25 and bad2 < 0.8


@pytest.mark.parametrize('args, message', [
    (['--pred', 'missing.pfm', '--gt', 'missing.pfm'], 'does not exist'),
    (['--gt', 'x.pfm'], 'give --pred and --gt'),
    (['--scene', 'plane', '--pred', 'x.pfm'], 'not both'),
])
def test_bad_arguments(capsys, args, message):
    status, _, stderr = run_cli(capsys, 'eval', *args)
    assert status == 2
    assert len(error_lines(stderr)) == 1 and message in stderr


def test_mask_size_mismatch(files, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((5, 5), np.uint8))
    status, _, stderr = run_cli(capsys, 'eval', '--pred', files['pred'], '--gt', files['gt.pfm'],
                                '--mask-occ', tmp_path / 'small.png')
    assert status == 2 and '5x5' in stderr


def test_confidence_file_prints_the_sparsification_deciles(files, tmp_path, capsys):
    truth = np.full((20, 30), 16.0, np.float32)
    error = np.tile(np.linspace(0.0, 5.9, 30, dtype=np.float32), (20, 1))     # 0 .. 5.9 px by column
    write_disparity(str(tmp_path / 'pred.npy'), truth + error)
    np.save(tmp_path / 'confidence.npy', (1.0 - error / 6.0).astype(np.float32))   # the larger, the less sure
    status, stdout, _ = run_cli(capsys, 'eval', '--pred', str(tmp_path / 'pred.npy'), '--gt', files['gt.npy'],
                                '--confidence', str(tmp_path / 'confidence.npy'))
    assert status == 0 and 'sparsification' in stdout
    rows = [[float(value) for value in line.split()] for line in stdout.splitlines()
            if line.strip() and line.split()[0].isdigit() and len(line.split()) == 5]
    assert [row[0] for row in rows] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    epe = [row[3] for row in rows]
    assert epe == sorted(epe, reverse=True) and epe[0] == pytest.approx(2.95, abs=1e-3)
    assert rows[0][2] == 19 * 30 and rows[-1][4] == 0.0 and rows[0][4] > 40


def test_confidence_must_be_an_array_file(files, capsys):
    status, _, stderr = run_cli(capsys, 'eval', '--pred', files['pred'], '--gt', files['gt.npy'],
                                '--confidence', files['occ'])
    assert status == 2 and error_lines(stderr) == [
        f"ffs-stereo eval: error: --confidence '{files['occ']}' must be a .npy or .pfm file "
        '(what ffs-stereo run writes)']
