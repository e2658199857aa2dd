"""The launch file cannot run here (launch/launch_ros are not on PyPI), so check
statically what a real ROS install would rely on: arguments, executables,
installed files and remappings."""
import ast
import re

from ..paths import REPO_ROOT

REPO = REPO_ROOT
LAUNCH = REPO / 'launch' / 'fast_foundation_stereo.launch.py'


def _calls(tree, name):
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keyword(call, key):
    for keyword in call.keywords:
        if keyword.arg == key:
            return keyword.value
    return None


def test_launch_declares_stereo_image_proc_compatible_arguments():
    tree = ast.parse(LAUNCH.read_text())
    names = {call.args[0].value for call in _calls(tree, 'DeclareLaunchArgument')}
    assert {'namespace', 'left_namespace', 'right_namespace', 'model', 'config', 'use_rviz'} <= names
    for call in _calls(tree, 'DeclareLaunchArgument'):
        assert _keyword(call, 'description') is not None, call.args[0].value


def test_launch_executables_are_installed_console_scripts():
    tree = ast.parse(LAUNCH.read_text())
    setup = (REPO / 'setup.py').read_text()
    scripts = set(re.findall(r"'([\w-]+) = fast_foundation_stereo_ros[\w.]*:main'", setup))
    executables = {_keyword(call, 'executable').value for call in _calls(tree, 'Node')
                   if isinstance(_keyword(call, 'package'), ast.Name)}   # package=PACKAGE: ours
    assert executables and executables <= scripts, (executables, scripts)
    assert {'stereo_node', 'build_engine', 'ffs-stereo'} <= scripts


def test_launch_refers_to_files_that_setup_installs():
    source = LAUNCH.read_text()
    shared = set(re.findall(r"_share\('config', '([^']+)'\)", source))
    assert shared == {'fast_foundation_stereo.yaml', 'fastdds_large_messages.xml', 'fast_foundation_stereo.rviz'}
    for name in shared:
        assert (REPO / 'config' / name).is_file(), name
    setup = (REPO / 'setup.py').read_text()
    assert "glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.xml')" in setup
    assert "glob('launch/*.launch.py')" in setup


def test_launch_remaps_relative_camera_topics_like_stereo_image_proc():
    source = LAUNCH.read_text()
    for side in ('left', 'right'):
        for topic in ('image_rect', 'camera_info'):
            assert f"('{side}/{topic}', f'{{{side}}}/{topic}')" in source


def test_package_xml_declares_runtime_dependencies():
    package = (REPO / 'package.xml').read_text()
    for dependency in ('rclpy', 'sensor_msgs', 'stereo_msgs', 'diagnostic_msgs', 'launch_ros',
                       'python3-numpy', 'python3-opencv'):
        assert f'<exec_depend>{dependency}</exec_depend>' in package
    assert '<build_type>ament_python</build_type>' in package
