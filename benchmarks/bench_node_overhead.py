"""Per-frame cost of the node around inference, next to a plain copy of its output bytes.

    .venv/bin/python benchmarks/bench_node_overhead.py [--frames 20] [--skip-dds]

1. Overhead (in process, no DDS): everything the node does per frame except
   the backend's inference - input message -> arrays, camera model, disparity
   correction, depth, cloud fill, building the disparity / depth / points2
   messages (their byte copies included) - at 640x480 and 1280x720. Printed
   next to ONE plain copy of the same output bytes (np.copyto into a
   preallocated buffer), the floor for any implementation that hands its
   results to rclpy. Target: overhead <= 3x the copy. The node's stages run
   right after an inference has pushed their data out of the CPU caches, so
   the copy is timed twice: in a tight loop (warm caches, the flattering
   floor) and right after the same inference (the like-for-like floor).
2. End to end (real DDS, node as a subprocess, SGBM backend): publish ->
   receive of points2 in this process, next to the node's own inference time
   from /diagnostics, at a rate low enough that no set is dropped.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DDS_ENVIRONMENT = {
    'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
    'FASTDDS_DEFAULT_PROFILES_FILE': str(ROOT / 'config' / 'fastdds_large_messages.xml'),
}
os.environ.update(DDS_ENVIRONMENT)   # before the first participant of this process

from fast_foundation_stereo_ros.backends import create_backend  # noqa: E402
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene  # noqa: E402
from fast_foundation_stereo_ros.pipeline.frame_stage import (FrameOptions, FrameProcessor, OutputRequest,  # noqa: E402
                                                             StereoFrame)
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline  # noqa: E402
from fast_foundation_stereo_ros.ros.messages import RclpyMessageFactory  # noqa: E402
from fast_foundation_stereo_ros.ros.scene_publisher import stereo_messages  # noqa: E402

SIZES = ((640, 480), (1280, 720))
REQUEST = OutputRequest(disparity=True, depth=True, points=True)
MAX_DISP = 128


def make_frame(scene, stamp_ns=1):
    from builtin_interfaces.msg import Time
    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return StereoFrame(*stereo_messages(scene, stamp))


def output_bytes(messages):
    return (len(messages['disparity'].image.data) + len(messages['depth'].data)
            + len(messages['points'].data))


def plain_copy_seconds(total_bytes, repeats, before_each=None):
    """(best, median) seconds of one np.copyto of `total_bytes` into a preallocated buffer.

    `before_each()` runs untimed before every copy (an inference, to give the
    copy the same cold caches as the node's stages).
    """
    source = np.random.default_rng(0).integers(0, 255, total_bytes, dtype=np.uint8)
    target = np.empty_like(source)
    np.copyto(target, source)    # fault the pages in once
    times = []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        started = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def measure_overhead(width, height, frames):
    scene = make_scene('mixed', width, height, seed=1)
    processor = FrameProcessor(StereoPipeline(create_backend('sgbm', max_disp=MAX_DISP)), RclpyMessageFactory(),
                               FrameOptions())
    frame = make_frame(scene)
    processor.process(frame, REQUEST)    # first call allocates the cloud buffer
    per_stage, overheads = {}, []
    for _ in range(frames):
        result = processor.process(frame, REQUEST)
        overhead = sum(seconds for stage, seconds in result.timings.items() if stage != 'infer')
        overheads.append(overhead)
        for stage, seconds in result.timings.items():
            per_stage.setdefault(stage, []).append(seconds)
    total_bytes = output_bytes(result.messages)
    copy = plain_copy_seconds(total_bytes, frames)
    left, right = scene.left, scene.right
    copy_after_inference = plain_copy_seconds(total_bytes, frames,
                                              lambda: processor.pipeline.backend.infer(left, right))
    return {'size': f'{width}x{height}', 'bytes': total_bytes,
            'overhead': (min(overheads), statistics.median(overheads)), 'copy': copy,
            'copy_after_inference': copy_after_inference,
            'infer': statistics.median(per_stage['infer']),
            'stages': {stage: statistics.median(values) for stage, values in per_stage.items() if stage != 'infer'}}


def print_overhead(row):
    best, median = row['overhead']
    print(f"{row['size']:>9}  output {row['bytes'] / 1e6:5.1f} MB  node overhead best {best * 1e3:6.2f} ms "
          f"(median {median * 1e3:6.2f})")
    for label, key in (('plain copy, warm caches', 'copy'), ('plain copy after inference', 'copy_after_inference')):
        copy_best, copy_median = row[key]
        print(f"{'':>11}{label:<27} best {copy_best * 1e3:5.2f} ms (median {copy_median * 1e3:5.2f})  "
              f"overhead/copy: best/best {best / copy_best:4.2f}x, median/median {median / copy_median:4.2f}x")
    stages = '  '.join(f'{stage} {seconds * 1e3:.2f}' for stage, seconds in row['stages'].items())
    print(f'{"":>11}median stages ms: {stages}   (SGBM inference {row["infer"] * 1e3:.1f} ms, not included)')


# ---------------------------------------------------------------- end to end --

def end_to_end(width, height, frames, rate, domain):
    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from fast_foundation_stereo_ros.ros.scene_publisher import STEREO_TOPICS

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), MALLOC_MMAP_THRESHOLD_='33554432',
               MALLOC_TRIM_THRESHOLD_='536870912')
    node = subprocess.Popen([sys.executable, '-m', 'fast_foundation_stereo_ros.ros.stereo_node', '--ros-args',
                             '-p', 'model:=sgbm', '-p', f'max_disp:={MAX_DISP}', '-p', 'log_period:=0.0',
                             '-p', 'diagnostics_period:=0.5'],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    graph = rclpy.create_node('bench_graph', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(graph)
    received, diagnostics = {}, []
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    graph.create_subscription(PointCloud2, 'points2',
                              lambda m: received.setdefault(m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec,
                                                            time.perf_counter()), reliable)
    graph.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    publishers = [graph.create_publisher(t, topic, reliable)
                  for topic, t in zip(STEREO_TOPICS, (Image, Image, CameraInfo, CameraInfo))]
    spinner = threading.Thread(target=lambda: _spin(executor, context), daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (all(p.get_subscription_count() for p in publishers)
                                                   and graph.count_subscribers('points2') >= 1
                                                   and graph.count_publishers('points2') >= 1):
            time.sleep(0.05)
        scene = make_scene('mixed', width, height, seed=1)
        messages = list(stereo_messages(scene, Time()))
        sent = {}
        for _ in range(frames + 2):      # the first two warm the path up
            stamp = time.time_ns()
            for message in messages:
                message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            sent[stamp] = time.perf_counter()
            for publisher, message in zip(publishers, messages):
                publisher.publish(message)
            time.sleep(1.0 / rate)
        time.sleep(1.5)
        latencies = [received[s] - sent[s] for s in sorted(sent)[2:] if s in received]
        infer = _diagnostic_value(diagnostics, 'stage_ms.infer.mean')
        node_total = sum(_diagnostic_value(diagnostics, f'stage_ms.{s}.mean') or 0.0
                         for s in ('convert', 'infer', 'geometry', 'build', 'publish'))
        return {'size': f'{width}x{height}', 'sent': frames, 'received': len(latencies),
                'latency': statistics.median(latencies) if latencies else float('nan'),
                'infer': (infer or float('nan')) / 1e3, 'node': node_total / 1e3}
    finally:
        executor.shutdown(timeout_sec=1.0)
        graph.destroy_node()
        rclpy.try_shutdown(context=context)
        node.send_signal(signal.SIGINT)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()


def _spin(executor, context):
    try:
        while context.ok():
            executor.spin_once(timeout_sec=0.05)
    except Exception:  # noqa: BLE001 - shut down under us
        pass


def _diagnostic_value(diagnostics, key):
    for message in reversed(diagnostics):
        for status in message.status:
            for value in status.values:
                if value.key == key:
                    return float(value.value)
    return None


def print_end_to_end(row):
    print(f"{row['size']:>9}  publish->points2 received {row['latency'] * 1e3:7.1f} ms median "
          f"({row['received']}/{row['sent']} frames); in the node: SGBM inference {row['infer'] * 1e3:6.1f} ms, "
          f"all stages incl. publish {row['node'] * 1e3:6.1f} ms; DDS + input side "
          f"{(row['latency'] - row['node']) * 1e3:6.1f} ms")


def main():
    if 'MALLOC_MMAP_THRESHOLD_' not in os.environ:
        # measure with the glibc settings the node is run with (read at process start)
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='33554432', MALLOC_TRIM_THRESHOLD_='536870912')
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=20, help='frames per measurement')
    parser.add_argument('--skip-dds', action='store_true', help='only the in-process overhead')
    parser.add_argument('--domain', type=int, default=1 + os.getpid() % 100, help='ROS_DOMAIN_ID for part 2')
    args = parser.parse_args()
    print('node overhead per frame (disparity + depth + points2 messages, everything but inference):')
    for width, height in SIZES:
        print_overhead(measure_overhead(width, height, args.frames))
    if args.skip_dds:
        return 0
    print('end to end over DDS (node subprocess, SGBM, shared-memory profile):')
    for (width, height), rate in zip(SIZES, (4.0, 1.5)):
        print_end_to_end(end_to_end(width, height, min(args.frames, 10), rate, args.domain))
    return 0


if __name__ == '__main__':
    sys.exit(main())
