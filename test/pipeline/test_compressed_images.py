"""CompressedImage bytes -> pixels the stage reads (real OpenCV codecs)."""
import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene
from fast_foundation_stereo_ros.pipeline.compressed_images import compression_of, decode_compressed
from fast_foundation_stereo_ros.pipeline.encodings import image_to_array, to_rgb8


@pytest.fixture(scope='module')
def rgb():
    return make_scene('plane', 96, 64, seed=1).left


def encoded(pixels, extension, *params):
    ok, data = cv2.imencode(extension, pixels, list(params))
    assert ok
    return data.tobytes()


def test_png_colour_decodes_to_the_exact_pixels_as_bgr8(rgb):
    data = encoded(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), '.png')
    image = decode_compressed('header', 'rgb8; png compressed bgr8', data)
    assert (image.encoding, image.width, image.height, image.header) == ('bgr8', 96, 64, 'header')
    np.testing.assert_array_equal(to_rgb8(image_to_array(image), image.encoding), rgb)


def test_mono8_and_mono16_png_keep_their_depth(rgb):
    grey = rgb[..., 1].copy()
    mono8 = decode_compressed(None, 'mono8; png compressed ', encoded(grey, '.png'))
    assert mono8.encoding == 'mono8'
    np.testing.assert_array_equal(image_to_array(mono8), grey)
    wide = grey.astype(np.uint16) * 257
    mono16 = decode_compressed(None, 'mono16; png compressed mono16', encoded(wide, '.png'))
    assert mono16.encoding == 'mono16'
    np.testing.assert_array_equal(image_to_array(mono16), wide)


def test_jpeg_decodes_close_to_the_source(rgb):
    image = decode_compressed(None, 'bgr8; jpeg compressed bgr8',
                              encoded(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), '.jpg', cv2.IMWRITE_JPEG_QUALITY, 95))
    decoded = to_rgb8(image_to_array(image), image.encoding)
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 4.0


@pytest.mark.parametrize('format_field, data, message', [
    ('bgr8; jpeg compressed bgr8', b'\xff\xd8 not a jpeg', 'could not be decoded: the message is corrupt'),
    ('png', b'', 'could not be decoded'),
    ('32FC1; compressedDepth png', b'\x89PNG', 'compressedDepth image, not a camera image'),
    ('bgr8; tiff compressed', b'II*', 'neither jpeg nor png'),
])
def test_undecodable_input_is_one_input_error(format_field, data, message):
    with pytest.raises(InputError, match=message):
        decode_compressed(None, format_field, data)


def test_format_names():
    assert [compression_of(f) for f in ('jpeg', 'PNG', 'rgb8; jpg compressed bgr8')] == ['jpeg', 'png', 'jpeg']
