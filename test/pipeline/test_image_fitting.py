"""Image fitting: the official demo's centred padding on every path, and the fit maths.

The network tests crop the reference fixture pair to 150x210 (not a multiple
of 32, so 5+5 rows and 7+7 columns of padding) and compare the pipeline, the
`run` command and StereoModel.predict (what `infer` runs) with the network
run on a pair padded the way the official demo pads (np.pad edge mode, half
before and the rest after).
"""
import numpy as np
import pytest
import torch

from fast_foundation_stereo_ros.backends import create_backend
from fast_foundation_stereo_ros.cli import main
from fast_foundation_stereo_ros.files.disparity_files import read_disparity
from fast_foundation_stereo_ros.pipeline.image_fitting import plan_fit
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline

from ..paths import CHECKPOINT, REFERENCE, require_fixture

HEIGHT, WIDTH = 150, 210
ITERS, MAX_DISP = 2, 192
TOLERANCE_PX = 0.01


@pytest.fixture(scope='module')
def cropped_pair():
    require_fixture()
    with np.load(REFERENCE) as data:
        return (np.ascontiguousarray(data['left'][:HEIGHT, :WIDTH]),
                np.ascontiguousarray(data['right'][:HEIGHT, :WIDTH]))


@pytest.fixture(scope='module')
def official_disparity(cropped_pair):
    """The network on the pair padded as the official demo pads it, cropped back."""
    from fast_foundation_stereo_ros.loading.stereo_model import load_model
    model = load_model(CHECKPOINT, device='cpu')
    pads = ((5, 5), (7, 7), (0, 0))   # (160 - 150) and (224 - 210), half before
    tensors = [torch.from_numpy(np.pad(image, pads, mode='edge')).permute(2, 0, 1)[None].float()
               for image in cropped_pair]
    with torch.inference_mode():
        disparity = model.network(tensors[0], tensors[1], ITERS, MAX_DISP)
    return disparity[0, 0, 5:5 + HEIGHT, 7:7 + WIDTH].numpy()


def test_pipeline_gives_the_official_disparity_at_a_size_not_a_multiple_of_32(cropped_pair,
                                                                             official_disparity):
    backend = create_backend(str(CHECKPOINT), max_disp=MAX_DISP, valid_iters=ITERS)
    pipeline = StereoPipeline(backend)
    disparity = pipeline.compute(*cropped_pair)
    assert pipeline.fit_for((HEIGHT, WIDTH)).padding == (5, 5, 7, 7)
    assert disparity.shape == (HEIGHT, WIDTH)
    assert np.abs(disparity - official_disparity).max() <= TOLERANCE_PX
    # `infer` on a checkpoint is StereoModel.predict (its own padding): the same answer
    direct = backend.model.predict(*cropped_pair, valid_iters=ITERS, max_disp=MAX_DISP)
    assert np.abs(direct - official_disparity).max() <= TOLERANCE_PX


def test_run_command_gives_the_official_disparity(tmp_path, cropped_pair, official_disparity):
    """`run` (like the node and bags) goes through StereoPipeline; with the bottom/right padding
    used before, this pair differed from the official output by 93 px at 2 iterations."""
    import cv2
    left, right = tmp_path / 'left.png', tmp_path / 'right.png'
    cv2.imwrite(str(left), cropped_pair[0][:, :, ::-1])
    cv2.imwrite(str(right), cropped_pair[1][:, :, ::-1])
    assert main(['run', '--model', str(CHECKPOINT), '--left', str(left), '--right', str(right),
                 '--max-disp', str(MAX_DISP), '--valid-iters', str(ITERS),
                 '--format', 'npy', '--output', str(tmp_path / 'run'), '--no-progress',
                 '--keep-out-of-view']) == 0   # the official output before remove_invisible
    from_run = read_disparity(str(tmp_path / 'run' / 'left_disparity.npy'))
    valid = np.isfinite(from_run)
    assert valid.mean() > 0.95   # only pixels the validity rule drops (<= 0) are NaN in `run`
    assert np.abs(from_run[valid] - official_disparity[valid]).max() <= TOLERANCE_PX


@pytest.mark.parametrize('camera, expected', [((150, 210), (5, 5, 7, 7)), ((161, 224), (15, 16, 0, 0)),
                                              ((160, 224), (0, 0, 0, 0))])
def test_padding_splits_like_the_official_demo(camera, expected):
    fit = plan_fit(camera, None, 32)
    assert fit.padding == expected
    image = np.arange(camera[0] * camera[1], dtype=np.float32).reshape(camera)[:, :, None].repeat(3, 2)
    padded = fit.apply(image)
    assert padded.shape[:2] == fit.input_size and fit.input_size[0] % 32 == 0 == fit.input_size[1] % 32
    top, _, left, _ = expected
    np.testing.assert_array_equal(padded[top:top + camera[0], left:left + camera[1]], image)
    np.testing.assert_array_equal(padded[0], padded[top])  # replicate, not zeros
    np.testing.assert_array_equal(fit.restore(padded[:, :, 0]), image[:, :, 0])


def test_letterbox_restores_camera_size_and_rescales_values():
    """Camera 224x160 into a fixed 160x128 input: scaled to 160x114, 7+7 rows of padding."""
    fit = plan_fit((160, 224), (128, 160), mode='letterbox')
    assert fit.scaled_size == (114, 160) and fit.padding == (7, 7, 0, 0)
    at_input = np.full((128, 160), 99.0, np.float32)
    at_input[7:7 + 114] = 10.0      # the image rows; the padding rows hold a value that must not leak
    restored = fit.restore(at_input)
    assert restored.shape == (160, 224)
    np.testing.assert_allclose(restored, 10.0 * 224 / 160)


def test_stretch_maps_values_by_the_width_ratio():
    fit = plan_fit((100, 300), (50, 100), mode='stretch')
    assert fit.padding == (0, 0, 0, 0) and fit.disparity_scale == 3.0
    restored = fit.restore(np.full((50, 100), 4.0, np.float32))
    assert restored.shape == (100, 300)
    np.testing.assert_allclose(restored, 12.0)
