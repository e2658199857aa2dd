"""geometry.py: camera model, disparity correction, depth, points, cloud layouts."""
import numpy as np
import pytest

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.geometry.stereo import (CloudBuilder, CloudLayout, PointProjector, StereoCamera,
                                                        correct_disparity, depth_to_millimetres, disparity_to_depth,
                                                        pack_rgb)

F, B = 500.0, 0.12


def camera(width=64, height=48, cx=31.5, cx_right=None, cy=23.5):
    return StereoCamera(width=width, height=height, fx=F, fy=F, cx=cx, cy=cy, baseline=B, cx_right=cx_right)


def test_from_projections_reads_baseline_sign_and_principal_points():
    p_left = [F, 0, 320.0, 0, 0, F, 240.0, 0, 0, 0, 1, 0]
    p_right = [F, 0, 310.0, -F * B, 0, F, 240.0, 0, 0, 0, 1, 0]
    cam = StereoCamera.from_projections(p_left, p_right, 640, 480)
    assert cam.baseline == pytest.approx(B)
    assert cam.cx_offset == pytest.approx(10.0)
    assert cam.focal_baseline == pytest.approx(F * B)


def test_negative_baseline_is_rejected_and_zero_gives_a_camera_without_depth():
    p_left = [F, 0, 320.0, 0, 0, F, 240.0, 0, 0, 0, 1, 0]
    p_right = [F, 0, 320.0, +F * B, 0, F, 240.0, 0, 0, 0, 1, 0]
    with pytest.raises(InputError, match='baseline must be positive'):
        StereoCamera.from_projections(p_left, p_right, 640, 480)
    p_right[3] = 0.0   # Tx = 0: disparity only
    cam = StereoCamera.from_projections(p_left, p_right, 640, 480)
    assert cam.baseline == 0.0 and not cam.has_depth
    with pytest.raises(ValueError, match='no depth'):
        disparity_to_depth(np.ones((2, 2), np.float32), cam)


@pytest.mark.parametrize('field', ['fx', 'fy', 'cx', 'cy', 'cx_right', 'baseline'])
def test_non_finite_camera_parameters_are_refused(field):
    values = dict(width=640, height=480, fx=F, fy=F, cx=320.0, cy=240.0, baseline=B, cx_right=320.0)
    values[field] = np.inf
    with pytest.raises(InputError, match=f'camera parameters must be finite, got {field}=inf'):
        StereoCamera(**values)


def test_depth_and_points_are_finite_or_nan_never_inf():
    """A disparity too small for float32 gives NaN depth (was +inf: 'nothing there' to REP 117), and a
    tiny focal length cannot overflow X/Y to +-inf."""
    cam = camera()
    disparity = np.array([[1e-45, 3e-39], [30.0, np.nan]], np.float32)   # denormals: f*B/d overflows
    depth = disparity_to_depth(disparity, cam)
    assert not np.isinf(depth).any()
    assert np.isnan(depth[0, 0]) and np.isnan(depth[0, 1]) and depth[1, 0] == pytest.approx(F * B / 30.0)
    tiny = StereoCamera(width=4, height=2, fx=1e-30, fy=1e-30, cx=0.0, cy=0.0, baseline=B)
    xyz = PointProjector(tiny).points(np.full((2, 4), 1e10, np.float32))
    assert not np.isinf(xyz).any()
    assert np.isnan(xyz[0, 1, 0]) and xyz[0, 0, 0] == 0.0 and xyz[0, 1, 2] == pytest.approx(1e10)


def test_depth_is_f_times_baseline_over_disparity():
    cam = camera()
    disparity = np.array([[60.0, 30.0], [6.0, 0.5]], np.float32)
    depth = disparity_to_depth(disparity, cam)
    np.testing.assert_allclose(depth, F * B / disparity, rtol=1e-6)
    assert depth[0, 0] == pytest.approx(1.0)


def test_cx_offset_is_subtracted_and_non_positive_becomes_nan():
    cam = camera(cx=40.0, cx_right=30.0)            # cx_l - cx_r = 10
    raw = np.array([[70.0, 10.0, 5.0, np.nan, np.inf]], np.float32)
    corrected = correct_disparity(raw, cam)
    assert corrected[0, 0] == pytest.approx(60.0)
    assert np.isnan(corrected[0, 1:]).all()         # 0, negative, NaN and inf are invalid
    # depth of the corrected disparity: 1 m for 70 px raw with a 10 px offset
    assert disparity_to_depth(corrected, cam)[0, 0] == pytest.approx(1.0)


def test_depth_range_masks_to_nan():
    cam = camera()
    disparity = np.array([[120.0, 60.0, 10.0]], np.float32)   # 0.5 m, 1 m, 6 m
    depth = disparity_to_depth(disparity, cam, depth_range=(0.8, 5.0))
    assert np.isnan(depth[0, 0]) and depth[0, 1] == pytest.approx(1.0) and np.isnan(depth[0, 2])


def test_millimetres_round_and_mark_invalid_zero():
    depth = np.array([[1.2344, 1.2346, np.nan, 70.0, 0.0001]], np.float32)
    mm = depth_to_millimetres(depth)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, [[1234, 1235, 0, 0, 0]])   # > 65.535 m does not fit: invalid


def test_points_of_a_known_slanted_plane():
    cam = camera()
    # plane Z = 2 + 0.01 * u  (depth grows to the right)
    u = np.arange(cam.width, dtype=np.float32)
    depth = np.broadcast_to(2.0 + 0.01 * u, (cam.height, cam.width)).astype(np.float32)
    xyz = PointProjector(cam).points(depth)
    v, uu = 40, 50
    z = 2.0 + 0.01 * uu
    np.testing.assert_allclose(xyz[v, uu], [(uu - cam.cx) * z / F, (v - cam.cy) * z / F, z], rtol=1e-6)
    # all points satisfy the plane equation in metric space: Z = 2 + 0.01 * (X F / Z + cx)
    x, zz = xyz[..., 0], xyz[..., 2]
    np.testing.assert_allclose(zz, 2.0 + 0.01 * (x * F / zz + cam.cx), rtol=1e-5)


def test_decimated_camera_projects_the_same_points():
    cam = camera()
    depth = np.random.default_rng(0).uniform(1, 3, (cam.height, cam.width)).astype(np.float32)
    full = PointProjector(cam).points(depth)
    step = 3
    small_cam = cam.decimated(step)
    assert (small_cam.width, small_cam.height) == (22, 16)
    small = PointProjector(small_cam).points(depth[::step, ::step])
    np.testing.assert_allclose(small, full[::step, ::step], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('use_color,avoid_padding,point_step,offsets', [
    (True, False, 32, {'x': 0, 'y': 4, 'z': 8, 'rgb': 16}),
    (False, False, 16, {'x': 0, 'y': 4, 'z': 8}),
    (True, True, 16, {'x': 0, 'y': 4, 'z': 8, 'rgb': 12}),
    (False, True, 12, {'x': 0, 'y': 4, 'z': 8}),
])
def test_cloud_layouts_match_stereo_image_proc(use_color, avoid_padding, point_step, offsets):
    layout = CloudLayout.for_options(use_color, avoid_padding)
    assert layout.point_step == point_step
    assert dict(layout.fields) == offsets
    assert layout.has_color == use_color


def test_cloud_builder_writes_bytes_at_layout_offsets_and_reuses_buffer():
    cam = camera(width=4, height=2, cx=1.5, cy=0.5)
    layout = CloudLayout.for_options(True, False)
    builder = CloudBuilder(cam, layout)
    depth = np.full((2, 4), 2.0, np.float32)
    depth[0, 1] = np.nan
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[1, 3] = (255, 128, 1)
    buffer = builder.fill(depth, rgb)
    assert buffer.shape == (2, 4, 32)
    point = buffer[1, 3]
    assert np.frombuffer(point[8:12].tobytes(), np.float32)[0] == 2.0
    assert np.frombuffer(point[0:4].tobytes(), np.float32)[0] == pytest.approx((3 - 1.5) * 2.0 / F)
    assert np.frombuffer(point[16:20].tobytes(), np.uint32)[0] == 0x00FF8001
    assert np.isnan(np.frombuffer(buffer[0, 1, 0:12].tobytes(), np.float32)).all()
    assert builder.fill(depth, rgb) is buffer     # preallocated, reused


def test_pack_rgb_bit_casts_0x00rrggbb():
    rgb = np.array([[[1, 2, 3], [255, 255, 255]]], np.uint8)
    packed = pack_rgb(rgb)
    assert packed.dtype == np.float32
    np.testing.assert_array_equal(packed.view(np.uint32), [[0x010203, 0xFFFFFF]])
