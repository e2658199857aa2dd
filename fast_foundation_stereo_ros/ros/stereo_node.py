"""ROS 2 node: rectified stereo pair in, disparity / depth / point cloud out.

A drop-in for stereo_image_proc's disparity + point_cloud nodes, running
Fast-FoundationStereo (or the announced SGBM fallback) through the shared
backends. Topics are relative, so namespaces and remapping work as usual:

  subscribes  left/image_rect, right/image_rect, left/camera_info, right/camera_info
  publishes   disparity (stereo_msgs/DisparityImage), disparity/color (rgb8),
              depth/image (32FC1 m), depth/camera_info, depth/image_mm (16UC1),
              points2 (PointCloud2), /diagnostics

depth/camera_info (the left rectified info under the left image's header)
goes out with depth/image or depth/image_mm, never on its own.

Real-time design: subscription callbacks only feed the synchroniser and put
the completed set in a one-item mailbox; one worker thread processes the
NEWEST set, so a camera faster than the model costs dropped sets (counted as
'busy'), never a growing latency. Outputs nobody subscribes to are not
computed, and with no subscriber at all inference is skipped.

Run:  python -m fast_foundation_stereo_ros.ros.stereo_node --ros-args \
        --params-file config/fast_foundation_stereo.yaml -p model:=sgbm
"""
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from ..backends import backend_kind, create_backend
from ..errors import FFSError
from ..pipeline.frame_stage import BackendFailure, BadFrame, FrameProcessor, OutputRequest, StereoFrame
from ..pipeline.latest_slot import LatestSlot
from ..pipeline.stereo_pipeline import StereoPipeline
from ..pipeline.synchronizer import StereoSynchronizer
from .diagnostics import NodeStatistics, StatisticsReport, ThrottledLog
from .messages import RclpyMessageFactory, stamp_to_ns
from .parameters import declare_parameters
from .qos import describe_qos, make_qos

NODE_NAME = 'fast_foundation_stereo'
INPUT_TOPICS = ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info')
INPUT_TYPES = (Image, Image, CameraInfo, CameraInfo)
#: output key -> (topic, message type, parameter that advertises it)
OUTPUTS = {
    'disparity': ('disparity', DisparityImage, 'publish_disparity'),
    'disparity_color': ('disparity/color', Image, 'publish_disparity_color'),
    'depth': ('depth/image', Image, 'publish_depth'),
    'depth_info': ('depth/camera_info', CameraInfo, 'publish_depth'),
    'depth_mm': ('depth/image_mm', Image, 'publish_depth_mm'),
    'points': ('points2', PointCloud2, 'publish_points'),
    'confidence': ('confidence', Image, 'publish_confidence'),
}
WORKER_POLL_SECONDS = 0.2


class StereoNode(Node):
    def __init__(self, backend=None, **node_options):
        """`backend`: an already built StereoBackend (tests, embedding); by
        default it is created from the `model`/`backend` parameters."""
        super().__init__(NODE_NAME, **node_options)
        self.config = declare_parameters(self)
        self.backend = backend if backend is not None else self._create_backend()
        self.processor = FrameProcessor(
            StereoPipeline(self.backend, self.config.scale, self.config.fit_mode), RclpyMessageFactory(),
            self.config.frame_options)
        self.statistics = NodeStatistics()
        self.synchronizer = StereoSynchronizer(INPUT_TOPICS, self.config.queue_size,
                                               self.config.sync_tolerance_ns)
        self._slot = LatestSlot()
        self._bad_input_log = ThrottledLog(self.get_logger().warning, self.config.bad_input_log_period)
        self._output_publishers = self._advertise_outputs()
        self._subscribe_inputs()
        self._start_reports()
        self._worker = threading.Thread(target=self._work, name='stereo_worker', daemon=True)
        self._worker.start()

    # -- set-up -------------------------------------------------------------
    def _create_backend(self):
        config = self.config
        kind = backend_kind(config.model, config.backend)
        if kind == 'sgbm':
            self.get_logger().warning(
                "model '%s' selects the classical OpenCV SGBM matcher (no network weights, CPU): set "
                "parameter 'model' to a .engine, .onnx or .pth file to run Fast-FoundationStereo"
                % config.model)
        backend = create_backend(config.model, config.backend, config.device, config.max_disp,
                                 config.valid_iters, cuda_graph=config.cuda_graph)
        if config.warmup:
            started = time.perf_counter()
            backend.warmup()
            self.get_logger().info('backend warm-up took %.2f s' % (time.perf_counter() - started))
        return backend

    def _advertise_outputs(self):
        qos = make_qos(self.config.output_qos, self.config.output_qos_reliability, self.config.output_qos_depth)
        publishers = {}
        for key, (topic, message_type, enabled) in OUTPUTS.items():
            if getattr(self.config, enabled) or (key == 'depth_info' and self.config.publish_depth_mm):
                publishers[key] = self.create_publisher(message_type, topic, qos)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        topics = ', '.join(self.resolve_topic_name(OUTPUTS[key][0]) for key in publishers)
        self.get_logger().info(f'backend {self.backend.describe()}; publishing {topics} ({describe_qos(qos)})')
        return publishers

    def _subscribe_inputs(self):
        qos = make_qos(self.config.input_qos, self.config.input_qos_reliability, self.config.input_qos_depth)
        for topic, message_type in zip(INPUT_TOPICS, INPUT_TYPES):
            self.create_subscription(message_type, topic, self._input_callback(topic), qos)
        tolerance = self.config.sync_tolerance_ns
        mode = 'exact stamps' if tolerance == 0 else (
            'approximate, nearest stamps' if tolerance is None else f'approximate, within {tolerance / 1e9:g} s')
        topics = ', '.join(self.resolve_topic_name(topic) for topic in INPUT_TOPICS)
        self.get_logger().info(f'subscribing {topics} ({describe_qos(qos)}; sync {mode}, '
                               f'queue {self.config.queue_size})')

    def _start_reports(self):
        self._diagnostics_report = StatisticsReport(self.statistics, INPUT_TOPICS)
        self.create_timer(self.config.diagnostics_period, self._publish_diagnostics)
        if self.config.log_period > 0:
            self._log_report = StatisticsReport(self.statistics, INPUT_TOPICS)
            self.create_timer(self.config.log_period, self._log_status)

    # -- callbacks (executor thread): enqueue only ----------------------------
    def _input_callback(self, topic):
        def callback(message):
            self.statistics.add(f'in.{topic}')
            matched = self.synchronizer.add(topic, stamp_to_ns(message.header.stamp), message)
            if matched is None:
                return
            self.statistics.add('sets')
            self.statistics.record_intake((self.get_clock().now().nanoseconds - matched.stamp_ns) * 1e-9)
            if self._slot.put(matched) is not None:
                self.statistics.add('drops.busy')
        return callback

    def _copy_sync_counters(self):
        for cause, count in self.synchronizer.drops.items():
            self.statistics.set_total(f'drops.{cause}', count)
        for topic, count in self.synchronizer.missing.items():
            self.statistics.set_total(f'missing.{topic}', count)

    def _publish_diagnostics(self):
        self._copy_sync_counters()
        status = self._diagnostics_report.status(f'{self.get_fully_qualified_name()}: stereo depth',
                                                 self.backend.describe())
        self._diagnostics_publisher.publish(
            DiagnosticArray(header=_header_now(self), status=[status]))

    def _log_status(self):
        self._copy_sync_counters()
        self.get_logger().info(self._log_report.log_line())

    # -- worker thread --------------------------------------------------------
    def _work(self):
        while self.context.ok() and not self._slot.closed:
            matched = self._slot.take(WORKER_POLL_SECONDS)
            if matched is None:
                continue
            try:
                self._process(matched)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
                if not self.context.ok():
                    break   # shutting down while publishing
                self._count_drop('internal_error')
                self._bad_input_log('internal_error', f'frame skipped after an unexpected '
                                    f'{type(exc).__name__}: {exc}')

    def _process(self, matched):
        request = self._requested_outputs()
        if not request.needs_inference:
            self.statistics.add('skipped.no_subscribers')
            return
        frame = StereoFrame(*(matched[topic] for topic in INPUT_TOPICS))
        try:
            result = self.processor.process(frame, request)
        except BadFrame as exc:
            self._count_drop('bad_input', f'bad_input.{exc.cause}')
            self._bad_input_log(exc.cause, f'skipping frame ({exc.cause}): {exc}')
            return
        except BackendFailure as exc:
            self._count_drop('backend_error')
            self._bad_input_log('backend_error', f'backend failed, frame skipped: {exc}')
            return
        self.statistics.add('inferences')
        self._publish(result, matched.stamp_ns)

    def _requested_outputs(self):
        def subscribed(key):
            publisher = self._output_publishers.get(key)
            return publisher is not None and publisher.get_subscription_count() > 0
        return OutputRequest(disparity=subscribed('disparity'), disparity_color=subscribed('disparity_color'),
                             depth=subscribed('depth'), depth_mm=subscribed('depth_mm'),
                             points=subscribed('points'), confidence=subscribed('confidence'))

    def _publish(self, result, stamp_ns):
        started = time.perf_counter()
        for key, message in result.messages.items():
            self._output_publishers[key].publish(message)
            self.statistics.add(f'out.{key}')
        stages = result.stage_timings()
        stages['publish'] = time.perf_counter() - started
        latency = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9
        self.statistics.add('frames')
        self.statistics.record_frame(stages, latency)

    def _count_drop(self, cause, detail=None):
        self.statistics.add(f'drops.{cause}')
        if detail:
            self.statistics.add(detail)

    # -- shutdown -------------------------------------------------------------
    def close(self):
        """Stop the worker and release the backend (call before destroy_node)."""
        self._slot.close()
        self._worker.join(timeout=10.0)
        self.backend.close()


def _header_now(node):
    return Header(stamp=node.get_clock().now().to_msg())


def main(args=None):
    """Console entry point `stereo_node`; returns the process exit status."""
    rclpy.init(args=args)
    try:
        node = StereoNode()
    except (FFSError, ImportError, OSError) as exc:
        # one line naming the parameter/file and the fix; no traceback
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {exc}')
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
