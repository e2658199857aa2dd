#!/usr/bin/env python3
"""ONNX Runtime CPU latency and node counts of exported graphs, compared in one run.

Every graph gets the same deterministic verification pair at the graph's own
size (from its metadata); the script prints, per graph, the node count, the
median and min latency over `--runs` runs after one warm-up, and the max/mean
abs disparity difference to the first graph given.

Example (before/after of an export change, same machine, same run):
  .venv/bin/python benchmarks/bench_onnx_graphs.py old_480x640_i8.onnx new_480x640_i8.onnx --runs 3
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from fast_foundation_stereo_ros.backends.graph_io import INPUT_NAMES, OUTPUT_NAME, to_nchw  # noqa: E402
from fast_foundation_stereo_ros.export.onnx_export import (ort_cpu_session, read_metadata,  # noqa: E402
                                                           verification_pair)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('graphs', nargs='+', help='.onnx files of the same size')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0, help='intra-op threads (0: ONNX Runtime default)')
    args = parser.parse_args(argv)
    first = None
    for path in args.graphs:
        metadata = read_metadata(path)
        nodes = len(onnx.load(path, load_external_data=False).graph.node)
        left, right = verification_pair(metadata['height'], metadata['width'])
        feeds = {INPUT_NAMES[0]: to_nchw(left), INPUT_NAMES[1]: to_nchw(right)}
        session = ort_cpu_session(path, args.threads or None)
        output = session.run([OUTPUT_NAME], feeds)[0]
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            session.run([OUTPUT_NAME], feeds)
            times.append(time.perf_counter() - start)
        if first is None:
            first = output
            versus = ''
        else:
            difference = np.abs(output.astype(np.float64) - first.astype(np.float64))
            versus = f', vs first: max abs {difference.max():.2e} px, mean abs {difference.mean():.2e} px'
        print(f'{os.path.basename(path)}: {nodes} nodes, precision {metadata.get("precision", "fp32")}, '
              f'ORT CPU median {statistics.median(times):.3f} s, min {min(times):.3f} s '
              f'over {args.runs} runs{versus}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
