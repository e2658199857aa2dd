"""Intrinsics from K.txt, calibration YAML pairs and camera_info records (the one validator)."""

import numpy as np
import pytest
import yaml

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.geometry.intrinsics import (camera_from_calibration_yaml, camera_from_infos,
                                                            camera_from_k_txt)
from fast_foundation_stereo_ros.geometry.synthetic_scenes import camera_info_dict, make_camera, make_scene

from ..offline.helpers import calibration_yaml, write_calibration_pair, write_k_txt


@pytest.fixture(scope='module')
def scene():
    return make_scene('plane', 160, 120, fx=150.0, baseline=0.2, seed=0)


def test_k_txt_round_trip(tmp_path, scene):
    camera = camera_from_k_txt(write_k_txt(tmp_path / 'K.txt', scene.camera), 160, 120)
    assert camera == scene.camera


def test_official_k_txt_layout(tmp_path):
    path = tmp_path / 'K.txt'
    path.write_text('754.6680 0.0 489.3795 0.0 754.6680 265.1625 0.0 0.0 1.0\n0.063\n')
    camera = camera_from_k_txt(str(path), 960, 540)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (754.668, 754.668, 489.3795, 265.1625)
    assert camera.baseline == 0.063 and camera.focal_baseline == pytest.approx(754.668 * 0.063)


@pytest.mark.parametrize('content, message', [
    ('1 2 3\n0.1\n', 'two lines'),
    ('500 0 80 0 500 60 0 0 1\n', 'two lines'),
    ('500 0 80 0 500 60 0 0 x\n0.1\n', 'non-numeric'),
    ('500 0 80 0 500 60 0 0 1\n0\n', 'baseline 0'),
    ('500 0 80 0 500 60 0 0 1\n-0.1\n', 'positive'),
    ('0 0 80 0 500 60 0 0 1\n0.1\n', 'focal'),
])
def test_malformed_k_txt(tmp_path, content, message):
    path = tmp_path / 'K.txt'
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        camera_from_k_txt(str(path), 160, 120)
    assert str(path) in str(info.value)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(InputError, match='does not exist'):
        camera_from_k_txt(str(tmp_path / 'nope.txt'), 10, 10)


def test_calibration_yaml_pair(tmp_path, scene):
    left, right = write_calibration_pair(str(tmp_path), scene)
    assert camera_from_calibration_yaml(left, right) == scene.camera


def test_calibration_principal_point_offset(tmp_path):
    camera = make_camera(160, 120, fx=150.0, baseline=0.2)
    info_left = {'width': 160, 'height': 120, 'distortion_model': 'plumb_bob', 'd': [0] * 5,
                 'k': [150, 0, 70, 0, 150, 60, 0, 0, 1], 'r': [1, 0, 0, 0, 1, 0, 0, 0, 1],
                 'p': [150, 0, 70, 0, 0, 150, 60, 0, 0, 0, 1, 0]}
    info_right = dict(info_left, p=[150, 0, 90, -150 * 0.2, 0, 150, 60, 0, 0, 0, 1, 0])
    paths = []
    for name, info in (('l', info_left), ('r', info_right)):
        paths.append(str(tmp_path / f'{name}.yaml'))
        with open(paths[-1], 'w') as handle:
            yaml.safe_dump(calibration_yaml(info, name), handle)
    loaded = camera_from_calibration_yaml(*paths)
    assert loaded.cx_offset == -20.0 and loaded.baseline == pytest.approx(camera.baseline)


def _write_yaml(path, data):
    with open(path, 'w') as handle:
        yaml.safe_dump(data, handle)
    return str(path)


def test_calibration_errors(tmp_path, scene):
    left, right = write_calibration_pair(str(tmp_path), scene)
    with pytest.raises(InputError, match=r'P\[3\] = 0') as info:
        camera_from_calibration_yaml(left, left)  # left file given as the right one
    assert left in str(info.value)
    broken = yaml.safe_load(open(right))
    del broken['projection_matrix']
    with pytest.raises(InputError, match='lacks projection_matrix'):
        camera_from_calibration_yaml(left, _write_yaml(tmp_path / 'b.yaml', broken))
    short = yaml.safe_load(open(right))
    short['projection_matrix']['data'] = short['projection_matrix']['data'][:9]
    with pytest.raises(InputError, match='12 numbers'):
        camera_from_calibration_yaml(left, _write_yaml(tmp_path / 's.yaml', short))
    other_size = yaml.safe_load(open(right))
    other_size['image_width'] = 320
    with pytest.raises(InputError, match='one stereo calibration'):
        camera_from_calibration_yaml(left, _write_yaml(tmp_path / 'o.yaml', other_size))
    swapped = yaml.safe_load(open(right))
    swapped['projection_matrix']['data'][3] *= -1  # right camera on the left: negative baseline
    with pytest.raises(InputError, match='baseline must be positive'):
        camera_from_calibration_yaml(left, _write_yaml(tmp_path / 'w.yaml', swapped))
    (tmp_path / 'bad.yaml').write_text('image_width: [unclosed\n')
    with pytest.raises(InputError, match='not valid YAML'):
        camera_from_calibration_yaml(str(tmp_path / 'bad.yaml'), right)


def test_camera_info_records_pass_every_check_of_node_and_bags(scene):
    left, right = camera_info_dict(scene.camera, 'left'), camera_info_dict(scene.camera, 'right')
    assert camera_from_infos(left, right) == scene.camera
    assert camera_from_infos(left, right, 160, 120) == scene.camera
    cases = [
        (dict(right, p=[0.0] * 12), {}, 'right camera_info has an all-zero projection matrix P'),
        (dict(right, p=[np.inf] + list(right['p'][1:])), {}, r'right camera_info P holds a non-finite value \(entry 0 is inf\)'),
        (dict(right, p=list(right['p'][:3]) + [np.nan] + list(right['p'][4:])), {}, r'P holds a non-finite value \(entry 3'),
        (dict(right, k=[500.0, 0, np.inf, 0, 500.0, 60.0, 0, 0, 1]), {}, r'right camera_info K holds a non-finite value'),
        (dict(right, p=[-500.0] + list(right['p'][1:])), {}, 'focal lengths fx=-500, fy=.*both must be positive'),
        (dict(right, p=list(right['p'][:5]) + [0.0] + list(right['p'][6:])), {}, 'fy=0: both must be positive'),
        (dict(right, p=list(right['p'][:2]) + [400.0] + list(right['p'][3:])), {}, r'principal point \(400, .*outside the 160x120 image'),
        (dict(right, p=list(right['p'][:6]) + [-3.0] + list(right['p'][7:])), {}, r'principal point \(.*, -3\) lies outside'),
        (dict(right, binning_x=2), {}, 'binning or an ROI'),
        (dict(right, roi=(0, 0, 80, 60)), {}, 'binning or an ROI'),
        (dict(right, width=320), {}, 'right camera_info is for 320x120 images but the images are 160x120'),
        (right, {'width': 80, 'height': 60}, 'left camera_info is for 160x120 images but the images are 80x60'),
    ]
    for bad_right, size, message in cases:
        with pytest.raises(InputError, match=message) as error:
            camera_from_infos(left, bad_right, **size, source='test infos')
        assert str(error.value).startswith('test infos: ')
    full_roi = dict(right, roi=(0, 0, 160, 120))    # an ROI covering the image is no ROI
    assert camera_from_infos(left, full_roi) == scene.camera
    # Tx = 0 (stereo_image_proc's own disparity test): a camera for the disparity, without depth
    no_baseline = camera_from_infos(left, dict(right, p=list(right['p'][:3]) + [0.0] + list(right['p'][4:])))
    assert no_baseline.baseline == 0.0 and str(no_baseline.baseline) == '0.0' and not no_baseline.has_depth
    assert scene.camera.has_depth
    assert camera_from_infos(left, full_roi) == scene.camera
