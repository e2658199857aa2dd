"""A one-item mailbox between the ROS callbacks and the inference worker.

Callbacks `put` each synchronised set; the worker `take`s the newest one.
When the worker is slower than the camera, a set still waiting is replaced by
the newer one (and returned, so the caller can count the drop): latency stays
bounded by one processing time instead of growing with a backlog.
"""
import threading


class LatestSlot:
    def __init__(self):
        self._condition = threading.Condition()
        self._item = None
        self._closed = False

    def put(self, item):
        """Store `item`; return the unprocessed item it replaced, or None."""
        with self._condition:
            replaced, self._item = self._item, item
            self._condition.notify()
        return replaced

    def take(self, timeout=None):
        """Wait for an item and remove it; None on timeout or after close()."""
        with self._condition:
            self._condition.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
        return item

    def close(self):
        """Wake the worker for shutdown; later takes return None at once."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self):
        return self._closed
