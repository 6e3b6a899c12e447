"""Predictions written as FaceFormer and CodeTalker save them, so that `facebench evaluate` (or the
reference scripts) can score them: `<folder>/<split>/<clip>.npy` for a clip generated with its own
style, `<clip>_condition_<training subject>.npy` for each condition of an unseen speaker, each
(frames, V*3). A stochastic model's first sample. Video predictions: `<clip>.npz`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter


def prediction_names(clip: str, styles: list[int], train_subjects: tuple[str, ...]) -> list[str]:
    if len(styles) == 1:  # its own style (or, on video, its own reference frame)
        return [f"{clip}.npy"]
    return [f"{clip}_condition_{train_subjects[s]}.npy" for s in styles]


def save_prediction(folder: Path, name: str, samples) -> None:
    """A clip's first sample: (frames, V*3) float in `name`, or for video an `.npz` beside it
    with `frames` (T, H, W, 3) uint8 and `masks` (T, H, W) uint8 (255 where none was painted)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = samples[0].detach().cpu().numpy()
    if first.ndim == 4:  # video
        rgb = np.round(np.clip(first[..., :3], 0, 1) * 255).astype(np.uint8)
        np.savez_compressed(folder / Path(name).with_suffix(".npz"), frames=rgb, masks=np.round(first[..., 3]).astype(np.uint8))
        return
    np.save(folder / name, first.reshape(len(first), -1))


class PredictionWriter(BasePredictionWriter):
    """`facebench predict`: one file per clip and condition under `output_dir/<split>/`."""

    def __init__(self, output_dir: str | Path = "predictions"):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0) -> None:
        data = trainer.datamodule
        split = data.predict_split_names[dataloader_idx]
        clip = data.split_dataset(split).entries[int(prediction["index"][0])].name
        styles = prediction["styles"]
        for name, samples in zip(prediction_names(clip, styles, data.train_subjects), prediction["preds"]):
            save_prediction(self.output_dir / split, name, samples)
