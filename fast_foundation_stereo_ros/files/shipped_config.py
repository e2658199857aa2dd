"""Files the package ships in `config/`, found wherever the package is installed.

colcon installs them to <prefix>/share/fast_foundation_stereo_ros/config and the package to
<prefix>/lib/pythonX.Y/site-packages; pip does the same under sys.prefix; a source checkout keeps
them in <repository>/config. So the search walks up from the package folder and looks at both
places at every level (test/ros/test_environment.py checks the path found here).
"""
import os

PACKAGE = 'fast_foundation_stereo_ros'
FASTDDS_PROFILE_NAME = 'fastdds_large_messages.xml'
#: glibc: keep multi-MB messages out of the mmap/munmap churn of every frame (see the profile)
ALLOCATOR_SETTINGS = {'MALLOC_MMAP_THRESHOLD_': '33554432', 'MALLOC_TRIM_THRESHOLD_': '536870912'}
_SEARCH_LEVELS = 6


def shipped_config(name):
    """Path of the shipped config file `name`, or None."""
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the package folder
    for _ in range(_SEARCH_LEVELS):
        folder = os.path.dirname(folder)
        for candidate in (os.path.join(folder, 'share', PACKAGE, 'config', name),
                          os.path.join(folder, 'config', name)):
            if os.path.isfile(candidate):
                return candidate
    return None


def large_message_exports():
    """Shell lines that set the Fast DDS profile and the allocator settings (`ffs-stereo doctor --print-env`)."""
    profile = shipped_config(FASTDDS_PROFILE_NAME)
    lines = [f'export FASTDDS_DEFAULT_PROFILES_FILE={profile}'] if profile else []
    return lines + [f'export {name}={value}' for name, value in ALLOCATOR_SETTINGS.items()]
