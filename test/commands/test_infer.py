"""`ffs-stereo infer`: output files in every format, exit code 2 and untouched output on errors."""

import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.cli import main as cli_main
from fast_foundation_stereo_ros.files.disparity_files import read_disparity

from ..loading.helpers import CHECKPOINT, FIXTURE_DIR, fixture_model, reference

ITERS, MAX_DISP = 2, 128


@pytest.fixture(scope='module')
def expected():
    data = reference()
    return fixture_model().predict(data['left'], data['right'], valid_iters=ITERS, max_disp=MAX_DISP)


def _infer(output, left=FIXTURE_DIR / 'left.png', right=FIXTURE_DIR / 'right.png', *extra):
    return cli_main(['infer', '--model', str(CHECKPOINT), '--left', str(left), '--right', str(right),
                     '--valid-iters', str(ITERS), '--max-disp', str(MAX_DISP),
                     '--output', str(output), *extra])


def test_npy_pfm_and_png_outputs(tmp_path, expected):
    for name in ('disp.npy', 'disp.pfm', 'disp.png'):
        assert _infer(tmp_path / name) == 0
    npy = np.load(tmp_path / 'disp.npy')
    assert npy.dtype == np.float32 and np.array_equal(npy, expected)
    assert np.array_equal(read_disparity(str(tmp_path / 'disp.pfm')), expected)
    raw = cv2.imread(str(tmp_path / 'disp.png'), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == expected.shape
    assert np.array_equal(raw, np.clip(np.rint(expected * 256), 0, 65535).astype(np.uint16))
    valid = raw > 0
    assert valid.mean() > 0.5
    assert np.abs(read_disparity(str(tmp_path / 'disp.png'))[valid] - expected[valid]).max() <= 1 / 512


def test_grey_images_are_accepted(tmp_path):
    data = reference()
    for side in ('left', 'right'):
        cv2.imwrite(str(tmp_path / f'{side}.png'), data[side][..., 1])
    assert _infer(tmp_path / 'grey.npy', tmp_path / 'left.png', tmp_path / 'right.png') == 0
    grey = np.repeat(data['left'][..., 1:2], 3, 2), np.repeat(data['right'][..., 1:2], 3, 2)
    assert np.array_equal(np.load(tmp_path / 'grey.npy'),
                          fixture_model().predict(*grey, valid_iters=ITERS, max_disp=MAX_DISP))


def test_errors_exit_2_and_leave_existing_output(tmp_path, capsys):
    output = tmp_path / 'keep.npy'
    output.write_bytes(b'previous result')
    small = tmp_path / 'small.png'
    cv2.imwrite(str(small), reference()['right'][:64, :64, ::-1])
    rgba = tmp_path / 'rgba.png'
    cv2.imwrite(str(rgba), np.dstack([reference()['right'][..., ::-1], np.full((160, 224), 255, np.uint8)]))
    failures = [
        ((FIXTURE_DIR / 'left.png', small), 'differ in size'),
        ((FIXTURE_DIR / 'left.png', rgba), 'alpha channel'),
        ((FIXTURE_DIR / 'left.png', tmp_path / 'missing.png'), 'does not exist'),
    ]
    for (left, right), message in failures:
        assert _infer(output, left, right) == 2
        assert message in capsys.readouterr().err
    assert cli_main(['infer', '--model', str(CHECKPOINT), '--left', str(FIXTURE_DIR / 'left.png'),
                     '--right', str(FIXTURE_DIR / 'right.png'), '--max-disp', '100',
                     '--output', str(output)]) == 2
    assert 'multiple of 32' in capsys.readouterr().err
    assert cli_main(['infer', '--model', str(tmp_path / 'nothing.pth'), '--left', str(FIXTURE_DIR / 'left.png'),
                     '--right', str(FIXTURE_DIR / 'right.png'), '--output', str(output)]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert output.read_bytes() == b'previous result'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['keep.npy', 'rgba.png', 'small.png']


def test_unknown_output_extension_fails_before_loading(tmp_path, capsys):
    assert _infer(tmp_path / 'disp.tiff') == 2
    assert '.npy' in capsys.readouterr().err
    assert not (tmp_path / 'disp.tiff').exists()
