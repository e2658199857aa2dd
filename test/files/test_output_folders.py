"""Nothing of the user's is lost: output folders the package owns, and one line for I/O errors.

Each command is run in process through `cli.main` on real files. /sys is
used as an unwritable place (it refuses new files even for root).
"""
import errno
import os

import numpy as np
import pytest

from fast_foundation_stereo_ros.errors import InputError
from fast_foundation_stereo_ros.files.output_folders import MARKER, check_replaceable, output_folder, owned_files
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene

from ..offline.helpers import error_lines, run_cli, tree_snapshot, write_pair, write_stereo_bag
from ..paths import CHECKPOINT

DEMO = ('demo', '--width', 96, '--height', 64, '--max-disp', 32)


def _refused(capsys, argv, message):
    status, _, stderr = run_cli(capsys, *argv)
    lines = error_lines(stderr)
    assert status == 2 and len(lines) == 1 and message in lines[0], stderr
    assert 'Traceback' not in stderr
    return lines[0]


def _users_folder(path):
    path.mkdir()
    (path / 'thesis.tex').write_text('years of work')
    (path / 'disparity.pfm').write_text('my own file, same name as an output')
    return tree_snapshot(path)


def test_demo_refuses_a_users_folder_and_keeps_it(tmp_path, capsys):
    folder = tmp_path / 'mine'
    before = _users_folder(folder)
    line = _refused(capsys, [*DEMO, '--output', folder], 'not recorded as ffs-stereo outputs')
    assert 'disparity.pfm' in line and 'thesis.tex' in line
    assert tree_snapshot(folder) == before


def test_demo_replaces_its_own_outputs_and_keeps_files_the_user_added(tmp_path, capsys):
    folder = tmp_path / 'demo'
    assert run_cli(capsys, *DEMO, '--output', folder)[0] == 0
    first = owned_files(folder)
    assert 'disparity.pfm' in first and 'cloud.ply' in first and (folder / MARKER).is_file()
    (folder / 'notes.txt').write_text('mine')
    (folder / 'disparity.pfm').write_bytes(b'stale output of ours')
    assert run_cli(capsys, *DEMO, '--output', folder, '--seed', 3)[0] == 0
    assert (folder / 'notes.txt').read_text() == 'mine'
    assert (folder / 'disparity.pfm').read_bytes() != b'stale output of ours'
    assert owned_files(folder) == first
    assert not [name for name in os.listdir(folder) if name.startswith('.ffs-stage')]


def test_demo_into_the_current_folder(tmp_path, capsys, monkeypatch):
    work = tmp_path / 'work'
    work.mkdir()
    monkeypatch.chdir(work)
    assert run_cli(capsys, *DEMO, '--output', '.')[0] == 0   # empty: becomes ours
    assert 'disparity.pfm' in os.listdir(work) and os.getcwd() == str(work)
    (tmp_path / 'mine.txt').write_text('x')
    before = tree_snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)  # not ours and not empty: refused, not a crash
    _refused(capsys, [*DEMO, '--output', '.'], 'not recorded as ffs-stereo outputs')
    assert tree_snapshot(tmp_path) == before


def test_run_refuses_a_users_folder_and_a_users_file_in_our_folder(tmp_path, capsys):
    scene = make_scene('plane', 96, 64, seed=0)
    left, right = write_pair(str(tmp_path), scene)
    folder = tmp_path / 'mine'
    before = _users_folder(folder)
    _refused(capsys, ['run', '--left', left, '--right', right, '--output', folder, '--no-progress'],
             'not recorded as ffs-stereo outputs')
    assert tree_snapshot(folder) == before
    ours = tmp_path / 'ours'
    assert run_cli(capsys, 'run', '--left', left, '--right', right, '--output', ours, '--no-progress')[0] == 0
    (ours / 'pair_left_disparity.png').write_text('a file of the user with an output name')
    before = tree_snapshot(ours)
    line = _refused(capsys, ['run', '--left', left, '--right', right, '--output', ours, '--format', 'png',
                             '--no-progress'], 'was not written by ffs-stereo')
    assert 'pair_left_disparity.png' in line and tree_snapshot(ours) == before


def test_failed_first_run_leaves_no_folders_behind(tmp_path, capsys):
    scene = make_scene('plane', 96, 64, seed=0)
    left, _ = write_pair(str(tmp_path), scene)
    (tmp_path / 'broken.png').write_bytes(b'not an image')
    _refused(capsys, ['run', '--left', left, '--right', tmp_path / 'broken.png',
                      '--output', tmp_path / 'new' / 'nested', '--no-progress'], 'cannot read right image')
    assert not (tmp_path / 'new').exists()


def test_failed_commands_leave_no_new_folders(tmp_path, capsys):
    scene = make_scene('plane', 96, 64, seed=0)
    left, _ = write_pair(str(tmp_path), scene)
    (tmp_path / 'broken.png').write_bytes(b'not an image')
    _refused(capsys, ['infer', '--model', 'sgbm', '--left', left, '--right', tmp_path / 'broken.png',
                      '--output', tmp_path / 'new' / 'd.pfm'], 'cannot read right image')
    bag = str(tmp_path / 'bag')
    write_stereo_bag(bag, [scene], right_info_delay_ns=1_000)   # fails once the output is staged
    _refused(capsys, ['run', '--bag', bag, '--output-bag', tmp_path / 'new' / 'deeper' / 'out',
                      '--no-progress'], 'share a header stamp')
    assert not (tmp_path / 'new').exists()


def test_check_replaceable_rules(tmp_path):
    check_replaceable(str(tmp_path / 'absent'))
    (tmp_path / 'empty').mkdir()
    check_replaceable(str(tmp_path / 'empty'))
    (tmp_path / 'file').write_text('x')
    with pytest.raises(InputError, match='is not a folder ffs-stereo wrote'):
        check_replaceable(str(tmp_path / 'file'))
    with output_folder(str(tmp_path / 'ours')) as folder:
        with open(folder.path('a.npy'), 'wb') as handle:
            np.save(handle, np.zeros(2))
    check_replaceable(str(tmp_path / 'ours'))
    (tmp_path / 'ours' / 'sub').mkdir()
    (tmp_path / 'ours' / 'sub' / 'b.txt').write_text('user')
    with pytest.raises(InputError, match=r'sub/b\.txt'):
        check_replaceable(str(tmp_path / 'ours'))


UNWRITABLE = '/sys/ffs_stereo_test_output'


@pytest.mark.parametrize('argv, message', [
    (lambda tmp, pair: [*DEMO, '--output', UNWRITABLE], 'cannot create output folder'),
    (lambda tmp, pair: ['run', '--left', pair[0], '--right', pair[1], '--output', UNWRITABLE], 'cannot create'),
    (lambda tmp, pair: ['infer', '--model', 'sgbm', '--left', pair[0], '--right', pair[1],
                        '--output', UNWRITABLE + '.pfm'], 'is not writable'),
    (lambda tmp, pair: ['infer', '--model', 'sgbm', '--left', pair[0], '--right', pair[1],
                        '--output', os.path.join(pair[0], 'disparity.pfm')], 'is a file, not a folder'),
    (lambda tmp, pair: ['convert', '--model', CHECKPOINT, '--output', UNWRITABLE], 'is not writable'),
    (lambda tmp, pair: ['export', '--model', CHECKPOINT, '--height', 64, '--width', 96,
                        '--output', UNWRITABLE + '.onnx'], 'is not writable'),
    (lambda tmp, pair: ['build-engine', '--model', CHECKPOINT, '--height', 64, '--width', 96,
                        '--output', UNWRITABLE], ''),   # no TensorRT here: refused first, still one line
    (lambda tmp, pair: ['eval', '--pred', os.path.join(tmp, 'none.pfm'), '--gt', os.path.join(tmp, 'none.pfm')],
     'does not exist'),
])
def test_unwritable_outputs_give_one_line_and_exit_2(tmp_path, capsys, argv, message):
    pair = write_pair(str(tmp_path), make_scene('plane', 96, 64, seed=0))
    _refused(capsys, argv(str(tmp_path), pair), message)
    assert not os.path.exists(UNWRITABLE)


def test_disk_errors_give_one_line_and_keep_earlier_outputs(tmp_path, capsys, monkeypatch):
    folder = tmp_path / 'demo'
    assert run_cli(capsys, *DEMO, '--output', folder)[0] == 0
    before = tree_snapshot(folder)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / 'depth.npy'))
    monkeypatch.setattr(np, 'save', disk_full)
    line = _refused(capsys, [*DEMO, '--output', folder], 'No space left on device')
    assert 'depth.npy' in line
    assert tree_snapshot(folder) == before
    assert sorted(os.listdir(folder)) == sorted(before)   # no staging folder left
