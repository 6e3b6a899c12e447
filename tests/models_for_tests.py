"""Small models that exercise the runner's contracts (stages, sampling, sealing), importable by
class path from test configs."""

from __future__ import annotations

import torch
from torch import nn

from facebench.data.sequence import ModelInputs
from facebench.models.anchors import Template
from facebench.models.base import Stage


class TwoStage(Template):
    """Stage `reconstruct` moves a scalar w up by exactly lr per optimiser step (SGD on -w) and is
    validated on |w - 0.5|, a reconstruction-style metric, without generating; stage `generate`
    is validated on generation (val/lve of template + w). With one step per epoch at lr 0.25 the
    first stage's best epoch is its second (w = 0.5), not its last."""

    stages = (Stage("reconstruct", monitor="val/reconstruction", generates=False), Stage("generate"))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.w = nn.Parameter(torch.zeros(()))
        self.record: dict[str, dict] = {"w_at_start": {}, "batch_sizes": {}, "lr": {}, "generations": {}}

    def on_fit_start(self) -> None:
        self.record["w_at_start"][self.stage.name] = self.w.item()
        self.record["lr"][self.stage.name] = self.trainer.optimizers[0].param_groups[0]["lr"]

    def losses(self, batch):
        self.record["batch_sizes"].setdefault(self.stage.name, []).append(len(batch))
        return {"loss": -self.w}

    def validation_losses(self, batch):
        return {"loss": -self.w, "reconstruction": (self.w - 0.5).abs()}

    def configure_optimizers(self):
        return torch.optim.SGD([self.w], lr=self.learning_rate)

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        if self._trainer is not None and self._trainer.state.fn == "fit":  # generations while a stage trains
            self.record["generations"][self.stage.name] = self.record["generations"].get(self.stage.name, 0) + 1
        return super().generate(inputs) + self.w


class NoisyTemplate(Template):
    """A stochastic anchor: the template plus Gaussian noise (std 1e-3) drawn from the seed."""

    stochastic = True
    noise = 1e-3

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        out = super().generate(inputs)
        generator = torch.Generator(device=out.device).manual_seed(0 if seed is None else seed)
        return out + self.noise * torch.randn(out.shape, generator=generator, device=out.device)


class Cheater(Template):
    """Returns the ground truth it hopes to be handed."""

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        return inputs.vertices


class StepCheater(Template):
    """Reads the ground truth in its own test step instead of through `generate`."""

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        return {"preds": [batch.vertices[0]]}
