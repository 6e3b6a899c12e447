"""Time and peak memory of scoring 4,000 frames of 23,370 vertices (BIWI size) with the LVE, FDD,
MVE collection, streamed one clip of 160 frames at a time as the test loop does.

    python benchmarks/metrics_speed.py [--frames 4000] [--vertices 23370] [--clip 160]
"""

import argparse
import resource
import time

import torch

from facebench.data.presets import BIWI
from facebench.metrics import mesh_metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--vertices", type=int, default=23370)
    parser.add_argument("--clip", type=int, default=160)
    args = parser.parse_args()
    torch.manual_seed(0)
    regions = {"lve": torch.randperm(args.vertices)[:4996], "fdd": torch.randperm(args.vertices)[:7784]}
    metrics = mesh_metrics(BIWI, regions)
    template = torch.randn(1, args.vertices, 3)
    clips = [(torch.randn(1, args.clip, args.vertices, 3), torch.randn(1, args.clip, args.vertices, 3))
             for _ in range(args.frames // args.clip)]  # fmt: skip
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    for pred, target in clips:
        metrics.update(pred, target, templates=template)
    values = metrics.compute()
    elapsed = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{args.frames} frames x {args.vertices} vertices in clips of {args.clip}: {elapsed:.2f} s "
          f"({args.frames / elapsed:.0f} frames/s), peak RSS {rss_after / 1024:.0f} MiB "
          f"(inputs held: {sum(p.numel() + t.numel() for p, t in clips) * 4 / 2**20:.0f} MiB; "
          f"scoring added {(rss_after - rss_before) / 1024:.0f} MiB), threads {torch.get_num_threads()}")
    print({k: round(float(v), 6) for k, v in values.items()})


if __name__ == "__main__":
    main()
