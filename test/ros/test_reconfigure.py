"""Which parameters change at run time, with the start-up checks (no graph traffic)."""
import pytest

from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.ros.parameters import PARAMETERS, validate
from fast_foundation_stereo_ros.ros.reconfigure import BACKEND_PARAMETERS, RECONFIGURABLE, reconfigured


def test_accepted_change_gives_new_checked_config_and_options():
    config = validate({'model': 'sgbm'})
    changed = reconfigured(config, [('max_depth', 4.0), ('point_cloud_decimation', 4), ('use_color', False),
                                    ('approximate_sync', True), ('approximate_sync_tolerance_seconds', 0.02)])
    assert changed.frame_options.depth_range == (0.0, 4.0)
    assert changed.frame_options.point_cloud_decimation == 4 and not changed.frame_options.use_color
    assert changed.sync_tolerance_ns == 20_000_000
    assert changed.model == 'sgbm' and config.max_depth == 0.0     # the old config is untouched


@pytest.mark.parametrize('name, value, expected', [
    ('point_cloud_decimation', 17, r"'point_cloud_decimation' = 17 is invalid; allowed: in \[1, 16\]"),
    ('max_depth', -1.0, "'max_depth' = -1.0 is invalid"),
    ('bad_input_log_period', 'often', "'bad_input_log_period' = 'often' is invalid"),
])
def test_out_of_range_values_are_refused_as_at_start(name, value, expected):
    with pytest.raises(ConfigError, match=expected):
        reconfigured(validate({}), [(name, value)])


def test_min_depth_beyond_max_depth_is_refused_by_the_frame_options_check():
    config = validate({'max_depth': 3.0})
    with pytest.raises(ConfigError, match=r"'min_depth' = 5.0 is invalid|'max_depth' = 3.0 is invalid"):
        reconfigured(config, [('min_depth', 5.0)])


@pytest.mark.parametrize('name, value, why', [
    ('model', 'other.onnx', 'the backend is built from it'),
    ('max_disp', 256, 'the backend is built from it'),
    ('input_transport', 'compressed', 'the subscriptions, publishers and timers'),
    ('cameras', ['front'], 'the subscriptions, publishers and timers'),
    ('output_qos', 'SENSOR_DATA', 'the subscriptions, publishers and timers'),
])
def test_restart_only_parameters_are_refused_with_the_reason(name, value, why):
    with pytest.raises(ConfigError, match=f"parameter '{name}' cannot change while the node runs: {why}.*"
                                          'restart the node'):
        reconfigured(validate({}), [(name, value)])


def test_every_parameter_is_either_reconfigurable_or_refused_with_a_reason():
    names = {spec.name for spec in PARAMETERS}
    assert RECONFIGURABLE < names and BACKEND_PARAMETERS < names and not RECONFIGURABLE & BACKEND_PARAMETERS
    for name in names - RECONFIGURABLE:
        with pytest.raises(ConfigError, match='restart the node'):
            reconfigured(validate({}), [(name, validate({}).__getattribute__(name))])


def test_parameters_of_rclpy_itself_pass_through_unchanged():
    config = validate({'max_depth': 3.0})
    assert reconfigured(config, [('use_sim_time', True)]) == config


def test_min_confidence_and_out_of_view_change_live_and_a_backend_without_confidence_refuses():
    import numpy as np

    from fast_foundation_stereo_ros.backends import create_backend
    from fast_foundation_stereo_ros.backends.base import StereoBackend
    from fast_foundation_stereo_ros.pipeline.frame_stage import FrameStage
    from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline

    class NoConfidence(StereoBackend):
        name = 'plain'

        def infer(self, left_rgb, right_rgb):
            return np.zeros(left_rgb.shape[:2], np.float32)

    changed = reconfigured(validate({}), [('min_confidence', 0.5), ('invalidate_out_of_view', False)])
    assert changed.frame_options.min_confidence == 0.5 and not changed.frame_options.invalidate_out_of_view
    with pytest.raises(ConfigError, match=r"'min_confidence' = 1.5 is invalid"):
        reconfigured(validate({}), [('min_confidence', 1.5)])
    FrameStage(StereoPipeline(create_backend('sgbm', max_disp=64))).check_options(changed.frame_options)
    with pytest.raises(ConfigError, match='min_confidence.*no confidence output'):
        FrameStage(StereoPipeline(NoConfidence())).check_options(changed.frame_options)
