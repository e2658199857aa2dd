"""Synthetic scenes: the ground truth must reproduce the rendered pair exactly."""
import time

import cv2
import numpy as np
import pytest

from fast_foundation_stereo_ros.geometry.synthetic_scenes import SCENE_KINDS, camera_info_dict, make_scene


def warp_right_to_left(scene):
    """The right image sampled at x_l - d: equals the left image where visible."""
    height, width = scene.disparity.shape
    map_x = np.arange(width, dtype=np.float32)[None, :] - scene.disparity
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    return cv2.remap(scene.right, map_x, map_y, cv2.INTER_LINEAR)


@pytest.mark.parametrize('kind', SCENE_KINDS)
def test_ground_truth_disparity_reproduces_the_pair(kind):
    scene = make_scene(kind, 320, 240, seed=3)
    warped = warp_right_to_left(scene).astype(np.float32)
    error = np.abs(warped - scene.left.astype(np.float32)).mean(axis=2)[scene.non_occluded]
    # bilinear resampling of a 1-2 px texture only: well below one grey level
    assert error.mean() < 1.0
    assert np.percentile(error, 99) < 6.0
    # and the texture is strong enough that a wrong disparity would show
    shifted = np.roll(scene.right, 1, axis=1).astype(np.float32)
    wrong = np.abs(shifted - scene.left.astype(np.float32)).mean(axis=2)
    assert wrong.mean() > 5 * error.mean() + 3.0


@pytest.mark.parametrize('kind', SCENE_KINDS)
def test_fields_are_consistent(kind):
    scene = make_scene(kind, 320, 240, seed=1)
    camera = scene.camera
    assert scene.left.shape == scene.right.shape == (240, 320, 3)
    assert scene.left.dtype == scene.right.dtype == np.uint8
    assert scene.disparity.dtype == scene.depth.dtype == np.float32
    assert np.all(scene.disparity > 0) and np.all(np.isfinite(scene.depth))
    np.testing.assert_allclose(scene.depth * scene.disparity, camera.fx * camera.baseline, rtol=1e-5)
    assert camera.fx == pytest.approx(0.9 * 320)
    assert camera.baseline == pytest.approx(0.12)
    # occlusions: at least the left border strip (out of the right view), never most of the image
    assert scene.occlusion.dtype == bool
    assert 0.01 < scene.occlusion.mean() < 0.15
    border = int(np.floor(scene.disparity[:, 0].min()))
    assert scene.occlusion[:, :border].all()


def test_plane_is_fronto_parallel_and_slanted_is_not():
    plane = make_scene('plane', 160, 120, seed=0)
    assert np.ptp(plane.depth) < 1e-4
    assert plane.occlusion[:, int(plane.disparity[0, 0]) + 1:].sum() == 0
    slanted = make_scene('slanted', 160, 120, seed=0)
    # a plane: depth is the inverse of an affine function of pixel position
    v, u = np.mgrid[0:120, 0:160]
    design = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    inverse = 1.0 / slanted.depth.ravel()
    coeffs, *_ = np.linalg.lstsq(design, inverse, rcond=None)
    np.testing.assert_allclose(design @ coeffs, inverse, rtol=1e-5)
    assert abs(coeffs[0]) > 1e-5 and abs(coeffs[1]) > 1e-5


def test_occluded_pixels_have_a_nearer_occluder_to_their_right():
    scene = make_scene('boxes', 320, 240, seed=2)
    background = scene.depth.max()
    assert (scene.depth < 0.7 * background).mean() > 0.05
    inner = scene.occlusion.copy()
    inner[:, :int(scene.disparity[:, 0].max()) + 1] = False  # beyond the out-of-view strip
    assert inner.sum() > 100
    # the occluder of left pixel u (disparity d) appears at u - d + d_q > u with d_q > d
    reach = int(np.ceil(scene.disparity.max()))
    padded = np.pad(scene.disparity, ((0, 0), (0, reach)), constant_values=0)
    for v, u in zip(*np.nonzero(inner)):
        assert padded[v, u + 1:u + reach + 1].max() > scene.disparity[v, u]


def test_same_seed_same_scene_and_different_seed_differs():
    first, again = make_scene('mixed', 160, 120, seed=5), make_scene('mixed', 160, 120, seed=5)
    other = make_scene('mixed', 160, 120, seed=6)
    assert np.array_equal(first.left, again.left) and np.array_equal(first.disparity, again.disparity)
    assert not np.array_equal(first.disparity, other.disparity)


def test_camera_parameters_and_info_dicts():
    scene = make_scene('plane', 200, 100, fx=150.0, baseline=0.25, seed=0)
    assert scene.camera.fx == 150.0 and scene.camera.baseline == 0.25
    np.testing.assert_allclose(scene.disparity, 150.0 * 0.25 / scene.depth, rtol=1e-5)
    left, right = scene.camera_info('left'), camera_info_dict(scene.camera, 'right')
    assert (left['width'], left['height']) == (200, 100)
    assert left['p'][3] == 0.0 and right['p'][3] == pytest.approx(-150.0 * 0.25)
    assert left['k'][0] == 150.0 and left['k'][2] == pytest.approx(99.5)
    assert left['distortion_model'] == 'plumb_bob' and left['d'] == [0.0] * 5


def test_supersampling_and_noise_options():
    clean = make_scene('spheres', 160, 120, seed=0)
    smooth = make_scene('spheres', 160, 120, seed=0, supersample=2)
    noisy = make_scene('spheres', 160, 120, seed=0, noise_std=3.0)
    assert np.array_equal(clean.disparity, smooth.disparity)
    assert 0 < np.abs(smooth.left.astype(int) - clean.left).mean() < 10
    assert 1.5 < (noisy.left.astype(float) - clean.left).std() < 4.5


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match='plane'):
        make_scene('teapot')


def test_vga_renders_in_under_a_second():
    make_scene('mixed', 64, 48)  # warm caches
    start = time.perf_counter()
    make_scene('mixed', 640, 480, seed=0)
    # ~0.5 s measured on 2 idle cores; the bound only guards against a
    # large regression, with slack for a machine shared with other tests
    assert time.perf_counter() - start < 3.0
