"""Time and memory of scoring 4,000 frames of 23,370 vertices (BIWI size), streamed one clip of 160
frames at a time as the test loop does: the benchmark's one-pass collection (`mesh_metrics`, LVE,
FDD, ABS FDD, MVE, frames dropped) against the same metrics as separate torchmetrics objects (one
pass and one input check each), and both against the machine's memory bandwidth, measured in the
same run with a plain copy of one input.

    python benchmarks/metrics_speed.py [--frames 4000] [--vertices 23370] [--clip 160] [--repeats 3] [--separate]

Each timing is the fastest of `--repeats` (a shared machine's timings vary by up to 2x from run to
run; the median is printed beside it). Prints the seconds of each, the ratio separate / one-pass, and the fraction of the copy bandwidth
the one-pass scoring reaches (its input bytes over its time, against the copy's bytes read and
written over its time).
"""

import argparse
import resource
import statistics
import time

import torch

from facebench.data.presets import BIWI
from facebench.metrics import (
    AbsoluteFaceDynamicsDeviation,
    FaceDynamicsDeviation,
    FramesDropped,
    LipVertexError,
    MeanVertexError,
    mesh_metrics,
)


def score(metrics, clips, template, repeats: int) -> tuple[float, float, dict]:
    """The fastest and the median time of `repeats` scorings of every clip, and the values."""
    times = []
    for _ in range(repeats):
        for metric in metrics:
            metric.reset()
        start = time.perf_counter()
        for pred, target in clips:
            for metric in metrics:
                metric.update(pred, target, templates=template)
        values = {}
        for metric in metrics:
            result = metric.compute()
            values.update(result if isinstance(result, dict) else {type(metric).__name__: result})
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), {k: round(float(v), 9) for k, v in values.items()}


def copy_bandwidth(x: torch.Tensor, repeats: int = 3) -> float:
    """Bytes read and written per second by the fastest of `repeats` plain copies of `x`."""
    out = torch.empty_like(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out.copy_(x)
        best = min(best, time.perf_counter() - start)
    return 2 * x.numel() * x.element_size() / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--vertices", type=int, default=23370)
    parser.add_argument("--clip", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--separate", action="store_true", help="also time the metrics as separate objects")
    args = parser.parse_args()
    torch.manual_seed(0)
    regions = {"lve": torch.randperm(args.vertices)[:4996], "fdd": torch.randperm(args.vertices)[:7784]}
    template = torch.randn(1, args.vertices, 3)
    pred_all = torch.randn(args.frames, args.vertices, 3)
    target_all = torch.randn(args.frames, args.vertices, 3)
    clips = [(pred_all[None, i : i + args.clip], target_all[None, i : i + args.clip]) for i in range(0, args.frames, args.clip)]
    input_bytes = 2 * pred_all.numel() * pred_all.element_size()
    bandwidth = copy_bandwidth(pred_all)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, median, values = score([mesh_metrics(BIWI, regions)], clips, template, args.repeats)
    added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(f"{args.frames} frames x {args.vertices} vertices in clips of {args.clip}, {torch.get_num_threads()} threads, "
          f"inputs {input_bytes / 2**30:.2f} GiB")  # fmt: skip
    print(f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s (read + write); reading the inputs once at that rate: "
          f"{input_bytes / (bandwidth / 2):.2f} s")  # fmt: skip
    print(f"one pass (mesh_metrics): {seconds:.2f} s, median {median:.2f} s ({args.frames / seconds:.0f} frames/s), "
          f"{input_bytes / seconds / 1e9:.2f} GB/s of input = {input_bytes / seconds / bandwidth:.0%} of the copy bandwidth, "
          f"peak RSS added {added:.0f} MiB")  # fmt: skip
    print(values)
    if args.separate:
        separate = [LipVertexError(regions["lve"]), FaceDynamicsDeviation(regions["fdd"]), AbsoluteFaceDynamicsDeviation(regions["fdd"]),
                    MeanVertexError(), FramesDropped()]  # fmt: skip
        separate_seconds, separate_median, separate_values = score(separate, clips, template, args.repeats)
        print(f"separate metrics: {separate_seconds:.2f} s, median {separate_median:.2f} s; "
              f"ratio separate / one pass: {separate_seconds / seconds:.1f}x")  # fmt: skip
        print(separate_values)


if __name__ == "__main__":
    main()
