"""`stereo_node --help` / `-h`: usage, parameters with defaults and topics, exit 0, no node started."""
import subprocess
import sys

import pytest

from fast_foundation_stereo_ros.ros.parameters import PARAMETERS
from fast_foundation_stereo_ros.ros.usage import wants_help

from .helpers import node_environment, unique_domain_id


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help_prints_usage_and_exits_zero_without_starting_a_node(flag):
    result = subprocess.run([sys.executable, '-m', 'fast_foundation_stereo_ros.ros.stereo_node', flag],
                            capture_output=True, text=True, timeout=60,
                            env=node_environment(unique_domain_id()))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith('usage: stereo_node')
    for spec in PARAMETERS:
        assert f'  {spec.name} = {spec.default!r}: ' in out, spec.name
    assert "device = 'auto'" in out and 'max_disp = 192' in out
    for topic in ('left/image_rect', 'right/camera_info', 'disparity ', 'points2', 'depth/image_mm', '/diagnostics'):
        assert topic in out, topic
    # the node never started: no backend announced, no log lines
    assert 'backend' not in result.stderr and 'SGBM' not in result.stderr and '[INFO]' not in result.stderr


def test_help_after_ros_args_belongs_to_ros():
    assert wants_help(['--help']) and wants_help(['-h', '--ros-args', '-p', 'a:=1'])
    assert not wants_help(['--ros-args', '--help']) and not wants_help([])
