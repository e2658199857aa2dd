"""Helpers for the node tests: real DDS between a node subprocess and the test.

Each test gets its own ROS_DOMAIN_ID (from the pid, in the 1..101 range Fast
DDS allows) and talks to the node over localhost with the large-message
Fast DDS profile, exactly as users are told to run it. The test side is a
separate rclpy Context with its own executor thread, so publishing and
receiving happen while the test body waits on conditions.
"""
import functools
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene
from fast_foundation_stereo_ros.pipeline.encodings import image_to_array
from fast_foundation_stereo_ros.ros.scene_publisher import STEREO_TOPICS, stereo_messages

from ..paths import REPO_ROOT

ROOT = REPO_ROOT
FASTDDS_PROFILE = ROOT / 'config' / 'fastdds_large_messages.xml'
NODE_MODULE = 'fast_foundation_stereo_ros.ros.stereo_node'
ROS_ENVIRONMENT = {
    'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
    'FASTDDS_DEFAULT_PROFILES_FILE': str(FASTDDS_PROFILE),
    # glibc: keep multi-MB messages out of mmap/munmap churn (see the profile)
    'MALLOC_MMAP_THRESHOLD_': '33554432',
    'MALLOC_TRIM_THRESHOLD_': '536870912',
}
# The test process's own participants must use the same transports; Fast DDS
# reads the profile when the first participant of the process is created.
os.environ.update({key: value for key, value in ROS_ENVIRONMENT.items() if not key.startswith('MALLOC')})
os.environ.pop('ROS_LOCALHOST_ONLY', None)

_domain_sequence = itertools.count()
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def unique_domain_id():
    """A domain id for one test, distinct across tests of this run and likely across runs."""
    return 1 + (os.getpid() * 7 + next(_domain_sequence) * 13) % 101


def node_environment(domain_id):
    env = dict(os.environ)
    env.update(ROS_ENVIRONMENT)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env.pop('ROS_LOCALHOST_ONLY', None)
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_LOGGING_BUFFERED_STREAM'] = '0'
    return env


def ros_args(parameters, remaps=None):
    args = ['--ros-args']
    for name, value in parameters.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        args += ['-p', f'{name}:={value}']
    for source, target in (remaps or {}).items():
        args += ['-r', f'{source}:={target}']
    return args


class NodeProcess:
    """The stereo node as a subprocess; output goes to a temporary log file."""

    def __init__(self, domain_id, parameters=None, remaps=None, module=NODE_MODULE, environment=None):
        """`remaps`: {from: to}, including '__ns' for the namespace; `environment`: {name: value or None
        (removed)} applied over node_environment."""
        self.log_file = tempfile.NamedTemporaryFile('w+', prefix='stereo_node_', suffix='.log', delete=False)
        self._final_output = None
        command = [sys.executable, '-m', module] + ros_args(parameters or {}, remaps)
        env = node_environment(domain_id)
        for name, value in (environment or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def alive(self):
        return self.process.poll() is None

    def wait_exit(self, timeout):
        return self.process.wait(timeout)

    def stop(self):
        """SIGINT (a clean rclpy shutdown), SIGKILL if that hangs; keeps the log text."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._final_output is None:
            self._final_output = self.output()
            self.log_file.close()
            os.unlink(self.log_file.name)

    def output(self):
        if self._final_output is not None:
            return self._final_output
        with open(self.log_file.name) as log:
            return log.read()


class MessageLog:
    """Messages received on one topic, with their arrival times (monotonic)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.entries = []

    def __call__(self, message):
        with self._lock:
            self.entries.append((time.monotonic(), message))

    def messages(self):
        with self._lock:
            return [message for _, message in self.entries]

    def __len__(self):
        with self._lock:
            return len(self.entries)

    def by_stamp(self):
        return {stamp_ns(message.header.stamp): message for message in self.messages()}

    def clear(self):
        with self._lock:
            self.entries.clear()


class RosGraph:
    """The test's own rclpy context, node and spinning executor thread."""

    def __init__(self, domain_id, name='node_test'):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            while self.context.ok():
                self._executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - context shut down under us at close()
            pass

    def publisher(self, message_type, topic, qos=RELIABLE):
        return self.node.create_publisher(message_type, topic, qos)

    def subscribe(self, message_type, topic, qos=RELIABLE):
        log = MessageLog()
        self.node.create_subscription(message_type, topic, log, qos)
        return log

    def wait_for_publishers(self, topics, timeout=15.0):
        """Wait until the node under test advertises `topics` (discovery)."""
        return wait_until(lambda: all(self.node.count_publishers(t) > 0 for t in topics), timeout)

    def close(self):
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def stamp_ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def make_stamp(nanoseconds):
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


@functools.lru_cache(maxsize=None)
def cached_scene(kind, width=640, height=480, seed=3):
    """Rendering takes 0.5-2 s: each scene is made once per test session."""
    return make_scene(kind, width, height, seed=seed)


class StereoSource:
    """Publishes the four stereo inputs of a scene from the test graph (reliable)."""

    def __init__(self, graph, qos=RELIABLE, topics=STEREO_TOPICS):
        types = (Image, Image, CameraInfo, CameraInfo)
        self.publishers = [graph.publisher(t, topic, qos) for topic, t in zip(topics, types)]

    def wait_for_subscriber(self, timeout=15.0):
        return wait_until(lambda: all(p.get_subscription_count() > 0 for p in self.publishers), timeout)

    @staticmethod
    def messages(scene, stamp_nanoseconds, encoding='rgb8'):
        return list(stereo_messages(scene, make_stamp(stamp_nanoseconds), encoding))

    def publish(self, messages):
        for publisher, message in zip(self.publishers, messages):
            publisher.publish(message)


def now_ns():
    return time.time_ns()


def diagnostic_values(log, name_part='stereo depth'):
    """KeyValues of the node's newest DiagnosticStatus, as a dict (or {})."""
    for message in reversed(log.messages()):
        for status in message.status:
            if name_part in status.name:
                values = {kv.key: kv.value for kv in status.values}
                values['_level'] = status.level
                values['_message'] = status.message
                return values
    return {}


def subscribe_diagnostics(graph):
    return graph.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=10))


def counter(values, key):
    return int(values.get(key, 0))


def float_image(message):
    """32FC1 / 16UC1 image as a numpy copy."""
    return np.array(image_to_array(message))
