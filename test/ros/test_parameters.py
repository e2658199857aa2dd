"""Parameter declaration/validation and QoS presets (real rclpy, no graph traffic)."""
import math

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, ReliabilityPolicy

from fast_foundation_stereo_ros import defaults
from fast_foundation_stereo_ros.errors import ConfigError
from fast_foundation_stereo_ros.ros.parameters import PARAMETERS, declare_parameters, validate
from fast_foundation_stereo_ros.ros.qos import make_qos

from ..paths import REPO_ROOT
from .helpers import unique_domain_id


@pytest.fixture
def make_node():
    contexts, nodes = [], []

    def factory(**overrides):
        context = Context()
        rclpy.init(context=context, domain_id=unique_domain_id())
        contexts.append(context)
        node = rclpy.create_node('parameters_test', context=context, start_parameter_services=False,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        nodes.append(node)
        return node
    yield factory
    for node in nodes:
        node.destroy_node()
    for context in contexts:
        rclpy.try_shutdown(context=context)


def test_defaults_are_valid_and_documented(make_node):
    node = make_node()
    config = declare_parameters(node)
    assert config.model == '' and config.max_disp == 192 and config.queue_size == 5
    assert config.depth_range == (0.0, math.inf)
    assert config.sync_tolerance_ns == 0
    for spec in PARAMETERS:
        descriptor = node.describe_parameter(spec.name)
        assert descriptor.description, spec.name
        if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
            assert descriptor.integer_range or descriptor.floating_point_range, spec.name


def test_overrides_are_read(make_node):
    config = declare_parameters(make_node(max_disp=256, approximate_sync=True,
                                          approximate_sync_tolerance_seconds=0.02, max_depth=5.0))
    assert config.max_disp == 256
    assert config.sync_tolerance_ns == 20_000_000
    assert config.depth_range == (0.0, 5.0)


@pytest.mark.parametrize('overrides,message', [
    ({'max_disp': 100}, "parameter 'max_disp' is invalid"),
    ({'max_disp': 2048}, "parameter 'max_disp' is invalid"),
    ({'valid_iters': 0}, "parameter 'valid_iters'"),
    ({'scale': 'half'}, "parameter 'scale' must be a float"),
    ({'min_depth': 1}, 'decimal point'),
    ({'backend': 'cuda'}, "parameter 'backend' = 'cuda' is invalid; allowed: one of 'auto'"),
    ({'output_qos_reliability': 'sometimes'}, "parameter 'output_qos_reliability'"),
])
def test_invalid_overrides_raise_one_config_error(make_node, overrides, message):
    with pytest.raises(ConfigError, match=message):
        declare_parameters(make_node(**overrides))


def test_validate_cross_checks():
    with pytest.raises(ConfigError, match="'scale' = 0.0"):
        validate({'scale': 0.0})
    with pytest.raises(ConfigError, match="'max_depth' = 1.0 is invalid; allowed: 0 \\(no limit\\) or > min_depth \\(2.0\\)"):
        validate({'min_depth': 2.0, 'max_depth': 1.0})
    with pytest.raises(ConfigError, match='unknown parameter'):
        validate({'maxdisp': 64})
    assert validate({'approximate_sync': True}).sync_tolerance_ns is None   # unbounded nearest-stamp


def test_qos_presets_and_overrides():
    sensor = make_qos('SENSOR_DATA')
    assert sensor.reliability == ReliabilityPolicy.BEST_EFFORT and sensor.depth == 5
    output = make_qos('DEFAULT', '', 1)
    assert output.reliability == ReliabilityPolicy.RELIABLE and output.depth == 1
    assert output.history == HistoryPolicy.KEEP_LAST
    forced = make_qos('SENSOR_DATA', 'reliable', 2)
    assert forced.reliability == ReliabilityPolicy.RELIABLE and forced.depth == 2
    assert make_qos('SYSTEM_DEFAULT').reliability == ReliabilityPolicy.SYSTEM_DEFAULT


def test_shipped_yaml_lists_every_parameter_and_loads_through_rclpy():
    import yaml

    from .helpers import ROOT
    path = ROOT / 'config' / 'fast_foundation_stereo.yaml'
    listed = yaml.safe_load(path.read_text())['/**']['ros__parameters']
    assert set(listed) == {spec.name for spec in PARAMETERS}
    context = Context()
    rclpy.init(context=context, domain_id=unique_domain_id(), args=['--ros-args', '--params-file', str(path)])
    try:
        node = rclpy.create_node('yaml_test', context=context, start_parameter_services=False)
        config = declare_parameters(node)
        assert config == validate(listed)
        assert config == validate({})     # the file documents the defaults
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_shipped_yaml_equals_the_defaults_module_and_the_declared_defaults(make_node):
    with open(REPO_ROOT / 'config' / 'fast_foundation_stereo.yaml', encoding='utf-8') as handle:
        shipped = yaml.safe_load(handle)['/**']['ros__parameters']
    assert (shipped['max_disp'], shipped['valid_iters'], shipped['device']) == \
        (defaults.MAX_DISP, defaults.VALID_ITERS, defaults.DEVICE)
    declared = {spec.name: spec.default for spec in PARAMETERS}
    assert shipped == declared   # every parameter, same value, nothing missing on either side
    config = declare_parameters(make_node())
    assert (config.max_disp, config.valid_iters, config.device) == \
        (defaults.MAX_DISP, defaults.VALID_ITERS, defaults.DEVICE)
