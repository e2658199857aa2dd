"""`ffs-stereo bench`: per-backend, per-stage latency of the shared pipeline at several sizes.

Every backend runs behind the same StereoPipeline on the same synthetic pair
(camera size = network size), so the figures compare inference, not pre- or
post-processing. ONNX graphs (and TensorRT engines, where TensorRT exists)
are made for each size first; their export/build times are reported apart.
Given an engine (`--model X.engine`) only the TensorRT backend runs, on that
engine at its own size. Every row names the backend and the device it ran on.
`benchmarks/bench_backends.py` is a thin wrapper around `main`.
"""
import os
import statistics
import sys
import tempfile
import time

from .. import defaults

BACKENDS = ('sgbm', 'pytorch', 'onnxruntime', 'tensorrt')
STAGES = ('convert', 'infer', 'restore')


def register(subparsers):
    parser = subparsers.add_parser('bench', help='latency of each backend and pipeline stage at several sizes',
                                   description=__doc__.split('\n\n')[0])
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser):
    parser.add_argument('--model', help='checkpoint for the network backends (.pth or native dir), or a '
                                        'TensorRT .engine (then only TensorRT runs); without it only SGBM runs')
    parser.add_argument('--sizes', default='480x640,256x320', help='HxW list (default 480x640,256x320)')
    parser.add_argument('--backends', default=','.join(BACKENDS), help=f"subset of {','.join(BACKENDS)}")
    parser.add_argument('--runs', type=int, default=5, help='timed runs per backend and size (default 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs first (default 1)')
    parser.add_argument('--max-disp', type=int, default=defaults.MAX_DISP)
    parser.add_argument('--valid-iters', type=int, default=4)
    parser.add_argument('--threads', type=int, default=os.cpu_count(), help='CPU threads (default: all cores)')
    parser.add_argument('--cuda-graph', action='store_true', help='TensorRT: replay the engine as a CUDA graph')


def parse_sizes(text):
    from ..errors import ConfigError
    sizes = []
    for item in text.split(','):
        height, _, width = item.strip().partition('x')
        if not (height.isdigit() and width.isdigit()):
            raise ConfigError(f"--sizes takes HxW items like 480x640, got '{item}'")
        sizes.append((int(height), int(width)))
    return sizes


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def time_pipeline(backend, left, right, runs, warmup):
    """{'total': [s...], 'convert': [...], 'infer': [...], 'restore': [...]} over `runs` calls."""
    from ..pipeline.stereo_pipeline import StereoPipeline
    pipeline = StereoPipeline(backend)
    for _ in range(warmup):
        pipeline.compute(left, right)
    samples = {key: [] for key in ('total',) + STAGES}
    for _ in range(runs):
        start = time.perf_counter()
        pipeline.compute(left, right)
        samples['total'].append(time.perf_counter() - start)
        for stage in STAGES:
            samples[stage].append(pipeline.last_timings[stage])
    return samples


class _Bench:
    """Makes each backend for each size, once, and remembers what was skipped and why."""

    def __init__(self, args, workdir, log):
        self.args, self.workdir, self.log = args, workdir, log
        self.prepare_seconds = {}   # (backend, size) -> export/build seconds
        self._torch_model = None

    def make(self, kind, size):
        """(backend, None) or (None, reason it is skipped)."""
        from ..errors import FFSError
        try:
            return getattr(self, f'_make_{kind}')(size), None
        except FFSError as exc:
            reason = str(exc).split(':')[0].replace('TensorRT is not installed', 'TensorRT not installed')
            return None, f'skipped: {reason}'

    def _make_sgbm(self, size):
        from ..backends.sgbm import SGBMBackend
        return SGBMBackend(max_disp=self.args.max_disp)

    def _needs_model(self):
        from ..errors import ConfigError
        if not self.args.model:
            raise ConfigError('no --model given')

    def _make_pytorch(self, size):
        from ..backends.pytorch import TorchBackend
        self._needs_model()
        return TorchBackend(self.args.model, 'cpu', self.args.max_disp, self.args.valid_iters)

    def _onnx_for(self, size):
        from ..export.onnx_export import export_onnx, load_for_export
        path = os.path.join(self.workdir, f'ffs_{size[0]}x{size[1]}.onnx')
        if not os.path.exists(path):
            self._needs_model()
            if self._torch_model is None:
                self._torch_model = load_for_export(self.args.model)
            start = time.perf_counter()
            export_onnx(self._torch_model, path, size[0], size[1], self.args.max_disp, self.args.valid_iters,
                        verify=False, log=lambda line: None)
            self.prepare_seconds[('onnx export', size)] = time.perf_counter() - start
        return path

    def _make_onnxruntime(self, size):
        from ..backends.onnx_runtime import OnnxRuntimeBackend
        return OnnxRuntimeBackend(self._onnx_for(size), 'cpu', threads=self.args.threads)

    def _make_tensorrt(self, size):
        from ..backends.tensorrt import TensorRTBackend
        if is_engine(self.args.model):
            return TensorRTBackend(self.args.model, cuda_graph=self.args.cuda_graph)
        from ..backends.tensorrt_runtime import import_tensorrt
        import_tensorrt()  # skip before exporting anything when TensorRT is missing
        from ..export.engine_builder import build_engine
        start = time.perf_counter()
        engine, _ = build_engine(self._onnx_for(size), self.workdir, log=lambda line: None)
        self.prepare_seconds[('tensorrt build', size)] = time.perf_counter() - start
        return TensorRTBackend(engine, cuda_graph=self.args.cuda_graph)


def is_engine(model):
    return bool(model) and str(model).lower().endswith(('.engine', '.plan'))


def backend_device(backend):
    """Where a backend runs: 'cpu', 'cuda', 'cuda:0 (<GPU name>)'."""
    if backend.name == 'tensorrt':
        return f"cuda:{backend.device} ({backend.sidecar['gpu_name']})"
    if backend.name == 'onnxruntime':
        return 'cuda' if backend.providers[0].startswith('CUDA') else 'cpu'
    return str(getattr(backend, 'device', 'cpu'))


def plan_runs(args):
    """(backend kinds, sizes): an engine runs alone at its own size; otherwise the lists given."""
    if is_engine(args.model):
        from ..backends.engine_sidecar import read_sidecar
        sidecar = read_sidecar(args.model)
        return ['tensorrt'], [(int(sidecar['height']), int(sidecar['width']))]
    return [kind.strip() for kind in args.backends.split(',') if kind.strip()], parse_sizes(args.sizes)


def run_benchmark(args, log=print):
    """[(backend, size, samples or skip reason, description, device)] for every backend and size."""
    import torch

    from ..export.onnx_export import verification_pair
    torch.set_num_threads(args.threads)
    kinds, sizes = plan_runs(args)
    results = []
    with tempfile.TemporaryDirectory(prefix='ffs_bench_') as workdir:
        bench = _Bench(args, workdir, log)
        for kind in kinds:
            for size in sizes:
                backend, skipped = bench.make(kind, size)
                if backend is None:
                    results.append((kind, size, skipped, '', ''))
                    continue
                left, right = verification_pair(*size)
                samples = time_pipeline(backend, left, right, args.runs, args.warmup)
                device = backend_device(backend)
                results.append((kind, size, samples, backend.describe(), device))
                log(f'  {kind} on {device} {size[0]}x{size[1]}: median '
                    f'{statistics.median(samples["total"]) * 1e3:.1f} ms')
                backend.close()
    return results, bench.prepare_seconds


def format_results(results, prepare_seconds, sizes):
    """The summary table (median / p90 per size side by side) and the per-stage table."""
    devices = {}
    for kind, _, _, _, device in results:
        if device:
            devices.setdefault(kind, device)
    label_width = max([28] + [len(f'{kind} on {device}') + 2 for kind, device in devices.items()])

    def label(kind):
        return f'{kind} on {devices[kind]}' if kind in devices else kind

    lines = ['', 'latency per frame through StereoPipeline, ms (median / p90)',
             f"{'backend on device':{label_width}s}" + ''.join(f'{f"{h}x{w}":>32s}' for h, w in sizes)]
    by_key = {(kind, size): samples for kind, size, samples, _, _ in results}
    for kind in dict.fromkeys(kind for kind, _, _, _, _ in results):
        cells = []
        for size in sizes:
            samples = by_key.get((kind, size))
            if isinstance(samples, dict):
                total = samples['total']
                cells.append(f'{statistics.median(total) * 1e3:10.1f} / {percentile(total, 0.9) * 1e3:8.1f}')
            else:
                cells.append(str(samples))
        lines.append(f'{label(kind):{label_width}s}' + ''.join(f'{cell:>32s}' for cell in cells))
    lines += ['', 'pipeline stages, ms (median): convert/fit | infer | restore',
              f"{'backend on device':{label_width}s} {'size':>9s} " + ''.join(f'{stage:>10s}' for stage in STAGES)]
    for kind, size, samples, _, _ in results:
        if isinstance(samples, dict):
            stages = ''.join(f'{statistics.median(samples[stage]) * 1e3:10.2f}' for stage in STAGES)
            lines.append(f'{label(kind):{label_width}s} {size[0]:>4d}x{size[1]:<4d} {stages}')
    if prepare_seconds:
        lines += ['', 'one-off preparation (not in the latencies above):']
        lines += [f'  {what} {h}x{w}: {seconds:.1f} s' for (what, (h, w)), seconds in prepare_seconds.items()]
    descriptions = dict.fromkeys(description for _, _, samples, description, _ in results
                                 if description and isinstance(samples, dict))
    lines += ['', 'backends:'] + [f'  {description}' for description in descriptions]
    return '\n'.join(lines)


def run(args):
    print(f'benchmark: {args.runs} runs after {args.warmup} warm-up, {args.threads} CPU threads, '
          f'max_disp {args.max_disp}, {args.valid_iters} iterations')
    results, prepare_seconds = run_benchmark(args)
    print(format_results(results, prepare_seconds, plan_runs(args)[1]))
    return 0


def main(argv=None):
    from ..cli import main as cli_main
    return cli_main(['bench', *(sys.argv[1:] if argv is None else argv)])
