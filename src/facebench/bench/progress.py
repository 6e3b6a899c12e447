"""Lightning's rich progress bar, reading in the dataset's units: validation metrics in the preset's
display scale with their unit (LVE of 1.3e-5 m² reads `val LVE ×1e-05 m²: 1.300`), losses in
scientific notation (a raw 2.9e-07 would otherwise read 0.000), epochs counted from 1."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar

# Metrics that are squared distances, for the unit shown.
SQUARED = ("lve", "eve")


def display_label(metric: str, scale: float, unit: str) -> str:
    """`LVE ×1e-05 m²` for a metric, its display scale and the dataset's length unit."""
    power = "²" if metric in SQUARED else ""
    return f"{metric.upper()} ×{scale:g}" + (f" {unit}{power}" if unit else "")


class DisplayScaleProgressBar(RichProgressBar):
    def _get_train_description(self, current_epoch: int) -> str:
        # Lightning counts epochs from 0 ("Epoch 11/11" for 12); people count from 1.
        total = self.trainer.max_epochs
        description = f"Epoch {current_epoch + 1}/{total}" if total and total > 0 else f"Epoch {current_epoch + 1}"
        return f"{description:{len(self.validation_description)}}"  # as wide as "Validation": no flicker

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        preset = getattr(trainer.datamodule, "preset", None)
        scales, unit = (preset.display_scale, preset.unit) if preset is not None else ({}, "")
        shown = {}
        for key, value in items.items():
            metric = key.rpartition("/")[2]
            if not isinstance(value, float):
                shown[key] = value
            elif key.startswith("val/") and metric in scales:
                shown[f"val {display_label(metric, scales[metric], unit)}"] = f"{value / scales[metric]:.3f}"
            else:
                shown[key] = f"{value:.3g}"
        return shown
