"""The learning-rate schedule callback (`facebench.bench.schedule`), on a two-group toy module, and
the check of a bench config's schedule names when it resolves."""

import math

import lightning as L
import pytest
import torch

from facebench.bench.schedule import LearningRateSchedule


class TwoGroups(L.LightningModule):
    """Two parameter groups at different rates; records every group's rate at each step."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        self.seen: list[tuple[float, float]] = []

    def training_step(self, batch, batch_idx):
        groups = self.trainer.optimizers[0].param_groups
        self.seen.append((groups[0]["lr"], groups[1]["lr"]))
        (x,) = batch
        return (self.a(x) + self.b(x)).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD([{"params": self.a.parameters(), "lr": 0.1}, {"params": self.b.parameters(), "lr": 0.01}])

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)


def fit(schedule: str, tmp_path, epochs: int = 3) -> TwoGroups:
    module = TwoGroups()
    trainer = L.Trainer(max_epochs=epochs, callbacks=[LearningRateSchedule(schedule)], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module)
    return module


def test_cosine_follows_half_cosine_over_the_stage_in_every_group(tmp_path):
    seen = fit("cosine", tmp_path).seen
    steps = 3 * 4
    assert len(seen) == steps
    for i, (a, b) in enumerate(seen):
        factor = 0.5 * (1 + math.cos(math.pi * i / steps))
        assert a == pytest.approx(0.1 * factor) and b == pytest.approx(0.01 * factor)
    assert seen[0] == pytest.approx((0.1, 0.01)) and seen[-1][0] < 0.1 * 0.02


def test_constant_keeps_the_rates_the_optimiser_was_built_with(tmp_path):
    assert fit("constant", tmp_path).seen == [(0.1, 0.01)] * 12


def test_unknown_schedule_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"lr_schedule: expected one of \['constant', 'cosine'\], found 'linear'"):
        LearningRateSchedule("linear")


def test_a_bench_config_naming_an_unknown_schedule_fails_when_it_resolves_with_the_key():
    from facebench.bench.config import model_specs, resolve
    from facebench.errors import FacebenchError

    spec = model_specs()["faceformer"]
    assert resolve(spec, "synth", "quick", 0, overrides={"lr_schedule": "cosine"})["lr_schedule"] == "cosine"
    with pytest.raises(FacebenchError, match=r"^lr_schedule: expected one of constant, cosine, found 'linear'"):
        resolve(spec, "synth", "quick", 0, overrides={"lr_schedule": "linear"})
    with pytest.raises(FacebenchError, match=r"^stages\.main\.lr_schedule: expected one of constant, cosine, found 'step'"):
        resolve(spec, "synth", "quick", 0, overrides={"stages": {"main": {"lr_schedule": "step"}}})
