#!/usr/bin/env python3
"""Several stereo heads on one backend: round-robin (what the node does) beside batched inference.

For N heads, one "round" serves one synchronised set of every head.
  SGBM     : round-robin through the node's per-frame stage (FrameStage: convert, infer, depth, cloud);
             SGBM has no batch, so only round-robin is shown.
  PyTorch  : the network on N pairs as N calls of batch 1 (round-robin) beside one call of batch N
             (what a batching backend would do), same padded size, same iterations.
Printed per N: ms per round and sets/s over all heads, side by side.
Time is this process's CPU time by default (`--clock cpu`, torch on 1 thread): on a machine shared with
other jobs, wall time measures their load more than this code; `--clock wall` for a quiet machine.

Example (CPU, small, a few minutes on 2 cores):
  .venv/bin/python benchmarks/bench_heads.py \
      --model ../shared/fixtures/ffs_released_layout/model_best_bp2_serialize.pth \
      --heads 1 2 4 --torch-size 160 224 --iters 4
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from fast_foundation_stereo_ros.backends import create_backend  # noqa: E402
from fast_foundation_stereo_ros.geometry.synthetic_scenes import make_scene  # noqa: E402
from fast_foundation_stereo_ros.pipeline.frame_stage import FrameStage, OutputRequest  # noqa: E402
from fast_foundation_stereo_ros.pipeline.stereo_pipeline import StereoPipeline  # noqa: E402

CLOCKS = {'cpu': time.process_time, 'wall': time.perf_counter}
clock = CLOCKS['cpu']


def best_of(repeats, *functions):
    """Shortest time (seconds, `clock`) of each function over `repeats` rounds, the functions run in turn
    within each round, so a load change on a shared machine hits them alike."""
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, measured in zip(functions, times):
            started = clock()
            function()
            measured.append(clock() - started)
    return [min(measured) for measured in times]


def sgbm_rounds(scenes, heads, repeats, max_disp):
    pipeline = StereoPipeline(create_backend('sgbm', max_disp=max_disp))
    stages = [FrameStage(pipeline) for _ in range(heads)]       # one stage (buffers) per head, like the node
    request = OutputRequest(disparity=True, depth=True, points=True)

    def round_robin():
        for stage, scene in zip(stages, scenes):
            stage.compute(scene.left, 'rgb8', scene.right, 'rgb8', scene.camera, request)
    round_robin()
    return best_of(repeats, round_robin)[0]


def torch_rounds(model_path, scenes, heads, repeats, iters, max_disp):
    import torch

    from fast_foundation_stereo_ros.loading.stereo_model import load_model, pad_to_multiple
    model = load_model(model_path, device='cpu')
    network = model.network

    def tensor(images):
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    lefts = [tensor([scene.left]) for scene in scenes[:heads]]
    rights = [tensor([scene.right]) for scene in scenes[:heads]]
    (left_batch, right_batch), _ = pad_to_multiple([torch.cat(lefts), torch.cat(rights)])
    singles = [pad_to_multiple([left, right])[0] for left, right in zip(lefts, rights)]

    def round_robin():
        with torch.inference_mode():
            for left, right in singles:
                network(left, right, iters, max_disp)

    def batched():
        with torch.inference_mode():
            out = network(left_batch, right_batch, iters, max_disp)
        assert out.shape[0] == heads, f'the network returned batch {out.shape[0]} for {heads} pairs'
    with torch.inference_mode():    # batching must not change the answer: batch item i == single call i
        together = network(left_batch, right_batch, iters, max_disp)
        difference = max(float((together[index] - network(left, right, iters, max_disp)[0]).abs().max())
                         for index, (left, right) in enumerate(singles))
    round_robin_seconds, batched_seconds = best_of(repeats, round_robin, batched)
    return round_robin_seconds, batched_seconds, difference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', help='checkpoint for the PyTorch rows (omit for SGBM only)')
    parser.add_argument('--heads', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--size', type=int, nargs=2, default=[480, 640], metavar=('HEIGHT', 'WIDTH'),
                        help='SGBM image size (default 480 640)')
    parser.add_argument('--torch-size', type=int, nargs=2, default=[160, 224], metavar=('HEIGHT', 'WIDTH'))
    parser.add_argument('--iters', type=int, default=4)
    parser.add_argument('--max-disp', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--clock', choices=tuple(CLOCKS), default='cpu',
                        help='cpu: process CPU time, torch on 1 thread (default); wall: elapsed time')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0 = 1 with --clock cpu, torch default with wall)')
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    height, width = args.size
    scenes = [make_scene('slanted', width, height, seed=index) for index in range(max(args.heads))]
    print(f'{args.clock} time. SGBM, {width}x{height}, max_disp {args.max_disp}: disparity + depth + points per set')
    print(f"{'heads':>5} {'round-robin ms/round':>21} {'sets/s':>8}")
    for heads in args.heads:
        seconds = sgbm_rounds(scenes, heads, args.repeats, args.max_disp)
        print(f'{heads:>5} {seconds * 1e3:>21.1f} {heads / seconds:>8.2f}')
    if args.model:
        import torch
        threads = args.threads or (1 if args.clock == 'cpu' else 0)
        if threads:
            torch.set_num_threads(threads)
        height, width = args.torch_size
        scenes = [make_scene('slanted', width, height, seed=index) for index in range(max(args.heads))]
        print(f'\nPyTorch network on CPU ({torch.get_num_threads()} threads), {width}x{height}, '
              f'{args.iters} iterations, max_disp {args.max_disp}')
        print(f"{'heads':>5} {'round-robin ms/round':>21} {'sets/s':>8} {'batched ms/round':>17} {'sets/s':>8} "
              f"{'batched/rr':>10}")
        for heads in args.heads:
            rr, batch, difference = torch_rounds(args.model, scenes, heads, args.repeats, args.iters,
                                                 args.max_disp)
            print(f'{heads:>5} {rr * 1e3:>21.1f} {heads / rr:>8.2f} {batch * 1e3:>17.1f} {heads / batch:>8.2f} '
                  f'{batch / rr:>10.2f}   (batched vs single: max |diff| {difference:.1e} px)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
