"""Counters, rates, health and throttling of the node's reports (no ROS graph)."""
from diagnostic_msgs.msg import DiagnosticStatus

from fast_foundation_stereo_ros.ros.diagnostics import NodeStatistics, StatisticsReport, ThrottledLog

TOPICS = ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info')


def feed_inputs(statistics, topics, count):
    for topic in topics:
        statistics.add(f'in.{topic}', count)


def test_status_reports_counters_rates_and_timings():
    statistics = NodeStatistics()
    report = StatisticsReport(statistics, TOPICS)
    feed_inputs(statistics, TOPICS, 30)
    statistics.add('sets', 30)
    statistics.add('frames', 3)
    statistics.add('drops.busy', 27)
    statistics.record_frame({'infer': 0.3, 'convert': 0.01, 'ignored': 1.0}, 0.45)
    statistics.record_frame({'infer': 0.5, 'convert': 0.03}, 0.65)
    status = report.status('node: stereo depth', 'sgbm')
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and status.hardware_id == 'sgbm'
    assert values['drops.busy'] == '27' and values['frames'] == '3' and values['sets'] == '30'
    assert float(values['stage_ms.infer.mean']) == 400.0 and float(values['stage_ms.infer.max']) == 500.0
    assert float(values['latency_ms.max']) == 650.0
    assert float(values['rate_hz.sets']) > 0
    # rates are per period: a second report without new input shows zero
    values = {kv.key: kv.value for kv in report.status('n', 'h').values}
    assert float(values['rate_hz.sets']) == 0.0 and values['sets'] == '30'


def test_health_names_the_silent_input():
    statistics = NodeStatistics()
    report = StatisticsReport(statistics, TOPICS)
    feed_inputs(statistics, TOPICS[:3], 10)
    status = report.status('n', 'h')
    assert status.level == DiagnosticStatus.WARN
    assert 'nothing received on right/camera_info' in status.message


def test_health_flags_stamp_mismatch_bad_input_and_backend_errors():
    statistics = NodeStatistics()
    report = StatisticsReport(statistics, TOPICS)
    feed_inputs(statistics, TOPICS, 10)
    assert 'stamps' in report.status('n', 'h').message
    statistics.add('drops.bad_input')
    statistics.add('bad_input.encoding')
    status = report.status('n', 'h')
    assert status.level == DiagnosticStatus.WARN and 'encoding' in status.message
    statistics.add('drops.backend_error')
    assert report.status('n', 'h').level == DiagnosticStatus.ERROR
    assert report.status('n', 'h').message == 'waiting for input'


def test_log_line_summarises():
    statistics = NodeStatistics()
    report = StatisticsReport(statistics, TOPICS)
    statistics.add('drops.busy', 4)
    statistics.record_frame({'infer': 0.25}, 0.3)
    line = report.log_line()
    assert 'latency 300 ms' in line and 'infer 250.0' in line and 'busy=4' in line


def test_throttled_log_is_per_cause():
    lines, now = [], [0.0]
    log = ThrottledLog(lines.append, 5.0, clock=lambda: now[0])
    assert log('encoding', 'a')
    assert not log('encoding', 'b')
    assert log('camera_info', 'c')          # another cause is not hidden
    now[0] = 5.5
    assert log('encoding', 'd')
    assert lines == ['a', 'c', 'd (1 more since the last message)']


def test_input_far_below_the_stamps_rate_is_a_transport_problem_with_the_fix():
    """A 10 Hz camera of which 4 Hz arrive (Fast DDS over UDP without the large-message profile)."""
    statistics = NodeStatistics()
    report = StatisticsReport(statistics, TOPICS)
    for index in range(40):           # stamps of a 10 Hz stream; 4 of every 10 arrive
        if index % 10 in (0, 1, 4, 7):
            for topic in TOPICS:
                statistics.add(f'in.{topic}')
                statistics.record_stamp(topic, 1_000_000_000 + index * 100_000_000)
    statistics.add('sets', 16)
    snapshot, rates, delta = report.next()
    rates = {key: count / 4.0 for key, count in delta.items()}   # the 40 stamps span 4 s
    level, message = report.health(delta, snapshot, rates)
    assert level == DiagnosticStatus.WARN
    assert 'receiving 4.0 Hz of a 10.0 Hz stream on left/image_rect' in message
    assert 'FASTDDS_DEFAULT_PROFILES_FILE' in message and 'fastdds_large_messages.xml' in message
    assert snapshot.stamp_rates['left/image_rect'] == 10.0
    # every frame arriving is healthy
    full = NodeStatistics()
    report = StatisticsReport(full, TOPICS)
    for index in range(40):
        for topic in TOPICS:
            full.add(f'in.{topic}')
            full.record_stamp(topic, index * 100_000_000)
    full.add('sets', 40)
    snapshot, _, delta = report.next()
    rates = {key: count / 4.0 for key, count in delta.items()}
    assert report.health(delta, snapshot, rates) == (DiagnosticStatus.OK, 'running')


def test_top_of_range_share_is_reported_with_the_max_disp_that_covers_it():
    statistics = NodeStatistics()
    report = StatisticsReport(statistics, TOPICS)
    feed_inputs(statistics, TOPICS, 3)
    statistics.add('sets', 3)
    statistics.record_top_of_range(0.0, None)
    statistics.record_top_of_range(0.25, 256)
    statistics.record_top_of_range(0.001, 224)
    status = report.status('n', 'h')
    values = {kv.key: kv.value for kv in status.values}
    assert float(values['top_of_range.percent']) == 25.0 and values['top_of_range.suggested_max_disp'] == '256'
    assert status.level == DiagnosticStatus.WARN
    assert '25.0 % of pixels at the top of the disparity range' in status.message
    assert 'set max_disp to 256' in status.message
