"""Atomic output files: write to a temporary name, then rename.

A failed or interrupted write never leaves a half-written file and never
replaces a good file that was already there.
"""
import contextlib
import os
import tempfile

from ..errors import InputError


def check_writable_dir(directory, option='--output'):
    """Raise InputError unless `directory` exists (or can be made) and is writable."""
    directory = directory or '.'
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder '{directory}': {exc.strerror}; "
                         f'choose a writable location with {option}') from None
    _probe_writable(directory, option)


def _probe_writable(directory, option):
    # a real probe, not os.access: root passes os.access on read-only file systems (/sys, ro mounts)
    try:
        fd, probe = tempfile.mkstemp(prefix='.ffs-write-probe.', dir=directory)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise InputError(f"output folder '{directory}' is not writable ({exc.strerror}): choose another "
                         f'with {option} or fix its permissions') from None


def check_output_location(path, option='--output'):
    """Raise InputError unless `path` (a file or folder) could be created there; creates nothing.

    Commands call it before any expensive work, so an unwritable output is
    reported before a model is loaded or a graph exported, and a run that
    fails later leaves no folder behind.
    """
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise InputError(f"cannot create '{path}': '{ancestor}' is a file, not a folder; choose another "
                         f'{option}')
    _probe_writable(ancestor, option)


def check_output_file(path, option='--output'):
    """check_output_location for a file: `path` must not be a folder."""
    if os.path.isdir(path):
        raise InputError(f"{option} '{path}' is a folder: give a file name")
    check_output_location(path, option)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` on success."""
    directory, name = os.path.split(os.path.abspath(path))
    check_writable_dir(directory)
    stem, ext = os.path.splitext(name)
    fd, tmp = tempfile.mkstemp(prefix=f'.{stem}.', suffix=f'.tmp{ext}', dir=directory)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the usual umask-based mode
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary directory beside `path`; it replaces `path` on success.

    `path` must be new, empty, or a folder this package wrote holding nothing
    else (output_folders.check_replaceable); the result carries the marker
    that makes it ours. An existing `path` is moved aside only once the new
    content is complete, and restored if the final rename fails.
    """
    # imported here: output_folders builds on this module's check_writable_dir
    from .output_folders import check_replaceable, files_under, write_marker
    check_replaceable(path)
    parent, name = os.path.split(os.path.abspath(path))
    check_writable_dir(parent)
    tmp = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.tmp', dir=parent)
    try:
        yield tmp
        write_marker(tmp, files_under(tmp))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders
        backup = None
        if os.path.exists(path):
            backup = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.old', dir=parent)
            os.rmdir(backup)
            os.replace(path, backup)
        try:
            os.replace(tmp, path)
        except BaseException:
            if backup:
                os.replace(backup, path)
            raise
        if backup:
            _remove_tree(backup)
    except BaseException:
        _remove_tree(tmp)
        raise


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once at import: os.umask() is process-wide, so probing it later could race other threads
_UMASK = _read_umask()


def _remove_tree(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)
