"""Which node parameters may change while the node runs, and the checked new configuration.

Like stereo_image_proc's dynamic parameters: what only shapes the per-frame
geometry, the outputs, the synchronisation and logging changes at the next
frame; what builds the backend (model, engine, device, search range, sizes) or
the ROS entities (topics, QoS, timers, heads, transport) is refused with the
reason, because it needs a restart. A change goes through the same checks as
at start-up (`parameters.validate`: descriptor ranges and FrameOptions).

Verified by test/ros/test_reconfigure.py (unit) and test/ros/test_node_reconfigure.py
(set_parameters over DDS).
"""
import dataclasses

from ..errors import ConfigError
from .parameters import SPECS, validate

#: parameters applied at the next frame without restarting anything
RECONFIGURABLE = frozenset({
    'min_depth', 'max_depth', 'use_color', 'avoid_point_cloud_padding', 'point_cloud_decimation',
    'invalidate_out_of_view', 'min_confidence',
    'publish_disparity', 'publish_disparity_color', 'publish_depth', 'publish_depth_mm', 'publish_points',
    'publish_confidence',
    'approximate_sync', 'approximate_sync_tolerance_seconds', 'bad_input_log_period',
})
#: parameters the backend (model / engine) is built from
BACKEND_PARAMETERS = frozenset({'model', 'backend', 'device', 'scale', 'fit_mode', 'max_disp', 'valid_iters',
                                'cuda_graph', 'warmup'})


def restart_reason(name):
    """Why `name` cannot change at run time (one line, with the fix)."""
    if name in BACKEND_PARAMETERS:
        why = 'the backend is built from it (a new model or engine)'
    else:
        why = 'the subscriptions, publishers and timers are created from it'
    return f"parameter '{name}' cannot change while the node runs: {why}; restart the node with the new value"


def reconfigured(config, parameters):
    """The NodeConfig after applying `parameters` (rclpy Parameters, or (name, value) pairs) to `config`.

    Raises ConfigError naming the first refused parameter: restart-only, or out of range. Parameters
    that are not the stereo node's (rclpy's own, e.g. use_sim_time) are left to rclpy.
    """
    values = dataclasses.asdict(config)
    for parameter in parameters:
        name, value = (parameter.name, parameter.value) if hasattr(parameter, 'name') else parameter
        if name not in SPECS:
            continue
        if name not in RECONFIGURABLE:
            raise ConfigError(restart_reason(name))
        values[name] = value
    return validate(values)
