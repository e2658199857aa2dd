#!/usr/bin/env python3
"""CPU forward time and peak memory of our network vs the official formulation.

For each image size two variants run, each in a fresh subprocess so peak RSS
(`resource.getrusage(...).ru_maxrss`) belongs to that variant alone:

* ours     - the default formulation: per-group normalise once, shift-and-stack
             GWC / concat volumes, batched-matmul correlation, gather lookup;
* official - the literal official formulation: 6-D expand + pad/unfold/flip
             volumes normalised after expansion, einsum correlation,
             grid_sample lookup (`network.formulation = 'reference'`).

Same checkpoint, same inputs (the fixture pair resized), same threads. The
variants alternate over --rounds fresh processes (shared or throttled CPUs
drift over minutes; alternating keeps the comparison fair). Prints the median
wall and CPU time per forward (each process: one warm-up, then --repeats timed
runs), the per-stage split, peak RSS and its growth over the loaded model, the
max abs difference of the two outputs and the speed-up.

    .venv/bin/python benchmarks/bench_network.py [--iters 8] [--max-disp 192]
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FIXTURE = os.path.join(os.path.dirname(REPO_ROOT), 'shared', 'fixtures', 'ffs_released_layout')
VARIANTS = {'ours': 'fast', 'official': 'reference'}
STAGES = ('features', 'volumes', 'aggregation', 'gru', 'upsampling')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=DEFAULT_FIXTURE, help='.pth, its directory or a native dir')
    parser.add_argument('--sizes', default='480x640,256x320', help='HxW list, comma separated')
    parser.add_argument('--iters', type=int, default=8, help='valid_iters (official demo: 8)')
    parser.add_argument('--max-disp', type=int, default=192, help='max_disp (official demo: 192)')
    parser.add_argument('--repeats', type=int, default=1, help='timed forwards per process after one warm-up')
    parser.add_argument('--rounds', type=int, default=2, help='processes per variant, alternating')
    parser.add_argument('--threads', type=int, default=os.cpu_count(), help='torch intra-op threads')
    parser.add_argument('--worker', nargs=4, metavar=('VARIANT', 'HEIGHT', 'WIDTH', 'OUT'),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _input_pair(model_path, height, width):
    """The fixture pair resized to the benchmark size (real image statistics)."""
    import cv2
    import torch
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(model_path)
    images = []
    for name in ('left.png', 'right.png'):
        image = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if image is None:  # a native dir has no images: fall back to the fixture's
            image = cv2.imread(os.path.join(DEFAULT_FIXTURE, name), cv2.IMREAD_COLOR)
        image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (width, height),
                           interpolation=cv2.INTER_LINEAR)
        images.append(torch.from_numpy(image).permute(2, 0, 1)[None].float())
    return images


class StageTimer:
    """`network.stage_hook`: accumulates wall time per named stage."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def __call__(self, name):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def run_worker(options):
    """One variant at one size; writes a JSON report and the output disparity."""
    import numpy as np
    import torch
    sys.path.insert(0, REPO_ROOT)
    from fast_foundation_stereo_ros.loading.stereo_model import load_model
    variant, height, width, out_prefix = options.worker
    torch.set_num_threads(options.threads)
    model = load_model(options.model, device='cpu')
    network = model.network
    network.formulation = VARIANTS[variant]
    left, right = _input_pair(options.model, int(height), int(width))
    rss_loaded = _rss_mib()
    times, cpu_times, stages = [], [], []
    with torch.inference_mode():
        for repeat in range(options.repeats + 1):
            timer = StageTimer()
            network.stage_hook = timer
            start, cpu_start = time.perf_counter(), time.process_time()
            disparity = network(left, right, options.iters, options.max_disp)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if repeat:  # the first run is a warm-up (allocator, oneDNN primitives)
                times.append(elapsed)
                cpu_times.append(cpu)
                stages.append(timer.seconds)
    np.save(out_prefix + '.npy', disparity[0, 0].numpy())
    report = {
        'variant': variant, 'height': int(height), 'width': int(width),
        'threads': torch.get_num_threads(), 'seconds': times, 'cpu_seconds': cpu_times,
        'stages': [{name: s.get(name, 0.0) for name in STAGES} for s in stages],
        'rss_loaded_mib': rss_loaded, 'rss_peak_mib': _rss_mib(),
    }
    with open(out_prefix + '.json', 'w') as handle:
        json.dump(report, handle)


def run_variant(options, variant, height, width, workdir, round_index):
    prefix = os.path.join(workdir, f'{variant}_{height}x{width}_{round_index}')
    command = [sys.executable, os.path.abspath(__file__), '--model', options.model,
               '--iters', str(options.iters), '--max-disp', str(options.max_disp),
               '--repeats', str(options.repeats), '--threads', str(options.threads),
               '--worker', variant, str(height), str(width), prefix]
    subprocess.run(command, check=True)
    with open(prefix + '.json') as handle:
        return json.load(handle), prefix + '.npy'


def merge_rounds(reports):
    """Median times/stages and max peak memory over the processes of one variant."""
    times = [t for r in reports for t in r['seconds']]
    cpu = [t for r in reports for t in r['cpu_seconds']]
    stages = [s for r in reports for s in r['stages']]
    worst = max(reports, key=lambda r: r['rss_peak_mib'])
    return {'seconds': statistics.median(times), 'fastest': min(times),
            'cpu_seconds': statistics.median(cpu), 'threads': reports[0]['threads'],
            'stages': {name: statistics.median(s[name] for s in stages) for name in STAGES},
            'rss_peak_mib': worst['rss_peak_mib'],
            'rss_growth_mib': worst['rss_peak_mib'] - worst['rss_loaded_mib']}


def print_report(options, height, width, merged, difference):
    ours, official = merged['ours'], merged['official']
    print(f'\n== {height}x{width}, valid_iters {options.iters}, max_disp {options.max_disp}, '
          f'torch threads {ours["threads"]} ==')
    print(f'{"variant":9s} {"wall s":>7s} {"min s":>6s} {"cpu s":>6s} '
          + ' '.join(f'{s:>11s}' for s in STAGES) + f' {"peak MiB":>8s} {"+fwd MiB":>8s}')
    for name in ('ours', 'official'):
        report = merged[name]
        print(f'{name:9s} {report["seconds"]:7.2f} {report["fastest"]:6.2f} {report["cpu_seconds"]:6.2f} '
              + ' '.join(f'{report["stages"][s]:11.3f}' for s in STAGES)
              + f' {report["rss_peak_mib"]:8.0f} {report["rss_growth_mib"]:8.0f}')
    print(f'speed-up ours vs official: {official["seconds"] / ours["seconds"]:.2f}x wall (median), '
          f'{official["fastest"] / ours["fastest"]:.2f}x (fastest runs), '
          f'{official["cpu_seconds"] / ours["cpu_seconds"]:.2f}x CPU time; volumes '
          f'{official["stages"]["volumes"] / max(ours["stages"]["volumes"], 1e-9):.1f}x, GRU stage '
          f'{official["stages"]["gru"] / max(ours["stages"]["gru"], 1e-9):.1f}x; forward memory growth '
          f'{official["rss_growth_mib"] / max(ours["rss_growth_mib"], 1e-9):.1f}x lower; '
          f'max |ours - official| = {difference:.2e} px')


def main(argv=None):
    options = parse_args(argv)
    if options.worker:
        return run_worker(options)
    import numpy as np
    sizes = [tuple(int(v) for v in size.lower().split('x')) for size in options.sizes.split(',')]
    print(f'model {options.model}; CPU threads {options.threads} of {os.cpu_count()} cores; '
          f'{options.repeats} timed runs after 1 warm-up, fresh process per variant')
    with tempfile.TemporaryDirectory() as workdir:
        for height, width in sizes:
            reports, outputs = {name: [] for name in VARIANTS}, {}
            for round_index in range(options.rounds):
                for variant in VARIANTS:
                    report, outputs[variant] = run_variant(options, variant, height, width, workdir,
                                                           round_index)
                    reports[variant].append(report)
            difference = float(np.abs(np.load(outputs['ours']) - np.load(outputs['official'])).max())
            merged = {name: merge_rounds(reports[name]) for name in VARIANTS}
            print_report(options, height, width, merged, difference)
    return 0


if __name__ == '__main__':
    sys.exit(main())
