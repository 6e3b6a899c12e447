"""Seconds per 1,000 frames of the video modality's metrics, streamed one clip at a time as the test
loop does: `VideoMetrics` (PSNR, SSIM, mouth IoU, mIoU, frames dropped in one pass per clip) against
torchmetrics' own PSNR and SSIM classes updated frame by frame in float64 (the reference path,
without the masks), `VideoMetrics` with LPIPS (AlexNet with random weights: its cost does not
depend on them), and the lip-sync judge (`LipSync` with the synthetic corpus' sync expert, or
the official SyncNet architecture with random weights: its cost does not depend on them), FID
(`FrameFID` with the FID Inception, random weights), and LMD with the synthetic corpus' lip landmark
judge (untrained: the same cost) and with 2D-FAN (random weights; timed on `--fan-frames`).

    python benchmarks/video_metrics_speed.py [--frames 1000] [--clip 40] [--sizes 64,96,256] [--repeats 3]

Prints, per frame size, the fastest of `--repeats` timings of ours (the reference path is timed
once), and the ratio reference / ours.
"""

import argparse
import time
from functools import partial

import numpy as np
import torch
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from facebench.metrics.fan import FAN, FANLandmarks
from facebench.metrics.fid import FIDInception, FrameFID
from facebench.metrics.landmarks import LandmarkDistance, LipLandmarkJudge
from facebench.metrics.lpips import LPIPS, AlexNet
from facebench.metrics.video import LipSync, VideoMetrics
from facebench.sync import SyncExpert, SyncNet


def clips_of(frames: int, clip: int, size: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)

    def one(n: int) -> torch.Tensor:
        rgb = torch.rand(n, size, size, 3, generator=generator)
        return torch.cat([rgb, torch.randint(0, 12, (n, size, size, 1), generator=generator).float()], -1)

    return [(one(clip)[None], one(clip)[None]) for _ in range(frames // clip)]


def streamed(metric, clips) -> None:
    """Score `clips` with `metric` from a reset, one clip per update, as the test loop does."""
    metric.reset()
    for pred, target in clips:
        metric.update(pred, target)
    metric.compute()


def fastest(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--clip", type=int, default=40)
    parser.add_argument("--sizes", default="64,96,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--syncnet-frames", type=int, default=50, help="frames timed for the official SyncNet (slow on a CPU)")
    parser.add_argument("--fid-frames", type=int, default=100, help="frames timed for FID (Inception at 299 px: slow on a CPU)")
    parser.add_argument("--fan-frames", type=int, default=10, help="frames timed for 2D-FAN (four 256-px passes a frame)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.frames} frames in clips of {args.clip}")
    for size in (int(s) for s in args.sizes.split(",")):
        clips = clips_of(args.frames, args.clip, size)
        ours = VideoMetrics()

        score_ours = partial(streamed, ours, clips)

        psnr, ssim = PeakSignalNoiseRatio(data_range=1.0), StructuralSimilarityIndexMeasure(data_range=1.0)

        def score_reference():
            psnr.reset()
            ssim.reset()
            for pred, target in clips:
                for t in range(pred.shape[1]):
                    p, g = pred[0, t, ..., :3].permute(2, 0, 1)[None].double(), target[0, t, ..., :3].permute(2, 0, 1)[None].double()
                    psnr.update(p, g)
                    ssim.update(p, g)
            psnr.compute(), ssim.compute()

        mine, reference = fastest(score_ours, args.repeats), fastest(score_reference, 1)  # the reference path is slow: once
        scale = 1000 / args.frames
        print(f"{size:>4} px: VideoMetrics {mine * scale:.2f} s per 1,000 frames; torchmetrics PSNR + SSIM per frame in float64 "
              f"{reference * scale:.2f} s; ratio {reference / mine:.1f}x")  # fmt: skip
        with_lpips = VideoMetrics(LPIPS(AlexNet().features))

        score_with_lpips = partial(streamed, with_lpips, clips)

        print(f"{'':>4}     VideoMetrics with LPIPS {fastest(score_with_lpips, 1) * scale:.2f} s per 1,000 frames")
        expert = LipSync(SyncExpert())
        audio = np.random.default_rng(0).uniform(-0.3, 0.3, int(args.clip / 25 * 16000))

        def score_sync():
            expert.reset()
            for pred, _ in clips:
                expert.update(pred, None, audio=audio)

        print(f"{'':>4}     sync expert (LSE) {fastest(score_sync, 1) * scale:.2f} s per 1,000 frames")
        judge = LandmarkDistance(LipLandmarkJudge(points=18))

        score_lmd = partial(streamed, judge, clips)

        print(f"{'':>4}     LMD, lip landmark judge {fastest(score_lmd, 1) * scale:.2f} s per 1,000 frames")
        fid = FrameFID(FIDInception().eval())
        few = clips_of(args.fid_frames, min(args.clip, args.fid_frames), size)

        score_fid = partial(streamed, fid, few)

        print(f"{'':>4}     FID {fastest(score_fid, 1) * 1000 / args.fid_frames:.1f} s per 1,000 frames (timed on {args.fid_frames})")
        fan = LandmarkDistance(FANLandmarks(FAN().eval()))
        pred, target = clips_of(args.fan_frames, args.fan_frames, size)[0]
        seconds = fastest(lambda: fan.update(pred, target), 1)  # noqa: B023
        print(f"{'':>4}     LMD, 2D-FAN {seconds * 1000 / args.fan_frames:.0f} s per 1,000 frames (timed on {args.fan_frames})")
    official = LipSync(SyncNet())
    pred = clips_of(args.syncnet_frames, args.syncnet_frames, 224)[0][0]
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, int(args.syncnet_frames / 25 * 16000))
    seconds = fastest(lambda: official.update(pred, None, audio=audio), 1)
    print(f"official SyncNet (224 px, random weights) {seconds * 1000 / args.syncnet_frames:.1f} s per 1,000 frames "
          f"(timed on {args.syncnet_frames} frames)")  # fmt: skip


if __name__ == "__main__":
    main()
