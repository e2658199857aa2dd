"""Written files keep the datasets' conventions: x_l - x_r, Middlebury calib.txt and doffs, 8-bit
ground truth with 0 = unknown, no silent clipping in 16-bit PNG."""
import re

import cv2
import numpy as np
import pytest
import yaml

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.files.disparity_files import read_disparity, write_disparity
from fast_foundation_stereo_ros.geometry.intrinsics import camera_from_calibration_yaml, camera_from_middlebury_calib
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene

from .helpers import error_lines, run_cli, write_calibration_pair, write_pair

DOFFS = 20.0   # Middlebury's cx1 - cx0


def write_middlebury_calib(path, camera, doffs=DOFFS, **overrides):
    """calib.txt with cam1 cx = cam0 cx + doffs; `overrides` replace or (None) drop keys."""
    fields = {'cam0': f'[{camera.fx} 0 {camera.cx}; 0 {camera.fy} {camera.cy}; 0 0 1]',
              'cam1': f'[{camera.fx} 0 {camera.cx + doffs}; 0 {camera.fy} {camera.cy}; 0 0 1]',
              'doffs': doffs, 'baseline': camera.baseline * 1000.0, 'width': camera.width,
              'height': camera.height, 'ndisp': 64, 'isint': 0, 'vmin': 2, 'vmax': 60}
    fields.update(overrides)
    path.write_text(''.join(f'{key}={value}\n' for key, value in fields.items() if value is not None))
    return str(path)


@pytest.fixture(scope='module')
def scene():
    return make_scene('slanted', 160, 120, seed=2)


def _table_row(stdout, label):
    line = next(line for line in stdout.splitlines() if line.startswith(label))
    return [float(value) for value in re.findall(r'-?\d+\.?\d*', line[len(label):])]


def test_written_disparity_is_x_left_minus_x_right_whatever_the_intrinsics(tmp_path, capsys, scene):
    left, right = write_pair(str(tmp_path), scene)
    calib = write_middlebury_calib(tmp_path / 'calib.txt', scene.camera)
    for name, extra in (('plain', []), ('calib', ['--intrinsics', calib])):
        status, _, stderr = run_cli(capsys, 'run', '--left', left, '--right', right, '--output', tmp_path / name,
                                    '--no-progress', *extra)
        assert status == 0, stderr
    plain = read_disparity(str(tmp_path / 'plain' / 'pair_left_disparity.pfm'))
    with_calib = read_disparity(str(tmp_path / 'calib' / 'pair_left_disparity.pfm'))
    np.testing.assert_array_equal(with_calib, plain)
    # depth applies the offset: Z = f B / (d + doffs), Middlebury's formula
    depth = np.load(tmp_path / 'calib' / 'pair_left_depth.npy')
    valid = np.isfinite(plain)
    np.testing.assert_allclose(depth[valid], scene.camera.focal_baseline / (plain[valid] + DOFFS), rtol=1e-5)
    # and the file evaluates against ground truth as it is (EPE was ~DOFFS px with the offset in the file)
    gt = str(tmp_path / 'gt.pfm')
    write_disparity(gt, scene.disparity)
    status, stdout, _ = run_cli(capsys, 'eval', '--pred', tmp_path / 'calib' / 'pair_left_disparity.pfm',
                                '--gt', gt)
    assert status == 0 and _table_row(stdout, 'all valid')[0] < 0.5, stdout


def test_middlebury_calib_txt(tmp_path, scene):
    camera = camera_from_middlebury_calib(write_middlebury_calib(tmp_path / 'calib.txt', scene.camera))
    assert (camera.width, camera.height) == (160, 120)
    assert camera.fx == pytest.approx(scene.camera.fx) and camera.cy == pytest.approx(scene.camera.cy)
    assert camera.baseline == pytest.approx(0.12) and camera.cx_offset == pytest.approx(-DOFFS)
    # doffs may be left out: it is cam1 cx - cam0 cx
    no_doffs = write_middlebury_calib(tmp_path / 'no_doffs.txt', scene.camera, 7.5)
    with open(no_doffs) as handle:
        lines = [line for line in handle if not line.startswith('doffs=')]
    with open(no_doffs, 'w') as handle:
        handle.writelines(lines)
    assert camera_from_middlebury_calib(no_doffs).cx_offset == -7.5
    wrong = write_middlebury_calib(tmp_path / 'bad.txt', scene.camera)
    with open(wrong) as handle:
        text = handle.read().replace('doffs=20.0', 'doffs=3')
    with open(wrong, 'w') as handle:
        handle.write(text)
    with pytest.raises(InputError, match='doffs 3 is not cam1 cx - cam0 cx = 20'):
        camera_from_middlebury_calib(wrong)
    with pytest.raises(InputError, match='lacks baseline'):
        camera_from_middlebury_calib(write_middlebury_calib(tmp_path / 'nob.txt', scene.camera, baseline=None))
    with pytest.raises(InputError, match='malformed value'):
        camera_from_middlebury_calib(write_middlebury_calib(tmp_path / 'm.txt', scene.camera, cam0='[1 0 2; 0 1]'))


def test_middlebury_calib_for_other_images_is_refused(tmp_path, capsys, scene):
    left, right = write_pair(str(tmp_path), scene)
    calib = write_middlebury_calib(tmp_path / 'calib.txt', scene.camera, width=2964, height=1988)
    status, _, stderr = run_cli(capsys, 'run', '--left', left, '--right', right, '--output', tmp_path / 'o',
                                '--intrinsics', calib, '--no-progress')
    lines = error_lines(stderr)
    assert status == 2 and len(lines) == 1 and 'is for 2964x1988 images but the images are 160x120' in lines[0]


def test_doffs_in_calibration_yaml(tmp_path, scene):
    left_path, right_path = write_calibration_pair(str(tmp_path), scene)
    assert camera_from_calibration_yaml(left_path, right_path).cx_offset == 0.0
    data = yaml.safe_load(open(left_path))
    data['doffs'] = 12.5
    yaml.safe_dump(data, open(left_path, 'w'))
    assert camera_from_calibration_yaml(left_path, right_path).cx_offset == -12.5
    right = yaml.safe_load(open(right_path))
    right['projection_matrix']['data'][2] += 4.0   # P encodes cx_right - cx_left = 4, doffs says 12.5
    yaml.safe_dump(right, open(right_path, 'w'))
    with pytest.raises(InputError, match='doffs 12.5 disagrees with the projection matrices'):
        camera_from_calibration_yaml(left_path, right_path)


def test_eight_bit_ground_truth_with_zero_unknown(tmp_path, capsys):
    truth = np.full((20, 30), 10.25, np.float32)
    truth[:, :5] = np.nan
    pgm = tmp_path / 'disp2.pgm'
    raw = np.nan_to_num(truth * 4, nan=0).astype(np.uint8)   # 2003 style: x4, 0 = unknown
    assert cv2.imwrite(str(pgm), raw)
    prediction = tmp_path / 'pred.npy'
    write_disparity(str(prediction), np.full((20, 30), 10.5, np.float32))
    status, stdout, stderr = run_cli(capsys, 'eval', '--pred', prediction, '--gt', pgm, '--gt-scale', 4)
    assert status == 0, stderr
    epe, *_, density, pixels = _table_row(stdout, 'all valid')
    assert pixels == 20 * 25 and epe == pytest.approx(0.25, abs=1e-3)
    status, _, stderr = run_cli(capsys, 'eval', '--pred', prediction, '--gt', pgm)
    assert status == 2 and '--gt-scale' in error_lines(stderr)[0]
    np.testing.assert_array_equal(np.isnan(read_disparity(str(pgm), 4)), np.isnan(truth))


def test_sixteen_bit_png_refuses_values_beyond_its_range(tmp_path):
    path = tmp_path / 'd.png'
    write_disparity(str(path), np.array([[1.5, 255.99]], np.float32))
    assert read_disparity(str(path))[0, 1] == pytest.approx(255.99, abs=1 / 256)
    with pytest.raises(InputError, match=r'disparity up to 300.00 px does not fit .* write .pfm or .npy'):
        write_disparity(str(tmp_path / 'far.png'), np.array([[1.5, 300.0]], np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['d.png']   # nothing half-written
