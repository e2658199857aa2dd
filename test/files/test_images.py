"""files.images: the one image reader (options for run vs infer) and the RGB PNG writer."""
import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.files.images import read_image, write_rgb_png


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    paths = {'rgb': tmp_path / 'rgb.png', 'grey': tmp_path / 'grey.png', 'grey16': tmp_path / 'grey16.png',
             'bgra': tmp_path / 'bgra.png', 'float': tmp_path / 'float.tiff'}
    write_rgb_png(paths['rgb'], rgb)
    cv2.imwrite(str(paths['grey']), rgb[:, :, 0])
    cv2.imwrite(str(paths['grey16']), rgb[:, :, 0].astype(np.uint16) * 257)
    cv2.imwrite(str(paths['bgra']), np.dstack([rgb, np.full((6, 8), 255, np.uint8)]))
    cv2.imwrite(str(paths['float']), rgb[:, :, 0].astype(np.float32))
    return rgb, paths


def test_run_accepts_colour_grey_alpha_and_16_bit(images):
    rgb, paths = images
    pixels, encoding = read_image(paths['rgb'], 'left')
    assert encoding == 'bgr8' and np.array_equal(pixels[:, :, ::-1], rgb)   # the writer stored RGB as BGR
    assert read_image(paths['grey'], 'left')[1] == 'mono8'
    grey16, encoding = read_image(paths['grey16'], 'left')
    assert encoding == 'mono16' and grey16.dtype == np.uint16 and grey16.max() == int(rgb[:, :, 0].max()) * 257
    assert read_image(paths['bgra'], 'left')[1] == 'bgra8'


def test_infer_options_refuse_alpha_and_16_bit_with_the_fix(images):
    _, paths = images
    with pytest.raises(InputError, match="right image '.*bgra.png' has an alpha channel: save it as RGB"):
        read_image(paths['bgra'], 'right', allow_alpha=False, allow_16bit=False)
    with pytest.raises(InputError, match='is 16-bit: convert it to 8-bit'):
        read_image(paths['grey16'], 'left', allow_alpha=False, allow_16bit=False)
    assert read_image(paths['rgb'], 'left', allow_alpha=False, allow_16bit=False)[1] == 'bgr8'


def test_unreadable_missing_and_unsupported_files(images, tmp_path):
    _, paths = images
    with pytest.raises(InputError, match='does not exist'):
        read_image(tmp_path / 'none.png', 'left')
    (tmp_path / 'junk.png').write_bytes(b'not an image')
    with pytest.raises(InputError, match="cannot read left image"):
        read_image(tmp_path / 'junk.png', 'left')
    with pytest.raises(InputError, match='float32 .* give 8-bit colour/grey or 16-bit grey images'):
        read_image(paths['float'], 'left')
