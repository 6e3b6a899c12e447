"""Mesh metrics as the field's reference code computes them.

- LVE, EVE: CodeTalker `main/cal_metric.py`. Per frame, the maximum over the region's vertices of the
  *squared* L2 error; the mean over all frames pooled across sequences (frame-weighted).
- FDD: CodeTalker. Per sequence, motion = vertices - template; per upper-face vertex, the standard
  deviation over time (ddof 0) of the squared motion norm; mean over vertices; ground truth minus
  prediction (signed); mean over sequences. `absolute=True` gives FaceDiffuser's ABS FDD.
- MVE: FaceDiffuser `compute_objective_metrics.py`. Mean over frames and vertices of the unsquared
  L2 error.
- Diversity: FaceDiffuser. For one clip under several conditions, the mean over pairs of the mean
  per-vertex L2 distance; the mean over clips.

Every metric streams: its state is sums and counts, reduced with "sum" across processes.
Predictions and ground truth of different lengths are compared on the shorter; `FramesDropped`
counts what that leaves out.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from facebench.data.sequence import frame_mask


class MetricInputError(ValueError):
    """Inputs a metric cannot score: shapes that disagree, empty sequences, NaN."""


def _lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
    return lengths.to(x.device).long()


def align_pair(
    pred: torch.Tensor,
    target: torch.Tensor,
    pred_lengths: torch.Tensor | None = None,
    target_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a padded (B, T, V, 3) pair and cut both to the shorter length of each clip.

    Returns the cut pred and target (B, T, V, 3), the compared lengths (B,) and the frames dropped (B,).
    """
    if pred.ndim != 4 or target.ndim != 4 or pred.shape[-1] != 3 or target.shape[-1] != 3:
        raise MetricInputError(f"expected pred and target of shape (B, T, V, 3), found {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.shape[0] != target.shape[0]:
        raise MetricInputError(f"expected as many predicted clips as ground-truth clips, found {pred.shape[0]} and {target.shape[0]}")
    if pred.shape[2] != target.shape[2]:
        raise MetricInputError(f"expected the same vertex count in pred and target, found {pred.shape[2]} and {target.shape[2]}")
    lp, lt = _lengths(pred, pred_lengths), _lengths(target, target_lengths)
    n = torch.minimum(lp, lt)
    if (n <= 0).any():
        raise MetricInputError(f"expected non-empty sequences, found frame lengths pred={lp.tolist()} target={lt.tolist()}")
    t = int(n.max())
    pred, target = pred[:, :t], target[:, :t]
    mask = frame_mask(n, t)
    for label, x in (("pred", pred), ("target", target)):
        # Reduced per frame first: indexing with the mask would copy the whole tensor.
        if (~torch.isfinite(x).flatten(2).all(-1) & mask).any():
            raise MetricInputError(f"expected finite values, found NaN or infinite values in {label}")
    return pred, target, n, (lp - n) + (lt - n)


class _RegionMetric(Metric):
    """A metric over a vertex region (None: all vertices); `region_set` records where it came from."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, region: torch.Tensor | None = None, region_set: str = "all", **kwargs):
        super().__init__(**kwargs)
        self.region_set = region_set
        self.register_buffer("region", None if region is None else torch.as_tensor(region).long(), persistent=False)

    def _select(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.region is None else x[:, :, self.region]


class LipVertexError(_RegionMetric):
    """LVE (CodeTalker): mean over frames of the max over lip vertices of the squared L2 error."""

    def __init__(self, region: torch.Tensor | None = None, region_set: str = "all", **kwargs):
        super().__init__(region, region_set, **kwargs)
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frames", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred, target, pred_lengths=None, target_lengths=None, templates=None) -> None:
        pred, target, n, _ = align_pair(pred, target, pred_lengths, target_lengths)
        squared = ((self._select(pred) - self._select(target)) ** 2).sum(-1)  # (B, T, R)
        per_frame = squared.amax(-1).double()
        self.error_sum += per_frame[frame_mask(n, per_frame.shape[1])].sum()
        self.frames += n.sum()

    def compute(self) -> torch.Tensor:
        return self.error_sum / self.frames


class EyeVertexError(LipVertexError):
    """EVE (EmoFace): the LVE recipe on the eye and forehead vertices."""


class MeanVertexError(_RegionMetric):
    """MVE (FaceDiffuser): mean over frames and vertices of the unsquared L2 error."""

    def __init__(self, region: torch.Tensor | None = None, region_set: str = "all", **kwargs):
        super().__init__(region, region_set, **kwargs)
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred, target, pred_lengths=None, target_lengths=None, templates=None) -> None:
        pred, target, n, _ = align_pair(pred, target, pred_lengths, target_lengths)
        distance = (self._select(pred) - self._select(target)).norm(dim=-1)  # (B, T, R)
        self.error_sum += distance[frame_mask(n, distance.shape[1])].double().sum()
        self.count += n.sum() * distance.shape[-1]

    def compute(self) -> torch.Tensor:
        return self.error_sum / self.count


class FaceDynamicsDeviation(_RegionMetric):
    """FDD (CodeTalker): mean over clips of [mean over upper-face vertices of std_t ||motion||^2],
    ground truth minus prediction, signed as in the reference."""

    higher_is_better = None  # signed: closer to 0 is better
    absolute = False

    def __init__(self, region: torch.Tensor | None = None, region_set: str = "all", **kwargs):
        super().__init__(region, region_set, **kwargs)
        self.add_state("deviation_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sequences", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred, target, pred_lengths=None, target_lengths=None, templates=None) -> None:
        if templates is None:
            raise MetricInputError("FDD: expected the subjects' templates (B, V, 3), found None")
        pred, target, n, _ = align_pair(pred, target, pred_lengths, target_lengths)
        if templates.shape[0] != pred.shape[0] or templates.shape[1:] != pred.shape[2:]:
            raise MetricInputError(f"FDD: expected templates of shape {(pred.shape[0], *pred.shape[2:])}, found {tuple(templates.shape)}")
        mask = frame_mask(n, pred.shape[1])[..., None].double()  # (B, T, 1)
        counts = n.double()[:, None]

        def mean_temporal_std(x: torch.Tensor) -> torch.Tensor:
            motion = (self._select(x) - self._select(templates[:, None])).double()
            energy = (motion**2).sum(-1)  # (B, T, R)
            mean = (energy * mask).sum(1) / counts
            var = (((energy - mean[:, None]) * mask) ** 2).sum(1) / counts  # ddof 0, two-pass
            return var.sqrt().mean(-1)  # (B,)

        deviation = mean_temporal_std(target) - mean_temporal_std(pred)
        self.deviation_sum += (deviation.abs() if self.absolute else deviation).sum()
        self.sequences += pred.shape[0]

    def compute(self) -> torch.Tensor:
        return self.deviation_sum / self.sequences


class AbsoluteFaceDynamicsDeviation(FaceDynamicsDeviation):
    """ABS FDD (FaceDiffuser): the mean over clips of |FDD|."""

    higher_is_better = False
    absolute = True


class FramesDropped(Metric):
    """Frames left out because prediction and ground truth differ in length (both sides counted)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("dropped", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred, target, pred_lengths=None, target_lengths=None, templates=None) -> None:
        self.dropped += align_pair(pred, target, pred_lengths, target_lengths)[3].sum()

    def compute(self) -> torch.Tensor:
        return self.dropped


class Diversity(Metric):
    """Diversity (FaceDiffuser): per clip, mean over pairs i<j of the mean per-vertex L2 distance between
    generations i and j; mean over clips. Here the generations are one per style condition."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("diversity_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("clips", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, generations: torch.Tensor, length: int | None = None) -> None:
        """`generations`: (K, T, V, 3), K >= 2 generations of one clip; `length`: real frames."""
        if generations.ndim != 4 or generations.shape[0] < 2:
            raise MetricInputError(f"diversity: expected (K >= 2, T, V, 3) generations of one clip, found {tuple(generations.shape)}")
        x = generations[:, :length] if length is not None else generations
        if x.shape[1] == 0:
            raise MetricInputError("diversity: expected a non-empty clip, found 0 frames")
        if not torch.isfinite(x).all():
            raise MetricInputError("diversity: expected finite values, found NaN or infinite values")
        i, j = torch.triu_indices(len(x), len(x), offset=1)
        pair_distance = (x[i] - x[j]).norm(dim=-1).double().mean(dim=(1, 2))
        self.diversity_sum += pair_distance.mean()
        self.clips += 1

    def compute(self) -> torch.Tensor:
        return self.diversity_sum / self.clips


class SampleDiversity(Diversity):
    """The same formula over K generations of a stochastic model with different seeds, one condition."""
