"""The video modality's metrics: frames (T, H, W, 4) with RGB in [0, 1] and each pixel's class
(facebench.data.sequence.rgbl; 255 where unknown). Recipes, where papers disagree:

- PSNR: per frame over the whole RGB frame, 10·log10(1 / (MSE + 1e-8)) with data range 1, the mean
  over all frames of a split (the ViCo reference scripts' recipe with `piq.psnr`; the 1e-8 makes
  identical frames score 80 dB instead of infinity).
- SSIM: per frame, torchmetrics' SSIM (Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, data range 1,
  the mean over the window's valid positions and the channels), the mean over all frames.
- Mouth IoU: the mouth region (lips and the inside of the mouth, `MOUTH_CLASSES`) of the generated
  masks against the ground truth's, intersection over union pooled over every frame of the split.
- mIoU: per class, intersection over union pooled over the split; the mean over the classes present
  in either (a class absent from both is not counted).
- Region PSNR (`psnr_skin`, `psnr_hair`): texture preservation. The squared RGB error summed over
  the pixels the ground truth's mask puts in the region, on frames whose masks are known, pooled over
  the split: 10·log10(1 / (SSE / pixels·3 + 1e-8)).
- LPIPS (`lpips`, where the AlexNet backbone is given; facebench.metrics.lpips): v0.1 with AlexNet
  on the whole frame at the dataset's resolution, per frame, the mean over all frames. Region LPIPS
  (`lpips_skin`, `lpips_hair`): LPIPS's spatial map (each layer upsampled to the frame) averaged over
  the pixels the ground truth's mask puts in the region, pooled over the split.

- LSE-D / LSE-C: the lip-sync distance and confidence of the dataset's sync judge (the official
  SyncNet, or the synthetic corpus' expert) on the generated frames against the clip's audio, as the
  official scripts compute them (facebench.sync.scores); the mean over clips long enough for a
  window (`lse_clips`).

Frames are compared on the shorter of prediction and ground truth (`frames_dropped` counts the
rest). Mask metrics count only frames whose masks are known on both sides (`mask_frames`); a model
that paints no masks (class 255 everywhere) has none, and its IoU columns are empty (NaN).
Every state is a sum, reduced with "sum" across processes: exact under DDP.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure

from facebench.data.segmentation import CLASSES, MOUTH_CLASSES, N_CLASSES, UNKNOWN
from facebench.metrics.lpips import distance, distance_maps
from facebench.metrics.mesh import MetricInputError
from facebench.sync.expert import clip_scores

PSNR_EPS = 1e-8
TEXTURE_REGIONS = ("skin", "hair")  # the region columns: psnr_<region>, lpips_<region>
REGION_CLASSES = tuple(CLASSES.index(region) for region in TEXTURE_REGIONS)


def align_frames(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Check a (T', H, W, 4) prediction against (T, H, W, 4) ground truth (or one clip of each as
    the collection passes it, (1, T', H, W, 4) and (1, T, H, W, 4)); both cut to the shorter, and
    the frames that leaves out."""
    if pred.ndim == 5:
        if len(pred) != 1 or len(target) != 1:
            raise MetricInputError(f"expected one clip per update, found {len(pred)} and {len(target)}")
        pred, target = pred[0], target[0]
    if pred.ndim != 4 or target.ndim != 4 or pred.shape[-1] != 4 or target.shape[-1] != 4:
        raise MetricInputError(f"expected pred and target frames of shape (T, H, W, 4), found {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.shape[1:] != target.shape[1:]:
        raise MetricInputError(f"expected frames of one size, found {tuple(pred.shape[1:3])} predicted and {tuple(target.shape[1:3])} ground truth")
    n = min(len(pred), len(target))
    if n == 0:
        raise MetricInputError(f"expected non-empty clips, found {len(pred)} predicted and {len(target)} ground-truth frames")
    if not torch.isfinite(pred[:n, ..., :3]).all():
        raise MetricInputError("expected finite predicted frames, found NaN or infinite values")
    return pred[:n], target[:n], abs(len(pred) - len(target))


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) pair in [0, 1] -> (T,) PSNR in dB."""
    mse = (pred.double() - target.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / (mse + PSNR_EPS))


def ssim_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) pair in [0, 1] -> (T,) SSIM, in float32 (float64 convolutions are some 30x
    slower on CPU; the per-frame values are summed in float64)."""
    return structural_similarity_index_measure(nchw(pred.clamp(0, 1)), nchw(target), data_range=1.0, reduction="none").double()


def nchw(frames: torch.Tensor) -> torch.Tensor:
    """(T, H, W, C >= 3) frames -> their RGB as (T, 3, H, W) float32, what image networks take."""
    return frames[..., :3].permute(0, 3, 1, 2).float()


class VideoMetrics(Metric):
    """PSNR, SSIM, mouth IoU, mIoU, region PSNR, frames dropped and, given an `lpips` network,
    LPIPS and region LPIPS, in one pass per clip."""

    full_state_update = False
    higher_is_better = True
    lpips_chunk = 16  # frames per LPIPS pass: AlexNet's first maps of 512-px frames are large

    def __init__(self, lpips: torch.nn.Module | None = None, **kwargs):
        super().__init__(**kwargs)
        self.lpips = lpips
        self.add_state("lpips_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("region_lpips", default=torch.zeros(len(TEXTURE_REGIONS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("lpips_pixels", default=torch.zeros(len(TEXTURE_REGIONS), dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("psnr_sum", "ssim_sum", "frames", "frames_dropped", "mask_frames", "mouth_intersection", "mouth_union"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("class_intersection", default=torch.zeros(N_CLASSES, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("class_union", default=torch.zeros(N_CLASSES, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("region_sse", default=torch.zeros(len(TEXTURE_REGIONS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("region_pixels", default=torch.zeros(len(TEXTURE_REGIONS), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, templates: torch.Tensor | None = None) -> None:
        """`pred` (1, T', H, W, 4) and `target` (1, T, H, W, 4), one clip (the collection's call)."""
        pred, target, dropped = align_frames(pred, target)
        self.psnr_sum += psnr_per_frame(pred[..., :3], target[..., :3]).sum()
        self.ssim_sum += ssim_per_frame(pred[..., :3], target[..., :3]).sum()
        self.frames += len(pred)
        self.frames_dropped += dropped
        if self.lpips is not None:
            self._update_lpips(pred, target)
        predicted, truth = pred[..., 3].round().long(), target[..., 3].round().long()
        known = ((predicted != UNKNOWN) & (truth != UNKNOWN)).flatten(1).all(1)
        if not known.any():
            return
        predicted, truth = predicted[known], truth[known]
        error = (pred[known][..., :3].double() - target[known][..., :3].double()).pow(2).sum(-1)
        for k, region_class in enumerate(REGION_CLASSES):
            inside = truth == region_class
            self.region_sse[k] += error[inside].sum()
            self.region_pixels[k] += inside.sum()
        if predicted.max() >= N_CLASSES or predicted.min() < 0:
            raise MetricInputError(f"expected predicted classes in [0, {N_CLASSES}) or {UNKNOWN}, found values in [{int(predicted.min())}, {int(predicted.max())}]")
        self.mask_frames += int(known.sum())
        mouth = torch.tensor(MOUTH_CLASSES, device=pred.device)
        in_pred, in_truth = torch.isin(predicted, mouth), torch.isin(truth, mouth)
        self.mouth_intersection += (in_pred & in_truth).sum()
        self.mouth_union += (in_pred | in_truth).sum()
        both = truth * N_CLASSES + predicted
        confusion = torch.bincount(both.flatten(), minlength=N_CLASSES * N_CLASSES).view(N_CLASSES, N_CLASSES).double()
        diagonal = confusion.diagonal()
        self.class_intersection += diagonal
        self.class_union += confusion.sum(0) + confusion.sum(1) - diagonal

    @torch.no_grad()
    def _update_lpips(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if min(pred.shape[1:3]) < 32:
            raise MetricInputError(f"expected frames of at least 32 px for LPIPS (AlexNet's smallest input), found {tuple(pred.shape[1:3])}")
        for start in range(0, len(pred), self.lpips_chunk):
            p, t = pred[start : start + self.lpips_chunk], target[start : start + self.lpips_chunk]
            layers = self.lpips.layer_distances(nchw(p.clamp(0, 1)), nchw(t))
            self.lpips_sum += distance(layers).double().sum()
            maps = distance_maps(layers, p.shape[1:3]).double()
            truth = t[..., 3].round().long()
            for k, region_class in enumerate(REGION_CLASSES):
                inside = truth == region_class  # unknown masks (255) are in no region
                self.region_lpips[k] += maps[inside].sum()
                self.lpips_pixels[k] += inside.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        nan = torch.tensor(math.nan, dtype=torch.float64, device=self.frames.device)
        present = self.class_union > 0
        perceptual = {}
        if self.lpips is not None:
            perceptual = {"lpips": self.lpips_sum / self.frames} | {
                f"lpips_{region}": self.region_lpips[k] / self.lpips_pixels[k] if self.lpips_pixels[k] > 0 else nan
                for k, region in enumerate(TEXTURE_REGIONS)}  # fmt: skip
        return perceptual | {
            "psnr": self.psnr_sum / self.frames,
            "ssim": self.ssim_sum / self.frames,
            "mouth_iou": self.mouth_intersection / self.mouth_union if self.mouth_union > 0 else nan,
            "miou": (self.class_intersection[present] / self.class_union[present]).mean() if present.any() else nan,
            "frames_dropped": self.frames_dropped,
            "mask_frames": self.mask_frames,
        } | {f"psnr_{region}": 10 * torch.log10(1 / (self.region_sse[k] / (3 * self.region_pixels[k]) + PSNR_EPS)) if self.region_pixels[k] > 0 else nan
             for k, region in enumerate(TEXTURE_REGIONS)}  # fmt: skip


class LipSync(Metric):
    """LSE-D and LSE-C of generated frames against each clip's audio, judged by `judge` (a SyncNet
    or the dataset's sync expert, frozen); the mean over the clips that have a window."""

    full_state_update = False

    def __init__(self, judge: torch.nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.judge = judge.eval()
        for name in ("lse_d_sum", "lse_c_sum", "lse_clips", "lse_unscored"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, audio=None) -> None:
        """`pred` (1, T', H, W, 4); `audio`: the clip's 16 kHz samples as stored (None: not scored)."""
        if audio is None:
            return
        scores = clip_scores(self.judge, pred[0] if pred.ndim == 5 else pred, audio)
        if scores is None:
            self.lse_unscored += 1
            return
        self.lse_d_sum += scores[0]
        self.lse_c_sum += scores[1]
        self.lse_clips += 1

    def compute(self) -> dict[str, torch.Tensor]:
        nan = torch.tensor(math.nan, dtype=torch.float64, device=self.lse_clips.device)
        scored = self.lse_clips > 0
        return {"lse_d": self.lse_d_sum / self.lse_clips if scored else nan, "lse_c": self.lse_c_sum / self.lse_clips if scored else nan,
                "lse_clips": self.lse_clips}  # fmt: skip
