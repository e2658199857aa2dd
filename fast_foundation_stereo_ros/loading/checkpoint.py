"""Load a released `model_best_bp2_serialize.pth` safely and rebuild its network.

Pipeline: restricted unpickling (`safe_unpickler`, nothing from the file is
executed) -> architecture manifest + state dict + args (`manifest`) ->
our network built from the manifest (`network_builders`) -> strict weight load.

The pickled `args` are authoritative (the official demo also ignores every
cfg.yaml key except valid_iters / max_disp, which are runtime arguments here),
so a cfg.yaml next to the checkpoint is neither needed nor read.
"""
import dataclasses
import os

import torch

from ..errors import CheckpointError
from ..files.checksum import file_sha256
from .dead_modules import dead_state_keys
from .manifest import extract_architecture
from .network_builders import build_network
from .safe_unpickler import read_pickled_module

RELEASE_FILE_NAME = 'model_best_bp2_serialize.pth'


@dataclasses.dataclass
class LoadedCheckpoint:
    """Everything needed to rebuild the network, with no pickle involved."""
    manifest: dict
    state_dict: dict
    args: dict
    source_path: str
    source_sha256: str   # of the file actually read
    origin_sha256: str = ''  # of the released .pth it came from (same file for a .pth)

    def __post_init__(self):
        self.origin_sha256 = self.origin_sha256 or self.source_sha256


def resolve_checkpoint_file(path):
    """A `.pth` file, or the single `.pth` inside a directory (release name preferred)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        candidates = sorted(name for name in os.listdir(path) if name.endswith('.pth'))
        if RELEASE_FILE_NAME in candidates:
            return os.path.join(path, RELEASE_FILE_NAME)
        if len(candidates) == 1:
            return os.path.join(path, candidates[0])
        raise CheckpointError(
            f'{path} holds {len(candidates)} .pth files {candidates[:5]}: pass the checkpoint '
            f'file itself (expected {RELEASE_FILE_NAME})')
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint {path} does not exist: check the --model path')
    return path


def _check_disparity_offsets(state_dict, args):
    """The pickled `dx` buffer must be the integer taps -r..r our lookup uses."""
    offsets = state_dict.get('dx')
    if offsets is None:
        return
    radius = int(args.get('corr_radius', 4))
    expected = torch.arange(-radius, radius + 1)
    if offsets.numel() != expected.numel() or not torch.equal(offsets.flatten().long(), expected):
        raise CheckpointError(
            f'the checkpoint lookup offsets dx={offsets.flatten().tolist()} are not '
            f'-{radius}..{radius} (corr_radius): inconsistent checkpoint')


def read_checkpoint(path):
    """Restricted unpickling of a released checkpoint -> `LoadedCheckpoint`."""
    file_path = resolve_checkpoint_file(path)
    root = read_pickled_module(file_path)
    manifest, state_dict, args = extract_architecture(root)
    _check_disparity_offsets(state_dict, args)
    return LoadedCheckpoint(manifest=manifest, state_dict=state_dict, args=args,
                            source_path=os.path.abspath(file_path),
                            source_sha256=file_sha256(file_path))


def live_state_dict(manifest, state_dict):
    """`state_dict` without the tensors of dead legacy modules and constants."""
    dead = set(dead_state_keys(manifest, state_dict))
    return {key: value for key, value in state_dict.items() if key not in dead}


def instantiate_network(manifest, state_dict, args):
    """Build the network from the manifest and load the live weights strictly."""
    network = build_network(manifest, args)
    weights = live_state_dict(manifest, state_dict)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f'checkpoint tensors do not match the rebuilt network: missing {missing[:5]}'
            f'{" ..." if len(missing) > 5 else ""}, unexpected {unexpected[:5]}'
            f'{" ..." if len(unexpected) > 5 else ""}; the file is truncated or not a '
            'Fast-FoundationStereo release')
    mismatched = [f'{key} {tuple(weights[key].shape)} vs {tuple(expected[key].shape)}'
                  for key in expected if tuple(weights[key].shape) != tuple(expected[key].shape)]
    if mismatched:
        raise CheckpointError(f'checkpoint tensor shapes disagree with the layout: '
                              f'{mismatched[:3]}; the file is corrupt')
    network.load_state_dict(weights, strict=True)
    return network.eval()

