"""Native directory (safetensors + architecture.json): pickle-free, bit-identical, atomic."""
import json
import os

import numpy as np
import pytest

from fast_foundation_stereo_ros.cli import main as cli_main
from fast_foundation_stereo_ros.errors import CheckpointError, ConfigError
from fast_foundation_stereo_ros.loading import native_format
from fast_foundation_stereo_ros.loading.checkpoint import read_checkpoint
from fast_foundation_stereo_ros.loading.stereo_model import load_model

from .helpers import CHECKPOINT, fixture_model, reference

pytestmark = pytest.mark.usefixtures('fixture_dir')   # every test converts the reference checkpoint


@pytest.fixture(scope='module')
def native_dir(tmp_path_factory):
    output = tmp_path_factory.mktemp('native') / 'ffs_native'
    assert cli_main(['convert', '--model', str(CHECKPOINT), '--output', str(output)]) == 0
    return output


def test_conversion_writes_safetensors_and_manifest(native_dir):
    assert sorted(os.listdir(native_dir)) == ['.ffs-stereo-outputs.json', 'architecture.json', 'model.safetensors']
    document = json.loads((native_dir / 'architecture.json').read_text())
    assert document['format_version'] == 1 and document['args']['normalize'] is True
    assert document['source_sha256'] == fixture_model().source_sha256
    from safetensors import safe_open
    with safe_open(native_dir / 'model.safetensors', 'pt') as weights:
        keys = set(weights.keys())
        pe = weights.get_tensor('cost_agg.post8_to_4.upsample.1.pos_embed0.pe')
    assert pe.shape == (1, 26, 28)
    assert not any(key.startswith(('cost_agg.conv3_up.', 'context_zqr_convs.')) for key in keys)
    assert 'dx' not in keys


def test_native_output_is_bit_identical_to_pth(native_dir, monkeypatch):
    from fast_foundation_stereo_ros.loading import safe_unpickler

    def no_pickle(*args, **kwargs):
        raise AssertionError('the native path must not unpickle anything')
    monkeypatch.setattr(safe_unpickler.RestrictedUnpickler, 'load', no_pickle)
    native = load_model(native_dir)
    data = reference()
    from_native = native.predict(data['left'], data['right'], valid_iters=4, max_disp=192)
    monkeypatch.undo()
    from_pth = fixture_model().predict(data['left'], data['right'], valid_iters=4, max_disp=192)
    assert np.array_equal(from_native, from_pth)
    assert np.abs(from_native - data['disparity']).max() <= 0.01
    assert native.origin_sha256 == fixture_model().source_sha256
    assert native.max_disp_limit == 416 and native.network.normalize is True


def test_failed_conversion_keeps_existing_output(native_dir, tmp_path, monkeypatch):
    target = tmp_path / 'model'
    checkpoint = read_checkpoint(CHECKPOINT)
    native_format.save_native(checkpoint, target)
    before = {name: (target / name).read_bytes() for name in os.listdir(target)}

    def broken_save(*args, **kwargs):
        raise OSError('disk full')
    import safetensors.torch
    monkeypatch.setattr(safetensors.torch, 'save_file', broken_save)
    with pytest.raises(OSError, match='disk full'):
        native_format.save_native(checkpoint, target)
    assert {name: (target / name).read_bytes() for name in os.listdir(target)} == before
    assert sorted(os.listdir(tmp_path)) == ['model']  # no temporary directory left behind


def test_refuses_to_replace_unrelated_directory(tmp_path):
    occupied = tmp_path / 'photos'
    occupied.mkdir()
    (occupied / 'keep.txt').write_text('mine')
    with pytest.raises(ConfigError, match='not a native model'):
        cli_main_raise(['convert', '--model', str(CHECKPOINT), '--output', str(occupied)])
    assert (occupied / 'keep.txt').read_text() == 'mine'


def cli_main_raise(argv):
    from fast_foundation_stereo_ros.cli import build_parser
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_damaged_native_directory_is_refused(native_dir, tmp_path):
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'architecture.json').write_text((native_dir / 'architecture.json').read_text())
    (broken / 'model.safetensors').write_bytes((native_dir / 'model.safetensors').read_bytes()[:4096])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_model(broken)
    (broken / 'model.safetensors').write_bytes((native_dir / 'model.safetensors').read_bytes())
    (broken / 'architecture.json').write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match='not a fast-foundation-stereo-native document'):
        load_model(broken)
