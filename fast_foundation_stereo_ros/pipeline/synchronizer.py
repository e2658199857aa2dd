"""Time synchroniser for the four stereo inputs, without ROS.

A replacement for message_filters' TimeSynchronizer / ApproximateTime
(not installable here) with the behaviour a real-time node needs:

- exact mode (tolerance 0): a set is complete when every topic has a
  message with the same stamp;
- approximate mode: the newest arrival is matched with, per other topic, the
  message nearest in time, and the set is accepted when all stamps lie within
  `tolerance_ns` of each other (`None` = unbounded, like ApproximateTime);
- newest wins: when a set completes, every queued message at or before it is
  discarded (counted as 'superseded'), so we never emit an older set later;
- bounded: each topic keeps at most `queue_size` unmatched messages; the
  oldest is evicted together with its partners on the other topics
  (counted as 'unmatched'), and the topics that had no partner for it are
  counted in `missing`, so users learn *which* input is missing;
- late messages (older than the last emitted set) are dropped ('late'),
  unless time jumped back by more than `time_jump_reset_ns` (a bag looped or
  the simulation restarted), which resets the synchroniser.

A set can only complete when its last member arrives, so every arrival only
has to be matched against the others' queues: O(topics * queue_size).
"""
from collections import Counter, deque
from dataclasses import dataclass

DEFAULT_TIME_JUMP_RESET_NS = 1_000_000_000


@dataclass(frozen=True)
class StampedMessage:
    stamp_ns: int
    message: object


@dataclass(frozen=True)
class SynchronisedSet:
    """One message per topic; `stamp_ns` is the first topic's stamp."""
    stamp_ns: int
    messages: dict   # topic -> message

    def __getitem__(self, topic):
        return self.messages[topic]


class StereoSynchronizer:
    def __init__(self, topics, queue_size=5, tolerance_ns=0,
                 time_jump_reset_ns=DEFAULT_TIME_JUMP_RESET_NS):
        if len(topics) < 2 or len(set(topics)) != len(topics):
            raise ValueError(f'need at least two distinct topics, got {topics}')
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if tolerance_ns is not None and tolerance_ns < 0:
            raise ValueError(f'tolerance must be >= 0 ns or None, got {tolerance_ns}')
        self.topics = tuple(topics)
        self.queue_size = queue_size
        self.tolerance_ns = tolerance_ns
        self.time_jump_reset_ns = time_jump_reset_ns
        self._queues = {topic: deque() for topic in self.topics}
        self._last_emitted = None   # stamp of the first topic in the last set
        #: messages dropped, by cause ('unmatched', 'superseded', 'late')
        self.drops = Counter()
        #: per topic: how often a dropped message found no partner on it
        self.missing = Counter()
        self.emitted = 0
        self.resets = 0

    def add(self, topic, stamp_ns, message):
        """Queue one message; return the SynchronisedSet it completes, or None."""
        if topic not in self._queues:
            raise KeyError(f'unknown topic {topic!r}; expected one of {self.topics}')
        if self._is_late(stamp_ns):
            if self._last_emitted - stamp_ns > self.time_jump_reset_ns:
                self.reset()
                self.resets += 1
            else:
                self.drops['late'] += 1
                return None
        queue = self._queues[topic]
        if len(queue) >= self.queue_size:
            self._evict_unmatched(topic, queue.popleft())
        item = StampedMessage(stamp_ns, message)
        queue.append(item)
        return self._match(topic, item)

    def reset(self):
        """Forget queued messages and the last emitted stamp (counters stay)."""
        for queue in self._queues.values():
            queue.clear()
        self._last_emitted = None

    def pending(self):
        """Number of queued messages per topic (for diagnostics and tests)."""
        return {topic: len(queue) for topic, queue in self._queues.items()}

    def _is_late(self, stamp_ns):
        return self._last_emitted is not None and stamp_ns <= self._last_emitted - self._slack()

    def _slack(self):
        # In approximate mode another topic's member of the last set may be
        # a little newer than the first topic's stamp; its own tolerance
        # window is still allowed.
        if self.tolerance_ns is None:
            return 0
        return self.tolerance_ns

    def _within(self, a_ns, b_ns):
        return self.tolerance_ns is None or abs(a_ns - b_ns) <= self.tolerance_ns

    def _match(self, topic, item):
        chosen = {topic: item}
        for other in self.topics:
            if other == topic:
                continue
            nearest = self._nearest(other, item.stamp_ns)
            if nearest is None:
                return None
            chosen[other] = nearest
        stamps = [item.stamp_ns for item in chosen.values()]
        if self.tolerance_ns is not None and max(stamps) - min(stamps) > self.tolerance_ns:
            return None
        self._consume(chosen)
        first = chosen[self.topics[0]].stamp_ns
        self._last_emitted = first
        self.emitted += 1
        return SynchronisedSet(first, {t: chosen[t].message for t in self.topics})

    def _nearest(self, topic, stamp_ns):
        best = None
        for item in self._queues[topic]:
            if not self._within(item.stamp_ns, stamp_ns):
                continue
            if best is None or abs(item.stamp_ns - stamp_ns) < abs(best.stamp_ns - stamp_ns):
                best = item
        return best

    def _consume(self, chosen):
        """Remove the chosen messages and everything older on each topic."""
        for topic, item in chosen.items():
            queue = self._queues[topic]
            kept = [queued for queued in queue if queued.stamp_ns > item.stamp_ns]
            self.drops['superseded'] += len(queue) - len(kept) - 1  # the chosen one is used
            queue.clear()
            queue.extend(kept)

    def _evict_unmatched(self, topic, item):
        """Drop a stale incomplete set: `item` and its partners on other topics.

        Topics without a partner are counted in `missing`: they are the
        inputs to look at (wrong stamps, not published, QoS mismatch).
        """
        self.drops['unmatched'] += 1
        for other in self.topics:
            if other == topic:
                continue
            partner = self._nearest(other, item.stamp_ns)
            if partner is None:
                self.missing[other] += 1
            else:
                self._queues[other].remove(partner)
                self.drops['unmatched'] += 1
