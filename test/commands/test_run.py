"""`ffs-stereo run` on pairs and folders: outputs, intrinsics, and every bad-input case."""
import os
import stat

import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.files.disparity_files import read_disparity
from fast_foundation_stereo_ros.files.output_folders import MARKER
from fast_foundation_stereo_ros.files.ply import read_ply
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene

from ..offline.helpers import (expect_run_error, run_cli, to_encoding, write_calibration_pair, write_k_txt, write_pair,
                               write_rgb)


@pytest.fixture(scope='module')
def scene():
    return make_scene('plane', 160, 120, seed=4)


@pytest.fixture
def pair(tmp_path, scene):
    return write_pair(str(tmp_path), scene)


@pytest.mark.parametrize('fmt', ['pfm', 'png', 'npy'])
def test_pair_with_k_txt(tmp_path, capsys, scene, pair, fmt):
    out = tmp_path / 'out'
    k_txt = write_k_txt(tmp_path / 'K.txt', scene.camera)
    status, stdout, stderr = run_cli(capsys, 'run', '--left', pair[0], '--right', pair[1], '--output', out,
                                     '--intrinsics', k_txt, '--format', fmt)
    assert status == 0, stderr
    assert 'SGBM' in stderr and 'stereo pairs' in stderr  # announcement and progress bar
    assert sorted(os.listdir(out)) == sorted([MARKER, 'pair_left_cloud.ply', 'pair_left_depth.npy',
                                              'pair_left_confidence.npy', f'pair_left_disparity.{fmt}',
                                              'pair_left_disparity_color.png'])
    disparity = read_disparity(str(out / f'pair_left_disparity.{fmt}'))
    noc = scene.non_occluded & np.isfinite(disparity)
    assert np.abs(disparity - scene.disparity)[noc].mean() < 0.5
    depth = np.load(out / 'pair_left_depth.npy')
    assert np.nanmedian(np.abs(depth - scene.depth) / scene.depth) < 0.02
    points, _ = read_ply(str(out / 'pair_left_cloud.ply'))
    assert np.median(points[:, 2]) == pytest.approx(float(scene.depth[0, 0]), rel=0.02)


def test_pair_honours_the_node_geometry_options(tmp_path, capsys, scene, pair):
    """Depth range, decimation, colour and millimetre depth reach the files, as in the node."""
    k_txt = write_k_txt(tmp_path / 'K.txt', scene.camera)
    plain, limited = tmp_path / 'plain', tmp_path / 'limited'
    assert run_cli(capsys, 'run', '--left', pair[0], '--right', pair[1], '--output', plain, '--intrinsics', k_txt)[0] == 0
    depth = float(scene.depth[0, 0])
    status, _, stderr = run_cli(capsys, 'run', '--left', pair[0], '--right', pair[1], '--output', limited,
                                '--intrinsics', k_txt, '--min-depth', 0.9 * depth, '--max-depth', 1.1 * depth,
                                '--point-cloud-decimation', 4, '--no-color', '--depth-mm')
    assert status == 0, stderr
    full = np.load(plain / 'pair_left_depth.npy')
    cut = np.load(limited / 'pair_left_depth.npy')
    kept = (full >= 0.9 * depth) & (full <= 1.1 * depth)
    np.testing.assert_array_equal(cut[kept], full[kept])
    assert np.isnan(cut[~kept]).all() and kept.sum() > 100 and (~kept & np.isfinite(full)).any()
    millimetres = cv2.imread(str(limited / 'pair_left_depth_mm.png'), cv2.IMREAD_UNCHANGED)
    assert millimetres.dtype == np.uint16
    np.testing.assert_array_equal(millimetres == 0, np.isnan(cut))
    points, colours = read_ply(str(limited / 'pair_left_cloud.ply'))
    expected = cut[::4, ::4]
    assert len(points) == np.isfinite(expected).sum()
    np.testing.assert_allclose(np.sort(points[:, 2]), np.sort(expected[np.isfinite(expected)]))
    assert (colours == 255).all()   # no colour: white points
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', tmp_path / 'bad',
                              '--point-cloud-decimation', 0], 'point_cloud_decimation = 0 is invalid; allowed: an integer in 1..16')
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', tmp_path / 'bad',
                              '--disparity-color'], '--disparity-color applies to --bag input')
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', tmp_path / 'bad',
                              '--max-depth', -1], 'max_depth = -1.0 is invalid; allowed: 0 (no limit) or > min_depth')


def test_pair_without_intrinsics_writes_disparity_only(tmp_path, capsys, pair):
    status, _, stderr = run_cli(capsys, 'run', '--left', pair[0], '--right', pair[1], '--output', tmp_path / 'o',
                                '--no-confidence')
    assert status == 0
    assert sorted(os.listdir(tmp_path / 'o')) == [MARKER, 'pair_left_disparity.pfm',
                                                  'pair_left_disparity_color.png']
    assert 'no intrinsics given' in stderr


def test_folders_with_calibration_yaml_and_mixed_encodings(tmp_path, capsys):
    scenes = [make_scene('slanted', 160, 120, seed=s) for s in range(3)]
    left_dir, right_dir = tmp_path / 'L', tmp_path / 'R'
    left_dir.mkdir(), right_dir.mkdir()
    for index, s in enumerate(scenes):
        if index == 1:  # grey images on disk for one pair
            cv2.imwrite(str(left_dir / f'{index:03d}.png'), to_encoding(s.left, 'mono8'))
            cv2.imwrite(str(right_dir / f'{index:03d}.png'), to_encoding(s.right, 'mono8'))
        else:
            write_rgb(left_dir / f'{index:03d}.png', s.left)
            write_rgb(right_dir / f'{index:03d}.png', s.right)
    calib = write_calibration_pair(str(tmp_path), scenes[0])
    out = tmp_path / 'out'
    status, stdout, stderr = run_cli(capsys, 'run', '--left-dir', left_dir, '--right-dir', right_dir,
                                     '--output', out, '--calib-left', calib[0], '--calib-right', calib[1],
                                     '--no-cloud')
    assert status == 0, stderr
    assert 'processed 3 pair(s)' in stdout
    for index, s in enumerate(scenes):
        disparity = read_disparity(str(out / f'{index:03d}_disparity.pfm'))
        noc = s.non_occluded & np.isfinite(disparity)
        assert np.abs(disparity - s.disparity)[noc].mean() < 0.5
        assert (out / f'{index:03d}_depth.npy').exists()
    assert not any(name.endswith('.ply') for name in os.listdir(out))
    assert [name for name in os.listdir(out) if name.startswith('.')] == [MARKER]  # no staging left behind


def test_existing_outputs_replaced_only_by_a_complete_run(tmp_path, capsys, scene):
    left_dir, right_dir, out = tmp_path / 'L', tmp_path / 'R', tmp_path / 'out'
    for folder in (left_dir, right_dir, out):
        folder.mkdir()
    for name in ('a', 'b'):
        write_rgb(left_dir / f'{name}.png', scene.left)
        write_rgb(right_dir / f'{name}.png', scene.right)
    status, _, stderr = run_cli(capsys, 'run', '--left', left_dir / 'a.png', '--right', right_dir / 'a.png',
                                '--output', out, '--no-progress')   # an earlier output of ours
    assert status == 0, stderr
    (out / 'a_disparity.pfm').write_bytes(b'old result')
    (right_dir / 'b.png').write_bytes(b'not an image')  # the second pair fails
    # --fail-fast: the bad pair ends the run and nothing of the earlier output changes
    expect_run_error(capsys, ['--left-dir', left_dir, '--right-dir', right_dir, '--output', out, '--fail-fast'],
                     "cannot read right image", untouched=out)
    assert (out / 'a_disparity.pfm').read_bytes() == b'old result'
    # by default the bad pair is skipped and named; the good one is written; exit status 1
    status, stdout, stderr = run_cli(capsys, 'run', '--left-dir', left_dir, '--right-dir', right_dir,
                                     '--output', out, '--no-progress')
    assert status == 1, stderr
    assert 'processed 1 pair(s)' in stdout
    assert 'skipped 1 of 2 pair(s)' in stderr and f"  {left_dir / 'b.png'}: " in stderr
    assert "cannot read right image" in stderr and 'Traceback' not in stderr
    assert (out / 'a_disparity.pfm').read_bytes() != b'old result'
    assert not (out / 'b_disparity.pfm').exists()


def test_one_truncated_png_among_five_pairs_keeps_the_other_four(tmp_path, capsys, scene):
    left_dir, right_dir, out = tmp_path / 'L', tmp_path / 'R', tmp_path / 'out'
    left_dir.mkdir(), right_dir.mkdir()
    for index in range(5):
        write_rgb(left_dir / f'{index}.png', scene.left)
        write_rgb(right_dir / f'{index}.png', scene.right)
    data = (left_dir / '2.png').read_bytes()
    (left_dir / '2.png').write_bytes(data[:len(data) // 3])   # truncated
    status, stdout, stderr = run_cli(capsys, 'run', '--left-dir', left_dir, '--right-dir', right_dir,
                                     '--output', out, '--no-progress')
    assert status == 1, stderr
    assert 'processed 4 pair(s)' in stdout and 'skipped 1 of 5 pair(s)' in stderr
    assert str(left_dir / '2.png') in stderr
    assert sorted(name for name in os.listdir(out) if name.endswith('_disparity.pfm')) == \
        [f'{index}_disparity.pfm' for index in (0, 1, 3, 4)]
    # every pair bad: exit 2, one line, and no output folder left behind
    (right_dir / '0.png').write_bytes(b'x')
    expect_run_error(capsys, ['--left', left_dir / '2.png', '--right', right_dir / '0.png',
                              '--output', tmp_path / 'none'], 'all 1 pair(s) failed, nothing written')
    assert not (tmp_path / 'none').exists()


def test_unreadable_image(tmp_path, capsys, pair):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG garbage')
    out = tmp_path / 'out'
    assert run_cli(capsys, 'run', '--left', pair[0], '--right', pair[1], '--output', out)[0] == 0
    line = expect_run_error(capsys, ['--left', bad, '--right', pair[1], '--output', out], 'cannot read left image',
                            untouched=out)
    assert str(bad) in line
    expect_run_error(capsys, ['--left', tmp_path / 'none.png', '--right', pair[1], '--output', out],
                  'does not exist', untouched=out)


def test_size_mismatch(tmp_path, capsys, scene, pair):
    small = write_rgb(tmp_path / 'small.png', scene.right[:100, :150])
    line = expect_run_error(capsys, ['--left', pair[0], '--right', small, '--output', tmp_path / 'o'],
                         'is 160x120 but right image')
    assert '150x100' in line


def test_folder_count_mismatch(tmp_path, capsys, scene):
    left_dir, right_dir = tmp_path / 'L', tmp_path / 'R'
    left_dir.mkdir(), right_dir.mkdir()
    for name in ('a', 'b'):
        write_rgb(left_dir / f'{name}.png', scene.left)
    write_rgb(right_dir / 'a.png', scene.right)
    expect_run_error(capsys, ['--left-dir', left_dir, '--right-dir', right_dir, '--output', tmp_path / 'o'],
                  'holds 2 images but')


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere')
def test_unwritable_output_folder(tmp_path, capsys, pair):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', locked], 'not writable')
    finally:
        locked.chmod(stat.S_IRWXU)


def test_output_path_that_is_a_file(tmp_path, capsys, pair):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', blocker / 'sub'],
                  'cannot create output folder')
    assert blocker.read_text() == 'x'


def test_intrinsics_problems(tmp_path, capsys, scene, pair):
    zero = write_k_txt(tmp_path / 'K0.txt', scene.camera, baseline=0.0)
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', tmp_path / 'o', '--intrinsics', zero],
                  'baseline 0')
    calib = write_calibration_pair(str(tmp_path), make_scene('plane', 80, 60, seed=0))
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', tmp_path / 'o',
                           '--calib-left', calib[0], '--calib-right', calib[1]], 'is for 80x60 images')
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--output', tmp_path / 'o',
                           '--calib-left', calib[0]], 'go together')


def test_input_selection_errors(tmp_path, capsys, pair):
    expect_run_error(capsys, ['--left', pair[0]], 'go together')
    expect_run_error(capsys, ['--left', pair[0], '--right', pair[1], '--bag', tmp_path], 'exactly one input')
    expect_run_error(capsys, [], 'exactly one input')


def test_confidence_file_feeds_eval_and_min_confidence_invalidates(tmp_path, capsys):
    """run writes <stem>_confidence.npy beside the disparity; eval --confidence prints its deciles;
    --min-confidence makes the less confident pixels NaN."""
    scene = make_scene('mixed', 240, 180, seed=5)
    left, right = write_pair(str(tmp_path), scene)
    truth = str(tmp_path / 'truth.npy')
    np.save(truth, scene.disparity)
    assert run_cli(capsys, 'run', '--left', left, '--right', right, '--output', tmp_path / 'o',
                   '--format', 'npy')[0] == 0
    confidence = np.load(tmp_path / 'o' / 'pair_left_confidence.npy')
    disparity = read_disparity(str(tmp_path / 'o' / 'pair_left_disparity.npy'))
    assert confidence.shape == disparity.shape == (180, 240) and confidence.dtype == np.float32
    assert confidence.min() >= 0.0 and confidence.max() <= 1.0
    status, stdout, _ = run_cli(capsys, 'eval', '--pred', str(tmp_path / 'o' / 'pair_left_disparity.npy'),
                                '--gt', truth, '--confidence', str(tmp_path / 'o' / 'pair_left_confidence.npy'))
    rows = [line.split() for line in stdout.splitlines() if len(line.split()) == 5 and line.split()[0].isdigit()]
    assert status == 0 and [int(row[0]) for row in rows] == list(range(0, 100, 10))
    assert float(rows[-1][3]) < float(rows[0][3])           # the most confident 10 % err less than all
    assert run_cli(capsys, 'run', '--left', left, '--right', right, '--output', tmp_path / 'm', '--format', 'npy',
                   '--min-confidence', '0.5')[0] == 0
    thresholded = read_disparity(str(tmp_path / 'm' / 'pair_left_disparity.npy'))
    below = confidence < 0.5
    assert below.any() and np.isnan(thresholded[below]).all()
    np.testing.assert_array_equal(thresholded[~below], disparity[~below])
