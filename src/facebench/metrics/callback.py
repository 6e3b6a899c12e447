"""One callback scores every model: it keeps the preset's metric collection per split under the
condition protocol, updates it with the generations each validation/test step returns, and logs
`val/<metric>` and `test/<split>/<metric>`. Models never compute metrics themselves.

The ground truth reaches this callback alone: from the validation batch, and at test from the
datamodule by clip index (the test loaders carry the model's inputs only).

Lip readability needs the dataset's reference lip reader. The callback never trains one: the runner
hands it the reader it built before training (`lip_reader`), and `facebench test` uses a stored
reader when there is one (`stored_lip_reader=True`), saying so when there is none.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics.aggregation import MeanMetric

from facebench.console import console
from facebench.data.sequence import Sequence, rgbl
from facebench.lipreading.reference import ReferenceLipReader, has_phoneme_labels, stored_lip_reader
from facebench.metrics.collection import VALIDATION_KEYS, ConditionedMetrics
from facebench.metrics.judges import VideoJudges
from facebench.models.base import TalkingFaceModule


class MeshMetricsCallback(L.Callback):
    def __init__(self, lip_reader: ReferenceLipReader | None = None, stored_lip_reader: bool = False, judges: VideoJudges | None = None):
        super().__init__()
        self.lip_reader, self.use_stored_reader = lip_reader, stored_lip_reader
        # Video: the frozen networks that score the test splits (built by the runner, like the lip reader).
        self.judges = judges or VideoJudges()
        self.results: dict[str, dict[str, float | str]] = {}
        self._metrics: dict[str, ConditionedMetrics] = {}

    def _build(self, trainer: L.Trainer, pl_module, splits: list[str], lip_reader: ReferenceLipReader | None = None,
               judges: VideoJudges | None = None) -> None:  # fmt: skip
        data = trainer.datamodule
        regions = data.regions()
        samples = getattr(pl_module, "evaluation_samples", 1) if getattr(pl_module, "stochastic", False) else 1
        self._metrics = {}
        for split in splits:
            spec = data.preset.split(split)
            metrics = ConditionedMetrics(data.preset, regions, len(data.train_subjects), seen=spec.seen, lip_reader=lip_reader,
                                         samples=samples, mixed=spec.mixed, judges=judges)  # fmt: skip
            self._metrics[split] = metrics.to(pl_module.device)
        self._region_set = data.preset.region_set
        # Models that classify the emotion they hear are scored on it where the dataset labels emotions.
        classifies = type(pl_module).predict_emotion is not TalkingFaceModule.predict_emotion
        self._emotion = {split: MeanMetric().to(pl_module.device) for split in splits} if classifies and data.preset.emotions else {}

    def _update(self, split: str, preds: list[torch.Tensor], clip: Sequence, device: torch.device, audio=None) -> None:
        self._metrics[split].update(preds, rgbl(clip.target.to(device)), rgbl(clip.template.to(device)),
                                    None if clip.phonemes is None else clip.phonemes.to(device), audio=audio)  # fmt: skip

    def _test_reader(self, trainer: L.Trainer) -> ReferenceLipReader | None:
        if self.lip_reader is not None or not self.use_stored_reader:
            return self.lip_reader
        data = trainer.datamodule
        reader = stored_lip_reader(data)
        if reader is None and has_phoneme_labels(data):
            console.print(f"no stored reference lip reader for {data.name}: PER not computed (build it once with "
                          f"`facebench lipreader --data {data.name}`)")  # fmt: skip
        return reader

    # -- validation: what the checkpoint is selected on -------------------------------------------

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._build(trainer, pl_module, ["val"])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if outputs and "preds" in outputs:  # stages that validate generation
            self._update("val", outputs["preds"], batch.unbatch(0), pl_module.device)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        # Every process decides alike (compute() is collective under DDP): a process may have
        # been given no validation clip.
        if pl_module.stage is not None and not pl_module.stage.generates:
            return
        values = self._metrics["val"].compute()
        keys = VALIDATION_KEYS[trainer.datamodule.preset.modality]
        for key in keys:
            pl_module.log(f"val/{key}", values[key], prog_bar=key == keys[0])

    # -- test: one result per test split -----------------------------------------------------------

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._reader = self._test_reader(trainer)
        self._build(trainer, pl_module, list(trainer.datamodule.test_split_names), self._reader, self.judges)
        self.results = {}

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        data = trainer.datamodule
        split = data.test_split_names[dataloader_idx]
        clip = data.clip(split, int(batch.index[0]))
        audio = data.raw_audio(split, int(batch.index[0])) if self.judges.sync is not None else None
        self._update(split, outputs["preds"], clip, pl_module.device, audio)
        if split in self._emotion and "emotion" in outputs and clip.emotion is not None:
            self._emotion[split].update((outputs["emotion"][0] == clip.emotion).float())

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        for split, metrics in self._metrics.items():
            values = metrics.compute()
            if split in self._emotion:
                values["emotion_accuracy"] = float(self._emotion[split].compute())
            for key, value in values.items():
                pl_module.log(f"test/{split}/{key}", float(value), add_dataloader_idx=False)
            self.results[split] = {**values, "protocol": metrics.protocol, "region_set": self._region_set,
                                   "per_reader": self._reader.identity if self._reader is not None else "",
                                   **self.judges.provenance()}  # fmt: skip


def trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
