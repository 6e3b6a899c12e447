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

Every metric streams: its state is sums and counts, reduced with "sum" across processes. The
formulas live once, in `mesh_error_sums` (one chunked pass over a batch); `MeshMetrics` computes
them all in that one pass, and each single metric class computes its own term with it.
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
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a padded (B, T, V, 3) pair and cut both to the shorter length of each clip.

    Returns the cut pred and target (B, T, V, 3), the compared lengths (B,) and the frames dropped (B,).
    `check_values=False` leaves the NaN check to the caller (`mesh_error_sums` does it on its
    per-frame sums, which a NaN or infinity anywhere in a frame reaches, instead of another pass).
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
    if check_values:
        _check_finite(pred, target, n)
    return pred, target, n, (lp - n) + (lt - n)


def _check_finite(pred: torch.Tensor, target: torch.Tensor, n: torch.Tensor) -> None:
    mask = frame_mask(n, pred.shape[1])
    for label, x in (("pred", pred), ("target", target)):
        # Reduced per frame first: indexing with the mask would copy the whole tensor.
        if (~torch.isfinite(x).flatten(2).all(-1) & mask).any():
            raise MetricInputError(f"expected finite values, found NaN or infinite values in {label}")


# Frames per chunk are chosen so that one chunk of one input holds about this many values: on CPU a
# few frames (7 at BIWI's 23,370 vertices), whose temporaries are preallocated and written in
# place; on a GPU enough to keep it busy. Either way the memory the pass adds does not grow with the
# clip. The CPU size is the fastest of 2^15 to 2^21 in benchmarks/metrics_speed.py on 2 cores
# (smaller chunks lose to per-operation overhead and to the two threads' synchronisation).
CHUNK_VALUES = {"cpu": 2**19, "cuda": 2**24}
ERROR_TERMS = ("lve", "eve", "mve", "fdd", "fdd_abs")


class _Workspace:
    """Preallocated chunk buffers: the squared norm over the last axis of a (t, V, 3) difference,
    written in place. Summing the three components as slices is several times faster on CPU than a
    reduction over an axis of size 3, and reusing the buffers saves an allocation per operation."""

    def __init__(self, frames: int, vertices: int, dtype: torch.dtype, device: torch.device):
        self.difference = torch.empty(frames, vertices, 3, dtype=dtype, device=device)
        self.squared = torch.empty(frames, vertices, dtype=dtype, device=device)

    def squared_norms(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(t, V, 3), (t or 1, V, 3) -> ||a - b||^2 (t, V), a view of the workspace."""
        d = torch.sub(a, b, out=self.difference[: len(a)]).square_()
        return torch.add(d[..., 0], d[..., 1], out=self.squared[: len(a)]).add_(d[..., 2])


def _mean_temporal_std(shift: torch.Tensor, first: torch.Tensor, second: torch.Tensor, frames: int) -> torch.Tensor:
    """The mean over vertices of the standard deviation over time (ddof 0) from shifted moments."""
    return (second / frames - (first / frames) ** 2).clamp(min=0).sqrt().mean()


def mesh_error_sums(
    pred: torch.Tensor,
    target: torch.Tensor,
    n: torch.Tensor,
    templates: torch.Tensor | None = None,
    regions: dict[str, torch.Tensor | None] | None = None,
    terms: tuple[str, ...] = ERROR_TERMS,
    chunk_values: int | None = None,
) -> dict[str, torch.Tensor]:
    """The float64 sums of the mesh metrics over an aligned batch (`align_pair` with
    `check_values=False`), in one pass over each clip's real frames, chunked.

    - `lve`, `eve`: the sum over frames of the max over the region's vertices of the squared L2
      error (divide by the frame count);
    - `mve`: the sum over frames and the region's vertices of the L2 error (divide by frames x
      vertices);
    - `fdd`, `fdd_abs`: the sum over clips of mean_r std_t ||target - template||^2 minus the same for
      pred (signed, absolute; divide by the clip count).

    `regions` maps `lve`, `eve`, `mve`, `fdd` to vertex indices (absent or None: all vertices). A
    NaN or infinity in a real frame of either input raises `MetricInputError`; padding is never read.
    Per-frame values are float32 as the reference computes them; every sum over frames or vertices
    is float64, and the temporal variance is a one-pass sum shifted by the clip's first frame, so it
    does not cancel. `chunk_values` (default per device type: `CHUNK_VALUES`) bounds the values of
    one input per chunk.
    """
    regions = {key: value for key, value in (regions or {}).items() if value is not None}
    unknown = set(terms) - set(ERROR_TERMS)
    if unknown:
        raise ValueError(f"mesh_error_sums: expected terms among {ERROR_TERMS}, found {sorted(unknown)}")
    wants_fdd = "fdd" in terms or "fdd_abs" in terms
    if wants_fdd and templates is None:
        raise MetricInputError("FDD: expected the subjects' templates (B, V, 3), found None")
    if templates is not None and (templates.shape[0] != pred.shape[0] or templates.shape[1:] != pred.shape[2:]):
        raise MetricInputError(f"FDD: expected templates of shape {(pred.shape[0], *pred.shape[2:])}, found {tuple(templates.shape)}")
    vertices = pred.shape[2]
    chunk_values = chunk_values or CHUNK_VALUES.get(pred.device.type, CHUNK_VALUES["cuda"])
    step = max(1, chunk_values // (vertices * 3))
    # The dtype the reference's numpy arithmetic would give (float32 unless an input is float64).
    dtype = torch.promote_types(pred.dtype, target.dtype)
    work = _Workspace(min(step, int(n.max())), vertices, dtype, pred.device)
    zero = torch.zeros((), dtype=torch.float64, device=pred.device)
    sums = {term: zero.clone() for term in terms}
    # The sum of every real frame's errors: NaN or infinite when any value is, checked once at the
    # end (a check per chunk would wait on the device at every chunk).
    everything = zero.clone()
    for b, length in enumerate(n.tolist()):
        moments = {}  # per input: the first frame's motion energy (the shift), its sum and sum of squares over time
        for start in range(0, length, step):
            p, g = pred[b, start : min(start + step, length)], target[b, start : min(start + step, length)]
            squared = work.squared_norms(p, g)  # (t, V), float32 as in the reference
            distance = squared.sqrt()
            total = distance.sum(dtype=torch.float64)  # of the chunk, once: the finiteness check and the whole-face MVE
            everything += total
            if "mve" in terms:
                region = regions.get("mve")
                sums["mve"] += total if region is None else distance.index_select(-1, region).sum(dtype=torch.float64)
            for term in ("lve", "eve"):
                if term in terms:
                    region = regions.get(term)
                    sums[term] += (squared if region is None else squared.index_select(-1, region)).amax(-1).sum(dtype=torch.float64)
            if not wants_fdd:
                continue
            for label, x in (("target", g), ("pred", p)):
                # Energies of every vertex, then the region's: gathering (t, R) is far cheaper than (t, R, 3).
                energy = work.squared_norms(x, templates[b, None])
                region = regions.get("fdd")
                energy = energy.clone() if region is None else energy.index_select(-1, region)  # (t, R)
                shift, first, second = moments.setdefault(label, (energy[0].clone(), zero, zero))
                energy.sub_(shift)
                moments[label] = (shift, first + energy.sum(0, dtype=torch.float64), second + energy.square_().sum(0, dtype=torch.float64))
        if wants_fdd:
            deviation = _mean_temporal_std(*moments["target"], length) - _mean_temporal_std(*moments["pred"], length)
            if "fdd" in terms:
                sums["fdd"] += deviation
            if "fdd_abs" in terms:
                sums["fdd_abs"] += deviation.abs()
    if not torch.isfinite(everything):
        _check_finite(pred, target, n)
        raise MetricInputError("expected values whose squared differences fit in float32, found an overflow")
    return sums


class _RegionMetric(Metric):
    """A metric over a vertex region (None: all vertices); `region_set` records where it came from."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, region: torch.Tensor | None = None, region_set: str = "all", **kwargs):
        super().__init__(**kwargs)
        self.region_set = region_set
        self.register_buffer("region", None if region is None else torch.as_tensor(region).long(), persistent=False)


class LipVertexError(_RegionMetric):
    """LVE (CodeTalker): mean over frames of the max over lip vertices of the squared L2 error."""

    def __init__(self, region: torch.Tensor | None = None, region_set: str = "all", **kwargs):
        super().__init__(region, region_set, **kwargs)
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frames", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred, target, pred_lengths=None, target_lengths=None, templates=None) -> None:
        pred, target, n, _ = align_pair(pred, target, pred_lengths, target_lengths, check_values=False)
        self.error_sum += mesh_error_sums(pred, target, n, regions={"lve": self.region}, terms=("lve",))["lve"]
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
        pred, target, n, _ = align_pair(pred, target, pred_lengths, target_lengths, check_values=False)
        self.error_sum += mesh_error_sums(pred, target, n, regions={"mve": self.region}, terms=("mve",))["mve"]
        self.count += n.sum() * (pred.shape[2] if self.region is None else len(self.region))

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
        pred, target, n, _ = align_pair(pred, target, pred_lengths, target_lengths, check_values=False)
        term = "fdd_abs" if self.absolute else "fdd"
        self.deviation_sum += mesh_error_sums(pred, target, n, templates, {"fdd": self.region}, terms=(term,))[term]
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


class MeshMetrics(Metric):
    """Every mesh metric of a split in one pass per batch: LVE, EVE (when the eye region is given),
    MVE, FDD, ABS FDD and frames dropped, with the inputs checked once (`mesh_error_sums`). The
    values equal the single metrics' above; this is what the benchmark's collection runs.

    `regions` maps `lve`, `eve`, `fdd` to vertex indices (absent: all vertices, except `eve`, which
    is then not computed); `region_sets` records where each came from; `chunk_values` bounds the
    values of one input per chunk (default per device type; the memory the pass adds is a few
    times that).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None  # per key: lower is better for all but the signed FDD

    def __init__(self, regions: dict[str, torch.Tensor] | None = None, region_sets: dict[str, str] | None = None,
                 chunk_values: int | None = None, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        regions = dict(regions or {})
        self.chunk_values = chunk_values
        self.terms = ("lve", "mve", "fdd", "fdd_abs") + (("eve",) if "eve" in regions else ())
        self.region_sets = {key: (region_sets or {}).get(key, "given" if key in regions else "all") for key in ("lve", "eve", "fdd")}
        for key in ("lve", "eve", "fdd"):
            region = regions.get(key)
            self.register_buffer(f"{key}_region", None if region is None else torch.as_tensor(region).long(), persistent=False)
        for term in self.terms:
            self.add_state(f"{term}_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for count in ("frames", "values", "sequences", "dropped"):
            self.add_state(count, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred, target, pred_lengths=None, target_lengths=None, templates=None) -> None:
        pred, target, n, dropped = align_pair(pred, target, pred_lengths, target_lengths, check_values=False)
        regions = {key: getattr(self, f"{key}_region") for key in ("lve", "eve", "fdd")}
        for term, value in mesh_error_sums(pred, target, n, templates, regions, self.terms, self.chunk_values).items():
            setattr(self, f"{term}_sum", getattr(self, f"{term}_sum") + value)
        self.frames += n.sum()
        self.values += n.sum() * pred.shape[2]
        self.sequences += pred.shape[0]
        self.dropped += dropped.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        result = {
            "lve": self.lve_sum / self.frames,
            "fdd": self.fdd_sum / self.sequences,
            "fdd_abs": self.fdd_abs_sum / self.sequences,
            "mve": self.mve_sum / self.values,
            "frames_dropped": self.dropped,
        }
        if "eve" in self.terms:
            result["eve"] = self.eve_sum / self.frames
        return result


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
