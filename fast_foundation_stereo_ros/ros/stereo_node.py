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

Live reconfiguration (ros/reconfigure.py), compressed input (parameter
`input_transport`), several stereo heads (parameter `cameras`, ros/heads.py)
and the managed lifecycle node (ros/lifecycle_node.py) share this code:
`StereoNodeLogic` holds the work, in steps the lifecycle node calls one by one
(declare -> load -> start -> stop -> unload); StereoNode runs them all at once.

Run:  python -m fast_foundation_stereo_ros.ros.stereo_node --ros-args \
        --params-file config/fast_foundation_stereo.yaml -p model:=sgbm
"""
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from .. import defaults
from ..backends import backend_kind, create_backend
from ..errors import ConfigError, FFSError, InputError
from ..pipeline.compressed_images import decode_compressed
from ..pipeline.frame_stage import BackendFailure, BadFrame, FrameProcessor, OutputRequest, StereoFrame
from ..pipeline.latest_slot import LatestSlots
from ..pipeline.predictor import check_baked_settings
from ..pipeline.stereo_pipeline import StereoPipeline
from ..pipeline.synchronizer import StereoSynchronizer
from .diagnostics import NodeStatistics, StatisticsReport, ThrottledLog
from .environment import describe_added, reexec_with_settings
from .heads import RAW_INPUT_TOPICS, StereoHead, head_input_topics
from .messages import RclpyMessageFactory, stamp_to_ns
from .parameters import declare_parameters, explicit_network_settings
from .qos import describe_qos, make_qos
from .reconfigure import reconfigured
from .usage import usage_text, wants_help

NODE_NAME = 'fast_foundation_stereo'
INPUT_TOPICS = RAW_INPUT_TOPICS
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


def advertised_outputs(config):
    """Output keys the configuration advertises (depth/camera_info goes with either depth image)."""
    return [key for key, (_, _, enabled) in OUTPUTS.items()
            if getattr(config, enabled) or (key == 'depth_info' and config.publish_depth_mm)]


class StereoNodeLogic:
    """The stereo node's work on an rclpy Node (`self`), in the steps of a managed lifecycle:

    `_declare` (parameters, the live-reconfiguration callback) -> `_load` (backend, heads)
    -> `_start` (publishers, subscriptions, timers, worker) -> `_stop` -> `_unload`.
    """

    # -- parameters -------------------------------------------------------------
    def _declare(self):
        self.config = declare_parameters(self)
        self._frame_options = self.config.frame_options
        self.backend = None
        self.heads = ()
        self.statistics = NodeStatistics()
        self._bad_input_log = ThrottledLog(self.get_logger().warning, self.config.bad_input_log_period)
        self._publish_lock = threading.Lock()
        self._slots = None
        self._worker = None
        self._timers = []
        self._diagnostics_publisher = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, parameters):
        """Executor thread: apply a run-time change (next frame) or refuse it with the reason."""
        try:
            config = reconfigured(self.config, parameters)
            for head in self.heads:        # e.g. min_confidence with a backend that has no confidence
                head.processor.stage.check_options(config.frame_options)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        previous, self.config = self.config, config
        self._frame_options = config.frame_options      # immutable; the worker picks it up per frame
        for head in self.heads:
            head.synchronizer.tolerance_ns = config.sync_tolerance_ns
        if config.bad_input_log_period != previous.bad_input_log_period:
            self._bad_input_log = ThrottledLog(self.get_logger().warning, config.bad_input_log_period)
        if self._slots is not None and advertised_outputs(config) != advertised_outputs(previous):
            self._readvertise()
        self.get_logger().info('parameters changed: ' + ', '.join(f'{p.name}={p.value!r}' for p in parameters))
        return SetParametersResult(successful=True)

    # -- load / unload (lifecycle configure / cleanup) ------------------------------
    def _load(self, backend=None):
        """`backend`: an already built StereoBackend (tests, embedding); by default
        it is created from the `model`/`backend` parameters."""
        config = self.config
        self.backend = backend if backend is not None else self._create_backend()
        pipeline = StereoPipeline(self.backend, config.scale, config.fit_mode)
        self.heads = tuple(
            StereoHead(name, config.input_transport,
                       FrameProcessor(pipeline, RclpyMessageFactory(), self._frame_options),
                       StereoSynchronizer(head_input_topics(name, config.input_transport), config.queue_size,
                                          config.sync_tolerance_ns))
            for name in (config.cameras or ('',)))

    def _unload(self):
        if self.backend is not None:
            self.backend.close()
        self.backend, self.heads = None, ()

    def _create_backend(self):
        config = self.config
        kind = backend_kind(config.model, config.backend)
        if kind == 'sgbm':
            self.get_logger().warning(
                "model '%s' selects the classical OpenCV SGBM matcher (no network weights, CPU): set "
                "parameter 'model' to a .engine, .onnx or .pth file to run Fast-FoundationStereo"
                % config.model)
        device = defaults.resolve_device(config.device)
        if kind in ('pytorch', 'onnxruntime'):
            self.get_logger().info(f"device '{config.device}' -> {device}"
                                   + (' (CUDA when available, else the CPU)' if config.device == 'auto' else ''))
        backend = create_backend(config.model, config.backend, device, config.max_disp,
                                 config.valid_iters, cuda_graph=config.cuda_graph)
        try:
            check_baked_settings(backend, explicit_network_settings(config), config.model,
                                 lambda key: f"remove parameter '{key}'")
        except ConfigError:
            backend.close()
            raise
        if config.warmup:
            started = time.perf_counter()
            backend.warmup()
            self.get_logger().info('backend warm-up took %.2f s' % (time.perf_counter() - started))
        return backend

    # -- start / stop (lifecycle activate / deactivate) -----------------------------
    def _start(self):
        self._advertise_outputs()
        self._slots = LatestSlots(self.heads)
        self._subscribe_inputs()
        self._start_reports()
        self._worker = threading.Thread(target=self._work, name='stereo_worker', daemon=True)
        self._worker.start()

    def _stop_worker(self):
        if self._slots is not None:
            self._slots.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)

    def _stop(self):
        """Stop the worker and remove subscriptions, publishers and timers; the backend stays loaded."""
        self._stop_worker()
        for head in self.heads:
            for subscription in head.subscriptions:
                self.destroy_subscription(subscription)
            head.subscriptions = []
            head.synchronizer.reset()
            with self._publish_lock:
                publishers, head.publishers = head.publishers, {}
            for publisher in publishers.values():
                self.destroy_publisher(publisher)
        for timer in self._timers:
            self.destroy_timer(timer)
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
        self._slots, self._worker, self._timers, self._diagnostics_publisher = None, None, [], None

    def _output_qos(self):
        return make_qos(self.config.output_qos, self.config.output_qos_reliability, self.config.output_qos_depth)

    def _advertise_outputs(self):
        qos = self._output_qos()
        for head in self.heads:
            head.publishers = {key: self.create_publisher(OUTPUTS[key][1], head.topic(OUTPUTS[key][0]), qos)
                               for key in advertised_outputs(self.config)}
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        topics = ', '.join(publisher.topic_name for head in self.heads for publisher in head.publishers.values())
        self.get_logger().info(f'backend {self.backend.describe()}; publishing {topics} ({describe_qos(qos)})')

    def _readvertise(self):
        """Outputs switched on/off at run time: create the new publishers, remove the switched-off ones."""
        qos, wanted = self._output_qos(), advertised_outputs(self.config)
        for head in self.heads:
            current = head.publishers
            publishers = {key: current.get(key) or self.create_publisher(OUTPUTS[key][1],
                                                                         head.topic(OUTPUTS[key][0]), qos)
                          for key in wanted}
            with self._publish_lock:   # the worker never publishes on a destroyed publisher
                head.publishers = publishers
                for key in set(current) - set(wanted):
                    self.destroy_publisher(current[key])

    def _subscribe_inputs(self):
        config = self.config
        qos = make_qos(config.input_qos, config.input_qos_reliability, config.input_qos_depth)
        for head in self.heads:
            head.subscriptions = [self.create_subscription(message_type, topic, self._input_callback(head, topic),
                                                           qos)
                                  for topic, message_type in zip(head.input_topics, head.input_types)]
        tolerance = config.sync_tolerance_ns
        mode = 'exact stamps' if tolerance == 0 else (
            'approximate, nearest stamps' if tolerance is None else f'approximate, within {tolerance / 1e9:g} s')
        topics = ', '.join(self.resolve_topic_name(topic) for head in self.heads for topic in head.input_topics)
        self.get_logger().info(f'subscribing {topics} ({describe_qos(qos)}; sync {mode}, '
                               f'queue {config.queue_size})')

    def _all_input_topics(self):
        return [topic for head in self.heads for topic in head.input_topics]

    def _start_reports(self):
        self._diagnostics_report = StatisticsReport(self.statistics, self._all_input_topics())
        self._timers = [self.create_timer(self.config.diagnostics_period, self._publish_diagnostics)]
        if self.config.log_period > 0:
            self._log_report = StatisticsReport(self.statistics, self._all_input_topics())
            self._timers.append(self.create_timer(self.config.log_period, self._log_status))

    # -- callbacks (executor thread): enqueue only ----------------------------
    def _input_callback(self, head, topic):
        def callback(message):
            self.statistics.add(f'in.{topic}')
            stamp = stamp_to_ns(message.header.stamp)
            self.statistics.record_stamp(topic, stamp)
            matched = head.synchronizer.add(topic, stamp, message)
            if matched is None:
                return
            self._count(head, 'sets')
            self.statistics.record_intake((self.get_clock().now().nanoseconds - matched.stamp_ns) * 1e-9)
            slots = self._slots
            if slots is not None and slots.put(head, matched) is not None:
                self._count(head, 'drops.busy')
        return callback

    def _count(self, head, key):
        self.statistics.add(key)
        head_key = head.counter(key)
        if head_key:
            self.statistics.add(head_key)

    def _copy_sync_counters(self):
        totals = {}
        for head in self.heads:
            for cause, count in head.synchronizer.drops.items():
                totals[f'drops.{cause}'] = totals.get(f'drops.{cause}', 0) + count
                if head.name:
                    self.statistics.set_total(head.counter(f'drops.{cause}'), count)
            for topic, count in head.synchronizer.missing.items():
                totals[f'missing.{topic}'] = count
        for key, count in totals.items():
            self.statistics.set_total(key, count)

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
        slots = self._slots
        while self.context.ok() and not slots.closed:
            taken = slots.take(WORKER_POLL_SECONDS)
            if taken is None:
                continue
            head, matched = taken
            try:
                self._process(head, matched)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
                if not self.context.ok():
                    break   # shutting down while publishing
                self._count_drop(head, 'internal_error')
                self._bad_input_log('internal_error', f'frame skipped after an unexpected '
                                    f'{type(exc).__name__}: {exc}')

    def _process(self, head, matched):
        request = self._requested_outputs(head)
        if not request.needs_inference:
            self.statistics.add('skipped.no_subscribers')
            return
        if head.processor.options is not self._frame_options:
            head.processor.stage.set_options(self._frame_options)   # a run-time change, from this frame on
        try:
            frame, decode_seconds = self._frame(head, matched)
            result = head.processor.process(frame, request)
        except BadFrame as exc:
            self._count_drop(head, 'bad_input', f'bad_input.{exc.cause}')
            self._bad_input_log(exc.cause, f'skipping frame ({exc.cause}): {exc}')
            return
        except BackendFailure as exc:
            self._count_drop(head, 'backend_error')
            self._bad_input_log('backend_error', f'backend failed, frame skipped: {exc}')
            return
        if decode_seconds is not None:
            result.timings['decode'] = decode_seconds
        self.statistics.add('inferences')
        self.statistics.record_top_of_range(result.top_of_range.share, result.top_of_range.suggested_max_disp)
        if result.no_baseline:
            self._bad_input_log('no_baseline', 'camera_info has a zero baseline (right P[3] = 0): publishing '
                                'the disparity only; depth and points need the right P[3] = -fx * baseline')
        self._publish(head, result, matched.stamp_ns)

    @staticmethod
    def _frame(head, matched):
        """(StereoFrame, seconds spent decoding compressed images or None) of a synchronised set."""
        messages = [matched[topic] for topic in head.input_topics]
        if head.transport != 'compressed':
            return StereoFrame(*messages), None
        started = time.perf_counter()
        images = []
        for side, message in zip(('left', 'right'), messages[:2]):
            try:
                images.append(decode_compressed(message.header, message.format, message.data))
            except InputError as exc:
                raise BadFrame('corrupt_image', f'{side} image: {exc}') from None
        return StereoFrame(*images, *messages[2:]), time.perf_counter() - started

    def _requested_outputs(self, head):
        publishers = head.publishers

        def subscribed(key):
            publisher = publishers.get(key)
            return publisher is not None and publisher.get_subscription_count() > 0
        return OutputRequest(disparity=subscribed('disparity'), disparity_color=subscribed('disparity_color'),
                             depth=subscribed('depth'), depth_mm=subscribed('depth_mm'),
                             points=subscribed('points'), confidence=subscribed('confidence'))

    def _publish(self, head, result, stamp_ns):
        started = time.perf_counter()
        with self._publish_lock:
            publishers = head.publishers
            for key, message in result.messages.items():
                publisher = publishers.get(key)
                if publisher is not None:    # None: switched off since the request
                    publisher.publish(message)
                    self.statistics.add(f'out.{key}')
        stages = result.stage_timings()
        stages['publish'] = time.perf_counter() - started
        latency = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9
        self._count(head, 'frames')
        self.statistics.record_frame(stages, latency)

    def _count_drop(self, head, cause, detail=None):
        self._count(head, f'drops.{cause}')
        if detail:
            self.statistics.add(detail)


class StereoNode(StereoNodeLogic, Node):
    def __init__(self, backend=None, **node_options):
        """`backend`: an already built StereoBackend (tests, embedding); by
        default it is created from the `model`/`backend` parameters."""
        super().__init__(NODE_NAME, **node_options)
        self._declare()
        self._load(backend)
        self._start()

    # -- shutdown -------------------------------------------------------------
    def close(self):
        """Stop the worker and release the backend (call before destroy_node, which removes the rest)."""
        self._stop_worker()
        self._unload()


def _header_now(node):
    return Header(stamp=node.get_clock().now().to_msg())


def _type_name(message_type):
    return f"{message_type.__module__.split('.')[0]}/{message_type.__name__}"


def main(args=None, node_class=None):
    """Console entry point `stereo_node` (`node_class`: the lifecycle node's entry point passes its own);
    returns the process exit status."""
    argv = sys.argv[1:] if args is None else list(args)
    if wants_help(argv):
        sys.stdout.write(usage_text(
            NODE_NAME, [(topic, _type_name(kind)) for topic, kind in zip(INPUT_TOPICS, INPUT_TYPES)],
            [(topic, _type_name(kind), parameter) for topic, kind, parameter in OUTPUTS.values()]))
        return 0
    reexec_with_settings(argv)   # returns when the environment is already complete (or kept by choice)
    rclpy.init(args=args)
    added = describe_added()
    if added:
        rclpy.logging.get_logger(NODE_NAME).info(added)
    try:
        node = (node_class or StereoNode)()
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
