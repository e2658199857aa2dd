#!/usr/bin/env python3
"""GPU check for a lent machine: our PyTorch network on CUDA, and the cuda-python half of the TensorRT runtime.

Runs from the repository root with `PYTHONPATH=. python scripts/verify_gpu.py`
on a bare machine that has Python, torch with CUDA, cuda-bindings / cuda-python,
numpy (and optionally onnx, onnxruntime, opencv) but none of the package's other
dependencies: it imports only the network, the checkpoint reader and the CUDA
wrapper of the TensorRT backend (`backends/tensorrt_runtime.py`). Budget: well
under 8 minutes on one GPU.

Checks, each printed as one line and collected into a JSON report
(`$OUT/verify_gpu.json` when $OUT is set):

1. network: CUDA fp32 vs CPU fp32 on the fixture pair (max/mean abs px);
2. fp16 autocast vs fp32 on CUDA (max/mean abs px, share of pixels > 1 px);
3. latency at 480x640 with 4 and 8 iterations: eager, replayed as a CUDA
   graph (torch.cuda.CUDAGraph), and torch.compile when it works in time;
4. cuda-python: device/driver/runtime versions and bindings-vs-driver match,
   device allocation, pageable vs pinned (cudaMallocHost) copies of one
   480x640 input pair + disparity, a CUDA graph of the copy path captured
   with the runtime's `capture_graph` (thread-local mode,
   cudaGraphInstantiateWithFlags) and replayed, and a capture made to fail
   on purpose to show the fallback leaves the stream usable.

Weights: `--fixture DIR` holding the released-layout checkpoint
(`model_best_bp2_serialize.pth`), or a folder written by `--prepare DIR`
(the fixture's architecture as JSON plus its image pair, ~0.4 MB instead of
70 MB, so it can travel to the GPU machine): the network is then built from
that architecture with seeded random weights, which is enough to compare
devices and precisions and to time the network.

`--cpu-smoke` runs the network part at a tiny size with one iteration on the
CPU and reports every CUDA part as "skipped: no CUDA" (test/scripts runs it).
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

CHECKPOINT_NAME = 'model_best_bp2_serialize.pth'
ARCHITECTURE_NAME = 'architecture.json'
DEFAULT_FIXTURE = os.path.join('..', 'shared', 'fixtures', 'ffs_released_layout')
PREPARED_DEFAULT = '.gpu_check'
SKIPPED_NO_CUDA = 'skipped: no CUDA'


class Report:
    """Collects results and prints one line per check."""

    def __init__(self, output_dir=None):
        self.results = {}
        self.started = time.perf_counter()
        self.path = os.path.join(output_dir, 'verify_gpu.json') if output_dir else None

    def add(self, name, value, line=None):
        self.results[name] = value
        print(f'{name:34s} {line if line is not None else value}', flush=True)
        if self.path:  # rewritten after every check, so a run cut short still leaves its results
            with open(self.path, 'w', encoding='utf-8') as stream:
                json.dump(self.results, stream, indent=2, default=str)

    def elapsed(self):
        return time.perf_counter() - self.started


# --- weights ------------------------------------------------------------------------------------------

def prepare(fixture_dir, output_dir):
    """Write the fixture's architecture (args + manifest, no weights) and image pair to `output_dir`."""
    import shutil

    from fast_foundation_stereo_ros.loading.checkpoint import read_checkpoint
    checkpoint = read_checkpoint(os.path.join(fixture_dir, CHECKPOINT_NAME))
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, ARCHITECTURE_NAME), 'w', encoding='utf-8') as stream:
        json.dump({'args': checkpoint.args, 'manifest': checkpoint.manifest}, stream)
    for name in ('left.png', 'right.png', 'reference.npz'):
        source = os.path.join(fixture_dir, name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(output_dir, name))
    print(f'wrote {output_dir}: carry it to the GPU machine and run --fixture {output_dir}')


def load_network(fixture_dir, report):
    """(network on CPU, fixture pair or None, description)."""
    import torch

    from fast_foundation_stereo_ros.loading.checkpoint import instantiate_network, read_checkpoint
    from fast_foundation_stereo_ros.loading.network_builders import build_network
    checkpoint_path = os.path.join(fixture_dir, CHECKPOINT_NAME)
    if os.path.isfile(checkpoint_path):
        checkpoint = read_checkpoint(checkpoint_path)
        network = instantiate_network(checkpoint.manifest, checkpoint.state_dict, checkpoint.args)
        described = f'fixture checkpoint {checkpoint_path}'
    else:
        with open(os.path.join(fixture_dir, ARCHITECTURE_NAME), encoding='utf-8') as stream:
            document = json.load(stream)
        network = build_network(document['manifest'], document['args'])
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, parameter in network.named_parameters():
                scale = 0.02 if parameter.dim() > 1 else 0.1
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale
                                + (1.0 if name.endswith('weight') and parameter.dim() == 1 else 0.0))
            for name, buffer in network.named_buffers():
                if name.endswith('running_var'):
                    buffer.fill_(1.0)
                elif name.endswith('running_mean'):
                    buffer.zero_()
        described = f'fixture architecture {fixture_dir} with seeded random weights'
    report.add('weights', described)
    return network.eval(), read_pair(fixture_dir)


def read_pair(fixture_dir):
    path = os.path.join(fixture_dir, 'reference.npz')
    if os.path.isfile(path):
        with np.load(path) as data:
            return data['left'], data['right']
    try:
        import cv2
    except ImportError:
        return None
    images = [cv2.imread(os.path.join(fixture_dir, name), cv2.IMREAD_COLOR) for name in ('left.png', 'right.png')]
    if any(image is None for image in images):
        return None
    return tuple(image[..., ::-1].copy() for image in images)


def textured_pair(height, width, seed=0):
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    right = np.roll(left, -8, axis=1)
    return left, right


def as_tensor(image, device):
    import torch
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32)).to(device)


def run_network(network, left, right, iters, max_disp, device, fp16=False):
    import torch
    network.mixed_precision = bool(fp16)
    with torch.inference_mode():
        output = network(as_tensor(left, device), as_tensor(right, device), iters, max_disp)
    return output[0, 0].float().cpu().numpy()


def differences(found, expected):
    difference = np.abs(found.astype(np.float64) - expected.astype(np.float64))
    return {'max_abs_px': float(difference.max()), 'mean_abs_px': float(difference.mean()),
            'over_1px_share': float(np.count_nonzero(difference > 1.0)) / difference.size,
            'finite': bool(np.isfinite(found).all())}


def describe_difference(figures):
    return (f"max abs {figures['max_abs_px']:.2e} px, mean abs {figures['mean_abs_px']:.2e} px, "
            f"> 1 px {figures['over_1px_share']:.3%}{'' if figures['finite'] else ', NON-FINITE'}")


# --- network checks -----------------------------------------------------------------------------------

def check_network(network, pair, args, report, cuda):
    """CPU run, then CUDA fp32 vs CPU and fp16 autocast vs fp32 (network left on the GPU when there is one)."""
    iters, max_disp = (1, 64) if args.cpu_smoke else (4, 192)
    if pair is None or args.cpu_smoke:
        pair = textured_pair(*((64, 96) if args.cpu_smoke else (160, 224)))
    cpu = run_network(network, *pair, iters, max_disp, 'cpu')
    report.add('network cpu fp32', {'shape': list(cpu.shape), 'finite': bool(np.isfinite(cpu).all()),
                                    'mean_px': float(np.nanmean(cpu))},
               f'{cpu.shape[1]}x{cpu.shape[0]}, {iters} iterations, mean {np.nanmean(cpu):.3f} px, '
               f'finite {bool(np.isfinite(cpu).all())}')
    if not cuda:
        for name in ('network cuda fp32 vs cpu', 'network cuda fp16 vs fp32', 'latency 480x640'):
            report.add(name, SKIPPED_NO_CUDA)
        return
    network.cuda()
    fp32 = run_network(network, *pair, iters, max_disp, 'cuda')
    figures = differences(fp32, cpu)
    report.add('network cuda fp32 vs cpu', figures, describe_difference(figures))
    fp16 = run_network(network, *pair, iters, max_disp, 'cuda', fp16=True)
    figures = differences(fp16, fp32)
    report.add('network cuda fp16 vs fp32', figures, describe_difference(figures))
    network.mixed_precision = False


def check_latency(network, args, report):
    """480x640 latency with 4 and 8 iterations, fp32 and fp16, eager and CUDA graph; then torch.compile."""
    import torch
    latencies = {}
    for iterations in (4, 8):
        for fp16 in (False, True):
            key = f"{iterations} iters {'fp16' if fp16 else 'fp32'}"
            try:
                latencies[key] = time_network(network, iterations, fp16, args.runs)
            except Exception as exc:  # noqa: BLE001 - one failed figure must not hide the others
                latencies[key] = {'eager': f'failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}'}
            report.add(f'latency 480x640 {key}', latencies[key], format_latency(latencies[key]))
    if report.elapsed() < args.compile_budget_s:
        compiled = time_compiled(network, args.runs)
        report.add('latency 480x640 torch.compile', compiled, format_latency(compiled))
    else:
        report.add('latency 480x640 torch.compile', {'skipped': 'over the time budget'})
    torch.cuda.empty_cache()


def format_latency(figures):
    parts = []
    for mode in ('eager', 'cuda_graph', 'compiled'):
        value = figures.get(mode)
        if isinstance(value, dict) and 'p50_ms' in value:
            parts.append(f"{mode} p50 {value['p50_ms']:.2f} / p99 {value['p99_ms']:.2f} ms")
        elif value is not None:
            parts.append(f'{mode} {value}')
    return '; '.join(parts) or str(figures)


def percentiles(samples_s):
    values = np.asarray(samples_s) * 1e3
    return {'runs': int(values.size), 'p50_ms': float(np.percentile(values, 50)),
            'p99_ms': float(np.percentile(values, 99))}


def time_cuda(function, runs):
    import torch
    samples = []
    for _ in range(runs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def time_network(network, iterations, fp16, runs):
    """Eager and CUDA-graph latency of one 480x640 forward (static inputs on the GPU)."""
    import torch
    left, right = textured_pair(480, 640)
    static_left, static_right = as_tensor(left, 'cuda'), as_tensor(right, 'cuda')
    network.mixed_precision = fp16

    def forward():
        with torch.inference_mode():
            return network(static_left, static_right, iterations, 192)
    for _ in range(2):
        forward()
    figures = {'eager': time_cuda(forward, runs)}
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            forward()  # warm-up on the capture stream
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = forward()
        graph.replay()
        torch.cuda.synchronize()
        eager_output = forward()
        figures['cuda_graph_vs_eager_max_abs_px'] = float((static_output - eager_output).abs().max())
        figures['cuda_graph'] = time_cuda(graph.replay, runs)
        del graph
    except Exception as exc:  # noqa: BLE001 - report why capture is impossible, keep going
        figures['cuda_graph'] = f'capture failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}'
    network.mixed_precision = False
    return figures


def time_compiled(network, runs):
    import torch
    left, right = textured_pair(480, 640)
    static_left, static_right = as_tensor(left, 'cuda'), as_tensor(right, 'cuda')
    started = time.perf_counter()
    try:
        compiled = torch.compile(network)
        with torch.inference_mode():
            compiled(static_left, static_right, 8, 192)
        compile_seconds = time.perf_counter() - started

        def forward():
            with torch.inference_mode():
                return compiled(static_left, static_right, 8, 192)
        return {'compiled': time_cuda(forward, runs), 'compile_seconds': round(compile_seconds, 1),
                'iterations': 8}
    except Exception as exc:  # noqa: BLE001 - torch.compile failing is a result, not a crash
        return {'compiled': f'failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}'}


# --- cuda-python half of the TensorRT runtime -------------------------------------------------------

def check_cuda_runtime(args, report):
    from fast_foundation_stereo_ros.backends import tensorrt_runtime as runtime
    driver = runtime.driver_cuda_version()
    versions = runtime.cuda_binding_versions()
    bindings = versions.get('cuda-bindings') or versions.get('cuda-python')
    report.add('cuda driver / bindings', {'driver': runtime.format_cuda_version(driver), 'bindings': bindings,
                                          'loads': runtime.bindings_match_driver(bindings, driver),
                                          'pin': runtime.bindings_pin_for_driver(driver)},
               f'driver CUDA {runtime.format_cuda_version(driver)}, bindings {bindings}, '
               f'loads {runtime.bindings_match_driver(bindings, driver)}, pin {runtime.bindings_pin_for_driver(driver)}')
    if driver is None or not bindings:
        for name in ('cuda-python open', 'copies 480x640 pageable vs pinned', 'copy-path cuda graph',
                     'capture fallback'):
            report.add(name, SKIPPED_NO_CUDA if driver is None else 'skipped: cuda-python not installed')
        return
    cuda = runtime.open_cuda(0, [('cuda-python', runtime._CudaPythonApi)])
    try:
        name, capability = cuda.describe_device()
        runtime_version, driver_version = cuda.cuda_versions()
        report.add('cuda-python open', {'gpu': name, 'compute_capability': capability,
                                        'runtime': runtime.format_cuda_version(runtime_version),
                                        'driver': runtime.format_cuda_version(driver_version),
                                        'stream_handle_nonzero': cuda.stream_handle != 0,
                                        'native_handle_function': runtime.native_handle_function() is not None},
                   f'{name} sm{capability}, runtime {runtime.format_cuda_version(runtime_version)}, driver '
                   f'{runtime.format_cuda_version(driver_version)}, {cuda.binding}')
        check_copies(cuda, runtime, args.runs, report)
    finally:
        cuda.close()


def check_copies(cuda, runtime, runs, report):
    """Pageable vs pinned copies of a 480x640 pair + disparity, then the same path as a CUDA graph."""
    shapes = {'left': (1, 3, 480, 640), 'right': (1, 3, 480, 640), 'disparity': (1, 1, 480, 640)}
    rng = np.random.default_rng(0)
    pageable = {name: np.empty(shape, np.float32) for name, shape in shapes.items()}
    pinned = {name: cuda.host_array(shape, np.float32) for name, shape in shapes.items()}
    device = {name: cuda.alloc(array.nbytes) for name, array in pageable.items()}
    try:
        for buffers in (pageable, pinned):
            for name in ('left', 'right'):
                buffers[name][...] = rng.random(shapes[name], dtype=np.float32)

        def copy_path(buffers):
            def enqueue():
                cuda.to_device(device['left'], buffers['left'])
                cuda.to_device(device['right'], buffers['right'])
                # the "engine": the left image's first channel comes back as the disparity
                cuda.to_host(buffers['disparity'], device['left'])
            return enqueue

        timings = {}
        for label, buffers in (('pageable', pageable), ('pinned', pinned)):
            enqueue = copy_path(buffers)
            samples = []
            for _ in range(max(runs, 10)):
                start = time.perf_counter()
                enqueue()
                cuda.synchronize()
                samples.append(time.perf_counter() - start)
            timings[label] = percentiles(samples)
            timings[f'{label}_roundtrip_exact'] = bool(np.array_equal(buffers['disparity'][0, 0],
                                                                      buffers['left'][0, 0]))
        report.add('copies 480x640 pageable vs pinned', timings,
                   f"pageable p50 {timings['pageable']['p50_ms']:.3f} ms, pinned p50 {timings['pinned']['p50_ms']:.3f} "
                   f"ms (exact round trip: {timings['pageable_roundtrip_exact']}/{timings['pinned_roundtrip_exact']})")
        check_graph(cuda, runtime, copy_path(pinned), pinned, runs, report)
    finally:
        for pointer in device.values():
            cuda.free(pointer)


def check_graph(cuda, runtime, enqueue, pinned, runs, report):
    logs = []
    launcher = runtime.GraphLauncher(cuda, enqueue, True, logs.append)
    pinned['left'][...] += 1.0
    samples = []
    for _ in range(max(runs, 10) + 1):
        start = time.perf_counter()
        launcher.run()
        cuda.synchronize()
        samples.append(time.perf_counter() - start)
    exact = bool(np.array_equal(pinned['disparity'][0, 0], pinned['left'][0, 0]))
    figures = {'state': launcher.state, 'replay': percentiles(samples[1:]), 'exact': exact, 'log': logs}
    report.add('copy-path cuda graph', figures, f"state {launcher.state}, replay p50 {figures['replay']['p50_ms']:.3f} "
               f'ms, exact {exact}{"; " + logs[0] if logs else ""}')

    def illegal_during_capture():
        enqueue()
        cuda.synchronize()  # synchronizing a capturing stream is illegal: the capture must fail
    failing = runtime.GraphLauncher(cuda, illegal_during_capture, True, logs.append)
    failing.run()
    failing.run()
    cuda.synchronize()
    pinned['left'][...] += 1.0
    enqueue()
    cuda.synchronize()
    usable = bool(np.array_equal(pinned['disparity'][0, 0], pinned['left'][0, 0]))
    report.add('capture fallback', {'state': failing.state, 'failure': failing.failure, 'stream_usable': usable,
                                    'logged_once': len(logs) == 1},
               f'state {failing.state}, stream usable after it {usable}, logged {len(logs)} line(s): '
               f'{(failing.failure or "")[:120]}')


# --- main --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--fixture', help=f'fixture folder (checkpoint, or a --prepare folder); default '
                                          f'{DEFAULT_FIXTURE}, then {PREPARED_DEFAULT}')
    parser.add_argument('--prepare', metavar='DIR', help='write the fixture architecture + pair to DIR and exit')
    parser.add_argument('--cpu-smoke', action='store_true', help='tiny CPU run; CUDA parts report skipped')
    parser.add_argument('--runs', type=int, default=20, help='timed runs per latency figure (default 20)')
    parser.add_argument('--compile-budget-s', type=float, default=180.0,
                        help='try torch.compile only if the checks so far took less than this (default 180)')
    args = parser.parse_args(argv)
    candidates = [args.fixture] if args.fixture else [DEFAULT_FIXTURE, PREPARED_DEFAULT]
    fixture = next((path for path in candidates if path and (
        os.path.isfile(os.path.join(path, CHECKPOINT_NAME)) or os.path.isfile(os.path.join(path, ARCHITECTURE_NAME)))),
        None)
    if fixture is None:
        print(f"verify_gpu: error: no fixture in {', '.join(candidates)}: give --fixture DIR holding "
              f'{CHECKPOINT_NAME}, or a folder made by --prepare DIR', file=sys.stderr)
        return 2
    if args.prepare:
        prepare(fixture, args.prepare)
        return 0
    import torch
    report = Report(os.environ.get('OUT'))
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    report.add('machine', {'python': platform.python_version(), 'torch': torch.__version__,
                           'torch_cuda': torch.version.cuda,
                           'gpu': torch.cuda.get_device_name(0) if cuda else None},
               f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
               f"{torch.cuda.get_device_name(0) if cuda else 'no CUDA device used'}")
    torch.manual_seed(0)
    network, pair = load_network(fixture, report)
    check_network(network, pair, args, report, cuda)
    if cuda:  # the quick runtime checks before the long latency ones
        try:
            check_cuda_runtime(args, report)
        except Exception as exc:  # noqa: BLE001 - report it and still time the network
            report.add('cuda-python runtime', f'failed: {type(exc).__name__}: {exc}')
        check_latency(network, args, report)
    else:
        report.add('cuda-python runtime', SKIPPED_NO_CUDA)
    report.add('total seconds', round(report.elapsed(), 1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
