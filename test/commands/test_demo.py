"""`ffs-stereo demo`: the default job end to end, on a small scene."""
import os

import cv2
import numpy as np

from fast_foundation_stereo_ros.files.disparity_files import read_disparity
from fast_foundation_stereo_ros.files.output_folders import MARKER
from fast_foundation_stereo_ros.files.ply import read_ply
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene

from ..offline.helpers import run_cli, tree_snapshot

EXPECTED_FILES = {'left.png', 'right.png', 'disparity.pfm', 'disparity.png', 'disparity_color.png',
                  'depth.npy', 'depth_color.png', 'cloud.ply', 'gt_disparity.pfm', 'gt_occlusion.png'}


def _metric_row(stdout, label):
    line = next(line for line in stdout.splitlines() if line.startswith(label))
    return [float(value) for value in line[len(label):].split()]


def test_demo_writes_outputs_and_reports_accuracy(tmp_path, capsys):
    out = tmp_path / 'demo'
    status, stdout, stderr = run_cli(capsys, 'demo', '--output', out, '--width', 320, '--height', 240,
                                     '--seed', 0)
    assert status == 0, stderr
    assert 'no checkpoint given: using the classical OpenCV SGBM backend (not Fast-FoundationStereo)' in stderr
    assert set(os.listdir(out)) == EXPECTED_FILES | {MARKER}
    epe, bad1, bad2, bad3, d1, density, pixels = _metric_row(stdout, 'non-occluded')
    assert epe < 0.25 and bad2 < 2.0 and density > 99.0 and pixels > 0.9 * 320 * 240
    assert 'timings:' in stdout and 'infer' in stdout

    scene = make_scene('mixed', 320, 240, seed=0)
    disparity = read_disparity(str(out / 'disparity.pfm'))
    assert disparity.shape == (240, 320)
    np.testing.assert_allclose(read_disparity(str(out / 'disparity.png')), disparity, atol=1 / 256, equal_nan=True)
    assert np.array_equal(read_disparity(str(out / 'gt_disparity.pfm')), scene.disparity)
    depth = np.load(out / 'depth.npy')
    valid = np.isfinite(depth)
    np.testing.assert_allclose(depth[valid] * disparity[valid], scene.camera.focal_baseline, rtol=1e-5)
    assert np.array_equal(cv2.imread(str(out / 'left.png'))[:, :, ::-1], scene.left)
    occlusion = cv2.imread(str(out / 'gt_occlusion.png'), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(occlusion > 0, scene.occlusion)

    points, colours = read_ply(str(out / 'cloud.ply'))
    assert len(points) == valid.sum()
    assert np.all(np.isfinite(points)) and np.all(points[:, 2] > 0)
    np.testing.assert_allclose(np.sort(points[:, 2]), np.sort(depth[valid]), rtol=1e-6)
    assert colours.dtype == np.uint8 and colours.shape == points.shape


def test_demo_replaces_output_only_on_success(tmp_path, capsys):
    out = tmp_path / 'demo'
    out.mkdir()
    (out / 'keep.txt').write_text('previous run')
    before = tree_snapshot(out)
    status, _, stderr = run_cli(capsys, 'demo', '--output', out, '--width', 160, '--height', 120,
                                '--max-disp', 20)  # not a multiple of 16: fails before writing
    assert status == 2
    assert len([line for line in stderr.splitlines() if 'error' in line]) == 1
    assert 'multiple of 16' in stderr
    assert tree_snapshot(out) == before
