"""Counters, rates and timings of the stereo node, and their reports.

`NodeStatistics` is written by the ROS callbacks and the worker thread
(hence the lock); `StatisticsReport` turns two snapshots into rates over the
period between them, a /diagnostics status and a one-line log summary.

Counter names (also the /diagnostics keys, so tools and tests can read them):
  in.<topic>            messages received per input topic
  sets                  synchronised sets completed
  frames                sets processed (inference ran, outputs published)
  inferences            backend calls
  out.<output>          messages published per output
  skipped.no_subscribers  sets not processed because nothing is subscribed
  drops.<cause>         sets/messages dropped: busy (replaced by a newer set
                        while the worker was busy), superseded / unmatched /
                        late (synchroniser), bad_input, backend_error
  bad_input.<cause>     rejected sets by cause (encoding, size_mismatch, ...)
  missing.<topic>       dropped messages that found no partner on <topic>
Timings (mean/max over the last 50 frames): latency_ms (left stamp -> outputs
published), intake_ms (left stamp -> synchronised set complete: transport and
callback delay), stage_ms.<stage> (decode (compressed input), convert, infer, geometry, build, publish).
Disparity range (largest over the last 50 frames): top_of_range.percent (pixels at the
top of the searched range, where the scene may be nearer than the search
reaches) and top_of_range.suggested_max_disp (the max_disp that covers them).
Transport: stamp_rate_hz.<topic> (the camera's rate, from the smallest gap
between received header stamps); a receive rate far below it is reported as a
transport problem with the fix.
"""
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

STAGES = ('decode', 'convert', 'infer', 'geometry', 'build', 'publish')
#: pixels at the top of the disparity range above this percentage make the status WARN
TOP_OF_RANGE_WARN_PERCENT = 1.0
#: receiving less than this share of the stamps' rate is a transport problem
TRANSPORT_RATE_SHARE = 0.75
#: stamps needed before the stamps' rate is trusted
MIN_STAMPS = 6
#: the shipped profile that lets Fast DDS deliver large images (config/ of the package)
TRANSPORT_FIX = ('large images lose fragments over UDP: set FASTDDS_DEFAULT_PROFILES_FILE to the shipped '
                 'fastdds_large_messages.xml (eval "$(ffs-stereo doctor --print-env)"), or use shared memory or '
                 'compressed images')


class NodeStatistics:
    def __init__(self, window=50):
        self._lock = threading.Lock()
        self._totals = Counter()
        self._stages = {stage: deque(maxlen=window) for stage in STAGES}
        self._latency = deque(maxlen=window)
        self._intake = deque(maxlen=window)
        self._stamps = {}            # topic -> recent header stamps (ns)
        self._window = window
        self._top_of_range = deque(maxlen=window)   # (share, suggested max_disp) of recent frames

    def add(self, key, count=1):
        with self._lock:
            self._totals[key] += count

    def set_total(self, key, value):
        """For counters kept elsewhere (the synchroniser's)."""
        with self._lock:
            self._totals[key] = value

    def record_intake(self, seconds):
        """Stamp -> synchronised set complete (transport and callback delay)."""
        with self._lock:
            self._intake.append(seconds)

    def record_stamp(self, topic, stamp_ns):
        """Header stamp of a received message (the camera's rate comes from their gaps)."""
        with self._lock:
            stamps = self._stamps.get(topic)
            if stamps is None:
                stamps = self._stamps[topic] = deque(maxlen=self._window)
            stamps.append(stamp_ns)

    def record_top_of_range(self, share, suggested_max_disp):
        """A frame's share of pixels at the top of the disparity range (pipeline.frame_stage.TopOfRange)."""
        with self._lock:
            self._top_of_range.append((share, suggested_max_disp or 0))

    def record_frame(self, stage_seconds, latency_seconds):
        with self._lock:
            for stage, seconds in stage_seconds.items():
                if stage in self._stages:
                    self._stages[stage].append(seconds)
            self._latency.append(latency_seconds)

    def snapshot(self):
        with self._lock:
            top = max(self._top_of_range) if self._top_of_range else None
            return Snapshot(time.monotonic(), Counter(self._totals),
                            {stage: _mean_max(values) for stage, values in self._stages.items()},
                            _mean_max(self._latency), _mean_max(self._intake),
                            {topic: _stamp_rate(stamps) for topic, stamps in self._stamps.items()}, top)


def _stamp_rate(stamps):
    """The source's rate from the smallest positive gap between stamps (two consecutive frames that both
    arrived), or None with too few stamps."""
    if len(stamps) < MIN_STAMPS:
        return None
    ordered = sorted(stamps)
    gaps = [later - earlier for earlier, later in zip(ordered, ordered[1:]) if later > earlier]
    return 1e9 / min(gaps) if gaps else None


def _mean_max(values):
    if not values:
        return None
    return (sum(values) / len(values), max(values))


@dataclass(frozen=True)
class Snapshot:
    time: float
    totals: Counter
    stages: dict          # stage -> (mean, max) seconds over the window, or None
    latency: tuple        # (mean, max) seconds stamp -> published, or None
    intake: tuple = None  # (mean, max) seconds stamp -> set complete, or None
    stamp_rates: dict = None    # topic -> the source's rate (Hz) from its stamps, or None
    top_of_range: tuple = None  # (share, suggested max_disp) largest over the window, or None


class StatisticsReport:
    """Rates since the previous call; one instance per consumer (diagnostics, log)."""

    def __init__(self, statistics, input_topics):
        self.statistics = statistics
        self.input_topics = tuple(input_topics)
        self._previous = statistics.snapshot()

    def next(self):
        """(snapshot, {counter: per-second rate since the last call}, delta counters)."""
        current = self.statistics.snapshot()
        elapsed = max(current.time - self._previous.time, 1e-9)
        delta = Counter({key: current.totals[key] - self._previous.totals.get(key, 0)
                         for key in current.totals})
        rates = {key: value / elapsed for key, value in delta.items()}
        self._previous = current
        return current, rates, delta

    def health(self, delta, snapshot=None, rates=None):
        """(level, message) for the period: what a user should look at first."""
        received = sum(delta[f'in.{topic}'] for topic in self.input_topics)
        if delta['drops.backend_error']:
            return DiagnosticStatus.ERROR, f"backend failed on {delta['drops.backend_error']} set(s)"
        if delta['drops.bad_input']:
            causes = ', '.join(key.split('.', 1)[1] for key in delta if key.startswith('bad_input.') and delta[key])
            return DiagnosticStatus.WARN, f'rejected input ({causes})'
        slow = self.slow_topics(snapshot, rates) if snapshot is not None else []
        if slow:
            described = ', '.join(f'{rate:.1f} Hz of a {stamp_rate:.1f} Hz stream on {topic}'
                                  for topic, rate, stamp_rate in slow)
            return DiagnosticStatus.WARN, f'transport loses messages: receiving {described}; {TRANSPORT_FIX}'
        if received and not delta['sets']:
            silent = [topic for topic in self.input_topics if not delta[f'in.{topic}']]
            if silent:
                return DiagnosticStatus.WARN, 'no synchronised sets: nothing received on ' + ', '.join(silent)
            return DiagnosticStatus.WARN, ('no synchronised sets: stamps of the four inputs differ '
                                           '(use approximate_sync, or fix the camera_info stamps)')
        if not received:
            return DiagnosticStatus.OK, 'waiting for input'
        top = snapshot.top_of_range if snapshot is not None else None
        if top and top[0] * 100 > TOP_OF_RANGE_WARN_PERCENT:
            return DiagnosticStatus.WARN, (
                f'{top[0] * 100:.1f} % of pixels at the top of the disparity range: the scene is nearer than '
                f'the search reaches there (those pixels are invalid); set max_disp to {top[1]}')
        return DiagnosticStatus.OK, 'running'

    def slow_topics(self, snapshot, rates):
        """[(topic, receive rate, stamps' rate)] of inputs received far below their source's rate."""
        slow = []
        for topic in self.input_topics:
            stamp_rate = (snapshot.stamp_rates or {}).get(topic)
            rate = rates.get(f'in.{topic}', 0.0)
            if stamp_rate and rate > 0 and rate < TRANSPORT_RATE_SHARE * stamp_rate:
                slow.append((topic, rate, stamp_rate))
        return slow

    def status(self, name, hardware_id):
        """DiagnosticStatus with every counter, rate and timing as KeyValues."""
        snapshot, rates, delta = self.next()
        level, message = self.health(delta, snapshot, rates)
        values = [KeyValue(key='rate_hz.sets', value=_fmt(rates.get('sets', 0.0))),
                  KeyValue(key='rate_hz.frames', value=_fmt(rates.get('frames', 0.0)))]
        values += [KeyValue(key=f'rate_hz.in.{topic}', value=_fmt(rates.get(f'in.{topic}', 0.0)))
                   for topic in self.input_topics]
        values += [KeyValue(key=f'rate_hz.{key}', value=_fmt(rate))
                   for key, rate in sorted(rates.items()) if key.startswith('out.')]
        values += [KeyValue(key=key, value=str(count)) for key, count in sorted(snapshot.totals.items())]
        values += _timing_values(snapshot)
        values += [KeyValue(key=f'stamp_rate_hz.{topic}', value=_fmt(rate))
                   for topic, rate in sorted((snapshot.stamp_rates or {}).items()) if rate]
        if snapshot.top_of_range:
            share, suggested = snapshot.top_of_range
            values.append(KeyValue(key='top_of_range.percent', value=_fmt(share * 100)))
            if suggested:
                values.append(KeyValue(key='top_of_range.suggested_max_disp', value=str(suggested)))
        return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                                values=values)

    def log_line(self):
        """One-line summary for the periodic log."""
        snapshot, rates, _ = self.next()
        inputs = ' '.join(f"{rates.get(f'in.{topic}', 0.0):.1f}" for topic in self.input_topics)
        parts = [f'in [{inputs}] Hz', f"sets {rates.get('sets', 0.0):.1f} Hz",
                 f"out {rates.get('frames', 0.0):.1f} Hz"]
        if snapshot.latency:
            parts.append(f'latency {snapshot.latency[0] * 1e3:.0f} ms (max {snapshot.latency[1] * 1e3:.0f})')
        stages = ' '.join(f'{stage} {value[0] * 1e3:.1f}' for stage, value in snapshot.stages.items() if value)
        if stages:
            parts.append(f'stages ms: {stages}')
        drops = ' '.join(f"{key.split('.', 1)[1]}={count}" for key, count in sorted(snapshot.totals.items())
                         if key.startswith('drops.') and count)
        parts.append(f'drops: {drops or "none"}')
        return ', '.join(parts)


def _timing_values(snapshot):
    values = []
    if snapshot.latency:
        values += [KeyValue(key='latency_ms.mean', value=_fmt(snapshot.latency[0] * 1e3)),
                   KeyValue(key='latency_ms.max', value=_fmt(snapshot.latency[1] * 1e3))]
    if snapshot.intake:
        values += [KeyValue(key='intake_ms.mean', value=_fmt(snapshot.intake[0] * 1e3)),
                   KeyValue(key='intake_ms.max', value=_fmt(snapshot.intake[1] * 1e3))]
    for stage, value in snapshot.stages.items():
        if value:
            values += [KeyValue(key=f'stage_ms.{stage}.mean', value=_fmt(value[0] * 1e3)),
                       KeyValue(key=f'stage_ms.{stage}.max', value=_fmt(value[1] * 1e3))]
    return values


def _fmt(number):
    return f'{number:.3f}'


class ThrottledLog:
    """Logs a message at most once per `period` seconds per cause (rclpy's
    throttle is per call site, which would hide a second cause)."""

    def __init__(self, log_function, period, clock=time.monotonic):
        self._log = log_function
        self._period = period
        self._clock = clock
        self._last = {}
        self._suppressed = Counter()

    def __call__(self, cause, message):
        now = self._clock()
        last = self._last.get(cause)
        if last is not None and now - last < self._period:
            self._suppressed[cause] += 1
            return False
        suppressed = self._suppressed.pop(cause, 0)
        suffix = f' ({suppressed} more since the last message)' if suppressed else ''
        self._log(message + suffix)
        self._last[cause] = now
        return True
