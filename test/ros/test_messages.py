"""Image / DisparityImage / PointCloud2 / CameraInfo <-> numpy, with real message types."""
import array
import math

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointField
from std_msgs.msg import Header

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.geometry.intrinsics import camera_from_infos
from fast_foundation_stereo_ros.geometry.stereo import CloudBuilder, CloudLayout, StereoCamera
from fast_foundation_stereo_ros.pipeline.encodings import image_to_array
from fast_foundation_stereo_ros.pipeline.frame_stage import camera_info_fields
from fast_foundation_stereo_ros.ros.messages import (MessageBuffer, array_to_image, camera_info_with_header,
                                                     disparity_image, point_cloud2, stamp_to_ns)

from ..helpers import cloud_fields

CAMERA = StereoCamera(width=8, height=6, fx=100.0, fy=100.0, cx=3.5, cy=2.5, baseline=0.1)


def raw_image(pixels, encoding, step_padding=0, big_endian=False):
    """Image message written byte by byte like a driver would (optionally padded rows)."""
    height, width = pixels.shape[:2]
    row = pixels.reshape(height, -1)
    if pixels.dtype.itemsize > 1:
        row = row.astype(pixels.dtype.newbyteorder('>' if big_endian else '<'))
    row_bytes = row.view(np.uint8).reshape(height, -1)
    padded = np.zeros((height, row_bytes.shape[1] + step_padding), np.uint8)
    padded[:, :row_bytes.shape[1]] = row_bytes
    return Image(height=height, width=width, encoding=encoding, is_bigendian=big_endian,
                 step=padded.shape[1], data=padded.tobytes())


def info(camera, side):
    projection = camera.projection_left() if side == 'left' else camera.projection_right()
    return CameraInfo(width=camera.width, height=camera.height, p=projection)


@pytest.mark.parametrize('encoding,channels', [('rgb8', 3), ('bgr8', 3), ('rgba8', 4), ('bgra8', 4),
                                               ('mono8', 1)])
def test_8bit_encodings_round_trip_as_views(encoding, channels):
    rng = np.random.default_rng(1)
    shape = (6, 8, channels) if channels > 1 else (6, 8)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    message = raw_image(pixels, encoding)
    decoded = image_to_array(message)
    np.testing.assert_array_equal(decoded, pixels)
    assert np.shares_memory(decoded, np.frombuffer(message.data, np.uint8))   # no copy


def test_padded_step_is_skipped_without_copy():
    pixels = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    message = raw_image(pixels, 'rgb8', step_padding=8)
    assert message.step == 8 * 3 + 8
    decoded = image_to_array(message)
    np.testing.assert_array_equal(decoded, pixels)
    assert np.shares_memory(decoded, np.frombuffer(message.data, np.uint8))


@pytest.mark.parametrize('big_endian', [False, True])
def test_mono16_honours_endianness(big_endian):
    pixels = np.array([[1, 256, 4095], [65535, 0, 0x1234]], np.uint16)
    message = raw_image(pixels, 'mono16', step_padding=2, big_endian=big_endian)
    decoded = image_to_array(message)
    assert decoded.dtype == np.uint16 and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, pixels)


def test_mono16_odd_step_padding_still_decodes():
    pixels = np.array([[1, 2], [3, 0xABCD]], np.uint16)
    message = raw_image(pixels, 'mono16', step_padding=1)
    np.testing.assert_array_equal(image_to_array(message), pixels)


def test_unsupported_encoding_and_truncated_data_raise_input_error():
    with pytest.raises(InputError, match="unsupported image encoding 'yuv422'"):
        image_to_array(Image(height=2, width=2, encoding='yuv422', step=4, data=bytes(8)))
    with pytest.raises(InputError, match='truncated'):
        image_to_array(Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(11)))
    with pytest.raises(InputError, match='step'):
        image_to_array(Image(height=2, width=2, encoding='rgb8', step=5, data=bytes(12)))


def test_array_to_image_fields_and_bytes():
    header = Header(frame_id='cam')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    depth = np.array([[1.5, np.nan], [2.0, 3.25]], np.float32)
    message = array_to_image(depth, '32FC1', header)
    assert (message.height, message.width, message.step, message.encoding) == (2, 2, 8, '32FC1')
    assert message.is_bigendian is False
    assert isinstance(message.data, array.array) and len(message.data) == 16
    assert message.header.frame_id == 'cam' and stamp_to_ns(message.header.stamp) == 12_000_000_345
    np.testing.assert_array_equal(image_to_array(message), depth)
    # the message owns its bytes: changing the source array later changes nothing
    depth[0, 0] = 99.0
    assert image_to_array(message)[0, 0] == 1.5


def test_disparity_image_fields():
    disparity = np.full((6, 8), 10.0, np.float32)
    disparity[0, 0] = np.nan
    header = Header(frame_id='left_optical')
    message = disparity_image(disparity, header, CAMERA, 0.0, 192.0, 1.0 / 16)
    assert message.header.frame_id == 'left_optical'
    assert message.image.header.frame_id == 'left_optical'
    assert message.image.encoding == '32FC1'
    assert message.f == pytest.approx(100.0)
    assert message.t == pytest.approx(0.1)
    assert (message.min_disparity, message.max_disparity, message.delta_d) == (0.0, 192.0, 0.0625)
    window = message.valid_window
    assert (window.x_offset, window.y_offset, window.width, window.height) == (0, 0, 8, 6)
    decoded = image_to_array(message.image)
    assert math.isnan(decoded[0, 0]) and decoded[1, 1] == 10.0


@pytest.mark.parametrize('use_color,avoid_padding,step,rgb_offset', [
    (True, False, 32, 16), (False, False, 16, None), (True, True, 16, 12), (False, True, 12, None)])
def test_point_cloud2_layout(use_color, avoid_padding, step, rgb_offset):
    layout = CloudLayout.for_options(use_color, avoid_padding)
    depth = np.full((6, 8), 2.0, np.float32)
    depth[1, 2] = np.nan
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0x12, 0x34, 0x56
    buffer = CloudBuilder(CAMERA, layout).fill(depth, rgb)
    message = point_cloud2(buffer, layout, Header(frame_id='left_optical'))
    assert (message.height, message.width, message.point_step) == (6, 8, step)
    assert message.row_step == step * 8
    assert len(message.data) == message.row_step * message.height
    assert message.is_dense is False and message.is_bigendian is False
    offsets = {field.name: field.offset for field in message.fields}
    assert offsets['x'] == 0 and offsets['y'] == 4 and offsets['z'] == 8
    assert offsets.get('rgb') == rgb_offset
    assert all(f.datatype == PointField.FLOAT32 and f.count == 1 for f in message.fields)
    fields = cloud_fields(message)
    assert fields['z'][0, 0] == 2.0
    assert fields['x'][0, 0] == pytest.approx((0 - 3.5) * 2.0 / 100.0)
    assert fields['y'][5, 0] == pytest.approx((5 - 2.5) * 2.0 / 100.0)
    assert np.isnan(fields['x'][1, 2]) and np.isnan(fields['z'][1, 2])
    if use_color:
        assert fields['rgb'].view(np.uint32)[3, 3] == 0x00123456


def stereo_camera_from_infos(left, right, width, height):
    return camera_from_infos(camera_info_fields(left), camera_info_fields(right), width, height)


def test_stereo_camera_from_infos():
    camera = stereo_camera_from_infos(info(CAMERA, 'left'), info(CAMERA, 'right'), 8, 6)
    assert camera.fx == 100.0 and camera.baseline == pytest.approx(0.1)


@pytest.mark.parametrize('mutate,match', [
    (lambda left, right: setattr(left, 'width', 16), 'left camera_info is for 16x6'),
    (lambda left, right: setattr(right, 'height', 5), 'right camera_info is for 8x5'),
    (lambda left, right: setattr(left, 'p', [0.0] * 12), 'all-zero projection'),
    (lambda left, right: right.p.__setitem__(0, float('nan')), 'right camera_info P holds a non-finite value'),
    (lambda left, right: left.k.__setitem__(0, float('inf')), 'left camera_info K holds a non-finite value'),
    (lambda left, right: right.p.__setitem__(3, +10.0), 'baseline must be positive'),
    (lambda left, right: right.p.__setitem__(0, 120.0), 'focal lengths differ'),
    (lambda left, right: setattr(left, 'binning_x', 2), 'binning'),
    (lambda left, right: setattr(right.roi, 'x_offset', 2), 'ROI'),
])
def test_inconsistent_camera_infos_are_rejected(mutate, match):
    left, right = info(CAMERA, 'left'), info(CAMERA, 'right')
    mutate(left, right)
    with pytest.raises(InputError, match=match):
        stereo_camera_from_infos(left, right, 8, 6)


def test_camera_info_with_header_copies_calibration():
    left = info(CAMERA, 'left')
    left.header.frame_id = 'old'
    left.distortion_model = 'plumb_bob'
    left.d = [0.0] * 5
    copy = camera_info_with_header(left, Header(frame_id='new'))
    assert copy.header.frame_id == 'new'
    assert list(copy.p) == list(left.p) and copy.width == 8 and copy.distortion_model == 'plumb_bob'


@pytest.mark.parametrize('use_color,avoid_padding', [(True, False), (False, False), (True, True), (False, True)])
@pytest.mark.parametrize('step', [1, 3])
def test_cloud_in_message_buffer_matches_projection_and_is_not_copied(use_color, avoid_padding, step):
    camera = StereoCamera(width=64, height=48, fx=80.0, fy=82.0, cx=31.0, cy=24.5, baseline=0.1).decimated(step)
    rng = np.random.default_rng(step)
    depth = rng.uniform(0.5, 5.0, (48, 64)).astype(np.float32)
    depth[rng.random((48, 64)) < 0.2] = np.nan
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth, rgb = depth[::step, ::step], rgb[::step, ::step]     # strided views, as the node decimates
    layout = CloudLayout.for_options(use_color, avoid_padding)
    buffer = MessageBuffer((camera.height, camera.width, layout.point_step), np.uint8)
    points = CloudBuilder(camera, layout, buffer.array).fill(depth, rgb)
    message = point_cloud2(points, layout, Header(), data=buffer.data)
    assert message.data is buffer.data                     # handed over, not copied
    fields = cloud_fields(message)
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float32)
    np.testing.assert_allclose(fields['z'], depth, rtol=0, atol=0, equal_nan=True)
    np.testing.assert_allclose(fields['x'], (u - camera.cx) * depth / camera.fx, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(fields['y'], (v - camera.cy) * depth / camera.fy, rtol=1e-6, equal_nan=True)
    if use_color:
        packed = fields['rgb'].view(np.uint32)
        expected = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        np.testing.assert_array_equal(packed, expected)
    words = points.view(np.uint32).reshape(-1, layout.point_step // 4)
    used = [offset // 4 for _, offset in layout.fields]
    assert not words[:, [i for i in range(words.shape[1]) if i not in used]].any()   # padding stays zero
