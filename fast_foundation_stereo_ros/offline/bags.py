"""A rosbag2 (.mcap or .db3) through a backend into a NEW bag.

The output bag holds every input message unchanged plus, per stereo set
(left/right image and, unless intrinsics are given, left/right camera_info
with identical header stamps, paired by pipeline.synchronizer), the node's
outputs computed by the node's per-frame stage (pipeline.frame_stage) with
the node's options (depth range, decimation, colour, padding):
  <ns>/disparity          stereo_msgs/msg/DisparityImage
  <ns>/depth/image        sensor_msgs/msg/Image 32FC1, metres, NaN invalid
  <ns>/depth/camera_info  the left camera_info (not with --intrinsics: the bag has none)
  <ns>/points2            sensor_msgs/msg/PointCloud2, organised, stereo_image_proc layout
  <ns>/depth/image_mm     16UC1 millimetres (BagOptions.depth_mm)
  <ns>/disparity/color    rgb8 colour map (BagOptions.disparity_color)
each with the left image's header and bag timestamp. The image topics may be
sensor_msgs/Image or, as image_transport records them, sensor_msgs/CompressedImage
(jpeg/png; told apart by the topic's message type, decoded once per set). Bags are read and
written with the `rosbags` library (no ROS installation needed).

The bag is written under a temporary name beside the target and renamed at
the end, so a failed run leaves no partial bag (and an existing one intact).
"""
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field

from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from ..errors import InputError
from ..files.output_folders import staged_folder_replacement
from ..files.progress import ProgressBar
from ..geometry.synthetic_scenes import camera_info_dict
from ..pipeline.compressed_images import decode_compressed
from ..pipeline.frame_stage import BadFrame, FrameOptions, FrameProcessor, OutputRequest, StereoFrame
from ..pipeline.synchronizer import StereoSynchronizer
from .bag_messages import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, RosbagsMessageFactory, ros2_typestore, stamp_ns

STORAGE_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
#: unmatched messages kept per topic while pairing by stamp (recorders interleave topics closely)
SYNC_QUEUE_SIZE = 30


@dataclass(frozen=True)
class BagTopics:
    """Input topics; stereo_image_proc's names by default."""
    left: str = '/left/image_rect'
    right: str = '/right/image_rect'
    left_info: str = '/left/camera_info'
    right_info: str = '/right/camera_info'


@dataclass(frozen=True)
class BagOptions:
    output_namespace: str = ''
    overwrite: bool = False
    output_storage: str = None       # 'mcap' | 'sqlite3' | None = like the input
    frame: FrameOptions = field(default_factory=FrameOptions)   # the node's geometry options
    depth_mm: bool = False           # also write depth/image_mm
    disparity_color: bool = False    # also write disparity/color
    show_progress: bool = True
    sync_tolerance_ns: int = 0       # 0 = equal stamps; else the largest stamp spread of one set
    fail_fast: bool = False          # the first bad set ends the run (else it is skipped and named)


#: output key -> (topic under the namespace, message type)
OUTPUTS = {
    'disparity': ('disparity', 'stereo_msgs/msg/DisparityImage'),
    'disparity_color': ('disparity/color', 'sensor_msgs/msg/Image'),
    'depth': ('depth/image', 'sensor_msgs/msg/Image'),
    'depth_info': ('depth/camera_info', CAMERA_INFO),
    'depth_mm': ('depth/image_mm', 'sensor_msgs/msg/Image'),
    'points': ('points2', 'sensor_msgs/msg/PointCloud2'),
}


def output_request(options):
    """What the bag gets: disparity, depth and points always, the rest as asked."""
    return OutputRequest(disparity=True, depth=True, points=True, depth_mm=options.depth_mm,
                         disparity_color=options.disparity_color)


def output_topics(namespace, request=OutputRequest(disparity=True, depth=True, points=True), with_infos=True):
    """{output key: topic} of the outputs `request` produces."""
    base = '/' + namespace.strip('/') if namespace.strip('/') else ''
    wanted = {'disparity': request.disparity, 'disparity_color': request.disparity_color,
              'depth': request.depth, 'depth_info': with_infos and (request.depth or request.depth_mm),
              'depth_mm': request.depth_mm, 'points': request.points}
    return {key: f'{base}/{OUTPUTS[key][0]}' for key, enabled in wanted.items() if enabled}


@dataclass
class BagSummary:
    frames: int
    unmatched: dict        # topic -> messages that found no partner
    output_bag: str
    mean_timings: dict
    skipped: list = field(default_factory=list)   # [(left stamp ns, reason)] of sets that failed


# ---------------------------------------------------------------- reading --

@contextlib.contextmanager
def open_bag(path):
    """rosbags Reader with errors turned into one-line InputErrors."""
    if not os.path.exists(path):
        raise InputError(f"bag '{path}' does not exist: give a rosbag2 folder or its .mcap/.db3 file")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise InputError(f"cannot open bag '{path}' ({type(exc).__name__}: {exc}): give a rosbag2 folder "
                         'or a .mcap/.db3 file') from None
    try:
        yield reader
    finally:
        reader.close()


def check_topics(reader, expected, path):
    """Raise unless the bag has each topic of `expected` ({topic: msgtype}) with that type.

    The message names the missing topics and lists what the bag has.
    """
    missing = [topic for topic in expected if topic not in reader.topics]
    if missing:
        available = ', '.join(f'{name} ({info.msgtype})' for name, info in sorted(reader.topics.items()))
        raise InputError(f"bag '{path}' has no topic {', '.join(missing)}; it has: {available or 'nothing'}. "
                         'Pass the right names with --left-topic/--right-topic/--left-info-topic/'
                         '--right-info-topic')
    for topic, msgtype in expected.items():
        if reader.topics[topic].msgtype != msgtype:
            raise InputError(f"topic {topic} in bag '{path}' carries {reader.topics[topic].msgtype}, not "
                             f'{msgtype}: pick the rectified image / camera_info topics')


def image_type(reader, topic):
    """The bag's message type of image topic `topic`: Image, or CompressedImage (image_transport 'compressed')."""
    info = reader.topics.get(topic)
    return COMPRESSED_IMAGE if info is not None and info.msgtype == COMPRESSED_IMAGE else IMAGE


def decoded_image(image):
    """A CompressedImage decoded to pixels (pipeline.compressed_images.DecodedImage); an Image as it is."""
    if getattr(image, 'format', None) is None:
        return image
    return decode_compressed(image.header, image.format, image.data)


def first_camera_infos(bag_path, left_info_topic, right_info_topic):
    """The first left/right CameraInfo pair with identical stamps in a bag."""
    typestore = ros2_typestore()
    with open_bag(bag_path) as reader:
        check_topics(reader, {left_info_topic: CAMERA_INFO, right_info_topic: CAMERA_INFO}, bag_path)
        sync = StereoSynchronizer((left_info_topic, right_info_topic), SYNC_QUEUE_SIZE)
        connections = [c for c in reader.connections if c.topic in sync.topics]
        for connection, _, raw in reader.messages(connections=connections):
            info = typestore.deserialize_cdr(raw, connection.msgtype)
            matched = sync.add(connection.topic, stamp_ns(info.header), info)
            if matched is not None:
                return matched[left_info_topic], matched[right_info_topic]
    raise InputError(f"bag '{bag_path}' has no {left_info_topic} and {right_info_topic} messages with "
                     'identical stamps: record both camera_info topics of the rectified pair')


def first_image_size(bag_path, image_topic):
    """(width, height) of the first message on `image_topic`."""
    typestore = ros2_typestore()
    with open_bag(bag_path) as reader:
        check_topics(reader, {image_topic: image_type(reader, image_topic)}, bag_path)
        connections = [c for c in reader.connections if c.topic == image_topic]
        for connection, _, raw in reader.messages(connections=connections):
            image = decoded_image(typestore.deserialize_cdr(raw, connection.msgtype))
            return image.width, image.height
    raise InputError(f"bag '{bag_path}' has no messages on {image_topic}: record the rectified images")


# ---------------------------------------------------------------- writing --

def input_storage(path):
    """'mcap' or 'sqlite3', whichever the input bag uses."""
    if os.path.isdir(path):
        return 'mcap' if any(name.endswith('.mcap') for name in os.listdir(path)) else 'sqlite3'
    return 'mcap' if path.endswith('.mcap') else 'sqlite3'


def staged_bag_path(target, overwrite):
    """Yield a fresh path to write a bag to; it becomes `target` on success (replacing only a bag we wrote)."""
    return staged_folder_replacement(target, overwrite, 'output bag', '--output-bag')


def copy_connections(reader, writer, typestore):
    """Output connection for each input connection (same type, definition and QoS)."""
    mapping = {}
    for connection in reader.connections:
        kwargs = {'serialization_format': connection.ext.serialization_format,
                  'offered_qos_profiles': connection.ext.offered_qos_profiles}
        if connection.msgdef.data and connection.digest:
            kwargs.update(msgdef=connection.msgdef.data, rihs01=connection.digest)
        elif connection.msgtype in typestore.types:
            kwargs.update(typestore=typestore)
        else:
            print(f'warning: not copying {connection.topic}: the bag holds no definition of '
                  f'{connection.msgtype}', file=sys.stderr)
            continue
        mapping[connection.id] = writer.add_connection(connection.topic, connection.msgtype, **kwargs)
    return mapping


# ------------------------------------------------------------- processing --

def process_bag(bag_path, output_bag, make_pipeline, topics=BagTopics(), camera=None, options=BagOptions()):
    """Run the pipeline over every stereo set of `bag_path` into `output_bag`.

    `make_pipeline()` returns the StereoPipeline; it is called only once the
    bag's topics and the output path have been checked, so a wrong topic name
    does not cost a model load first. `camera` (a StereoCamera from
    --intrinsics/--calib-*) replaces the bag's camera_info; without it the
    info topics are required.
    """
    if os.path.exists(output_bag) and os.path.realpath(output_bag) == os.path.realpath(bag_path):
        raise InputError(f"output bag '{output_bag}' is the input bag: choose another --output-bag")
    typestore = ros2_typestore()
    factory = RosbagsMessageFactory(typestore)
    stereo_topics = (topics.left, topics.right) if camera is not None else \
        (topics.left, topics.right, topics.left_info, topics.right_info)
    request = output_request(options)
    names = output_topics(options.output_namespace, request)   # depth/camera_info also from --intrinsics
    with open_bag(bag_path) as reader:
        _check_inputs(reader, topics, names, camera, bag_path)
        storage = options.output_storage or input_storage(bag_path)
        with staged_bag_path(output_bag, options.overwrite) as stage_path:
            processor = FrameProcessor(make_pipeline(), factory, options.frame, camera)
            with Writer(stage_path, version=9, storage_plugin=STORAGE_PLUGINS[storage]) as writer:
                copies = copy_connections(reader, writer, typestore)
                outputs = {key: writer.add_connection(topic, OUTPUTS[key][1], typestore=typestore)
                           for key, topic in names.items()}
                conversion = _Conversion(reader, writer, factory, processor, request, topics, stereo_topics,
                                         f"bag '{bag_path}'", options)
                conversion.run(copies, outputs, options.show_progress)
            if conversion.frames == 0 and conversion.skipped:
                raise InputError(f'all {len(conversion.skipped)} stereo set(s) failed, nothing written; the '
                                 f'first: {conversion.skipped[0][1]}')
            if conversion.frames == 0:
                raise InputError(f"bag '{bag_path}': no {' / '.join(stereo_topics)} messages share a header "
                                 'stamp, so nothing was computed; pass --sync-tolerance SECONDS to pair '
                                 'nearby stamps, record time-synchronised images and camera_info, or pass '
                                 '--intrinsics to pair the images only')
    mean = {stage: seconds / conversion.frames for stage, seconds in conversion.timings.items()}
    return BagSummary(conversion.frames, conversion.unmatched(), os.path.abspath(output_bag), mean,
                      conversion.skipped)


def _check_inputs(reader, topics, names, camera, bag_path):
    kind = image_type(reader, topics.left)
    check_topics(reader, {topics.left: kind, topics.right: kind}, bag_path)
    if camera is None:
        missing = [t for t in (topics.left_info, topics.right_info) if t not in reader.topics]
        if missing:
            available = ', '.join(sorted(reader.topics))
            raise InputError(f"bag '{bag_path}' has no camera_info on {', '.join(missing)} (it has: "
                             f'{available}): pass --left-info-topic/--right-info-topic, or give the '
                             'intrinsics with --intrinsics K.txt or --calib-left/--calib-right')
        check_topics(reader, {topics.left_info: CAMERA_INFO, topics.right_info: CAMERA_INFO}, bag_path)
    clashes = [topic for topic in names.values() if topic in reader.topics]
    if clashes:
        raise InputError(f"bag '{bag_path}' already has {', '.join(clashes)}: choose another "
                         '--output-namespace for the computed topics')


class _Conversion:
    """One pass over the input bag: copy everything, compute each complete stereo set."""

    def __init__(self, reader, writer, factory, processor, request, topics, stereo_topics, source,
                 options=BagOptions()):
        self.reader, self.writer, self.factory = reader, writer, factory
        self.processor, self.request = processor, request
        self.topics = topics
        self.fail_fast = options.fail_fast
        self.skipped = []   # [(left stamp ns, reason)]
        self.sync = StereoSynchronizer(stereo_topics, SYNC_QUEUE_SIZE, options.sync_tolerance_ns)
        camera = processor.camera_override
        # with --intrinsics the bag has no camera_info: depth/camera_info comes from the given camera
        self.left_info = None if camera is None else factory.camera_info_from_fields(
            camera_info_dict(camera, 'left'))
        self.received = dict.fromkeys(stereo_topics, 0)
        self.source = source
        self.frames = 0
        self.timings = {}

    def unmatched(self):
        """Per input topic: messages that found no partner (same stamp, or within the tolerance)."""
        return {topic: count - self.sync.emitted for topic, count in self.received.items()}

    def run(self, copies, outputs, show_progress):
        total = min(self.reader.topics[self.topics.left].msgcount, self.reader.topics[self.topics.right].msgcount)
        with ProgressBar(total, 'stereo sets', enabled=show_progress) as progress:
            for connection, timestamp, raw in self.reader.messages():
                if connection.id in copies:
                    self.writer.write(copies[connection.id], timestamp, raw)
                if connection.topic in self.sync.topics and self._add(connection, timestamp, raw, outputs):
                    progress.update()

    def _add(self, connection, timestamp, raw, outputs):
        """Feed one input message; returns True when it completed a stereo set."""
        msg = self.factory.deserialize(raw, connection.msgtype)
        self.received[connection.topic] += 1
        matched = self.sync.add(connection.topic, stamp_ns(msg.header), (timestamp, msg))
        if matched is None:
            return False
        group = matched.messages
        left_time, left_msg = group[self.topics.left]
        started = time.perf_counter()
        try:
            frame = StereoFrame(decoded_image(left_msg), decoded_image(group[self.topics.right][1]),
                                group.get(self.topics.left_info, (None, self.left_info))[1],
                                group.get(self.topics.right_info, (None, None))[1])
            decode_seconds = time.perf_counter() - started
            result = self.processor.process(frame, self.request)
        except (BadFrame, InputError) as exc:
            error = InputError(f'{self.source} at stamp {stamp_ns(left_msg.header)}: {exc}')
            if self.fail_fast:
                raise error from None
            self.skipped.append((stamp_ns(left_msg.header), str(error)))
            return True
        if frame.left_image is not left_msg:
            self.timings['decode'] = self.timings.get('decode', 0.0) + decode_seconds
        # outputs carry the left image's bag time, like the inputs they come from
        for key, message in result.messages.items():
            self.writer.write(outputs[key], left_time, self.factory.serialize(message))
        for stage, seconds in result.stage_timings().items():
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        self.frames += 1
        return True
