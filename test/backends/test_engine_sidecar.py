"""Refusing wrong engines: sidecar validation with synthetic fingerprints (no GPU needed)."""
import dataclasses
import json
import os

import pytest

from fast_foundation_stereo_ros.backends.engine_sidecar import (engine_stem, fingerprint_mismatches, gpu_slug,
                                                                parse_engine_stem, rebuild_command, sidecar_path,
                                                                validate_engine)
from fast_foundation_stereo_ros.errors import EngineError

from ..export.helpers import ORIN, SETTINGS, write_fake_engine

REBUILD = ('ffs-stereo build-engine --model /models/23-36-37/model_best_bp2_serialize.pth --height 480 '
           '--width 640 --max-disp 192 --valid-iters 8 --precision fp16 --output ')


def refusal(engine_path, fingerprint=ORIN):
    with pytest.raises(EngineError) as caught:
        validate_engine(engine_path, fingerprint)
    return str(caught.value)


def test_engine_name_is_unique_per_device_and_settings():
    stem = engine_stem(480, 640, 192, 8, 'fp16', ORIN)
    assert stem == 'ffs_480x640_d192_i8_fp16_orin-nvgpu_sm87_trt10.3.0'
    desktop = dataclasses.replace(ORIN, gpu_name='NVIDIA GeForce RTX 4090', compute_capability='8.9')
    assert engine_stem(480, 640, 192, 8, 'fp16', desktop) == 'ffs_480x640_d192_i8_fp16_geforce-rtx-4090_sm89_trt10.3.0'
    assert parse_engine_stem(f'/x/{stem}.engine') == {'height': 480, 'width': 640, 'max_disp': 192,
                                                      'valid_iters': 8, 'precision': 'fp16'}
    assert parse_engine_stem('/x/other.engine') == {}
    assert gpu_slug('!!!') == 'unknown-gpu'


def test_matching_engine_is_accepted(tmp_path):
    engine = write_fake_engine(tmp_path)
    record = validate_engine(engine, ORIN)
    assert record['gpu_name'] == 'Orin (nvgpu)' and record['engine_size'] == os.path.getsize(engine)
    assert record['inputs'][0]['name'] == 'left'


@pytest.mark.parametrize('field, value', [('gpu_name', 'NVIDIA GeForce RTX 3090'),
                                          ('compute_capability', '8.6'),
                                          ('tensorrt_version', '10.7.0')])
def test_fingerprint_mismatch_names_field_values_and_rebuild_command(tmp_path, field, value):
    engine = write_fake_engine(tmp_path)
    other = dataclasses.replace(ORIN, **{field: value})
    message = refusal(engine, other)
    expected = dataclasses.asdict(ORIN)[field]
    assert f"{field} mismatch: engine built for '{expected}', this device has '{value}'" in message
    assert REBUILD + str(tmp_path) in message
    assert fingerprint_mismatches(json.load(open(sidecar_path(engine))), other) == [(field, expected, value)]


def test_missing_sidecar_is_refused_with_settings_from_the_file_name(tmp_path):
    engine = write_fake_engine(tmp_path)
    os.remove(sidecar_path(engine))
    message = refusal(engine)
    assert 'sidecar' in message and 'is missing' in message
    assert ('ffs-stereo build-engine --model <checkpoint.pth or model.onnx> --height 480 --width 640 '
            '--max-disp 192 --valid-iters 8 --precision fp16 --output ') in message


def test_corrupt_sidecar_json_is_refused(tmp_path):
    engine = write_fake_engine(tmp_path)
    with open(sidecar_path(engine), 'w') as stream:
        stream.write('{"format": "fast_foundation_stereo_ros/tensorrt-engine", ')
    message = refusal(engine)
    assert 'not valid JSON' in message and 'ffs-stereo build-engine' in message


def test_sidecar_missing_fields_is_refused(tmp_path):
    engine = write_fake_engine(tmp_path)
    record = json.load(open(sidecar_path(engine)))
    del record['engine_sha256'], record['gpu_name']
    json.dump(record, open(sidecar_path(engine), 'w'))
    message = refusal(engine)
    assert 'lacks fields engine_sha256, gpu_name' in message
    assert REBUILD in message


def test_truncated_engine_is_refused_by_size(tmp_path):
    engine = write_fake_engine(tmp_path)
    size = os.path.getsize(engine)
    with open(engine, 'r+b') as stream:
        stream.truncate(size // 2)
    message = refusal(engine)
    assert f'engine_size mismatch: expected {size} bytes (sidecar), found {size // 2} bytes' in message
    assert REBUILD in message


def test_altered_engine_is_refused_by_sha256(tmp_path):
    engine = write_fake_engine(tmp_path)
    data = bytearray(open(engine, 'rb').read())
    data[10] ^= 0xFF
    open(engine, 'wb').write(bytes(data))
    message = refusal(engine)
    assert 'engine_sha256 mismatch' in message and REBUILD in message


def test_missing_engine_file_is_refused(tmp_path):
    engine = write_fake_engine(tmp_path)
    os.remove(engine)
    message = refusal(engine)
    assert 'does not exist' in message and REBUILD in message


def test_rebuild_command_quotes_paths_with_spaces():
    command = rebuild_command({**SETTINGS, 'source_model': '/my models/ffs.pth'}, '/out dir')
    assert "--model '/my models/ffs.pth'" in command and "--output '/out dir'" in command


def test_engine_without_sidecar_and_file_is_reported_missing_without_tensorrt(tmp_path):
    from fast_foundation_stereo_ros.backends import create_backend
    with pytest.raises(EngineError) as error:
        create_backend(str(tmp_path / 'ffs_480x640_d192_i8_fp16_nvidia-orin_sm87_trt10.3.engine'))
    assert 'engine file does not exist' in str(error.value)
    assert 'ffs-stereo build-engine' in str(error.value) and '--height 480 --width 640' in str(error.value)
