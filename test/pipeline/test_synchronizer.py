"""StereoSynchronizer, without ROS (the worker's slots: test_latest_slots.py)."""

import pytest

from fast_foundation_stereo_ros.pipeline.synchronizer import StereoSynchronizer

TOPICS = ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info')
MS = 1_000_000


def add_set(sync, stamp_ns, offsets=(0, 0, 0, 0), order=TOPICS):
    """Add one message per topic (message = (topic, stamp)); return the last result."""
    result = None
    for topic in order:
        stamp = stamp_ns + offsets[TOPICS.index(topic)]
        result = sync.add(topic, stamp, (topic, stamp))
    return result


def test_exact_set_completes_on_last_member_in_any_order():
    sync = StereoSynchronizer(TOPICS)
    order = ('right/camera_info', 'left/image_rect', 'right/image_rect', 'left/camera_info')
    results = [sync.add(topic, 100, topic) for topic in order]
    assert results[:3] == [None, None, None]
    matched = results[3]
    assert matched.stamp_ns == 100
    assert [matched[t] for t in TOPICS] == list(TOPICS)
    assert sync.pending() == {t: 0 for t in TOPICS}
    assert sync.emitted == 1


def test_exact_mode_rejects_one_nanosecond_difference():
    sync = StereoSynchronizer(TOPICS)
    assert add_set(sync, 1000, offsets=(0, 1, 0, 0)) is None
    assert sync.emitted == 0


def test_interleaved_stamps_pair_correctly():
    sync = StereoSynchronizer(TOPICS)
    # all of frame 1 except the right image, then all of frame 2, then frame 1's right image
    for topic in ('left/image_rect', 'left/camera_info', 'right/camera_info'):
        assert sync.add(topic, 1 * MS, 'f1') is None
    second = add_set(sync, 2 * MS)
    assert second.stamp_ns == 2 * MS
    # frame 1 is older than the emitted set: superseded, and its late partner is dropped
    assert sync.drops['superseded'] == 3
    assert sync.add('right/image_rect', 1 * MS, 'late') is None
    assert sync.drops['late'] == 1


def test_approximate_within_tolerance_matches_nearest():
    sync = StereoSynchronizer(TOPICS, tolerance_ns=5 * MS)
    sync.add('left/image_rect', 100 * MS, 'L')
    sync.add('left/camera_info', 100 * MS, 'LI')
    sync.add('right/camera_info', 103 * MS, 'RI')
    matched = sync.add('right/image_rect', 102 * MS, 'R')
    assert matched is not None
    assert matched.stamp_ns == 100 * MS  # the first topic's stamp
    assert matched['right/image_rect'] == 'R'


def test_approximate_outside_tolerance_does_not_match():
    sync = StereoSynchronizer(TOPICS, tolerance_ns=5 * MS)
    assert add_set(sync, 100 * MS, offsets=(0, 6 * MS, 0, 0)) is None
    # spread measured over the whole set, not just to the newest arrival
    sync2 = StereoSynchronizer(TOPICS, tolerance_ns=5 * MS)
    assert add_set(sync2, 100 * MS, offsets=(0, 4 * MS, -4 * MS, 0)) is None


def test_approximate_picks_nearest_of_several_candidates():
    sync = StereoSynchronizer(TOPICS, tolerance_ns=20 * MS)
    for stamp in (90, 97, 104):
        sync.add('right/image_rect', stamp * MS, stamp)
    sync.add('left/camera_info', 100 * MS, 'LI')
    sync.add('right/camera_info', 100 * MS, 'RI')
    matched = sync.add('left/image_rect', 100 * MS, 'L')
    assert matched['right/image_rect'] == 97
    # 90 (older) superseded, 104 (newer) kept for the next set
    assert sync.pending()['right/image_rect'] == 1
    assert sync.drops['superseded'] == 1


def test_unbounded_approximate_matches_any_spread():
    sync = StereoSynchronizer(TOPICS, tolerance_ns=None)
    assert add_set(sync, 0, offsets=(0, 900 * MS, 0, 0)) is not None


def test_queue_bound_evicts_oldest_and_names_missing_topic():
    sync = StereoSynchronizer(TOPICS, queue_size=3)
    for stamp in range(1, 6):   # the right image never arrives
        for topic in ('left/image_rect', 'left/camera_info', 'right/camera_info'):
            sync.add(topic, stamp * MS, stamp)
    assert all(n <= 3 for n in sync.pending().values())
    assert sync.pending()['left/image_rect'] == 3
    assert sync.drops['unmatched'] == 3 * 2   # stamps 1 and 2, each on three topics
    assert sync.missing == {'right/image_rect': 2}
    # the right image of a queued stamp still completes its set
    assert sync.add('right/image_rect', 4 * MS, 4).stamp_ns == 4 * MS


def test_newest_complete_set_wins_over_older_incomplete_ones():
    sync = StereoSynchronizer(TOPICS, queue_size=10)
    add_set(sync, 1 * MS, order=TOPICS[:3])   # incomplete
    add_set(sync, 2 * MS, order=TOPICS[:3])   # incomplete
    matched = add_set(sync, 3 * MS)
    assert matched.stamp_ns == 3 * MS
    assert sync.pending() == {t: 0 for t in TOPICS}
    assert sync.drops['superseded'] == 6
    # a late completion of stamp 2 can no longer produce an older set
    assert sync.add('right/camera_info', 2 * MS, 'x') is None
    assert sync.drops['late'] == 1


def test_time_jump_back_resets_instead_of_dropping_forever():
    sync = StereoSynchronizer(TOPICS)
    add_set(sync, 10_000 * MS)
    # a bag restarted: 9 s earlier
    matched = add_set(sync, 1_000 * MS)
    assert matched is not None and matched.stamp_ns == 1_000 * MS
    assert sync.resets == 1


def test_invalid_arguments():
    with pytest.raises(ValueError):
        StereoSynchronizer(('a',))
    with pytest.raises(ValueError):
        StereoSynchronizer(TOPICS, queue_size=0)
    with pytest.raises(KeyError):
        StereoSynchronizer(TOPICS).add('depth', 0, None)
