#!/usr/bin/env python3
"""Per-backend, per-stage latency at 480x640 and 256x320: a thin wrapper of `ffs-stereo bench`.

Example: .venv/bin/python benchmarks/bench_backends.py --model ../shared/fixtures/ffs_released_layout/model_best_bp2_serialize.pth
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from fast_foundation_stereo_ros.commands.bench import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
