"""`ffs-stereo run --bag` on image_transport 'compressed' topics (sensor_msgs/CompressedImage, jpeg/png)."""
import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from fast_foundation_stereo_ros.offline.bag_messages import COMPRESSED_IMAGE, ros2_typestore
from fast_foundation_stereo_ros.pipeline.encodings import image_to_array

from .helpers import error_lines, run_cli, small_scenes, write_stereo_bag

FRAMES = 2
COMPRESSED_TOPICS = {'/left/image_rect': '/left/image_rect/compressed',
                     '/right/image_rect': '/right/image_rect/compressed'}


def compress_bag(raw_bag, target, compression):
    """A copy of `raw_bag` whose rgb8 image topics are CompressedImage ('<topic>/compressed', bgr8 inside)."""
    typestore = ros2_typestore()
    with Reader(raw_bag) as reader, Writer(target, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for connection in reader.connections:
            topic = COMPRESSED_TOPICS.get(connection.topic, connection.topic)
            msgtype = COMPRESSED_IMAGE if topic != connection.topic else connection.msgtype
            connections[connection.id] = writer.add_connection(topic, msgtype, typestore=typestore)
        for connection, timestamp, raw in reader.messages():
            if connection.topic in COMPRESSED_TOPICS:
                image = typestore.deserialize_cdr(raw, connection.msgtype)
                bgr = cv2.cvtColor(np.asarray(image_to_array(image)), cv2.COLOR_RGB2BGR)
                ok, data = cv2.imencode('.png' if compression == 'png' else '.jpg', bgr)
                assert ok
                message = typestore.types[COMPRESSED_IMAGE](header=image.header,
                                                            format=f'rgb8; {compression} compressed bgr8',
                                                            data=data.reshape(-1))
                raw = typestore.serialize_cdr(message, COMPRESSED_IMAGE)
            writer.write(connections[connection.id], timestamp, raw)


def disparities(bag):
    typestore = ros2_typestore()
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == '/disparity']
        return [np.array(image_to_array(typestore.deserialize_cdr(raw, c.msgtype).image))
                for c, _, raw in reader.messages(connections=connections)]


@pytest.mark.parametrize('compression', ['png', 'jpeg'])
def test_compressed_image_topics_give_the_raw_disparity(tmp_path, capsys, compression):
    scenes = small_scenes(FRAMES, kind='slanted')
    raw_bag, compressed_bag = str(tmp_path / 'raw'), str(tmp_path / 'compressed')
    write_stereo_bag(raw_bag, scenes)
    compress_bag(raw_bag, compressed_bag, compression)
    common = ('--model', 'sgbm', '--max-disp', '64', '--no-progress')
    status, _, stderr = run_cli(capsys, 'run', '--bag', raw_bag, '--output-bag', tmp_path / 'raw_out', *common)
    assert status == 0, stderr
    status, stdout, stderr = run_cli(capsys, 'run', '--bag', compressed_bag, '--output-bag', tmp_path / 'out',
                                     '--left-topic', '/left/image_rect/compressed',
                                     '--right-topic', '/right/image_rect/compressed', *common)
    assert status == 0, stderr
    assert f'{FRAMES} stereo set(s)' in stdout
    expected, published = disparities(str(tmp_path / 'raw_out')), disparities(str(tmp_path / 'out'))
    assert len(published) == len(expected) == FRAMES
    for got, want in zip(published, expected):
        if compression == 'png':
            np.testing.assert_array_equal(got, want)     # lossless: bit-identical
        else:
            both = np.isfinite(got) & np.isfinite(want)
            assert both.mean() > 0.5 and np.median(np.abs(got[both] - want[both])) < 0.25


def test_a_corrupt_compressed_image_is_one_error_line(tmp_path, capsys):
    raw_bag, compressed_bag = str(tmp_path / 'raw'), str(tmp_path / 'compressed')
    write_stereo_bag(raw_bag, small_scenes(1))
    typestore = ros2_typestore()
    with Reader(raw_bag) as reader, Writer(compressed_bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {c.id: writer.add_connection(COMPRESSED_TOPICS.get(c.topic, c.topic),
                                                   COMPRESSED_IMAGE if c.topic in COMPRESSED_TOPICS else c.msgtype,
                                                   typestore=typestore) for c in reader.connections}
        for connection, timestamp, raw in reader.messages():
            if connection.topic in COMPRESSED_TOPICS:
                header = typestore.deserialize_cdr(raw, connection.msgtype).header
                message = typestore.types[COMPRESSED_IMAGE](header=header, format='jpeg',
                                                            data=np.frombuffer(b'\xff\xd8 broken', np.uint8))
                raw = typestore.serialize_cdr(message, COMPRESSED_IMAGE)
            writer.write(connections[connection.id], timestamp, raw)
    status, _, stderr = run_cli(capsys, 'run', '--bag', compressed_bag, '--output-bag', tmp_path / 'out',
                                '--model', 'sgbm', '--no-progress', '--left-topic', '/left/image_rect/compressed',
                                '--right-topic', '/right/image_rect/compressed')
    assert status == 2
    lines = error_lines(stderr)
    assert len(lines) == 1 and 'could not be decoded: the message is corrupt' in lines[0], stderr
    assert not (tmp_path / 'out').exists()
