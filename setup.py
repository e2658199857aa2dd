"""ament_python package: builds with `colcon build` under ROS 2 and with pip elsewhere."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'fast_foundation_stereo_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.xml')),
        (f'share/{PACKAGE}/models', ['models/README.md']),
    ],
    package_data={PACKAGE: ['config/*.yaml', 'config/*.xml']},
    install_requires=['setuptools', 'numpy', 'opencv-python-headless', 'pyyaml'],
    extras_require={
        'pytorch': ['torch', 'safetensors'],
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],
        # CUDA bindings for the TensorRT backend, by the driver's CUDA major: cuda-python 13.x
        # needs a CUDA-13 (580+) driver and fails on JetPack 6 with cudaErrorInsufficientDriver.
        # `ffs-stereo doctor` says which one this machine needs.
        'gpu-cuda12': ['cuda-python>=12.6,<13'],   # JetPack 6, CUDA-12 desktop drivers
        'gpu-cuda13': ['cuda-python>=13,<14'],     # CUDA-13 drivers (580+)
        # onnxruntime-gpu plus the bindings line that loads on every CUDA-12 and newer driver
        'gpu': ['onnxruntime-gpu', 'cuda-python>=12.6,<13'],
        'bags': ['rosbags'],
    },
    zip_safe=True,
    maintainer='fast_foundation_stereo_ros maintainers',
    maintainer_email='maintainers@fast-foundation-stereo-ros.dev',
    description='Fast-FoundationStereo disparity, depth and point clouds for ROS 2',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'ffs-stereo = fast_foundation_stereo_ros.cli:main',
            'stereo_node = fast_foundation_stereo_ros.ros.stereo_node:main',
            'build_engine = fast_foundation_stereo_ros.commands.build_engine:main',
            'scene_publisher = fast_foundation_stereo_ros.ros.scene_publisher:main',
        ],
    },
)
