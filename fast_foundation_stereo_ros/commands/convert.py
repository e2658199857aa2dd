"""`ffs-stereo convert`: released .pth -> native safetensors + architecture.json.

The pickle is read with the restricted unpickler (nothing in it executes);
the result loads without pickle and gives bit-identical output.
"""
import argparse


def register(subparsers):
    parser = subparsers.add_parser(
        'convert', help='convert a released .pth into a native model directory',
        description='Convert model_best_bp2_serialize.pth into model.safetensors + '
                    'architecture.json (no pickle needed to load it).')
    parser.add_argument('--model', required=True, help='released .pth or a directory holding one')
    parser.add_argument('--output', required=True, help='native model directory to write')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..files.atomic import check_output_location
    from ..loading.checkpoint import instantiate_network, read_checkpoint
    from ..loading.native_format import save_native

    # an unwritable place is refused before the checkpoint is read; save_native refuses a folder of
    # the user's (files.output_folders)
    check_output_location(args.output)
    checkpoint = read_checkpoint(args.model)
    # Build once so a layout we cannot run is refused before anything is written.
    network = instantiate_network(checkpoint.manifest, checkpoint.state_dict, checkpoint.args)
    save_native(checkpoint, args.output)
    count = sum(p.numel() for p in network.parameters())
    print(f'wrote {args.output}: {count / 1e6:.2f} M live parameters, source sha256 '
          f'{checkpoint.source_sha256[:16]}..., max_disp <= {network.max_disp_limit}, '
          f'normalize={network.normalize}')
    return 0
