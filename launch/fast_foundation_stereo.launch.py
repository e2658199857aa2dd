"""Launch the fast_foundation_stereo node like stereo_image_proc's launch file.

    ros2 launch fast_foundation_stereo_ros fast_foundation_stereo.launch.py \
        namespace:=stereo left_namespace:=left right_namespace:=right model:=/path/ffs.engine

Same argument names as stereo_image_proc.launch.py (namespace, left_namespace,
right_namespace), so it is a drop-in: the node subscribes
<namespace>/<left_namespace>/image_rect, .../camera_info (and right), and
publishes <namespace>/disparity, depth/image, depth/camera_info, points2.

input_transport:=compressed subscribes image_transport's compressed topics
(<left_namespace>/image_rect/compressed ...); lifecycle:=true starts the managed
node `stereo_lifecycle_node` (unconfigured until `ros2 lifecycle set`). Several
stereo heads (parameter `cameras`) are set in the parameter file.

use_scene_publisher:=true adds a synthetic stereo camera (no hardware
needed); use_rviz:=true opens RViz on points2 and disparity/color.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'fast_foundation_stereo_ros'


def _share(*parts):
    return os.path.join(get_package_share_directory(PACKAGE), *parts)


def _arguments():
    return [
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the stereo pair'),
        DeclareLaunchArgument('left_namespace', default_value='left',
                              description='Namespace of the left camera, relative to namespace'),
        DeclareLaunchArgument('right_namespace', default_value='right',
                              description='Namespace of the right camera, relative to namespace'),
        DeclareLaunchArgument('model', default_value='',
                              description="Model file (.engine/.onnx/.pth); '' keeps the config's "
                                          "value ('' there = OpenCV SGBM, no weights)"),
        DeclareLaunchArgument('input_transport', default_value='',
                              description="'raw' or 'compressed' (CompressedImage on .../image_rect/compressed); "
                                          "'' keeps the config's value"),
        DeclareLaunchArgument('lifecycle', default_value='false',
                              description='Start the managed lifecycle node (configure/activate it to run)'),
        DeclareLaunchArgument('config', default_value=_share('config', 'fast_foundation_stereo.yaml'),
                              description='Parameter file of the node'),
        DeclareLaunchArgument('fastdds_profile', default_value=_share('config', 'fastdds_large_messages.xml'),
                              description="Fast DDS profile for large messages ('' = keep the environment's)"),
        DeclareLaunchArgument('use_scene_publisher', default_value='false',
                              description='Also publish a synthetic stereo scene (try without a camera)'),
        DeclareLaunchArgument('scene_rate', default_value='10.0', description='Synthetic scene rate in Hz'),
        DeclareLaunchArgument('use_rviz', default_value='false', description='Start RViz'),
        DeclareLaunchArgument('rviz_config', default_value=_share('config', 'fast_foundation_stereo.rviz'),
                              description='RViz configuration'),
        DeclareLaunchArgument('fixed_frame', default_value='camera_left_optical_frame',
                              description='RViz fixed frame: the left optical frame of your camera'),
    ]


def _camera_remappings(context):
    """left/image_rect -> <left_namespace>/image_rect etc., relative like stereo_image_proc."""
    left = LaunchConfiguration('left_namespace').perform(context)
    right = LaunchConfiguration('right_namespace').perform(context)
    return [('left/image_rect', f'{left}/image_rect'), ('left/camera_info', f'{left}/camera_info'),
            ('right/image_rect', f'{right}/image_rect'), ('right/camera_info', f'{right}/camera_info'),
            ('left/image_rect/compressed', f'{left}/image_rect/compressed'),
            ('right/image_rect/compressed', f'{right}/image_rect/compressed')]


def _environment(context):
    """Large-message DDS settings for every process of this launch (see the profile)."""
    profile = LaunchConfiguration('fastdds_profile').perform(context)
    if not profile:
        return []
    return [SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', profile),
            SetEnvironmentVariable('MALLOC_MMAP_THRESHOLD_', '33554432'),
            SetEnvironmentVariable('MALLOC_TRIM_THRESHOLD_', '536870912')]


def _nodes(context):
    namespace = LaunchConfiguration('namespace').perform(context)
    model = LaunchConfiguration('model').perform(context)
    parameters = [LaunchConfiguration('config').perform(context)]
    if model:
        parameters.append({'model': model})
    transport = LaunchConfiguration('input_transport').perform(context)
    if transport:
        parameters.append({'input_transport': transport})
    remappings = _camera_remappings(context)
    lifecycle = LaunchConfiguration('lifecycle')
    common = dict(name='fast_foundation_stereo', namespace=namespace, parameters=parameters,
                  remappings=remappings, output='screen')
    stereo = Node(package=PACKAGE, executable='stereo_node', condition=UnlessCondition(lifecycle), **common)
    managed = Node(package=PACKAGE, executable='stereo_lifecycle_node', condition=IfCondition(lifecycle), **common)
    scene = Node(package=PACKAGE, executable='scene_publisher', name='scene_publisher', namespace=namespace,
                 parameters=[{'rate': float(LaunchConfiguration('scene_rate').perform(context)),
                              'frame_id': LaunchConfiguration('fixed_frame').perform(context)}],
                 remappings=remappings, output='screen',
                 condition=IfCondition(LaunchConfiguration('use_scene_publisher')))
    # the RViz config names absolute topics; follow the node into its namespace
    prefix = '/' + namespace.strip('/') if namespace.strip('/') else ''
    rviz = Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                arguments=['-d', LaunchConfiguration('rviz_config').perform(context),
                           '-f', LaunchConfiguration('fixed_frame').perform(context)],
                remappings=[('/points2', f'{prefix}/points2'),
                            ('/disparity/color', f'{prefix}/disparity/color')] if prefix else [],
                condition=IfCondition(LaunchConfiguration('use_rviz')))
    return _environment(context) + [stereo, managed, scene, rviz]


def generate_launch_description():
    return LaunchDescription(_arguments() + [OpaqueFunction(function=_nodes)])
