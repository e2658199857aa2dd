"""Output folders the package owns: nothing of the user's is ever deleted or overwritten.

Every folder the package fills (demo, run, converted models, written bags)
gets a small marker file, `.ffs-stereo-outputs.json`, listing the files the
package wrote there. A folder may receive outputs when it does not exist yet,
is empty, or carries the marker; a file in it may be replaced or removed only
when the marker lists it (an earlier output of ours). An existing non-empty
folder without the marker is refused with one line naming it and the fix.

Files are first written to a hidden staging folder and moved into place only
when all of them are complete, so a failed run leaves earlier outputs as they
were (test/files/test_output_folders.py covers each case).
"""
import contextlib
import json
import os
import shutil
import tempfile

from ..errors import InputError
from .atomic import check_writable_dir

MARKER = '.ffs-stereo-outputs.json'
_MARKER_TOOL = 'fast_foundation_stereo_ros'
_STAGE_PREFIX = '.ffs-stage.'


def owned_files(folder):
    """Names (relative paths) the marker in `folder` lists, or None when it has no valid marker."""
    try:
        with open(os.path.join(folder, MARKER), encoding='utf-8') as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get('tool') != _MARKER_TOOL:
        return None
    return set(document.get('files', []))


def write_marker(folder, names):
    """Record `names` (paths relative to `folder`) as the package's outputs there."""
    document = {'tool': _MARKER_TOOL, 'note': 'files written by ffs-stereo; it replaces only these',
                'files': sorted(names)}
    path = os.path.join(folder, MARKER)
    with open(path + '.tmp', 'w', encoding='utf-8') as handle:
        json.dump(document, handle, indent=1)
    os.replace(path + '.tmp', path)


def files_under(folder):
    """Relative paths of every file below `folder` (the marker and our staging folders excluded)."""
    found = set()
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(_STAGE_PREFIX)]
        for name in files:
            found.add(os.path.relpath(os.path.join(root, name), folder))
    found.discard(MARKER)
    return found


def check_replaceable(path, what='output folder', option='--output'):
    """Raise InputError unless replacing `path` as a whole loses nothing the package did not write."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise InputError(f"{what} '{path}' exists and is not a folder ffs-stereo wrote: choose another "
                         f'{option}; nothing was changed')
    foreign = _foreign_files(path)
    if foreign:
        raise InputError(_foreign_message(path, foreign, what, option))


def _foreign_files(folder):
    present = files_under(folder)
    if not present and not _subfolders(folder):
        return set()
    owned = owned_files(folder)
    if owned is None:
        return present or {name + os.sep for name in _subfolders(folder)}
    return present - owned


def _subfolders(folder):
    return [name for name in os.listdir(folder)
            if os.path.isdir(os.path.join(folder, name)) and not name.startswith(_STAGE_PREFIX)]


def _foreign_message(path, foreign, what, option):
    names = sorted(foreign)
    shown = ', '.join(names[:3]) + (f' and {len(names) - 3} more' if len(names) > 3 else '')
    return (f"{what} '{path}' holds files not recorded as ffs-stereo outputs ({shown}): choose a new or "
            f'empty folder with {option}; nothing was changed')


class OutputFolder:
    """Files staged under a hidden folder in `directory`, moved into place on commit.

    `replace` True: the folder's content becomes exactly this run's files (our
    earlier outputs not written again are removed). False: the files join the
    folder, replacing only earlier outputs of ours with the same names.
    """

    def __init__(self, directory, replace=False, option='--output'):
        self.directory = directory
        self.replace = replace
        self.option = option
        self.created = _first_missing(directory)
        if self.created is None:
            if not os.path.isdir(directory):
                raise InputError(f"output folder '{directory}' is a file: choose a folder name with {option}")
            foreign = _foreign_files(directory)
            # a folder of ours may also hold the user's files: they are never touched (path() refuses
            # their names, commit() removes only names the marker lists)
            if foreign and owned_files(directory) is None:
                raise InputError(_foreign_message(directory, foreign, 'output folder', option))
        check_writable_dir(directory, option)
        self.owned = owned_files(directory) or set()
        self.stage = tempfile.mkdtemp(prefix=_STAGE_PREFIX, dir=directory)
        self.names = []

    def path(self, name):
        """Where to write output `name` (a file directly in the folder)."""
        target = os.path.join(self.directory, name)
        if os.path.lexists(target) and name not in self.owned:
            raise InputError(f"'{target}' exists and was not written by ffs-stereo: move it or choose "
                             f'another {self.option}; nothing was changed')
        self.names.append(name)
        return os.path.join(self.stage, name)

    def commit(self):
        for name in self.names:
            os.replace(os.path.join(self.stage, name), os.path.join(self.directory, name))
        kept = set(self.names)
        if self.replace:
            for stale in self.owned - kept:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.remove(os.path.join(self.directory, stale))
        else:
            kept |= {name for name in self.owned if os.path.lexists(os.path.join(self.directory, name))}
        write_marker(self.directory, kept)

    def discard(self):
        shutil.rmtree(self.stage, ignore_errors=True)
        if self.created is not None and not os.path.exists(os.path.join(self.directory, MARKER)):
            _remove_empty_folders(self.directory, self.created)


def _remove_empty_folders(folder, outermost):
    """rmdir `folder` and its parents up to `outermost` while they are empty (a failed first run
    leaves no empty folders behind; rmdir never removes anything else)."""
    folder = os.path.abspath(folder)
    while True:
        try:
            os.rmdir(folder)
        except OSError:
            return
        if folder == outermost:
            return
        folder = os.path.dirname(folder)


def _first_missing(directory):
    """The outermost missing folder on the way to `directory` (absolute), or None if it exists."""
    missing = None
    folder = os.path.abspath(directory)
    while not os.path.lexists(folder):
        missing = folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


@contextlib.contextmanager
def output_folder(directory, replace=False, option='--output'):
    """OutputFolder committed when the block succeeds, discarded (earlier outputs kept) when it fails."""
    folder = OutputFolder(directory, replace, option)
    try:
        yield folder
        folder.commit()
    finally:
        folder.discard()


@contextlib.contextmanager
def staged_folder_replacement(target, overwrite, what='output bag', option='--output-bag'):
    """Yield a fresh path to build a folder at (e.g. a bag); it becomes `target` on success.

    An existing `target` is replaced only with `overwrite` and only when it is
    a folder we wrote (marker present, nothing else in it).
    """
    target = os.path.abspath(target)
    if os.path.lexists(target):
        if not overwrite:
            raise InputError(f"{what} '{target}' already exists: pass --overwrite to replace it or choose "
                             f'another {option}')
        check_replaceable(target, what, option)
    parent, name = os.path.split(target)
    created = _first_missing(parent)
    check_writable_dir(parent, option)
    stage = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.tmp', dir=parent)
    done = False
    try:
        # same base name: a bag writer names its storage file after the folder
        built = os.path.join(stage, name)
        yield built
        write_marker(built, files_under(built))
        if os.path.lexists(target):
            os.replace(target, os.path.join(stage, name + '.old'))
        os.replace(built, target)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done and created is not None:
            _remove_empty_folders(parent, created)
