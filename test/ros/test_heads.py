"""Stereo heads: the `cameras` parameter and each head's topics (no graph traffic)."""
import pytest

from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.ros.heads import StereoHead
from fast_foundation_stereo_ros.ros.parameters import validate


def test_cameras_default_to_one_unnamed_head_and_take_namespaces():
    assert validate({}).cameras == ()
    assert validate({'cameras': ['front', 'rear_left', 'robot/back']}).cameras == ('front', 'rear_left', 'robot/back')


@pytest.mark.parametrize('cameras', [['front', 'front'], ['front/'], ['9lives'], ['a b'], [''], 'front'])
def test_bad_camera_lists_are_one_config_error(cameras):
    with pytest.raises(ConfigError, match=r"parameter 'cameras' = .* is invalid; allowed: a list of distinct "
                                          r'namespaces'):
        validate({'cameras': cameras})


def test_head_topics_and_counters():
    front = StereoHead('front', 'compressed', None, None)
    assert front.input_topics == ('front/left/image_rect/compressed', 'front/right/image_rect/compressed',
                                  'front/left/camera_info', 'front/right/camera_info')
    assert front.topic('points2') == 'front/points2' and front.counter('frames') == 'head.front.frames'
    single = StereoHead('', 'raw', None, None)
    assert single.input_topics[0] == 'left/image_rect' and single.counter('frames') is None
