"""What every model shares: the dataset facts it is built for, its training stages, the sealed
generation protocol, and the validation/test steps whose generations the metrics callback scores
(docs/architecture.md, "Models" and "Sealed evaluation").

A model implements
- `generate(inputs, seed=None) -> (B, T, V, 3)`: vertices in dataset units from `ModelInputs`
  alone (audio, templates, style, the frame count derived from the audio, declared conditions);
  T = `inputs.max_frames`. Stochastic models (`stochastic = True`) draw from `seed`. A video
  model (`modalities = ("video",)`) returns frames (B, T, H, W, 4): RGB in [0, 1] and each pixel's
  class (255 where it paints no masks), from the reference frames in `inputs.templates`.
- `losses(batch) -> {"loss": ..., parts...}` when it trains (the training batch has ground truth).

Stages (`stages`) are trained in order by the runner, each with its own trainer settings, its own
validation (`Stage.generates`: generation from audio scored by the metrics callback, else only the
model's `validation_losses`), its own monitored metric and checkpoint; each starts from the best
checkpoint of the one before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from facebench.data.sequence import CONDITION_NAMES, Batch, ModelInputs, SealedBatch


@dataclass(frozen=True)
class Stage:
    """One training stage: its name (the key of its settings in the config), the validation metric
    its checkpoint is chosen on, and whether its validation generates motion from audio."""

    name: str = "fit"
    monitor: str = "val/lve"
    mode: str = "min"
    generates: bool = True


def members(module: nn.Module) -> Iterator[nn.Module]:
    """A module's direct submodules, the members of a ModuleList or ModuleDict taken one by one."""
    for child in module.children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            yield from members(child)
        else:
            yield child


class TalkingFaceModule(L.LightningModule):
    """Base of all models.

    Args:
        n_vertices: vertices of the dataset's mesh (filled in by the runner from the dataset).
        n_styles: training speakers, i.e. one-hot style size (from the dataset).
        fps: mesh frame rate (from the dataset).
        period: period of FaceFormer-style positional encodings (from the dataset).
        audio_per_frame: speech features per mesh frame, 1 or 2 (from the dataset).
        lr: learning rate of the default Adam optimiser (a stage's settings may override it).
    """

    # Training stages, in order; () for models that do not train (the anchors).
    stages: tuple[Stage, ...] = (Stage(),)
    # True for models whose generations depend on a seed; the runner then draws several samples.
    stochastic = False
    # Conditions beyond audio, template and style that the model generates from (the protocol's
    # declarable ones: see facebench.data.sequence.DECLARABLE_CONDITIONS); recorded in each row.
    conditions_used: tuple[str, ...] = ()
    # Privileged inputs, for anchors only (the oracle); their rows say so.
    privileged_inputs: tuple[str, ...] = ()
    # What the model generates: "mesh" (vertices) and/or "video" (frames and masks); the runner
    # refuses a dataset of another modality.
    modalities: tuple[str, ...] = ("mesh",)
    # Dataset units per network unit of vertex offsets; models that rescale set it from their
    # `offset_scale` argument (FaceFormer's card, "[ours] choices of the CPU profiles").
    offset_scale: float = 1.0

    def __init__(self, n_vertices: int, n_styles: int, fps: float = 30, period: int = 30, audio_per_frame: int = 1, lr: float = 1e-4):
        super().__init__()
        self.n_vertices, self.n_styles, self.fps = n_vertices, n_styles, fps
        self.period, self.audio_per_frame, self.lr = period, audio_per_frame, lr
        self.stage: Stage | None = self.stages[0] if self.stages else None
        self.stage_lr: float | None = None
        self.checkpoint_dir: str | None = None  # where configure_callbacks' checkpoint goes (None: Lightning's default)
        self.evaluation_samples, self.sample_seed = 1, 0

    # -- to implement ---------------------------------------------------------------------------

    @classmethod
    def dataset_facts(cls, data, init_args: dict) -> dict:
        """Arguments the model needs from the dataset beyond the shared facts (for example the
        vertex counts of a mesh pyramid), given the datamodule and the configured arguments; the
        runner passes them in."""
        return {}

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not train")

    def predict_emotion(self, inputs: ModelInputs) -> torch.Tensor | None:
        """The emotion class each clip's audio is heard as (B,), for models that classify it (the
        metrics callback scores it as `emotion_accuracy`); None for the others."""
        return None

    # -- offsets --------------------------------------------------------------------------------

    def to_offsets(self, vertices: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
        """Vertices (B, T, V, 3) as offsets from the templates (B, V, 3) in network units, (B, T, V*3)."""
        return (vertices - templates[:, None]).flatten(2) / self.offset_scale

    def target_offsets(self, batch: Batch) -> torch.Tensor:
        """Ground-truth offsets from the template in network units, (B, T, V*3)."""
        return self.to_offsets(batch.vertices, batch.templates)

    def vertices_from_offsets(self, templates: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Network-unit offsets (B, T, V*3) on the templates (B, V, 3): vertices (B, T, V, 3) in dataset units."""
        return templates[:, None] + self.offset_scale * offsets.view(*offsets.shape[:2], -1, 3)

    def compile_networks(self, **options) -> None:
        """torch.compile, in place (`nn.Module.compile`), the parts of the model's networks: every
        direct submodule of each of the model's own submodules (a network's audio encoder, decoder,
        maps; the members of a ModuleList or ModuleDict one by one). Models call their networks'
        methods, not their `forward`, so compiling a whole network would compile nothing it runs;
        in place, checkpoints keep their keys. `options`: torch.compile's keywords."""
        for network in self.children():
            for part in members(network):
                if next(part.parameters(), None) is not None:  # a part without weights has nothing to compile
                    part.compile(**options)

    # -- stages ---------------------------------------------------------------------------------

    def set_stage(self, name: str, lr: float | None = None) -> None:
        """Select the stage the next fit trains, and its learning rate (None: the model's `lr`).
        Multi-stage models extend this to freeze what the stage does not train."""
        names = [s.name for s in self.stages]
        if name not in names:
            raise ValueError(f"stage: expected one of {names}, found {name!r}")
        self.stage, self.stage_lr = self.stages[names.index(name)], lr

    @property
    def learning_rate(self) -> float:
        return self.lr if self.stage_lr is None else self.stage_lr

    def configure_callbacks(self) -> list:
        """The stage's checkpoint: the best on its monitored validation metric, as `bench` and
        `facebench fit` both keep (it replaces any other ModelCheckpoint of the Trainer)."""
        if self.stage is None:
            return []
        stage = self.stage
        checkpoint = ModelCheckpoint(dirpath=self.checkpoint_dir, filename=f"{stage.name}-best", monitor=stage.monitor, mode=stage.mode,
                                     save_top_k=1, save_last=True)  # fmt: skip
        checkpoint.CHECKPOINT_NAME_LAST = f"{stage.name}-last"  # what an interrupted run resumes from (`bench --resume`)
        return [checkpoint]

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.learning_rate)

    # -- the protocol ---------------------------------------------------------------------------

    def style_one_hot(self, style: torch.Tensor) -> torch.Tensor:
        if (style < 0).any():
            raise ValueError("style: a training speaker's index is needed; unseen speakers are conditioned on each training style")
        return torch.nn.functional.one_hot(style, self.n_styles).to(self.dtype)

    def conditions(self, inputs: ModelInputs) -> list[int]:
        """The styles a clip is generated with: its own, or every training style if unseen. A video
        clip is generated once, from its own reference frame."""
        own = int(inputs.style[0])
        return [own] if own >= 0 or inputs.is_video else list(range(self.n_styles))

    def describe_inputs(self, modality: str = "mesh") -> str:
        """What the model generates from, for the leaderboard row's `inputs` column."""
        base = ["audio", "template", "style"] if modality == "mesh" else ["audio", "reference frame and its mask"]
        parts = [*base, "frame count from audio", *(CONDITION_NAMES.get(name, name) for name in self.conditions_used)]
        text = ", ".join(parts)
        if self.privileged_inputs:
            text += "; privileged: " + ", ".join(self.privileged_inputs)
        return text

    def sample(self, inputs: ModelInputs, n: int = 1, seed: int = 0) -> torch.Tensor:
        """(n, B, T, V, 3): n generations, the k-th with seed `seed + k`. A deterministic model
        generates once, whatever n."""
        if not self.stochastic:
            return self.generate(inputs)[None]
        return torch.stack([self.generate(inputs, seed=seed + k) for k in range(n)])

    def generate_conditions(self, inputs: ModelInputs) -> list[torch.Tensor]:
        """One clip under the condition protocol: per condition, (S, T, V, 3) with S the evaluation
        samples (1 for deterministic models) and T the frame count its audio implies."""
        styles = self.conditions(inputs)
        generated = self.sample(inputs.with_styles(styles), self.evaluation_samples, self.sample_seed)
        length = int(inputs.n_frames[0])
        return [generated[:, k, :length] for k in range(len(styles))]

    def generation_inputs(self, batch: Batch) -> ModelInputs:
        return batch.inputs(self.audio_per_frame, self.conditions_used, self.privileged_inputs)

    # -- Lightning steps ------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items() if k != "loss"}, batch_size=len(batch))
        self.log("train/loss", losses["loss"].detach(), batch_size=len(batch), prog_bar=True)
        return losses["loss"]

    def validation_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The training losses on a validation batch, unseen speakers once per training style
        (the condition protocol, as the reference code validates); a video clip once, from its
        own reference frame."""
        return self.losses(batch if batch.frames is not None else batch.with_conditions(self.n_styles))

    def validation_step(self, batch: Batch, batch_idx: int) -> dict:
        if self.stage is not None:
            losses = self.validation_losses(batch)
            self.log_dict({f"val/{k}": v for k, v in losses.items()}, batch_size=len(batch), prog_bar=False, sync_dist=True)  # one monitor value on every process
        if self.stage is None or self.stage.generates:
            return {"preds": self.generate_conditions(self.generation_inputs(batch))}
        return {}

    def predict_step(self, batch: SealedBatch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """The clip's generations under the condition protocol, for `PredictionWriter`."""
        return {"preds": self.generate_conditions(batch.inputs), "index": batch.index, "styles": self.conditions(batch.inputs)}

    def test_step(self, batch: SealedBatch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        outputs = {"preds": self.generate_conditions(batch.inputs)}
        emotion = self.predict_emotion(batch.inputs)
        if emotion is not None:
            outputs["emotion"] = emotion
        return outputs
