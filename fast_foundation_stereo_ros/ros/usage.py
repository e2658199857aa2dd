"""`stereo_node --help`: usage, every parameter with its default and description, and the topics.

Printed before ROS starts (no rclpy.init, no DDS participant), so it works on a machine where the
graph is not reachable; test/ros/test_usage.py runs the node's entry point with -h and --help.
"""
from .parameters import PARAMETERS

HELP_FLAGS = ('-h', '--help')


def wants_help(argv):
    """True when -h/--help comes before any --ros-args (after it, the arguments are ROS's)."""
    own = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    return any(arg in HELP_FLAGS for arg in own)


def usage_text(node_name, inputs, outputs):
    """The help text: `inputs` [(topic, type name)], `outputs` [(topic, type name, parameter)]."""
    lines = [
        'usage: stereo_node [-h] [--ros-args -p NAME:=VALUE ... --params-file FILE -r FROM:=TO]',
        '',
        f'ROS 2 node {node_name!r}: rectified stereo pair in, disparity, depth and point cloud out',
        '(a drop-in for stereo_image_proc). Topics are relative: namespaces and remapping apply.',
        '',
        'subscribes:',
    ]
    lines += [f'  {topic:<22} {type_name}' for topic, type_name in inputs]
    lines += ['', 'publishes:']
    lines += [f'  {topic:<22} {type_name:<30} (parameter {parameter})' for topic, type_name, parameter in outputs]
    lines += [f'  {"/diagnostics":<22} diagnostic_msgs/DiagnosticArray', '', 'parameters (name, default: description):']
    for spec in PARAMETERS:
        allowed = f' [{spec.allowed()}]' if spec.choices is not None or spec.bounds is not None else ''
        lines.append(f'  {spec.name} = {spec.default!r}: {spec.description}{allowed}')
    lines += ['', 'example: stereo_node --ros-args --params-file config/fast_foundation_stereo.yaml -p model:=sgbm']
    return '\n'.join(lines) + '\n'
