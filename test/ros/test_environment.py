"""The node sets the shipped Fast DDS profile and the allocator variables for itself (one re-exec)."""
import os

from fast_foundation_stereo_ros.files.shipped_config import ALLOCATOR_SETTINGS, FASTDDS_PROFILE_NAME as PROFILE_NAME
from fast_foundation_stereo_ros.ros.environment import (ADDED_VARIABLE, OPT_OUT_VARIABLE, missing_settings,
                                                        reexec_with_settings)

from .helpers import NodeProcess, unique_domain_id, wait_until

SETTINGS = ('FASTDDS_DEFAULT_PROFILES_FILE', *ALLOCATOR_SETTINGS)


def _process_environment(pid):
    with open(f'/proc/{pid}/environ', 'rb') as handle:
        entries = handle.read().split(b'\0')
    return dict(entry.decode().split('=', 1) for entry in entries if b'=' in entry)


def _start_bare(extra=None):
    """The node without the settings the test helpers give every node."""
    return NodeProcess(unique_domain_id(), {'model': 'sgbm', 'warmup': False},
                       environment={**dict.fromkeys(SETTINGS), **(extra or {})})


def test_node_without_the_settings_re_executes_itself_once_with_them():
    node = _start_bare()
    try:
        assert wait_until(lambda: 'subscribing' in node.output(), 30), node.output()
        environ = _process_environment(node.process.pid)   # execve keeps the pid
        assert environ['FASTDDS_DEFAULT_PROFILES_FILE'].endswith(os.path.join('config', PROFILE_NAME))
        assert os.path.isfile(environ['FASTDDS_DEFAULT_PROFILES_FILE'])
        for name, value in ALLOCATOR_SETTINGS.items():
            assert environ[name] == value
        assert node.alive()
    finally:
        node.stop()
    log = node.output()
    assert log.count('environment: set FASTDDS_DEFAULT_PROFILES_FILE=') == 1, log
    assert f'set {OPT_OUT_VARIABLE}=1 to keep the environment as given' in log


def test_opting_out_keeps_the_environment_as_given():
    node = _start_bare({OPT_OUT_VARIABLE: '1'})
    try:
        assert wait_until(lambda: 'subscribing' in node.output(), 30), node.output()
        environ = _process_environment(node.process.pid)
        assert not any(name in environ for name in SETTINGS) and ADDED_VARIABLE not in environ
    finally:
        node.stop()
    assert 'environment: set' not in node.output()


def test_user_settings_win_and_the_guard_stops_a_loop():
    given = {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml', **ALLOCATOR_SETTINGS}
    assert missing_settings(given) == {}
    assert missing_settings({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}) == ALLOCATOR_SETTINGS
    calls = []
    reexec_with_settings([], {ADDED_VARIABLE: 'MALLOC_MMAP_THRESHOLD_'}, lambda *a: calls.append(a))
    reexec_with_settings([], {OPT_OUT_VARIABLE: '1'}, lambda *a: calls.append(a))
    assert calls == []
    reexec_with_settings(['--ros-args', '-p', 'a:=1'], {}, lambda *a: calls.append(a))
    (executable, argv, env), = calls
    assert argv[-4:] == ['-m', 'fast_foundation_stereo_ros.ros.stereo_node', '--ros-args', '-p', 'a:=1'][-4:]
    assert env[ADDED_VARIABLE] == ','.join(sorted(missing_settings({})))


def test_doctor_print_env_gives_the_settings_without_the_ros2_command(capsys):
    from fast_foundation_stereo_ros.cli import main
    assert main(['doctor', '--print-env']) == 0
    lines = capsys.readouterr().out.splitlines()
    profile = lines[0].split('=', 1)[1]
    assert lines[0].startswith('export FASTDDS_DEFAULT_PROFILES_FILE=') and os.path.isfile(profile)
    assert profile.endswith(PROFILE_NAME)
    assert lines[1:] == [f'export {name}={value}' for name, value in ALLOCATOR_SETTINGS.items()]
