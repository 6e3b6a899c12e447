"""The metric set of a dataset preset, and its use under the condition protocol
(docs/architecture.md, "Condition protocol"): a seen subject is scored on its own style; an unseen
one is generated once per training style, each condition is scored over the whole split, and the
metrics are averaged over conditions. A stochastic model's first sample is scored; all its samples
give the sample diversity."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.aggregation import SumMetric

from facebench.data.presets import DatasetPreset
from facebench.lipreading.reference import ReferenceLipReader
from facebench.metrics.fid import FrameFID
from facebench.metrics.judges import VideoJudges
from facebench.metrics.landmarks import LandmarkDistance
from facebench.metrics.lipreading import LipReadability
from facebench.metrics.mesh import Diversity, MeshMetrics, SampleDiversity
from facebench.metrics.video import LipSync, VideoMetrics

# What validation logs as `val/<key>` for each modality (what stages may monitor).
VALIDATION_KEYS = {"mesh": ("lve", "mve", "fdd"), "video": ("psnr", "ssim", "mouth_iou")}


def mesh_metrics(preset: DatasetPreset, regions: dict[str, torch.Tensor], lip_reader: ReferenceLipReader | None = None) -> MetricCollection:
    """LVE, FDD (signed and absolute), MVE, EVE where the preset has the region and frames dropped,
    all in one pass per batch (`MeshMetrics`), and lip readability (`per`, `per_gt`) when the
    dataset's reference lip reader is given. `compute()` returns one flat dictionary."""
    known = {key: regions[key] for key in ("lve", "eve", "fdd") if key in regions}
    metrics = {"mesh": MeshMetrics(known, {key: preset.regions[key].describe() for key in known})}
    if lip_reader is not None:
        metrics["lip_readability"] = LipReadability(lip_reader)
    return MetricCollection(metrics, compute_groups=False)


def video_metrics(judges: VideoJudges | None = None) -> MetricCollection:
    """PSNR, SSIM, mouth IoU, mIoU, region PSNR and frames dropped (`VideoMetrics`,
    facebench.metrics.video), and each metric whose judge is given: LPIPS, FID, LMD, and LSE-D /
    LSE-C (facebench.metrics.judges)."""
    judges = judges or VideoJudges()
    metrics = {"video": VideoMetrics(judges.lpips)}
    if judges.inception is not None:
        metrics["fid"] = FrameFID(judges.inception)
    if judges.landmarks is not None:
        metrics["lmd"] = LandmarkDistance(judges.landmarks)
    if judges.sync is not None:
        metrics["lip_sync"] = LipSync(judges.sync)
    return MetricCollection(metrics, compute_groups=False)


class ConditionedMetrics(nn.Module):
    """Metrics of one test split: one collection per condition, averaged at the end. A video clip
    has one condition, its own reference frame."""

    def __init__(self, preset: DatasetPreset, regions: dict[str, torch.Tensor], n_conditions: int, seen: bool,
                 lip_reader: ReferenceLipReader | None = None, samples: int = 1, mixed: bool = False,
                 judges: VideoJudges | None = None):  # fmt: skip
        super().__init__()
        self.video = preset.modality == "video"
        self.seen, self.samples, self.mixed = seen or self.video, samples, mixed and not self.video
        self.n_conditions = 1 if self.seen else n_conditions
        self.per_condition = nn.ModuleList([video_metrics(judges) if self.video else mesh_metrics(preset, regions, lip_reader)
                                            for _ in range(self.n_conditions)])  # fmt: skip
        self.diversity = Diversity() if self.n_conditions > 1 else None
        self.sample_diversity = SampleDiversity() if samples > 1 and not self.video else None  # a mesh formula
        self.clips = SumMetric()

    @property
    def protocol(self) -> str:
        if self.video:
            return "own reference frame"
        if self.mixed:
            return f"own style for seen speakers, mean over {self.n_conditions} training styles for unseen"
        return "own style" if self.seen else f"mean over {self.n_conditions} training styles"

    def update(self, preds: list[torch.Tensor] | torch.Tensor, target: torch.Tensor, template: torch.Tensor,
               phonemes: torch.Tensor | None = None, audio=None) -> None:  # fmt: skip
        """`preds`: per condition, one generation (T', V, 3) or S samples of one (S, T', V, 3);
        `target`: (T, V, 3); `template`: (V, 3); `phonemes`: (T,) per-frame labels, for lip
        readability; `audio`: video only, the clip's stored 16 kHz samples, for lip sync.

        Each condition's first sample is scored on the frames it shares with the target (the rest
        is counted in frames_dropped); diversity compares the conditions' first samples on the
        frames they all have; sample diversity compares each condition's samples.
        """
        own_style = self.mixed and len(preds) == 1  # a seen speaker's clip in a split that mixes both kinds
        if len(preds) != self.n_conditions and not own_style:
            raise ValueError(f"expected {self.n_conditions} generations (one per condition), found {len(preds)}")
        one = 4 if self.video else 3  # dimensions of one generation: (T, H, W, 4) or (T, V, 3)
        samples = [p[None] if p.ndim == one else p for p in preds]
        if any(len(s) != self.samples for s in samples):
            raise ValueError(f"expected {self.samples} sample(s) per condition, found {[len(s) for s in samples]}")
        labels = {} if phonemes is None else {"phonemes": phonemes[None]}
        if self.video:
            labels["audio"] = audio
        for k, metrics in enumerate(self.per_condition):
            # A clip generated once (own style) counts in every condition's collection, hence once in their average.
            metrics.update(samples[0 if own_style else k][:1], target[None], templates=template[None], **labels)
        if self.sample_diversity is not None:
            for sample in samples:
                self.sample_diversity.update(sample)
        if self.diversity is not None and not own_style:
            shortest = min(s.shape[1] for s in samples)
            self.diversity.update(torch.stack([s[0, :shortest] for s in samples]))
        self.clips.update(1)

    def compute(self) -> dict[str, float]:
        values = [{k: float(v) for k, v in m.compute().items()} for m in self.per_condition]
        result = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
        for key in ("frames_dropped", "mask_frames", "lse_clips"):
            if key in values[0]:
                result[key] = sum(v[key] for v in values)
        if self.diversity is not None:
            result["diversity"] = float(self.diversity.compute())
        if self.sample_diversity is not None:
            result["sample_diversity"] = float(self.sample_diversity.compute())
        result["clips"] = int(self.clips.compute())
        return result

    def reset(self) -> None:
        for metrics in self.per_condition:
            metrics.reset()
        for metric in (self.diversity, self.sample_diversity, self.clips):
            if metric is not None:
                metric.reset()
