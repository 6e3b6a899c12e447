"""The mesh metrics against direct numpy transcriptions of the reference code, torchmetrics'
functional LVE, hand-computed values, bad inputs, and 2-process DDP."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.utils.rnn import pad_sequence
from torchmetrics.functional.multimodal import lip_vertex_error

from facebench.data.presets import BIWI
from facebench.metrics import (
    AbsoluteFaceDynamicsDeviation,
    ConditionedMetrics,
    Diversity,
    EyeVertexError,
    FaceDynamicsDeviation,
    FramesDropped,
    LipVertexError,
    MeanVertexError,
    MeshMetrics,
    MetricInputError,
    SampleDiversity,
    mesh_metrics,
)

V = 40
LIPS = np.array([3, 7, 8, 20])
UPPER = np.arange(25, 40)


# -- numpy transcriptions of CodeTalker main/cal_metric.py and FaceDiffuser compute_objective_metrics.py --


def ref_lve(preds, gts, region):
    per_frame = []
    for pred, gt in zip(preds, gts):
        n = min(len(pred), len(gt))
        squared = np.sum((gt[:n] - pred[:n]) ** 2, axis=2)[:, region]
        per_frame.append(np.max(squared, axis=1))
    return np.mean(np.concatenate(per_frame))


def ref_fdd(preds, gts, templates, region, absolute=False):
    values = []
    for pred, gt, template in zip(preds, gts, templates):
        n = min(len(pred), len(gt))
        std_gt = np.std(np.sum((gt[:n] - template) ** 2, axis=2)[:, region], axis=0)
        std_pred = np.std(np.sum((pred[:n] - template) ** 2, axis=2)[:, region], axis=0)
        value = np.mean(std_gt) - np.mean(std_pred)
        values.append(abs(value) if absolute else value)
    return np.mean(values)


def ref_mve(preds, gts):
    distances = [np.linalg.norm(gt[: len(pred)] - pred[: len(gt)], axis=2) for pred, gt in zip(preds, gts)]
    return np.mean(np.concatenate(distances))


def ref_diversity(clips):
    per_clip = []
    for generations in clips:
        pairs = [np.mean(np.linalg.norm(generations[i] - generations[j], axis=2))
                 for i in range(len(generations)) for j in range(i + 1, len(generations))]  # fmt: skip
        per_clip.append(np.mean(pairs))
    return np.mean(per_clip)


def random_sequences(seed=0, lengths=(9, 4, 13, 6), pred_offsets=(0, 2, -3, 0)):
    rng = np.random.default_rng(seed)
    templates = [rng.normal(size=(V, 3)) for _ in lengths]
    gts = [t + rng.normal(scale=0.1, size=(n, V, 3)) for t, n in zip(templates, lengths)]
    preds = [t + rng.normal(scale=0.1, size=(n + d, V, 3)) for t, n, d in zip(templates, lengths, pred_offsets)]
    return [[x.astype(np.float32) for x in group] for group in (preds, gts, templates)]


def padded(arrays):
    tensors = [torch.from_numpy(a) for a in arrays]
    return pad_sequence(tensors, batch_first=True), torch.tensor([len(a) for a in arrays])


def feed(metric, preds, gts, templates, batch_size=2):
    """Stream the sequences through the metric in padded batches."""
    for start in range(0, len(preds), batch_size):
        p, lp = padded(preds[start : start + batch_size])
        g, lg = padded(gts[start : start + batch_size])
        t = torch.from_numpy(np.stack(templates[start : start + batch_size]))
        metric.update(p, g, pred_lengths=lp, target_lengths=lg, templates=t)
    return float(metric.compute())


@pytest.mark.parametrize("batch_size", [1, 3])
def test_metrics_match_reference_transcriptions(batch_size):
    preds, gts, templates = random_sequences()
    lips, upper = torch.from_numpy(LIPS), torch.from_numpy(UPPER)
    cases = [
        (LipVertexError(lips), ref_lve(preds, gts, LIPS)),
        (EyeVertexError(upper), ref_lve(preds, gts, UPPER)),
        (FaceDynamicsDeviation(upper), ref_fdd(preds, gts, templates, UPPER)),
        (AbsoluteFaceDynamicsDeviation(upper), ref_fdd(preds, gts, templates, UPPER, absolute=True)),
        (MeanVertexError(), ref_mve(preds, gts)),
    ]
    for metric, expected in cases:
        assert feed(metric, preds, gts, templates, batch_size) == pytest.approx(expected, rel=1e-5), type(metric).__name__


@pytest.mark.parametrize("chunk_values", [1, 500, 10**6])  # one frame per chunk, a few, the whole batch
def test_one_pass_metrics_match_reference_transcriptions(chunk_values):
    preds, gts, templates = random_sequences()
    lips, upper = torch.from_numpy(LIPS), torch.from_numpy(UPPER)
    metric = MeshMetrics({"lve": lips, "eve": upper, "fdd": upper}, chunk_values=chunk_values)
    for start in range(0, len(preds), 3):
        p, lp = padded(preds[start : start + 3])
        g, lg = padded(gts[start : start + 3])
        metric.update(p, g, lp, lg, templates=torch.from_numpy(np.stack(templates[start : start + 3])))
    values = {k: float(v) for k, v in metric.compute().items()}
    expected = {"lve": ref_lve(preds, gts, LIPS), "eve": ref_lve(preds, gts, UPPER), "mve": ref_mve(preds, gts),
                "fdd": ref_fdd(preds, gts, templates, UPPER), "fdd_abs": ref_fdd(preds, gts, templates, UPPER, absolute=True)}  # fmt: skip
    for key, value in expected.items():
        assert values[key] == pytest.approx(value, rel=1e-5), key
    assert values["frames_dropped"] == 5


def test_one_pass_metrics_name_the_input_with_nan_and_report_overflow():
    pred, target = torch.zeros(2, 6, 5, 3), torch.zeros(2, 6, 5, 3)
    target[1, 4, 2, 0] = float("inf")
    with pytest.raises(MetricInputError, match="infinite values in target"):
        MeshMetrics(chunk_values=15).update(pred, target, templates=torch.zeros(2, 5, 3))
    target[1, 4, 2, 0] = 3e38  # finite, but its square is not
    with pytest.raises(MetricInputError, match="overflow"):
        MeshMetrics().update(pred, target, templates=torch.zeros(2, 5, 3))
    target[1, 4, 2, 0] = float("nan")  # padding: the clip has 4 frames
    MeshMetrics().update(pred, target, target_lengths=torch.tensor([6, 4]), templates=torch.zeros(2, 5, 3))


def test_lve_matches_torchmetrics_functional():
    preds, gts, templates = random_sequences(lengths=(12,), pred_offsets=(0,))
    ours = feed(LipVertexError(torch.from_numpy(LIPS)), preds, gts, templates)
    theirs = lip_vertex_error(torch.from_numpy(preds[0]), torch.from_numpy(gts[0]), LIPS.tolist())
    assert ours == pytest.approx(float(theirs), rel=1e-6)


def test_lve_pools_frames_not_sequences():
    """Two clips of 1 and 3 frames with per-frame errors 4 and 1: frame-weighted mean 7/4, not 5/2."""
    gt = [np.zeros((1, 1, 3), np.float32), np.zeros((3, 1, 3), np.float32)]
    pred = [np.full((1, 1, 3), 0, np.float32), np.zeros((3, 1, 3), np.float32)]
    pred[0][0, 0] = [2, 0, 0]
    pred[1][:, 0] = [1, 0, 0]
    assert feed(LipVertexError(), pred, gt, [np.zeros((1, 3), np.float32)] * 2) == pytest.approx(7 / 4)


def test_hand_computed_fdd_and_mve():
    template = np.zeros((2, 3), np.float32)
    # Vertex 0 moves 0 -> 1 -> 0 -> 1 along x in the ground truth: squared norms 0,1,0,1, std 0.5.
    # Vertex 1 is still. So the GT side is mean(0.5, 0) = 0.25; a still prediction gives 0 -> FDD 0.25.
    gt = np.zeros((4, 2, 3), np.float32)
    gt[[1, 3], 0, 0] = 1
    pred = np.zeros((4, 2, 3), np.float32)
    assert feed(FaceDynamicsDeviation(), [pred], [gt], [template]) == pytest.approx(0.25)
    assert feed(FaceDynamicsDeviation(), [gt], [pred], [template]) == pytest.approx(-0.25)  # signed
    assert feed(AbsoluteFaceDynamicsDeviation(), [gt], [pred], [template]) == pytest.approx(0.25)
    # MVE: vertex 0 is off by 1 in two of four frames, vertex 1 never: 2 / 8.
    assert feed(MeanVertexError(), [pred], [gt], [template]) == pytest.approx(0.25)


def test_unequal_lengths_are_cut_and_counted():
    preds, gts, templates = random_sequences()  # offsets 0, +2, -3, 0
    assert feed(FramesDropped(), preds, gts, templates) == 5


def test_diversity_matches_reference():
    rng = np.random.default_rng(3)
    clips = [rng.normal(size=(k, n, V, 3)).astype(np.float32) for k, n in ((6, 5), (3, 8), (2, 4))]
    for cls in (Diversity, SampleDiversity):
        metric = cls()
        for generations in clips:
            metric.update(torch.from_numpy(generations))
        assert float(metric.compute()) == pytest.approx(ref_diversity(clips), rel=1e-6)


def test_metric_attributes():
    for metric in (LipVertexError(), MeanVertexError(), AbsoluteFaceDynamicsDeviation(), Diversity(), FramesDropped()):
        assert metric.full_state_update is False and metric.higher_is_better is not None
    assert LipVertexError(dist_sync_on_step=True).dist_sync_on_step  # kwargs reach the base class
    assert LipVertexError(torch.tensor([1, 2]), region_set="regions/lve.txt").region_set == "regions/lve.txt"


def test_state_does_not_grow_with_frames():
    metric = LipVertexError(torch.arange(5))
    for _ in range(3):
        metric.update(torch.randn(2, 50, 10, 3), torch.randn(2, 50, 10, 3))
    assert all(state.numel() == 1 for state in metric.metric_state.values())


@pytest.mark.parametrize(
    "pred,target,match",
    [
        (torch.zeros(1, 4, 5, 3), torch.zeros(1, 4, 6, 3), "same vertex count"),
        (torch.zeros(1, 0, 5, 3), torch.zeros(1, 4, 5, 3), "non-empty"),
        (torch.full((1, 4, 5, 3), float("nan")), torch.zeros(1, 4, 5, 3), "NaN"),
        (torch.zeros(1, 4, 15), torch.zeros(1, 4, 15), r"\(B, T, V, 3\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(pred, target, match):
    for metric in (LipVertexError(), MeanVertexError(), FaceDynamicsDeviation()):
        with pytest.raises(MetricInputError, match=match):
            metric.update(pred, target, templates=torch.zeros(1, 5, 3))


def test_fdd_needs_templates_and_diversity_needs_two_generations():
    with pytest.raises(MetricInputError, match="templates"):
        FaceDynamicsDeviation().update(torch.zeros(1, 3, 5, 3), torch.zeros(1, 3, 5, 3))
    with pytest.raises(MetricInputError, match="K >= 2"):
        Diversity().update(torch.zeros(1, 3, 5, 3))


def test_nan_beyond_the_length_is_padding_not_an_error():
    pred = torch.zeros(1, 4, 5, 3)
    pred[0, 3] = float("nan")
    metric = LipVertexError()
    metric.update(pred, torch.zeros(1, 4, 5, 3), pred_lengths=torch.tensor([3]))
    assert float(metric.compute()) == 0


def test_preset_collection_and_condition_protocol():
    regions = {"lve": torch.from_numpy(LIPS), "fdd": torch.from_numpy(UPPER)}
    collection = mesh_metrics(BIWI, regions)
    collection.update(torch.zeros(1, 3, V, 3), torch.zeros(1, 3, V, 3), templates=torch.zeros(1, V, 3))
    assert set(collection.compute()) == {"lve", "fdd", "fdd_abs", "mve", "frames_dropped"}
    assert collection["mesh"].region_sets["lve"] == "regions/lve.txt"
    preds, gts, templates = random_sequences(lengths=(6, 7), pred_offsets=(0, 0))
    # Unseen subject, three conditions: the mean of each condition's split-level metric.
    unseen = ConditionedMetrics(BIWI, regions, n_conditions=3, seen=False)
    rng = np.random.default_rng(1)
    per_condition = [[p + rng.normal(scale=0.05, size=p.shape).astype(np.float32) for p in preds] for _ in range(3)]
    for i in range(2):
        unseen.update([torch.from_numpy(c[i]) for c in per_condition], torch.from_numpy(gts[i]), torch.from_numpy(templates[i]))
    result = unseen.compute()
    expected = np.mean([ref_lve(c, gts, LIPS) for c in per_condition])
    assert result["lve"] == pytest.approx(expected, rel=1e-5)
    assert result["diversity"] == pytest.approx(ref_diversity([np.stack([c[i] for c in per_condition]) for i in range(2)]), rel=1e-5)
    assert unseen.protocol == "mean over 3 training styles"
    seen = ConditionedMetrics(BIWI, regions, n_conditions=6, seen=True)
    assert seen.n_conditions == 1 and seen.diversity is None


# -- DDP: 2 processes on CPU with gloo give the values of one process --------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    preds, gts, templates = random_sequences(seed=5, lengths=(9, 4, 13, 6, 8, 5), pred_offsets=(0, 2, -3, 0, 1, 0))
    mine = slice(rank, None, world_size)  # each process sees a different share of the clips
    lips, upper = torch.from_numpy(LIPS), torch.from_numpy(UPPER)
    metrics = {"lve": LipVertexError(lips), "fdd": FaceDynamicsDeviation(upper), "mve": MeanVertexError(), "dropped": FramesDropped()}
    values = {k: feed(m, preds[mine], gts[mine], templates[mine]) for k, m in metrics.items()}
    one_pass = MeshMetrics({"lve": lips, "fdd": upper}, chunk_values=100)
    for i in range(rank, len(preds), world_size):
        one_pass.update(torch.from_numpy(preds[i])[None], torch.from_numpy(gts[i])[None], templates=torch.from_numpy(templates[i])[None])
    values["one_pass"] = {k: float(v) for k, v in one_pass.compute().items()}
    div = Diversity()
    for i in range(rank, 4, world_size):
        div.update(torch.from_numpy(np.stack([preds[i][:4], gts[i][:4], templates[i][None].repeat(4, 0)])))
    values["diversity"] = float(div.compute())
    if rank == 0:
        queue.put(values)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_equals_one_process():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_ddp_worker, args=(2, _free_port(), queue), nprocs=2, start_method="spawn")
    distributed = queue.get(timeout=60)
    preds, gts, templates = random_sequences(seed=5, lengths=(9, 4, 13, 6, 8, 5), pred_offsets=(0, 2, -3, 0, 1, 0))
    assert distributed["lve"] == pytest.approx(ref_lve(preds, gts, LIPS), rel=1e-5)
    assert distributed["fdd"] == pytest.approx(ref_fdd(preds, gts, templates, UPPER), rel=1e-5)
    assert distributed["mve"] == pytest.approx(ref_mve(preds, gts), rel=1e-5)
    assert distributed["dropped"] == 6
    one_pass = distributed["one_pass"]
    assert one_pass["lve"] == pytest.approx(distributed["lve"], rel=1e-6) and one_pass["mve"] == pytest.approx(distributed["mve"], rel=1e-6)
    assert one_pass["fdd"] == pytest.approx(distributed["fdd"], rel=1e-5) and one_pass["frames_dropped"] == 6
    clips = [np.stack([preds[i][:4], gts[i][:4], templates[i][None].repeat(4, 0)]) for i in range(4)]
    assert distributed["diversity"] == pytest.approx(ref_diversity(clips), rel=1e-5)
