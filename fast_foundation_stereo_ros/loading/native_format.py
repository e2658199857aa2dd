"""Native model directory: `model.safetensors` + `architecture.json`, no pickle.

Converting a released `.pth` once (ideally offline) and shipping this
directory means the robot never unpickles anything. The JSON holds the
architecture manifest (every module, flag and kernel as the checkpoint
recorded it) and the pickled args; the safetensors file holds the live
weights, including the disparity positional table `pe`. Loading rebuilds the
same network with the same tensors, so outputs are bit-identical to the
`.pth` path.
"""
import json
import os

from ..errors import CheckpointError, ConfigError
from ..files.atomic import atomic_directory
from ..files.checksum import file_sha256
from .checkpoint import LoadedCheckpoint, live_state_dict

WEIGHTS_FILE = 'model.safetensors'
ARCHITECTURE_FILE = 'architecture.json'
FORMAT_NAME = 'fast-foundation-stereo-native'
FORMAT_VERSION = 1


def is_native_dir(path):
    """True for a directory holding both native files."""
    return (os.path.isdir(path) and os.path.isfile(os.path.join(path, WEIGHTS_FILE))
            and os.path.isfile(os.path.join(path, ARCHITECTURE_FILE)))


def _check_output_dir(path):
    """Refuse to replace a non-empty directory that is not a native model."""
    if os.path.exists(path) and not is_native_dir(path):
        if not os.path.isdir(path):
            raise ConfigError(f'--output {path} is a file: give a directory name for the native model')
        if os.listdir(path):
            raise ConfigError(f'--output {path} is a non-empty directory that is not a native model: '
                              'choose a new or empty directory')


def save_native(checkpoint, output_dir):
    """Write `checkpoint` (a LoadedCheckpoint) as a native directory, atomically.

    The files are written to a temporary sibling directory that replaces
    `output_dir` only when complete; on any failure an existing output stays.
    """
    from safetensors.torch import save_file
    _check_output_dir(output_dir)
    tensors = {key: value.detach().contiguous().clone()
               for key, value in live_state_dict(checkpoint.manifest, checkpoint.state_dict).items()}
    document = {
        'format': FORMAT_NAME,
        'format_version': FORMAT_VERSION,
        'source_file': os.path.basename(checkpoint.source_path),
        'source_sha256': checkpoint.origin_sha256,
        'args': checkpoint.args,
        'manifest': checkpoint.manifest,
    }
    with atomic_directory(output_dir) as tmp:
        save_file(tensors, os.path.join(tmp, WEIGHTS_FILE),
                  metadata={'format': FORMAT_NAME, 'source_sha256': checkpoint.origin_sha256})
        with open(os.path.join(tmp, ARCHITECTURE_FILE), 'w', encoding='utf-8') as handle:
            json.dump(document, handle, indent=1)
        _make_readable(tmp)
    return output_dir


def _make_readable(directory):
    """Temporary files are private (0600/0700); a model directory is shared read-only."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o755 & ~umask)
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o644 & ~umask)


def _read_document(path):
    try:
        with open(os.path.join(path, ARCHITECTURE_FILE), encoding='utf-8') as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'cannot read {ARCHITECTURE_FILE} in {path} ({exc}): convert the '
                              'checkpoint again with `ffs-stereo convert`') from None
    if not isinstance(document, dict) or document.get('format') != FORMAT_NAME:
        raise CheckpointError(f'{path}/{ARCHITECTURE_FILE} is not a {FORMAT_NAME} document')
    if document.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'{path} uses native format version {document.get("format_version")}, '
                              f'this package reads {FORMAT_VERSION}: convert the .pth again')
    for key in ('manifest', 'args'):
        if not isinstance(document.get(key), dict):
            raise CheckpointError(f'{path}/{ARCHITECTURE_FILE} lacks its {key!r} section')
    return document


def load_native(path):
    """A LoadedCheckpoint from a native directory (tensors via safetensors only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    if not is_native_dir(path):
        raise CheckpointError(f'{path} is not a native model directory ({WEIGHTS_FILE} + '
                              f'{ARCHITECTURE_FILE}): run `ffs-stereo convert` first')
    document = _read_document(path)
    weights_path = os.path.join(path, WEIGHTS_FILE)
    try:
        state_dict = load_file(weights_path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f'cannot read {weights_path} ({exc}): the file is truncated or '
                              'corrupt, convert the checkpoint again') from None
    return LoadedCheckpoint(manifest=document['manifest'], state_dict=state_dict,
                            args=document['args'], source_path=os.path.abspath(path),
                            source_sha256=file_sha256(weights_path),
                            origin_sha256=str(document.get('source_sha256') or ''))
