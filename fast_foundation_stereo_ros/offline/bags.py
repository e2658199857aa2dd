"""A rosbag2 (.mcap or .db3) through a backend into a NEW bag.

The output bag holds every input message unchanged plus, per stereo set
(left/right image and, unless intrinsics are given, left/right camera_info
with identical header stamps):
  <ns>/disparity     stereo_msgs/msg/DisparityImage
  <ns>/depth/image   sensor_msgs/msg/Image 32FC1, metres, NaN invalid
  <ns>/points2       sensor_msgs/msg/PointCloud2, organised, stereo_image_proc layout
each with the left image's header and bag timestamp. Bags are read and
written with the `rosbags` library (no ROS installation needed).

The bag is written under a temporary name beside the target and renamed at
the end, so a failed run leaves no partial bag (and an existing one intact).
"""
import contextlib
import os
import sys
from dataclasses import dataclass

from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from ..errors import InputError
from ..files.output_folders import staged_folder_replacement
from ..files.progress import ProgressBar
from ..geometry.intrinsics import camera_from_infos, check_image_size
from ..geometry.stereo import CloudBuilder, CloudLayout
from ..pipeline.frame_outputs import compute_outputs
from .bag_messages import CAMERA_INFO, IMAGE, MessageFactory, image_to_array, ros2_typestore, stamp_ns

STORAGE_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


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
    avoid_point_cloud_padding: bool = False
    show_progress: bool = True


def output_topics(namespace):
    base = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return {'disparity': f'{base}/disparity', 'depth': f'{base}/depth/image', 'points': f'{base}/points2'}


@dataclass
class BagSummary:
    frames: int
    unmatched: dict        # topic -> messages that found no partner
    output_bag: str
    mean_timings: dict


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


class ExactStampSync:
    """Groups messages of several topics that share one header stamp.

    Topics are assumed to be stamped in increasing order, so once a set
    completes, older incomplete sets can never complete and are dropped.
    """

    def __init__(self, topics):
        self.topics = tuple(topics)
        self.pending = {}            # stamp -> {topic: item}
        self.unmatched = dict.fromkeys(self.topics, 0)

    def add(self, topic, stamp, item):
        """Returns {topic: item} when `stamp` is complete, else None."""
        group = self.pending.setdefault(stamp, {})
        if topic in group:
            self.unmatched[topic] += 1  # duplicate stamp on one topic: keep the newest
        group[topic] = item
        if len(group) < len(self.topics):
            return None
        del self.pending[stamp]
        for old in [s for s in self.pending if s < stamp]:
            self._drop(old)
        return group

    def finish(self):
        for stamp in list(self.pending):
            self._drop(stamp)
        return self.unmatched

    def _drop(self, stamp):
        for topic in self.pending.pop(stamp):
            self.unmatched[topic] += 1


def first_camera_infos(bag_path, left_info_topic, right_info_topic):
    """The first left/right CameraInfo pair with identical stamps in a bag."""
    typestore = ros2_typestore()
    with open_bag(bag_path) as reader:
        check_topics(reader, {left_info_topic: CAMERA_INFO, right_info_topic: CAMERA_INFO}, bag_path)
        sync = ExactStampSync((left_info_topic, right_info_topic))
        connections = [c for c in reader.connections if c.topic in sync.topics]
        for connection, _, raw in reader.messages(connections=connections):
            info = typestore.deserialize_cdr(raw, connection.msgtype)
            group = sync.add(connection.topic, stamp_ns(info.header), info)
            if group:
                return group[left_info_topic], group[right_info_topic]
    raise InputError(f"bag '{bag_path}' has no {left_info_topic} and {right_info_topic} messages with "
                     'identical stamps: record both camera_info topics of the rectified pair')


def first_image_size(bag_path, image_topic):
    """(width, height) of the first message on `image_topic`."""
    typestore = ros2_typestore()
    with open_bag(bag_path) as reader:
        check_topics(reader, {image_topic: IMAGE}, bag_path)
        connections = [c for c in reader.connections if c.topic == image_topic]
        for connection, _, raw in reader.messages(connections=connections):
            image = typestore.deserialize_cdr(raw, connection.msgtype)
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

class BagFrameWriter:
    """Turns one synchronised stereo set into disparity/depth/points messages."""

    def __init__(self, pipeline, factory, camera_override, avoid_padding):
        self.pipeline = pipeline
        self.factory = factory
        self.camera_override = camera_override
        self.layout = CloudLayout.for_options(use_color=True, avoid_padding=avoid_padding)
        self._camera_key, self._camera = None, None
        self._builder = None

    def process(self, left_msg, right_msg, left_info, right_info, source):
        left = image_to_array(left_msg, f'{source} left image')
        right = image_to_array(right_msg, f'{source} right image')
        camera = self._camera_for(left_info, right_info, left.shape[1], left.shape[0], source)
        outputs = compute_outputs(self.pipeline, left, left_msg.encoding, right, right_msg.encoding, camera)
        header = left_msg.header
        low, high = self.pipeline.searched_range(camera)
        messages = {
            'disparity': self.factory.disparity_image(outputs.disparity, header, camera, low, high,
                                                      self.pipeline.delta_d(camera)),
            'depth': self.factory.image(outputs.depth, '32FC1', header),
            'points': self.factory.point_cloud(self._builder_for(camera).fill(outputs.depth, outputs.left_rgb),
                                               self.layout, header),
        }
        return messages, outputs.timings

    def _camera_for(self, left_info, right_info, width, height, source):
        if self.camera_override is not None:
            check_image_size(self.camera_override, width, height, 'the given intrinsics')
            return self.camera_override
        key = (tuple(left_info.p), tuple(right_info.p), left_info.width, left_info.height,
               right_info.width, right_info.height)
        if key != self._camera_key:
            camera = camera_from_infos(left_info, right_info, source=source)
            check_image_size(camera, width, height, f'camera_info in {source}')
            self._camera_key, self._camera = key, camera
        return self._camera

    def _builder_for(self, camera):
        if self._builder is None or self._builder.projector.camera != camera:
            self._builder = CloudBuilder(camera, self.layout)
        return self._builder


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
    factory = MessageFactory(typestore)
    stereo_topics = (topics.left, topics.right) if camera is not None else \
        (topics.left, topics.right, topics.left_info, topics.right_info)
    names = output_topics(options.output_namespace)
    with open_bag(bag_path) as reader:
        _check_inputs(reader, topics, names, camera, bag_path)
        storage = options.output_storage or input_storage(bag_path)
        with staged_bag_path(output_bag, options.overwrite) as stage_path:
            frame_writer = BagFrameWriter(make_pipeline(), factory, camera, options.avoid_point_cloud_padding)
            with Writer(stage_path, version=9, storage_plugin=STORAGE_PLUGINS[storage]) as writer:
                copies = copy_connections(reader, writer, typestore)
                outputs = {key: writer.add_connection(topic, _OUTPUT_TYPES[key], typestore=typestore)
                           for key, topic in names.items()}
                conversion = _Conversion(reader, writer, factory, frame_writer, topics, stereo_topics,
                                         f"bag '{bag_path}'")
                conversion.run(copies, outputs, options.show_progress)
            if conversion.frames == 0:
                raise InputError(f"bag '{bag_path}': no {' / '.join(stereo_topics)} messages share a header "
                                 'stamp, so nothing was computed; record time-synchronised images and '
                                 'camera_info (or pass --intrinsics to pair the images only)')
    mean = {stage: seconds / conversion.frames for stage, seconds in conversion.timings.items()}
    return BagSummary(conversion.frames, conversion.sync.unmatched, os.path.abspath(output_bag), mean)


_OUTPUT_TYPES = {'disparity': 'stereo_msgs/msg/DisparityImage', 'depth': 'sensor_msgs/msg/Image',
                 'points': 'sensor_msgs/msg/PointCloud2'}


def _check_inputs(reader, topics, names, camera, bag_path):
    check_topics(reader, {topics.left: IMAGE, topics.right: IMAGE}, bag_path)
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

    def __init__(self, reader, writer, factory, frame_writer, topics, stereo_topics, source):
        self.reader, self.writer, self.factory = reader, writer, factory
        self.frame_writer = frame_writer
        self.topics = topics
        self.sync = ExactStampSync(stereo_topics)
        self.source = source
        self.frames = 0
        self.timings = {}

    def run(self, copies, outputs, show_progress):
        total = min(self.reader.topics[self.topics.left].msgcount, self.reader.topics[self.topics.right].msgcount)
        with ProgressBar(total, 'stereo sets', enabled=show_progress) as progress:
            for connection, timestamp, raw in self.reader.messages():
                if connection.id in copies:
                    self.writer.write(copies[connection.id], timestamp, raw)
                if connection.topic in self.sync.topics and self._add(connection, timestamp, raw, outputs):
                    progress.update()
        self.sync.finish()

    def _add(self, connection, timestamp, raw, outputs):
        """Feed one input message; returns True when it completed a stereo set."""
        msg = self.factory.deserialize(raw, connection.msgtype)
        group = self.sync.add(connection.topic, stamp_ns(msg.header), (timestamp, msg))
        if group is None:
            return False
        left_time, left_msg = group[self.topics.left]
        left_info = group.get(self.topics.left_info, (None, None))[1]
        right_info = group.get(self.topics.right_info, (None, None))[1]
        source = f'{self.source} at stamp {stamp_ns(left_msg.header)}'
        messages, timings = self.frame_writer.process(left_msg, group[self.topics.right][1], left_info,
                                                      right_info, source)
        # outputs carry the left image's bag time, like the inputs they come from
        for key, message in messages.items():
            self.writer.write(outputs[key], left_time, self.factory.serialize(message))
        for stage, seconds in timings.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        self.frames += 1
        return True
