"""The node's own large-message settings: the shipped Fast DDS profile and glibc allocator variables.

Fast DDS reads its profile when the first participant is created and glibc reads MALLOC_* when the
process starts, so setting them from inside a running node is too late. When the user has set
neither (and has not opted out with FFS_STEREO_KEEP_ENVIRONMENT=1), `reexec_with_settings`
replaces the process once (os.execve: same pid, same arguments) with the variables added; a guard
variable, which also records what was added for the log, stops a second re-exec. Verified by
test/ros/test_environment.py, which starts the node without the variables and reads
/proc/<pid>/environ.
"""
import os
import sys

from ..files.shipped_config import ALLOCATOR_SETTINGS, FASTDDS_PROFILE_NAME, shipped_config

PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
#: set to 1 to keep the environment exactly as given
OPT_OUT_VARIABLE = 'FFS_STEREO_KEEP_ENVIRONMENT'
#: set by the re-exec: the names it added (also the loop guard)
ADDED_VARIABLE = 'FFS_STEREO_ENVIRONMENT_ADDED'
NODE_MODULE = 'fast_foundation_stereo_ros.ros.stereo_node'


def missing_settings(environ):
    """{variable: value} the node would add to `environ`: the profile when Fast DDS is the middleware
    and no profile is set, and each allocator variable that is unset."""
    added = {}
    rmw = environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if rmw.startswith('rmw_fastrtps') and not any(environ.get(name) for name in PROFILE_VARIABLES):
        profile = shipped_config(FASTDDS_PROFILE_NAME)
        if profile:
            added['FASTDDS_DEFAULT_PROFILES_FILE'] = profile
    added.update({name: value for name, value in ALLOCATOR_SETTINGS.items() if name not in environ})
    return added


def reexec_with_settings(argv, environ=None, execve=os.execve):
    """Re-execute the node once with the missing settings; returns only when nothing is done."""
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT_VARIABLE, '') not in ('', '0') or ADDED_VARIABLE in environ:
        return
    added = missing_settings(environ)
    if not added:
        return
    env = dict(environ, **added)
    env[ADDED_VARIABLE] = ','.join(sorted(added))
    sys.stdout.flush()
    sys.stderr.flush()
    execve(sys.executable, [sys.executable, '-m', NODE_MODULE, *argv], env)


def describe_added(environ=None):
    """The log line about what the re-exec added, or None when it did not run."""
    environ = os.environ if environ is None else environ
    names = [name for name in environ.get(ADDED_VARIABLE, '').split(',') if name]
    if not names:
        return None
    settings = ', '.join(f'{name}={environ.get(name)}' for name in names)
    return (f'environment: set {settings} for large messages (the process re-executed itself once; '
            f'set {OPT_OUT_VARIABLE}=1 to keep the environment as given)')
