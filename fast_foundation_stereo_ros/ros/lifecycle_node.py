"""The stereo node as a managed (lifecycle) node: depth comes up when the launch says so.

Same parameters, topics and outputs as ros/stereo_node.py (the plain node stays
the default); the work is the shared `StereoNodeLogic`, called per transition:

  configure   load the backend and warm it up (the slow part: model / engine load)
  activate    subscribe the inputs, advertise the outputs, start the worker
  deactivate  stop the worker, remove subscriptions and publishers; the backend stays loaded
  cleanup     release the backend (back to unconfigured)
  shutdown    all of the above that applies

A backend that cannot be loaded makes `configure` fail with one log line and the
node stays unconfigured (parameters, which cannot change at run time, are
checked at start as for the plain node). Live reconfiguration works in every
state. Drive it with `ros2 lifecycle set /fast_foundation_stereo configure`
(lifecycle_msgs/srv/ChangeState).

Run:  python -m fast_foundation_stereo_ros.ros.lifecycle_node --ros-args -p model:=sgbm
Verified by test/ros/test_lifecycle_node.py (transitions over DDS; outputs only while active).
"""
import sys

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from ..errors import FFSError
from .stereo_node import NODE_NAME, StereoNodeLogic, main as run_node


class StereoLifecycleNode(StereoNodeLogic, LifecycleNode):
    def __init__(self, **node_options):
        super().__init__(NODE_NAME, **node_options)
        self._declare()
        self.get_logger().info('unconfigured: the backend loads on configure, topics appear on activate '
                               f'(ros2 lifecycle set {self.get_fully_qualified_name()} configure)')

    def on_configure(self, state):
        try:
            self._load()
        except (FFSError, ImportError, OSError) as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        return super().on_configure(state)

    def on_activate(self, state):
        self._start()
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._unload()
        return super().on_cleanup(state)

    def on_shutdown(self, state):
        self._stop()
        self._unload()
        return super().on_shutdown(state)

    def close(self):
        """Stop the worker and release the backend, whatever the state (call before destroy_node)."""
        self._stop_worker()
        self._unload()


def main(args=None):
    """Console entry point `stereo_lifecycle_node`; returns the process exit status."""
    return run_node(args, StereoLifecycleNode)


if __name__ == '__main__':
    sys.exit(main())
