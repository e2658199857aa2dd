"""Backend/pipeline command-line options shared by demo, run and eval."""
import sys

from .. import defaults
from ..backends import BACKEND_NAMES, backend_kind, create_backend
from ..pipeline.image_fitting import FIT_MODES
from ..pipeline.stereo_pipeline import StereoPipeline

SGBM_NOTICE = ('no checkpoint given: using the classical OpenCV SGBM backend (not Fast-FoundationStereo); '
               'pass --model PATH (.pth, .onnx, .engine) to run the network')


def add_backend_arguments(parser):
    group = parser.add_argument_group('backend')
    group.add_argument('--model', default='sgbm',
                       help="checkpoint .pth / native directory, .onnx, .engine/.plan, or 'sgbm' "
                            '(default: the weight-free classical matcher)')
    group.add_argument('--backend', default='auto', choices=BACKEND_NAMES,
                       help='override the backend chosen from the model path')
    group.add_argument('--device', default=defaults.DEVICE, help='auto (default: CUDA when available, else the CPU), cpu or cuda (PyTorch / ONNX Runtime)')
    group.add_argument('--max-disp', type=int, default=defaults.MAX_DISP,
                       help=f'largest disparity searched (default {defaults.MAX_DISP})')
    group.add_argument('--valid-iters', type=int, default=defaults.VALID_ITERS,
                       help=f'network refinement iterations (default {defaults.VALID_ITERS})')
    group.add_argument('--scale', type=float, default=1.0,
                       help='resize factor before inference, (0, 1] (disparity is mapped back)')
    group.add_argument('--fit-mode', default='letterbox', choices=FIT_MODES,
                       help='how camera images meet a fixed network input size')


def build_pipeline(args, stream=None):
    """StereoPipeline for the parsed options; announces the SGBM fallback."""
    stream = stream if stream is not None else sys.stderr
    if backend_kind(args.model, args.backend) == 'sgbm':
        print(SGBM_NOTICE, file=stream)
    backend = create_backend(args.model, args.backend, args.device, args.max_disp, args.valid_iters)
    print(f'backend: {backend.describe()}', file=stream)
    return StereoPipeline(backend, scale=args.scale, fit_mode=args.fit_mode)
