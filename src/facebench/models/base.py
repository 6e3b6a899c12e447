"""What every model shares: the dataset facts it is built for, the condition protocol at test time
(DESIGN §3), and the validation/test steps whose generations the metrics callback scores.

A model implements `generate(batch) -> (B, T, V, 3)` (vertices in dataset units, conditioned on
`batch.style`) and, when it trains, `losses(batch) -> {"loss": ..., parts...}`.
"""

from __future__ import annotations

import time

import lightning as L
import torch

from facebench.data.sequence import Batch


class TalkingFaceModule(L.LightningModule):
    """Base of all models.

    Args:
        n_vertices: vertices of the dataset's mesh (filled in by the runner from the dataset).
        n_styles: training speakers, i.e. one-hot style size (from the dataset).
        fps: mesh frame rate (from the dataset).
        period: period of FaceFormer-style positional encodings (from the dataset).
        audio_per_frame: speech features per mesh frame, 1 or 2 (from the dataset).
        lr: learning rate of the default Adam optimiser.
    """

    # Training stages run in order by the runner, each a Trainer.fit; () for models that do not train.
    stages: tuple[str, ...] = ("fit",)
    # Set by models that need the corpus' deterministic part (the oracle).
    needs_deterministic = False

    def __init__(self, n_vertices: int, n_styles: int, fps: float = 30, period: int = 30, audio_per_frame: int = 1, lr: float = 1e-4):
        super().__init__()
        self.n_vertices, self.n_styles, self.fps = n_vertices, n_styles, fps
        self.period, self.audio_per_frame, self.lr = period, audio_per_frame, lr
        self.stage = self.stages[0] if self.stages else None
        self.inference_seconds = 0.0  # compute time spent in generate during test, for the cost columns
        self.inference_audio_seconds = 0.0

    # -- to implement ---------------------------------------------------------------------------

    def generate(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not train")

    # -- shared ---------------------------------------------------------------------------------

    def set_stage(self, stage: str) -> None:
        """Select the training stage the next fit runs (multi-stage models override to freeze parts)."""
        if stage not in self.stages:
            raise ValueError(f"stage: expected one of {self.stages}, found {stage!r}")
        self.stage = stage

    def style_one_hot(self, style: torch.Tensor) -> torch.Tensor:
        if (style < 0).any():
            raise ValueError("style: a training speaker's index is needed; unseen speakers are conditioned on each training style")
        return torch.nn.functional.one_hot(style, self.n_styles).to(self.dtype)

    def conditions(self, batch: Batch) -> list[int]:
        """The styles a test clip is generated with: its own, or every training style if unseen."""
        own = int(batch.style[0])
        return [own] if own >= 0 else list(range(self.n_styles))

    def generate_conditions(self, batch: Batch) -> list[torch.Tensor]:
        """One generation of a single clip per condition, (T, V, 3) each."""
        if len(batch) != 1:
            raise ValueError(f"evaluation runs one clip at a time, found a batch of {len(batch)}")
        styles = self.conditions(batch)
        repeated = batch.repeat(len(styles))
        repeated.style = torch.tensor(styles, device=batch.style.device)
        start = time.perf_counter()
        generated = self.generate(repeated)
        self.inference_seconds += time.perf_counter() - start
        self.inference_audio_seconds += len(styles) * float(batch.audio_lengths[0]) / 16000
        length = int(batch.frame_lengths[0])
        return [g[:length] if g.shape[0] >= length else g for g in generated]

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=len(batch), prog_bar=False)
        return losses["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> dict:
        if self.stages:
            losses = self.losses(batch)
            self.log("val/loss", losses["loss"], batch_size=len(batch), prog_bar=True)
        return {"preds": self.generate_conditions(batch)}

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        return {"preds": self.generate_conditions(batch)}

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.lr)
