"""One-item mailboxes between the ROS callbacks and the inference worker, one per stereo head.

Callbacks `put` each synchronised set of a head; the worker `take`s the newest one.
When the worker is slower than the camera, a set still waiting is replaced by
the newer one (and returned, so the caller can count the drop): latency stays
bounded by one processing time instead of growing with a backlog.

Verified by test/pipeline/test_latest_slots.py.
"""
import threading


class LatestSlots:
    """One newest-wins slot per key (per stereo head), served round-robin by one worker.

    `take` returns the next key after the one served last that holds an item, so a
    head whose sets keep arriving cannot starve the others: with n busy heads each
    is served every n-th frame, and a head that stops sending costs nothing.
    """

    def __init__(self, keys):
        self._keys = tuple(keys)
        if not self._keys or len(set(self._keys)) != len(self._keys):
            raise ValueError(f'need distinct keys, got {keys!r}')
        self._condition = threading.Condition()
        self._items = dict.fromkeys(self._keys)
        self._next = 0
        self._closed = False

    def put(self, key, item):
        """Store `item` for `key`; return the unprocessed item of that key it replaced, or None."""
        with self._condition:
            replaced, self._items[key] = self._items[key], item
            self._condition.notify()
        return replaced

    def take(self, timeout=None):
        """(key, item) of the next key in turn holding one; None on timeout or after close()."""
        with self._condition:
            self._condition.wait_for(lambda: self._closed or any(v is not None for v in self._items.values()),
                                     timeout)
            if self._closed:
                return None
            for offset in range(len(self._keys)):
                index = (self._next + offset) % len(self._keys)
                key = self._keys[index]
                item = self._items[key]
                if item is not None:
                    self._items[key] = None
                    self._next = index + 1
                    return key, item
        return None

    def close(self):
        """Wake the worker for shutdown; later takes return None at once."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self):
        return self._closed
