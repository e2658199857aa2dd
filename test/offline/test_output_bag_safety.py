"""`run --bag --output-bag DIR --overwrite` replaces only a bag this package wrote."""
import pytest

from fast_foundation_stereo_ros.files.output_folders import MARKER, owned_files

from .helpers import error_lines, run_cli, small_scenes, tree_snapshot, write_stereo_bag


@pytest.fixture(scope='module')
def scenes():
    return small_scenes(1)


def test_overwrite_refuses_a_folder_that_is_not_our_bag(tmp_path, capsys, scenes):
    bag, out = str(tmp_path / 'in'), tmp_path / 'photos'
    write_stereo_bag(bag, scenes)
    out.mkdir()
    (out / 'holiday.jpg').write_bytes(b'irreplaceable')
    before = tree_snapshot(out)
    status, _, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--overwrite', '--no-progress')
    lines = error_lines(stderr)
    assert status == 2 and len(lines) == 1 and 'not recorded as ffs-stereo outputs (holiday.jpg)' in lines[0]
    assert tree_snapshot(out) == before
    # a file in the way is refused the same way
    (tmp_path / 'file.mcap').write_bytes(b'x')
    status, _, stderr = run_cli(capsys, 'run', '--bag', bag, '--output-bag', tmp_path / 'file.mcap',
                                '--overwrite', '--no-progress')
    assert status == 2 and 'is not a folder ffs-stereo wrote' in stderr
    assert (tmp_path / 'file.mcap').read_bytes() == b'x'


def test_overwrite_replaces_our_own_bag(tmp_path, capsys, scenes):
    bag, out = str(tmp_path / 'in'), tmp_path / 'out'
    write_stereo_bag(bag, scenes)
    assert run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--no-progress')[0] == 0
    owned = owned_files(out)
    assert 'metadata.yaml' in owned and (out / MARKER).is_file()
    (out / 'metadata.yaml').write_text((out / 'metadata.yaml').read_text() + '# edited\n')
    assert run_cli(capsys, 'run', '--bag', bag, '--output-bag', out, '--overwrite', '--no-progress')[0] == 0
    assert '# edited' not in (out / 'metadata.yaml').read_text() and owned_files(out) == owned
