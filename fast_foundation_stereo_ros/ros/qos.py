"""QoS profiles from the string parameters users know from Isaac ROS / RealSense.

Defaults follow REP 2003: inputs SENSOR_DATA (best effort, keep last 5),
which matches both reliable and best-effort camera drivers; outputs
DEFAULT (reliable) with depth 1, like stereo_image_proc's publishers: a
late subscriber gets the newest frame only and no backlog builds up.
"""
from rclpy.qos import (QoSProfile, ReliabilityPolicy, qos_profile_sensor_data, qos_profile_services_default,
                       qos_profile_system_default)

QOS_PRESETS = {
    'SENSOR_DATA': qos_profile_sensor_data,
    # rclpy's default for topics: reliable, volatile, keep last 10
    'DEFAULT': QoSProfile(depth=10),
    'SYSTEM_DEFAULT': qos_profile_system_default,
    'SERVICES_DEFAULT': qos_profile_services_default,
}
RELIABILITY_CHOICES = {
    '': None,   # keep the preset's
    'reliable': ReliabilityPolicy.RELIABLE,
    'best_effort': ReliabilityPolicy.BEST_EFFORT,
}


def make_qos(preset, reliability='', depth=0):
    """QoSProfile of a preset name, optionally overriding reliability and depth (> 0)."""
    if preset not in QOS_PRESETS:
        raise ValueError(f"unknown QoS preset '{preset}'")
    base = QOS_PRESETS[preset]
    profile = QoSProfile(history=base.history, depth=base.depth, reliability=base.reliability,
                         durability=base.durability, deadline=base.deadline, lifespan=base.lifespan,
                         liveliness=base.liveliness,
                         liveliness_lease_duration=base.liveliness_lease_duration)
    if RELIABILITY_CHOICES[reliability] is not None:
        profile.reliability = RELIABILITY_CHOICES[reliability]
    if depth > 0:
        profile.depth = depth
    return profile


def describe_qos(profile):
    """Short text for the startup log, e.g. 'best_effort, keep_last 5'."""
    return f'{profile.reliability.name.lower()}, {profile.history.name.lower()} {profile.depth}'
