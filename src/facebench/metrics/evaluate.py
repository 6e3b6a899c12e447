"""Score a folder of predictions made outside facebench, named as FaceFormer and CodeTalker save
them: `<clip>.npy` (own style) or `<clip>_condition_<training subject>.npy` (one per condition).
On a video dataset, one file per clip: `<clip>.npz` (`frames` (T, H, W, 3) uint8 and optionally
`masks` (T, H, W) uint8, as `bench` saves them) or `<clip>.mp4` (frames only).

Every file the split needs is found and its header checked before anything else runs, so an empty
or incomplete folder fails in seconds; only then is the dataset's reference lip reader loaded (or
built once, visibly) for the PER columns."""

from __future__ import annotations

from math import ceil
from pathlib import Path

import numpy as np
import torch

from facebench.data.datamodule import FaceDataModule
from facebench.errors import DataError
from facebench.lipreading.reference import dataset_lip_reader
from facebench.metrics.collection import ConditionedMetrics


def read_prediction(path: Path, n_vertices: int, mmap: bool = False) -> np.ndarray:
    """A (T, V*3) or (T, V, 3) array as (T, V, 3), shape checked (`mmap`: the header only)."""
    try:
        array = np.load(path, mmap_mode="r" if mmap else None)
    except Exception as exc:
        raise DataError(path, "a .npy array", f"an unreadable file ({exc})") from exc
    if array.ndim == 2 and array.shape[1] == 3 * n_vertices:
        array = array.reshape(len(array), n_vertices, 3)
    if array.ndim != 3 or array.shape[1:] != (n_vertices, 3):
        raise DataError(path, f"shape (frames, {3 * n_vertices}) or (frames, {n_vertices}, 3)", f"shape {array.shape}")
    if len(array) == 0:
        raise DataError(path, "at least one frame", "0 frames")
    return array


def load_prediction(path: Path, n_vertices: int) -> torch.Tensor:
    """A prediction file as (T, V, 3) float32, with finite values."""
    array = read_prediction(path, n_vertices)
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


def tolerated_shortfall(n_frames: int) -> int:
    """Frames a prediction may lack before `evaluate` refuses it: a frame count derived from the audio
    differs from the ground truth's by a frame or two; more means a prediction of something else."""
    return max(2, ceil(0.05 * n_frames))


def split_prediction_files(pred_dir: Path, data: FaceDataModule, split: str, allow_short: bool = False) -> list[list[Path]]:
    """Every clip's prediction files, found and their headers checked: one error for the first
    problem, before any scoring. A seen speaker's clip has one file (own style), an unseen one's
    one per training style (or a single file standing for all); a split may mix both."""
    if not pred_dir.is_dir():
        raise DataError(pred_dir, "a folder of predicted .npy files", "no such folder")
    if not any(pred_dir.glob("*.npy")):
        raise DataError(pred_dir, f"predicted .npy files for the {len(data.split_dataset(split))} clips of split '{split}'", "none")
    train = data.train_subjects
    files, short = [], []
    for entry in data.split_dataset(split).entries:
        conditions = [train[c] for c in data.conditions(entry.subject)]
        found = prediction_files(pred_dir, entry.name, entry.subject, conditions)
        for path in found:
            frames = len(read_prediction(path, data.n_vertices, mmap=True))
            if entry.n_frames - frames > tolerated_shortfall(entry.n_frames):
                short.append(f"{path.name} ({frames} of {entry.n_frames} frames)")
        files.append(found)
    if short and not allow_short:
        raise DataError(pred_dir, "predictions as long as their clips (short by at most 2 frames or 5%; "
                        "--allow-short scores the overlap and counts the rest in frames_dropped)",
                        f"{len(short)} shorter: {', '.join(short[:5])}")  # fmt: skip
    counts = {len(f) for f in files}
    if len(counts) > 1 and not (data.preset.split(split).mixed and counts == {1, len(train)}):
        raise DataError(pred_dir, "the same number of prediction files for every clip of the split", f"counts {sorted(counts)}")
    return files


def read_video_prediction(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A predicted clip as (T, H, W, 4) uint8: RGB, and the masks where the file has them (255 elsewhere)."""
    from facebench.render.renderer import RenderError
    from facebench.render.video import read_video

    if path.suffix == ".mp4":
        try:
            frames, masks = read_video(path)[0], None
        except RenderError as exc:
            raise DataError(path, "a decodable video", str(exc)) from exc
    else:
        try:
            stored = np.load(path)
            frames, masks = stored["frames"], stored["masks"] if "masks" in stored else None
        except Exception as exc:
            raise DataError(path, "an .npz with 'frames' (T, H, W, 3) uint8 and optionally 'masks'", f"an unreadable file ({exc})") from exc
    if frames.ndim != 4 or frames.shape[1:] != (*size, 3) or frames.dtype != np.uint8 or len(frames) == 0:
        raise DataError(path, f"frames of shape (T, {size[0]}, {size[1]}, 3) uint8", f"{frames.dtype} of shape {frames.shape}")
    if masks is not None and masks.shape != frames.shape[:3]:
        raise DataError(path, f"masks of shape {frames.shape[:3]}", f"shape {masks.shape}")
    labels = np.full(frames.shape[:3], 255, np.uint8) if masks is None else masks.astype(np.uint8)
    return np.concatenate([frames, labels[..., None]], -1)


def evaluate_video_folder(pred_dir: Path, data: FaceDataModule, split: str, allow_short: bool, progress: bool) -> dict[str, float | str]:
    """A video split: one `<clip>.npz` or `<clip>.mp4` per clip, all found and checked first; the
    dataset's sync judge scores LSE where it has one."""
    from facebench.data.sequence import rgbl
    from facebench.metrics.judges import video_judges

    if not pred_dir.is_dir():
        raise DataError(pred_dir, "a folder of predicted .npz or .mp4 files", "no such folder")
    clips = data.split_dataset(split)
    size = (data.preset.image_size,) * 2 if data.preset.image_size else tuple(clips[0].frames.shape[1:3])
    files, short = [], []
    for entry in clips.entries:
        found = [p for p in (pred_dir / f"{entry.name}.npz", pred_dir / f"{entry.name}.mp4") if p.is_file()]
        if not found:
            raise DataError(pred_dir, f"{entry.name}.npz or {entry.name}.mp4 (split '{split}' has {len(clips)} clips)", "neither")
        files.append(found[0])
    predictions = [read_video_prediction(path, size) for path in files]
    for path, entry, frames in zip(files, clips.entries, predictions):
        if entry.n_frames - len(frames) > tolerated_shortfall(entry.n_frames):
            short.append(f"{path.name} ({len(frames)} of {entry.n_frames} frames)")
    if short and not allow_short:
        raise DataError(pred_dir, "predictions as long as their clips (short by at most 2 frames or 5%; --allow-short scores the overlap)",
                        f"{len(short)} shorter: {', '.join(short[:5])}")  # fmt: skip
    judges = video_judges(data, progress=progress)  # published weights from their environment variables
    evaluator = ConditionedMetrics(data.preset, {}, 1, seen=True, judges=judges)
    for i, frames in enumerate(predictions):
        clip = clips[i]
        evaluator.update([rgbl(torch.from_numpy(frames))], rgbl(clip.frames), rgbl(clip.template),
                         audio=data.raw_audio(split, i) if judges.sync is not None else None)  # fmt: skip
    return {**evaluator.compute(), "protocol": evaluator.protocol, "region_set": "", **judges.provenance()}


def evaluate_folder(pred_dir: str | Path, dataset: str, split: str, root: str | None = None, progress: bool = True,
                    allow_short: bool = False) -> dict[str, float | str]:  # fmt: skip
    """Metrics of the predictions in `pred_dir` against a split of a dataset."""
    pred_dir = Path(pred_dir)
    data = FaceDataModule(dataset, root=root)
    if data.preset.modality == "video":
        return evaluate_video_folder(pred_dir, data, split, allow_short, progress)
    files = split_prediction_files(pred_dir, data, split, allow_short)
    lip_reader = dataset_lip_reader(data, progress)  # loaded, or built once with a visible progress bar
    clips = data.split_dataset(split)
    n_conditions = max(len(f) for f in files)
    spec = data.preset.split(split)
    evaluator = ConditionedMetrics(data.preset, data.regions(), n_conditions, seen=n_conditions == 1, lip_reader=lip_reader,
                                   mixed=spec.mixed and n_conditions > 1)  # fmt: skip
    for i, clip_files in enumerate(files):
        sequence = clips[i]
        evaluator.update([load_prediction(f, data.n_vertices) for f in clip_files], sequence.vertices, sequence.template, sequence.phonemes)
    return {**evaluator.compute(), "protocol": evaluator.protocol, "region_set": data.preset.region_set,
            "per_reader": lip_reader.identity if lip_reader is not None else ""}  # fmt: skip
