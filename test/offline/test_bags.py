"""`ffs-stereo run --bag`: round trip through rosbag2 and every bad-bag case."""
import dataclasses
import os

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.offline.bag_messages import ros2_typestore, stamp_ns
from fast_foundation_stereo_ros.pipeline.encodings import image_to_array

from ..helpers import cloud_fields
from .helpers import FRAME_ID, camera_from_bag, expect_run_error, run_cli, small_scenes, write_k_txt, write_stereo_bag

FRAMES = 3


def read_bag(path):
    """{topic: [(bag timestamp, message)]} and {topic: msgtype}."""
    typestore = ros2_typestore()
    messages, types = {}, {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            messages.setdefault(connection.topic, []).append((timestamp, msg))
            types[connection.topic] = connection.msgtype
    return messages, types


@pytest.fixture(scope='module')
def scenes():
    return small_scenes(FRAMES, kind='plane')


@pytest.mark.parametrize('encoding, storage', [('rgb8', 'mcap'), ('mono8', 'sqlite3'), ('bgra8', 'mcap'),
                                               ('mono16', 'mcap')])
def test_round_trip(tmp_path, capsys, scenes, encoding, storage):
    bag, out = str(tmp_path / 'in'), str(tmp_path / 'out')
    stamps = write_stereo_bag(bag, scenes, encoding=encoding, storage=storage)
    status, stdout, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out)
    assert status == 0, stderr
    assert f'{FRAMES} stereo set(s)' in stdout and 'stereo sets' in stderr
    messages, types = read_bag(out)
    inputs, _ = read_bag(bag)
    for topic, items in inputs.items():  # every input message copied unchanged
        assert [t for t, _ in messages[topic]] == [t for t, _ in items]
    assert types['/disparity'] == 'stereo_msgs/msg/DisparityImage'
    assert types['/depth/image'] == 'sensor_msgs/msg/Image'
    assert types['/points2'] == 'sensor_msgs/msg/PointCloud2'
    left_times = [t for t, _ in inputs['/left/image_rect']]
    assert os.listdir(out) and any(name.endswith('.mcap' if storage == 'mcap' else '.db3')
                                   for name in os.listdir(out))
    for index, scene in enumerate(scenes):
        _check_frame(messages, index, scene, stamps[index], left_times[index])


def _check_frame(messages, index, scene, stamp, bag_time):
    camera = scene.camera
    height, width = scene.disparity.shape
    disparity_time, disparity_msg = messages['/disparity'][index]
    depth_time, depth_msg = messages['/depth/image'][index]
    cloud_time, cloud = messages['/points2'][index]
    assert disparity_time == depth_time == cloud_time == bag_time
    for msg in (disparity_msg, disparity_msg.image, depth_msg, cloud):
        assert stamp_ns(msg.header) == stamp and msg.header.frame_id == FRAME_ID

    assert disparity_msg.f == pytest.approx(camera.fx) and disparity_msg.t == pytest.approx(camera.baseline)
    assert disparity_msg.min_disparity == 0.0 and disparity_msg.max_disparity == 192.0
    assert disparity_msg.delta_d == pytest.approx(1 / 16)
    window = disparity_msg.valid_window
    assert (window.x_offset, window.y_offset, window.width, window.height) == (0, 0, width, height)
    image = disparity_msg.image
    assert (image.encoding, image.width, image.height, image.step) == ('32FC1', width, height, 4 * width)
    disparity = image_to_array(image)
    noc = scene.non_occluded & np.isfinite(disparity)
    assert noc.mean() > 0.9
    assert np.abs(disparity - scene.disparity)[noc].mean() < 0.5

    assert (depth_msg.encoding, depth_msg.step) == ('32FC1', 4 * width)
    depth = image_to_array(depth_msg)
    valid = np.isfinite(depth)
    np.testing.assert_array_equal(valid, np.isfinite(disparity))
    np.testing.assert_allclose(depth[valid], camera.fx * camera.baseline / disparity[valid], rtol=1e-5)

    assert (cloud.height, cloud.width, cloud.point_step) == (height, width, 32)
    assert cloud.row_step == 32 * width and len(cloud.data) == cloud.row_step * height
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == \
        [('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('rgb', 16, 7, 1)]
    assert not cloud.is_dense and not cloud.is_bigendian
    fields = cloud_fields(cloud)
    np.testing.assert_allclose(fields['z'][valid], depth[valid])
    assert np.isnan(fields['x'][~valid]).all()
    # a fronto-parallel plane: every point at the plane's depth (within SGBM's
    # sub-pixel error, here ~0.2 px of ~4.5 px), x/y from the pinhole model
    plane_disparity = camera.focal_baseline / fields['z'][noc]
    assert np.median(np.abs(plane_disparity - scene.disparity[0, 0])) < 0.3
    assert np.ptp(scene.depth) < 1e-4
    u = np.arange(width)[None, :].repeat(height, 0)
    np.testing.assert_allclose(fields['x'][valid], (u[valid] - camera.cx) * depth[valid] / camera.fx, rtol=1e-5)


def test_intrinsics_instead_of_camera_info_and_namespace(tmp_path, capsys, scenes):
    bag, out = str(tmp_path / 'in'), str(tmp_path / 'out')
    write_stereo_bag(bag, scenes[:1], with_infos=False)
    k_txt = write_k_txt(tmp_path / 'K.txt', scenes[0].camera)
    status, _, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--intrinsics', k_txt,
                                '--output-namespace', 'ffs', '--avoid-point-cloud-padding', '--no-progress')
    assert status == 0, stderr
    messages, _ = read_bag(out)
    assert {'/ffs/disparity', '/ffs/depth/image', '/ffs/points2', '/ffs/depth/camera_info'} <= set(messages)
    assert messages['/ffs/points2'][0][1].point_step == 16
    # depth/camera_info comes from the given intrinsics, under the depth image's header
    (_, info), = messages['/ffs/depth/camera_info']
    (_, depth), = messages['/ffs/depth/image']
    camera = scenes[0].camera
    assert (info.width, info.height) == (camera.width, camera.height)
    np.testing.assert_allclose(info.p, camera.projection_left())
    assert stamp_ns(info.header) == stamp_ns(depth.header) and info.header.frame_id == depth.header.frame_id


def test_unpaired_messages_are_counted_per_topic(tmp_path, capsys, scenes):
    bag, out = str(tmp_path / 'in'), str(tmp_path / 'out')
    write_stereo_bag(bag, scenes, without_right_image=(1,))
    status, stdout, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--no-progress')
    assert status == 0, stderr
    assert f'{FRAMES - 1} stereo set(s)' in stdout
    assert 'unpaired messages (no partner within the stamp tolerance; see --sync-tolerance): /left/image_rect: 1, ' \
           '/left/camera_info: 1, ' \
           '/right/camera_info: 1' in stderr
    messages, _ = read_bag(out)
    assert [stamp_ns(msg.header) for _, msg in messages['/disparity']] == \
        [stamp_ns(msg.header) for _, msg in messages['/right/image_rect']]


def test_missing_topics_are_named_with_what_the_bag_has(tmp_path, capsys, scenes):
    bag = str(tmp_path / 'in')
    write_stereo_bag(bag, scenes[:1])
    line = expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'out', '--left-topic', '/cam/left'],
                         'has no topic /cam/left')
    assert '/left/image_rect (sensor_msgs/msg/Image)' in line and '/chatter' in line
    assert not (tmp_path / 'out').exists()


def test_bag_topics_are_checked_before_the_model_is_loaded(tmp_path, capsys, scenes):
    bag = str(tmp_path / 'in')
    write_stereo_bag(bag, scenes[:1])
    # the model path is wrong too: the topic error must come first, without loading anything
    expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'out', '--left-topic', '/cam/left',
                           '--model', str(tmp_path / 'missing.onnx')], 'has no topic /cam/left')
    assert not (tmp_path / 'out').exists()


def test_missing_camera_info(tmp_path, capsys, scenes):
    bag = str(tmp_path / 'in')
    write_stereo_bag(bag, scenes[:1], with_infos=False)
    line = expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'out'],
                         'has no camera_info on /left/camera_info, /right/camera_info')
    assert '--intrinsics' in line
    assert not (tmp_path / 'out').exists()


def test_existing_output_bag_needs_overwrite_and_survives_a_failure(tmp_path, capsys, scenes):
    bag, out = str(tmp_path / 'in'), tmp_path / 'out'
    write_stereo_bag(bag, scenes[:1])
    status, _, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--no-progress')
    assert status == 0, stderr   # an earlier bag of ours
    (out / 'metadata.yaml').write_text((out / 'metadata.yaml').read_text() + '# previous bag\n')
    expect_run_error(capsys, ['--bag', bag, '--output-bag', out], 'already exists', untouched=out)
    # --overwrite, but the run fails (bad camera_info topic): the old bag stays, no partial bag
    expect_run_error(capsys, ['--bag', bag, '--output-bag', out, '--overwrite', '--left-info-topic', '/chatter'],
                  'carries std_msgs/msg/String', untouched=out)
    assert sorted(os.listdir(tmp_path)) == ['in', 'out']
    status, _, _ = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--overwrite', '--no-progress')
    assert status == 0 and 'previous bag' not in (out / 'metadata.yaml').read_text()


def test_camera_info_with_other_stamps_leaves_no_bag(tmp_path, capsys, scenes):
    bag = str(tmp_path / 'in')
    write_stereo_bag(bag, scenes[:2], right_info_delay_ns=1_000)
    expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'out'], 'share a header stamp')
    assert sorted(os.listdir(tmp_path)) == ['in']  # no partial bag, no staging folder


def test_bad_intrinsics_for_a_bag(tmp_path, capsys, scenes):
    bag = str(tmp_path / 'in')
    write_stereo_bag(bag, scenes[:1], with_infos=False)
    k_txt = write_k_txt(tmp_path / 'K.txt', scenes[0].camera, baseline=-0.1)
    expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'out', '--intrinsics', k_txt], 'baseline -0.1')
    assert sorted(os.listdir(tmp_path)) == ['K.txt', 'in']


def test_not_a_bag_and_input_as_output(tmp_path, capsys, scenes):
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'not a bag')
    expect_run_error(capsys, ['--bag', junk, '--output-bag', tmp_path / 'out'], 'cannot open bag')
    expect_run_error(capsys, ['--bag', tmp_path / 'none', '--output-bag', tmp_path / 'out'], 'does not exist')
    bag = str(tmp_path / 'in')
    write_stereo_bag(bag, scenes[:1])
    expect_run_error(capsys, ['--bag', bag, '--output-bag', bag, '--overwrite'], 'is the input bag', untouched=bag)


def test_first_camera_infos_of_a_bag(tmp_path, scenes):
    bag = str(tmp_path / 'bag')
    write_stereo_bag(bag, scenes[:1], encoding='mono8')
    camera = camera_from_bag(bag, '/left/camera_info', '/right/camera_info')
    assert camera.baseline == pytest.approx(scenes[0].camera.baseline, rel=1e-12)
    assert dataclasses.replace(camera, baseline=scenes[0].camera.baseline) == scenes[0].camera
    with pytest.raises(InputError, match='/cam/info') as info:
        camera_from_bag(bag, '/cam/info', '/right/camera_info')
    assert '/left/camera_info' in str(info.value)  # lists what the bag has
    assert os.path.isdir(bag)


def test_bag_output_honours_every_node_option_and_equals_the_node_output(tmp_path, capsys, scenes):
    """The bag gets what the node publishes with the same options, byte for byte."""
    from builtin_interfaces.msg import Time

    from fast_foundation_stereo_ros.backends import create_backend
    from fast_foundation_stereo_ros.pipeline.frame_stage import FrameOptions, FrameProcessor, OutputRequest, StereoFrame
    from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline
    from fast_foundation_stereo_ros.ros.messages import RclpyMessageFactory
    from fast_foundation_stereo_ros.ros.scene_publisher import stereo_messages

    bag, out = str(tmp_path / 'in'), str(tmp_path / 'out')
    stamps = write_stereo_bag(bag, scenes[:2])
    depth = scenes[0].depth[0, 0]
    options = FrameOptions(min_depth=0.9 * depth, max_depth=1.1 * depth, point_cloud_decimation=3,
                           use_color=False, avoid_point_cloud_padding=True)
    status, _, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--no-progress',
                                '--min-depth', options.min_depth, '--max-depth', options.max_depth,
                                '--point-cloud-decimation', 3, '--no-color', '--avoid-point-cloud-padding',
                                '--depth-mm', '--disparity-color')
    assert status == 0, stderr
    messages, types = read_bag(out)
    assert types['/depth/image_mm'] == 'sensor_msgs/msg/Image' and types['/disparity/color'] == 'sensor_msgs/msg/Image'
    assert types['/depth/camera_info'] == 'sensor_msgs/msg/CameraInfo'
    node = FrameProcessor(StereoPipeline(create_backend('sgbm')), RclpyMessageFactory(), options)
    everything = OutputRequest(disparity=True, disparity_color=True, depth=True, depth_mm=True, points=True)
    for index, scene in enumerate(scenes[:2]):
        stamp = Time(sec=stamps[index] // 1_000_000_000, nanosec=stamps[index] % 1_000_000_000)
        published = node.process(StereoFrame(*stereo_messages(scene, stamp)), everything).messages
        cloud = messages['/points2'][index][1]
        assert (cloud.height, cloud.width, cloud.point_step) == (40, 54, 12)
        assert [f.name for f in cloud.fields] == ['x', 'y', 'z']
        depth_image = image_to_array(messages['/depth/image'][index][1])
        kept = depth_image[np.isfinite(depth_image)]
        assert kept.size > 1000 and (kept >= options.min_depth).all() and (kept <= options.max_depth).all()
        assert kept.size < np.isfinite(image_to_array(messages['/disparity'][index][1].image)).sum()   # some cut
        millimetres = image_to_array(messages['/depth/image_mm'][index][1])
        np.testing.assert_array_equal(millimetres == 0, np.isnan(depth_image))
        for topic, key, data in (('/points2', 'points', lambda m: m.data),
                                 ('/depth/image', 'depth', lambda m: m.data),
                                 ('/depth/image_mm', 'depth_mm', lambda m: m.data),
                                 ('/disparity/color', 'disparity_color', lambda m: m.data),
                                 ('/disparity', 'disparity', lambda m: m.image.data)):
            written = messages[topic][index][1]
            assert bytes(np.asarray(data(written), np.uint8)) == bytes(data(published[key])), topic
        info = messages['/depth/camera_info'][index][1]
        assert list(info.p) == list(published['depth_info'].p) and stamp_ns(info.header) == stamps[index]


def test_right_stamps_5_ms_late_pair_with_a_sync_tolerance(tmp_path, capsys, scenes):
    bag = str(tmp_path / 'in')
    write_stereo_bag(bag, scenes, right_info_delay_ns=5_000_000)
    expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'exact'], '--sync-tolerance')
    out = tmp_path / 'approximate'
    status, stdout, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--sync-tolerance', '0.01',
                                     '--no-progress')
    assert status == 0, stderr
    assert f'{FRAMES} stereo set(s)' in stdout
    messages, _ = read_bag(str(out))
    assert len(messages['/disparity']) == FRAMES and len(messages['/depth/camera_info']) == FRAMES
    expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'x', '--sync-tolerance', '-1'],
                     '--sync-tolerance must be 0..10 seconds')


def test_a_bad_set_is_skipped_and_named_and_fail_fast_stops(tmp_path, capsys, scenes):
    bag = str(tmp_path / 'in')
    bad = dataclasses.replace(scenes[1], left=np.ascontiguousarray(scenes[1].left[:, :80]))   # left != right size
    write_stereo_bag(bag, [scenes[0], bad, scenes[2]])
    out = tmp_path / 'out'
    status, stdout, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--no-progress')
    assert status == 1, stderr
    assert f'{FRAMES - 1} stereo set(s)' in stdout and f'skipped 1 of {FRAMES} stereo set(s)' in stderr
    assert 'size' in stderr and 'Traceback' not in stderr
    messages, _ = read_bag(str(out))
    assert len(messages['/disparity']) == FRAMES - 1
    expect_run_error(capsys, ['--bag', bag, '--output-bag', tmp_path / 'strict', '--fail-fast'], 'at stamp')
    assert not (tmp_path / 'strict').exists()
