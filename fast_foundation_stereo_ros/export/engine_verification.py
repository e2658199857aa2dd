"""An engine proves itself on the device: its disparity against ONNX Runtime CPU, and its latency.

`build-engine` runs this on every freshly built engine before writing it, and
`ffs-stereo verify-engine` repeats it later (after a JetPack upgrade, on the
robot). The reference is ONNX Runtime's CPU provider on the fp32 graph of the
same network and size; the pairs are a built-in synthetic textured scene at
the engine's size plus any user pair (resized to that size: both sides see
the same input, so only the engine's arithmetic is compared).

The statistics (`compare_disparity`, `latency_summary`, `judge`,
`verification_record`, `format_report`) are plain numpy, tested on real
arrays without a GPU. `check_engine` drives a TensorRT backend and so only
runs where TensorRT and a GPU exist.
"""
import dataclasses
import time

import numpy as np

from ..errors import InputError

#: an engine within these limits of the fp32 reference is accepted (FP16 steps are 0.125 px at 128-256 px,
#: so single pixels at occlusion edges may move more; the share over 1 px and the mean catch real damage)
MEAN_ABS_LIMIT_PX = 0.1
OVER_1PX_LIMIT = 0.005
DEFAULT_RUNS = 20
SYNTHETIC_PAIR = 'synthetic'


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How closely one disparity map follows the reference."""
    max_abs: float
    mean_abs: float
    over_1px: float       # share of pixels off by more than 1 px
    non_finite: int       # NaN/inf pixels in the engine's output
    pixels: int

    def as_dict(self):
        return {'max_abs_px': round(self.max_abs, 6), 'mean_abs_px': round(self.mean_abs, 6),
                'over_1px_share': round(self.over_1px, 6), 'non_finite_pixels': self.non_finite,
                'pixels': self.pixels}


def compare_disparity(found, expected):
    """Agreement of `found` (engine) with `expected` (reference), both HxW."""
    found = np.asarray(found, np.float64)
    expected = np.asarray(expected, np.float64)
    if found.shape != expected.shape:
        raise InputError(f'engine output {found.shape} and reference {expected.shape} differ in shape')
    finite = np.isfinite(found)
    non_finite = int(found.size - np.count_nonzero(finite))
    difference = np.abs(np.where(finite, found, 0.0) - expected)
    difference[~finite] = np.inf
    over = float(np.count_nonzero(difference > 1.0)) / found.size
    finite_difference = difference[finite]
    max_abs = float(difference.max()) if found.size else 0.0
    mean_abs = float(finite_difference.mean()) if finite_difference.size else float('inf')
    return Agreement(max_abs, mean_abs, over, non_finite, int(found.size))


def latency_summary(seconds):
    """{'runs', 'p50_ms', 'p99_ms', 'mean_ms'} of per-run wall times in seconds."""
    values = np.asarray(seconds, np.float64) * 1e3
    if values.size == 0:
        raise InputError('no timed runs: --runs must be at least 1')
    p50, p99 = np.percentile(values, [50, 99])
    return {'runs': int(values.size), 'p50_ms': round(float(p50), 3), 'p99_ms': round(float(p99), 3),
            'mean_ms': round(float(values.mean()), 3)}


def judge(agreements, mean_abs_limit=MEAN_ABS_LIMIT_PX, over_1px_limit=OVER_1PX_LIMIT):
    """(passed, reasons) for {pair name: Agreement}; every pair must be within both limits."""
    reasons = []
    for name, agreement in agreements.items():
        if agreement.non_finite:
            reasons.append(f'{name}: {agreement.non_finite} non-finite pixels')
        if not agreement.mean_abs <= mean_abs_limit:
            reasons.append(f'{name}: mean abs {agreement.mean_abs:.4f} px > {mean_abs_limit} px')
        if not agreement.over_1px <= over_1px_limit:
            reasons.append(f'{name}: {agreement.over_1px:.2%} of pixels off by > 1 px (limit '
                           f'{over_1px_limit:.2%})')
    return not reasons, reasons


def verification_record(agreements, latency, reference, accepted_out_of_tolerance=False):
    """The `verification` entry of an engine's sidecar.

    agreements: {pair name: Agreement}; latency: {'plain': latency_summary,
    'cuda_graph': latency_summary or {'skipped': reason}}; reference: what the
    engine was compared against ({'onnx', 'precision', 'provider'}).
    """
    passed, reasons = judge(agreements)
    return {'passed': passed, 'reasons': reasons,
            'accepted_out_of_tolerance': bool(accepted_out_of_tolerance and not passed),
            'limits': {'mean_abs_px': MEAN_ABS_LIMIT_PX, 'over_1px_share': OVER_1PX_LIMIT},
            'reference': reference,
            'pairs': {name: agreement.as_dict() for name, agreement in agreements.items()},
            'latency': latency,
            'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}


def format_report(record):
    """Readable lines for a verification record."""
    reference = record['reference']
    lines = [f"engine vs {reference['provider']} on {reference['precision']} graph {reference['onnx']}:"]
    for name, figures in record['pairs'].items():
        lines.append(f"  {name:12s} max abs {figures['max_abs_px']:.4f} px, mean abs {figures['mean_abs_px']:.4f} px, "
                     f"> 1 px {figures['over_1px_share']:.3%}, non-finite {figures['non_finite_pixels']}")
    for mode, figures in record['latency'].items():
        if 'skipped' in figures:
            lines.append(f"  latency {mode:10s}: skipped ({figures['skipped']})")
        else:
            lines.append(f"  latency {mode:10s}: p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms "
                         f"over {figures['runs']} runs (host copies included)")
    if record['passed']:
        lines.append(f"  within tolerance (mean abs <= {record['limits']['mean_abs_px']} px, > 1 px share <= "
                     f"{record['limits']['over_1px_share']:.2%}): OK")
    else:
        lines.append('  BEYOND TOLERANCE: ' + '; '.join(record['reasons']))
    return lines


# --- running it (TensorRT + GPU) ------------------------------------------------------------------

def read_pair(left_path, right_path, size):
    """The user's pair as RGB uint8 at the engine's (height, width)."""
    import cv2
    images = []
    for path in (left_path, right_path):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read image '{path}': give a PNG/JPEG file")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if image.shape[:2] != tuple(size):
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        images.append(image)
    return images


def verification_pairs(size, left=None, right=None):
    """{name: (left, right)}: the synthetic scene at `size`, plus the user's pair when given."""
    from ..geometry.synthetic_scenes import make_scene
    if (left is None) != (right is None):
        raise InputError('give both --left and --right, or neither')
    scene = make_scene('mixed', width=size[1], height=size[0], seed=0)
    pairs = {SYNTHETIC_PAIR: (scene.left, scene.right)}
    if left is not None:
        pairs['user pair'] = tuple(read_pair(left, right, size))
    return pairs


def time_runs(backend, left, right, runs):
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.infer(left, right)
        seconds.append(time.perf_counter() - start)
    return seconds


def check_engine(engine_path, reference_onnx, reference_precision, left=None, right=None, runs=DEFAULT_RUNS,
                 verify_hash=True, log=print):
    """Run the engine against ONNX Runtime CPU on `reference_onnx`; return its verification record.

    Latency is timed twice, with the plain enqueue and with the CUDA graph
    (whose output must equal the plain one: it is compared like a pair).
    """
    from ..backends.onnx_runtime import OnnxRuntimeBackend
    from ..backends.tensorrt import TensorRTBackend
    if int(runs) < 1:
        raise InputError(f'--runs must be at least 1, got {runs}')
    engine = TensorRTBackend(engine_path, verify_hash=verify_hash, log=log)
    reference = OnnxRuntimeBackend(reference_onnx, 'cpu')
    try:
        if reference.input_size != engine.input_size:
            raise InputError(f"reference graph '{reference_onnx}' is {reference.input_size}, the engine "
                             f'{engine.input_size}: export the reference at the engine size')
        pairs = verification_pairs(engine.input_size, left, right)
        log(f'checking the engine on {len(pairs)} pair(s) against ONNX Runtime CPU ({reference_precision} graph)')
        agreements, outputs = {}, {}
        for name, (left_image, right_image) in pairs.items():
            outputs[name] = engine.infer(left_image, right_image)
            agreements[name] = compare_disparity(outputs[name], reference.infer(left_image, right_image))
        synthetic = pairs[SYNTHETIC_PAIR]
        latency = {'plain': latency_summary(time_runs(engine, *synthetic, runs))}
    finally:
        engine.close()
        reference.close()
    graph_engine = TensorRTBackend(engine_path, verify_hash=False, cuda_graph=True, log=log)
    try:
        graph_engine.infer(*synthetic)  # the first run enqueues plainly, then captures the graph
        if graph_engine.cuda_graph_state == 'captured':
            agreements['cuda graph'] = compare_disparity(graph_engine.infer(*synthetic), outputs[SYNTHETIC_PAIR])
            latency['cuda_graph'] = latency_summary(time_runs(graph_engine, *synthetic, runs))
        else:
            latency['cuda_graph'] = {'skipped': f'CUDA graph {graph_engine.cuda_graph_state}'}
    finally:
        graph_engine.close()
    return verification_record(agreements, latency, {'onnx': str(reference_onnx),
                                                     'precision': reference_precision,
                                                     'provider': 'ONNX Runtime CPU'})
