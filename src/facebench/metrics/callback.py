"""One callback scores every model: it keeps the preset's metric collection per split under the
condition protocol, updates it with the generations each validation/test step returns, and logs
`val/<metric>` and `test/<split>/<metric>`. Models never compute metrics themselves.

On datasets with per-frame phoneme labels the test splits are also read by the dataset's reference
lip reader (trained and stored on first use); validation, run every epoch, is not."""

from __future__ import annotations

import lightning as L
from torch import nn

from facebench.lipreading.reference import dataset_lip_reader
from facebench.metrics.collection import ConditionedMetrics


class MeshMetricsCallback(L.Callback):
    def __init__(self):
        super().__init__()
        self.results: dict[str, dict[str, float | str]] = {}
        self._metrics: dict[str, ConditionedMetrics] = {}

    def _build(self, trainer: L.Trainer, pl_module: L.LightningModule, splits: list[str], read_lips: bool = False) -> None:
        data = trainer.datamodule
        regions = data.regions()
        lip_reader = dataset_lip_reader(data) if read_lips else None
        self._metrics = {}
        for split in splits:
            spec = data.preset.split(split)
            metrics = ConditionedMetrics(data.preset, regions, len(data.train_subjects), seen=spec.seen, lip_reader=lip_reader)
            self._metrics[split] = metrics.to(pl_module.device)
        self._region_set = data.preset.region_set

    def _update(self, split: str, outputs: dict, batch) -> None:
        n = int(batch.frame_lengths[0])
        phonemes = None if batch.phonemes is None else batch.phonemes[0, :n]
        self._metrics[split].update(outputs["preds"], batch.vertices[0, :n], batch.templates[0], phonemes)

    # -- validation: what the checkpoint is selected on -------------------------------------------

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._build(trainer, pl_module, ["val"])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("val", outputs, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        values = self._metrics["val"].compute()
        for key in ("lve", "mve", "fdd"):
            pl_module.log(f"val/{key}", values[key], prog_bar=key == "lve")

    # -- test: one result per test split -----------------------------------------------------------

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._build(trainer, pl_module, list(trainer.datamodule.test_split_names), read_lips=True)
        self.results = {}

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(trainer.datamodule.test_split_names[dataloader_idx], outputs, batch)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        for split, metrics in self._metrics.items():
            values = metrics.compute()
            for key, value in values.items():
                pl_module.log(f"test/{split}/{key}", float(value), add_dataloader_idx=False)
            self.results[split] = {**values, "protocol": metrics.protocol, "region_set": self._region_set}


def trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
