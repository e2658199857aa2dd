"""Hostile, damaged or inconsistent checkpoints and bad runtime inputs are refused cleanly."""
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from fast_foundation_stereo_ros.errors import CheckpointError, ConfigError, InputError
from fast_foundation_stereo_ros.loading.checkpoint import read_checkpoint
from fast_foundation_stereo_ros.loading.stereo_model import load_model

from ..paths import PACKAGE_DIR
from . import pickle_writer as writer
from .helpers import CHECKPOINT, fixture_model, fixture_records, small_pair


def _global_call_pickle(module, name, argument):
    """Protocol-2 opcodes for `module.name(argument)`, written by hand."""
    return (pickle.PROTO + b'\x02' + pickle.GLOBAL + f'{module}\n{name}\n'.encode()
            + pickle.BINUNICODE + len(argument).to_bytes(4, 'little') + argument.encode()
            + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)


def test_pickle_calling_os_system_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'pwned'
    path = writer.write_raw_pickle(tmp_path / 'evil.pth',
                                   _global_call_pickle('os', 'system', f'touch {marker}'))
    with pytest.raises(CheckpointError, match=r'refusing global os\.system.*allow-list'):
        load_model(path)
    assert not marker.exists()


def test_posix_system_and_builtin_eval_are_refused(tmp_path):
    for module, name in (('posix', 'system'), ('builtins', 'eval'), ('__builtin__', 'exec')):
        path = writer.write_raw_pickle(tmp_path / f'{name}.pth', _global_call_pickle(module, name, '1'))
        with pytest.raises(CheckpointError, match=f'refusing global {module}.{name}'):
            read_checkpoint(path)


def test_unknown_model_class_is_refused_by_name(tmp_path):
    records = fixture_records()
    block = writer.module_at(records, 'cost_agg.post8_to_4.out.1')
    block.__class__ = type('EvilBlock', (type(block).__mro__[1],),
                           {'global_name': 'core.submodule.EvilBlock'})
    path = writer.write_checkpoint(records, tmp_path / 'unknown.pth')
    with pytest.raises(CheckpointError, match=r'core\.submodule\.EvilBlock'):
        load_model(path)


@pytest.mark.usefixtures('fixture_dir')
def test_truncated_file_is_refused(tmp_path):
    data = CHECKPOINT.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_model(truncated)


def test_non_zip_file_is_refused(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('this is not a checkpoint\n')
    with pytest.raises(CheckpointError, match='not a torch.save zip archive'):
        load_model(path)
    with pytest.raises(CheckpointError, match='does not exist'):
        load_model(tmp_path / 'missing.pth')


@pytest.mark.usefixtures('fixture_dir')
def test_missing_storage_entry_is_refused(tmp_path):
    damaged = tmp_path / 'missing_tensor.pth'
    with zipfile.ZipFile(CHECKPOINT) as source, zipfile.ZipFile(damaged, 'w') as target:
        for item in source.infolist():
            if not item.filename.endswith('/data/5'):
                target.writestr(item, source.read(item.filename))
    with pytest.raises(CheckpointError, match=r'lacks entry .*data/5'):
        load_model(damaged)


def test_short_storage_is_refused(tmp_path):
    records = fixture_records()
    path = writer.write_checkpoint(records, tmp_path / 'short.pth')
    damaged = tmp_path / 'short_storage.pth'
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, 'w') as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item, data[:8] if item.filename.endswith('/data/1') else data)
    with pytest.raises(CheckpointError, match='truncated'):
        load_model(damaged)


def test_weight_shape_inconsistent_with_layout_is_refused(tmp_path):
    records = fixture_records()
    proj = writer.module_at(records, 'proj_cmb')
    proj.state['_parameters']['weight'] = torch.zeros(12, 200, 1, 1)
    with pytest.raises(CheckpointError, match=r'proj_cmb: in_channels 224 disagrees'):
        load_model(writer.write_checkpoint(records, tmp_path / 'shape.pth'))


def test_missing_parameter_is_refused(tmp_path):
    records = fixture_records()
    del writer.module_at(records, 'cost_agg.conv1_up.bn').state['_buffers']['running_var']
    with pytest.raises(CheckpointError, match=r'missing .*cost_agg\.conv1_up\.bn\.running_var'):
        load_model(writer.write_checkpoint(records, tmp_path / 'missing_param.pth'))


@pytest.mark.usefixtures('fixture_dir')
def test_missing_cfg_yaml_still_loads(tmp_path):
    link = tmp_path / 'model_best_bp2_serialize.pth'
    link.symlink_to(CHECKPOINT)  # no cfg.yaml beside it, and no 70 MB copy
    model = load_model(tmp_path)
    assert model.args['normalize'] is True and model.max_disp_limit == 416
    assert model.source_sha256 == fixture_model().source_sha256


def test_package_never_unpickles_with_torch_load():
    for source in PACKAGE_DIR.rglob('*.py'):
        assert 'weights_only=' + 'False' not in source.read_text(), source
    for name in ('loading/safe_unpickler.py', 'loading/manifest.py', 'loading/checkpoint.py',
                 'loading/native_format.py', 'loading/stereo_model.py', 'loading/network_builders.py',
                 'loading/dead_modules.py', 'loading/disparity_range.py'):
        text = (PACKAGE_DIR / name).read_text()
        assert 'torch.load(' not in text and 'pickle.load(' not in text, name


@pytest.mark.parametrize('max_disp, message', [(100, 'multiple of 32'), (448, '416'),
                                               (0, 'multiple of 32'), (1.5, 'integer')])
def test_bad_max_disp_is_rejected(max_disp, message):
    left, right = small_pair(64, 64)
    with pytest.raises(ConfigError, match=message):
        fixture_model().predict(left, right, max_disp=max_disp)


def test_bad_iteration_count_is_rejected():
    left, right = small_pair(64, 64)
    with pytest.raises(ConfigError, match='valid_iters'):
        fixture_model().predict(left, right, valid_iters=0)


def test_bad_image_pairs_are_rejected():
    left, right = small_pair(64, 96)
    model = fixture_model()
    cases = [
        (left, right[:, :64], 'differ in size'),
        (np.dstack([left, left[..., :1]]), np.dstack([right, right[..., :1]]), 'got shape'),
        (left[..., :2], right[..., :2], 'got shape'),
        (left.astype(np.float32), right.astype(np.float32), 'uint8'),
        (left.astype(np.uint16), right.astype(np.uint16), 'uint8'),
        (torch.zeros(3, 64, 96), right, 'numpy array'),
    ]
    for bad_left, bad_right, message in cases:
        with pytest.raises(InputError, match=message):
            model.predict(bad_left, bad_right, valid_iters=1, max_disp=64)


def test_network_contract_errors():
    network = fixture_model().network
    image = torch.zeros(1, 3, 64, 96)
    with pytest.raises(InputError, match='multiple of 32'):
        network(torch.zeros(1, 3, 60, 96), torch.zeros(1, 3, 60, 96), 1, 64)
    with pytest.raises(InputError, match='3 \\(RGB\\) channels'):
        network(torch.zeros(1, 4, 64, 96), torch.zeros(1, 4, 64, 96), 1, 64)
    with pytest.raises(InputError, match='same'):
        network(image, torch.zeros(1, 3, 64, 128), 1, 64)
    with pytest.raises(ConfigError, match='valid_iters'):
        network(image, image, 0, 64)
    with pytest.raises(ConfigError, match='416'):
        network(image, image, 1, 448)


def test_unpickler_reads_nothing_outside_the_archive(tmp_path):
    """Persistent ids other than torch storages are refused."""
    evil = (pickle.PROTO + b'\x02' + pickle.BINUNICODE + (4).to_bytes(4, 'little') + b'file'
            + pickle.BINPERSID + pickle.STOP)
    with pytest.raises(CheckpointError, match='persistent id'):
        read_checkpoint(writer.write_raw_pickle(tmp_path / 'pid.pth', evil))


def test_non_model_pickle_is_refused(tmp_path):
    plain = pickle.dumps({'weights': [1, 2, 3]}, protocol=2)
    with pytest.raises(CheckpointError, match='not a FastFoundationStereo model'):
        read_checkpoint(writer.write_raw_pickle(tmp_path / 'dict.pth', plain))
    assert os.path.getsize(tmp_path / 'dict.pth') > 0
