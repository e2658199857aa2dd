"""LatestSlots: newest-wins per head, round-robin service across heads."""
import threading

import pytest

from fast_foundation_stereo_ros.pipeline.latest_slot import LatestSlots


def test_newest_wins_per_key_and_replaced_items_are_returned():
    slots = LatestSlots(['front', 'rear'])
    assert slots.put('front', 1) is None
    assert slots.put('front', 2) == 1          # a drop, counted by the caller
    assert slots.put('rear', 'a') is None
    assert slots.take(0) == ('front', 2)
    assert slots.take(0) == ('rear', 'a')
    assert slots.take(0) is None


def test_a_busy_head_cannot_starve_the_others():
    slots = LatestSlots(['a', 'b', 'c'])
    for key in 'abc':
        slots.put(key, 0)
    served = []
    for frame in range(1, 7):
        key, _ = slots.take(0)
        served.append(key)
        slots.put('a', frame)          # 'a' is fast: a newer set is always waiting
    assert served == ['a', 'b', 'c', 'a', 'a', 'a']    # b and c are served before 'a' comes again


def test_take_waits_for_a_put_from_another_thread_and_close_wakes_it():
    slots = LatestSlots(['only'])
    threading.Timer(0.05, slots.put, ('only', 'set')).start()
    assert slots.take(5.0) == ('only', 'set')
    threading.Timer(0.05, slots.close).start()
    assert slots.take(5.0) is None and slots.closed


def test_keys_must_be_distinct():
    with pytest.raises(ValueError):
        LatestSlots(['x', 'x'])
