"""Learning-rate schedules over a stage's epochs, as a callback, so that one setting fits every
model: single or several optimisers, several parameter groups, automatic or manual optimisation.

`lr_schedule` in a run's config (profile, model, variant or `stages.<name>`) picks one:
`constant` (the default: the learning rate each optimiser was built with, as the official
FaceFormer and CodeTalker code train) or `cosine` (from that rate down to zero along a half cosine
over the stage's `max_epochs`; docs/architecture.md, "Training stages").

The factor is computed from the training progress the Trainer reports (epoch and batch), not from
a step counter of its own, so a resumed stage (`bench --resume`) continues on the same curve: each
group's starting rate is kept in the optimiser's own state (`initial_lr`, torch's convention),
which its checkpoint saves."""

from __future__ import annotations

import math

import lightning as L

from facebench.bench.config import LR_SCHEDULES


class LearningRateSchedule(L.Callback):
    """Sets every parameter group's rate before each training batch to its starting rate times
    the schedule's factor at the stage's progress (0 at its first batch, 1 after its last)."""

    def __init__(self, name: str = "constant"):
        if name not in LR_SCHEDULES:  # a bench config is checked when it resolves; this guards direct use
            raise ValueError(f"lr_schedule: expected one of {list(LR_SCHEDULES)}, found {name!r}")
        self.name = name

    def factor(self, progress: float) -> float:
        if self.name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        return 1.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        if self.name == "constant":
            return
        batches = trainer.num_training_batches
        if trainer.max_epochs is None or trainer.max_epochs < 1 or not math.isfinite(batches) or batches < 1:
            raise ValueError(f"lr_schedule {self.name!r} needs the stage's trainer.max_epochs (found {trainer.max_epochs}) and a sized training loader")
        factor = self.factor((trainer.current_epoch + batch_idx / batches) / trainer.max_epochs)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor
