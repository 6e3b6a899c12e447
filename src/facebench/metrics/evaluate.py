"""Score a folder of predictions made outside facebench, named as FaceFormer and CodeTalker save
them: `<clip>.npy` (own style) or `<clip>_condition_<training subject>.npy` (one per condition)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facebench.data.datamodule import FaceDataModule
from facebench.errors import DataError
from facebench.lipreading.reference import dataset_lip_reader
from facebench.metrics.collection import ConditionedMetrics


def load_prediction(path: Path, n_vertices: int) -> torch.Tensor:
    """A (T, V*3) or (T, V, 3) array as (T, V, 3) float32."""
    try:
        array = np.load(path)
    except Exception as exc:
        raise DataError(path, "a .npy array", f"an unreadable file ({exc})") from exc
    if array.ndim == 2 and array.shape[1] == 3 * n_vertices:
        array = array.reshape(len(array), n_vertices, 3)
    if array.ndim != 3 or array.shape[1:] != (n_vertices, 3):
        raise DataError(path, f"shape (frames, {3 * n_vertices}) or (frames, {n_vertices}, 3)", f"shape {array.shape}")
    if len(array) == 0:
        raise DataError(path, "at least one frame", "0 frames")
    if not np.isfinite(array).all():
        raise DataError(path, "finite values", "NaN or infinite values")
    return torch.from_numpy(array.astype(np.float32))


def prediction_files(pred_dir: Path, clip: str, subject: str, conditions: list[str]) -> list[Path]:
    """The files of one clip under the protocol; a single `<clip>.npy` is accepted for any subject."""
    plain = pred_dir / f"{clip}.npy"
    if subject in conditions and len(conditions) == 1:
        own = pred_dir / f"{clip}_condition_{subject}.npy"
        candidates = [p for p in (own, plain) if p.is_file()]
        if not candidates:
            raise DataError(pred_dir, f"{own.name} or {plain.name}", "neither")
        return candidates[:1]
    conditioned = [pred_dir / f"{clip}_condition_{c}.npy" for c in conditions]
    present = [p for p in conditioned if p.is_file()]
    if len(present) == len(conditioned):
        return conditioned
    if not present and plain.is_file():
        return [plain]
    missing = [p.name for p in conditioned if not p.is_file()]
    raise DataError(pred_dir, f"one prediction per training style for {clip} ({len(conditioned)} files)", f"missing {missing}")


def evaluate_folder(pred_dir: str | Path, dataset: str, split: str, root: str | None = None) -> dict[str, float | str]:
    """Metrics of the predictions in `pred_dir` against a split of a dataset."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(pred_dir, "a folder of predicted .npy files", "no such folder")
    data = FaceDataModule(dataset, root=root)
    clips = data.split_dataset(split)
    regions = data.regions()
    lip_reader = dataset_lip_reader(data)
    evaluator: ConditionedMetrics | None = None
    train = data.train_subjects
    for i, entry in enumerate(clips.entries):
        conditions = [train[c] for c in data.conditions(entry.subject)]
        files = prediction_files(pred_dir, entry.name, entry.subject, conditions)
        if evaluator is None:
            evaluator = ConditionedMetrics(data.preset, regions, len(files), seen=len(files) == 1, lip_reader=lip_reader)
        elif len(files) != evaluator.n_conditions:
            raise DataError(pred_dir, f"{evaluator.n_conditions} prediction file(s) per clip, as for the first clip", f"{len(files)} for {entry.name}")
        sequence = clips[i]
        preds = [load_prediction(f, data.n_vertices) for f in files]
        evaluator.update(preds, sequence.vertices, sequence.template, sequence.phonemes)
    assert evaluator is not None  # split_dataset raises on an empty split
    return {**evaluator.compute(), "clips": len(clips), "protocol": evaluator.protocol, "region_set": data.preset.region_set}
