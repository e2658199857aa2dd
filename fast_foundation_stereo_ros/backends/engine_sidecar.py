"""The JSON sidecar beside every TensorRT engine, and the refusal of wrong engines.

A TensorRT engine only runs on the GPU model (compute capability) and the exact
TensorRT version it was built with; loading another one fails deep inside
TensorRT or, worse, runs and returns garbage. The sidecar records what the
engine was built for and from, so a mismatch is refused up front with the
field, the expected and found values, and the exact command that rebuilds it.

Pure Python: probing the device (which needs TensorRT/CUDA) lives in
`tensorrt_runtime.probe_fingerprint`; everything here is unit-tested without a GPU.
"""
import json
import os
import re
import shlex
from dataclasses import dataclass

from ..errors import EngineError
from ..files.atomic import atomic_path
from ..files.checksum import file_sha256

SIDECAR_FORMAT = 'fast_foundation_stereo_ros/tensorrt-engine'
SIDECAR_VERSION = 1
PRECISIONS = ('fp16', 'fp32')

#: fields a sidecar must hold to be usable (the rest is informational)
REQUIRED_FIELDS = ('format', 'format_version', 'engine_file', 'engine_size', 'engine_sha256',
                   'inputs', 'outputs', 'height', 'width', 'max_disp', 'valid_iters', 'precision',
                   'tensorrt_version', 'gpu_name', 'compute_capability', 'source_model')


@dataclass(frozen=True)
class DeviceFingerprint:
    """What an engine is tied to: GPU model, compute capability, TensorRT version."""
    gpu_name: str
    compute_capability: str   # 'major.minor', e.g. '8.7' for Jetson Orin
    tensorrt_version: str     # trt.__version__, e.g. '10.3.0'
    # informational only (TensorRT checks CUDA compatibility itself), as this
    # process runs them: cudaRuntimeGetVersion / cudaDriverGetVersion, not the
    # CUDA the Python bindings were built against
    cuda_version: str = None
    cuda_driver_version: str = None
    cuda_bindings: str = None  # 'cuda-python 12.6.2' or 'pycuda 2024.1'


# --- naming -------------------------------------------------------------------------------

def gpu_slug(gpu_name):
    """'NVIDIA GeForce RTX 4090' -> 'geforce-rtx-4090'; 'Orin (nvgpu)' -> 'orin-nvgpu'."""
    slug = re.sub(r'[^a-z0-9]+', '-', gpu_name.lower()).strip('-')
    slug = re.sub(r'^nvidia-', '', slug)
    return slug or 'unknown-gpu'


def engine_stem(height, width, max_disp, valid_iters, precision, fingerprint):
    """File stem unique per size, settings and device, so devices never overwrite each other."""
    capability = fingerprint.compute_capability.replace('.', '')
    return (f'ffs_{height}x{width}_d{max_disp}_i{valid_iters}_{precision}_'
            f'{gpu_slug(fingerprint.gpu_name)}_sm{capability}_trt{fingerprint.tensorrt_version}')


_STEM_PATTERN = re.compile(r'^ffs_(?P<height>\d+)x(?P<width>\d+)_d(?P<max_disp>\d+)_i(?P<valid_iters>\d+)_'
                           r'(?P<precision>fp16|fp32)_')


def parse_engine_stem(path):
    """Settings encoded in an engine's file name (empty dict if not ours)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    match = _STEM_PATTERN.match(stem)
    if not match:
        return {}
    fields = match.groupdict()
    return {key: (value if key == 'precision' else int(value)) for key, value in fields.items()}


def sidecar_path(engine_path):
    return os.path.splitext(engine_path)[0] + '.json'


# --- hashing and writing ------------------------------------------------------------------

def make_sidecar(engine_path, fingerprint, settings, io_tensors, extra=None):
    """Sidecar dict for a freshly written engine.

    settings: height, width, max_disp, valid_iters, precision, source_model.
    io_tensors: {'inputs': [{'name', 'shape', 'dtype'}], 'outputs': [...]}.
    """
    record = {
        'format': SIDECAR_FORMAT,
        'format_version': SIDECAR_VERSION,
        'engine_file': os.path.basename(engine_path),
        'engine_size': os.path.getsize(engine_path),
        'engine_sha256': file_sha256(engine_path),
        **io_tensors,
        **settings,
        'tensorrt_version': fingerprint.tensorrt_version,
        'gpu_name': fingerprint.gpu_name,
        'compute_capability': fingerprint.compute_capability,
        'cuda_runtime_version': fingerprint.cuda_version,
        'cuda_driver_version': fingerprint.cuda_driver_version,
        'cuda_bindings': fingerprint.cuda_bindings,
    }
    record.update(extra or {})
    return record


def write_sidecar(engine_path, record):
    with atomic_path(sidecar_path(engine_path)) as tmp:
        with open(tmp, 'w', encoding='utf-8') as stream:
            json.dump(record, stream, indent=2, sort_keys=True)
            stream.write('\n')


# --- rebuild command ----------------------------------------------------------------------

def rebuild_command(settings, output_dir):
    """The exact `ffs-stereo build-engine` call that rebuilds an engine here.

    `settings` is a sidecar or the fields parsed from a file name; unknown
    values are left as <placeholders> for the user to fill in.
    """
    def value(key, placeholder):
        found = settings.get(key)
        return placeholder if found in (None, '') else str(found)

    parts = ['ffs-stereo', 'build-engine',
             '--model', value('source_model', '<checkpoint.pth or model.onnx>'),
             '--height', value('height', '<H>'), '--width', value('width', '<W>'),
             '--max-disp', value('max_disp', '<max_disp>'),
             '--valid-iters', value('valid_iters', '<valid_iters>'),
             '--precision', value('precision', 'fp16'),
             '--output', output_dir or '.']
    return ' '.join(part if part.startswith('<') else shlex.quote(part) for part in parts)


def refuse_engine(engine_path, problem, settings):
    directory = os.path.dirname(os.path.abspath(engine_path))
    raise EngineError(f"refusing TensorRT engine '{engine_path}': {problem}. Rebuild it on this device "
                      f'with: {rebuild_command(settings, directory)}')


# --- validation -----------------------------------------------------------------------------

def read_sidecar(engine_path):
    """Parse and sanity-check the sidecar of `engine_path` (EngineError if unusable)."""
    path = sidecar_path(engine_path)
    from_name = parse_engine_stem(engine_path)
    if not os.path.isfile(path) and not os.path.isfile(engine_path):
        refuse_engine(engine_path, 'the engine file does not exist (nor its sidecar)', from_name)
    if not os.path.isfile(path):
        refuse_engine(engine_path, f"its sidecar '{path}' is missing (it records which GPU, TensorRT version "
                             'and settings the engine was built for)', from_name)
    try:
        with open(path, encoding='utf-8') as stream:
            record = json.load(stream)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        refuse_engine(engine_path, f"its sidecar '{path}' is not valid JSON ({exc})", from_name)
    if not isinstance(record, dict):
        refuse_engine(engine_path, f"its sidecar '{path}' is not a JSON object", from_name)
    missing = [key for key in REQUIRED_FIELDS if key not in record]
    if missing:
        refuse_engine(engine_path, f"its sidecar '{path}' lacks fields {', '.join(missing)}", {**from_name, **record})
    if record['format'] != SIDECAR_FORMAT or record['format_version'] != SIDECAR_VERSION:
        refuse_engine(engine_path, f"its sidecar '{path}' has format {record['format']!r} version "
                             f"{record['format_version']!r}, expected {SIDECAR_FORMAT!r} version "
                             f'{SIDECAR_VERSION}', record)
    return record


def check_engine_file(engine_path, record, verify_hash=True):
    """Refuse a missing, truncated or altered engine file (size, then SHA-256)."""
    if not os.path.isfile(engine_path):
        refuse_engine(engine_path, 'the engine file does not exist', record)
    size = os.path.getsize(engine_path)
    if size != record['engine_size']:
        refuse_engine(engine_path, f"engine_size mismatch: expected {record['engine_size']} bytes (sidecar), "
                             f'found {size} bytes (truncated or replaced file)', record)
    if verify_hash:
        digest = file_sha256(engine_path)
        if digest != record['engine_sha256']:
            refuse_engine(engine_path, f"engine_sha256 mismatch: expected {record['engine_sha256']} (sidecar), "
                                 f'found {digest} (corrupt or replaced file)', record)


def fingerprint_mismatches(record, fingerprint):
    """[(field, expected-by-engine, found-on-device)] for every field that differs."""
    found = {'gpu_name': fingerprint.gpu_name,
             'compute_capability': fingerprint.compute_capability,
             'tensorrt_version': fingerprint.tensorrt_version}
    return [(field, record.get(field), value) for field, value in found.items()
            if str(record.get(field)) != str(value)]


def validate_engine(engine_path, fingerprint, verify_hash=True):
    """Sidecar of an engine that is safe to deserialize on `fingerprint`'s device.

    Raises EngineError naming the first problem and the rebuild command.
    """
    record = read_sidecar(engine_path)
    check_engine_file(engine_path, record, verify_hash)
    check_fingerprint(engine_path, record, fingerprint)
    return record


def check_fingerprint(engine_path, record, fingerprint):
    """Refuse an engine whose sidecar names another GPU, compute capability or TensorRT."""
    mismatches = fingerprint_mismatches(record, fingerprint)
    if mismatches:
        described = '; '.join(f"{field} mismatch: engine built for '{expected}', this device has "
                              f"'{found}'" for field, expected, found in mismatches)
        refuse_engine(engine_path, described, record)
