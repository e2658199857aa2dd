"""Defaults shared by the CLI, the node, the YAML and the docs (one place to change them).

The network settings follow the official demo: it overrides the checkpoints'
training values (max_disp 416, valid_iters 8 pickled) with max_disp 192 at run
time and keeps 8 refinement iterations.
"""
#: largest disparity searched, in network-input pixels (official demo's runtime value)
MAX_DISP = 192
#: GRU refinement iterations (the released checkpoints' setting)
VALID_ITERS = 8
#: network input sides must be multiples of this (the feature pyramid's stride)
SIZE_MULTIPLE = 32


def split_padding(extra):
    """(before, after) shares of `extra` padding pixels, as the official demo splits them.

    The demo pads top/left by extra // 2 and bottom/right by the rest (InputPadder,
    replicate mode); every path that pads network inputs uses this split, so a
    camera of any size gets the disparity the official code gives.
    """
    return extra // 2, extra - extra // 2


#: ONNX opset of exported graphs: 20 is the first with a single `Gelu` node (TensorRT's
#: parser maps it to one GELU activation; below 20 every GELU is a 5-node erf chain,
#: 140 nodes at 8 iterations), and the newest TensorRT 10.0 documents (JetPack 6 ships 10.3)
OPSET = 20
#: largest |ONNX Runtime - PyTorch| disparity an fp32 export may show, in pixels
EXPORT_TOLERANCE_PX = 0.05
#: the same for an fp16 (mixed-precision) graph against the fp32 PyTorch model
#: (FP16 has a 0.125 px step at 128-256 px; the fixture shows a few hundredths)
EXPORT_FP16_TOLERANCE_PX = 0.5
#: the one default device of node, CLI and Python API: `resolve_device` maps it to CUDA when torch sees a
#: GPU, else the CPU (and the chosen device is logged)
DEVICE = 'auto'
#: SGBM's `max_disp` must be a multiple of this (OpenCV's numDisparities rule)
SGBM_DISPARITY_MULTIPLE = 16


def round_up(value, multiple):
    """Smallest multiple of `multiple` that is >= `value` (integers)."""
    return -(-value // multiple) * multiple


def resolve_device(device=DEVICE):
    """'auto' -> 'cuda' when a CUDA device is usable through torch, else 'cpu'; other names pass through."""
    if device != 'auto':
        return device
    try:
        import torch
    except ImportError:
        return 'cpu'
    return 'cuda' if torch.cuda.is_available() else 'cpu'
