"""The learning check every trained model's test shares: train a resolved config through all its
stages, test it under the sealed protocol, and compare its lip error on held-out clips with the
static template's (the anchors stored with the corpus)."""

from __future__ import annotations

import json
from pathlib import Path

from facebench.bench.runner import build, fit_stages
from facebench.metrics.callback import MeshMetricsCallback

# How far below the template's LVE a model must land: seen speakers are easier than unseen ones,
# whose style is unknown and averaged over the training styles.
TEMPLATE_FACTORS = {"test_seen": 0.6, "test_unseen": 0.8}


def trained_and_tested(config: dict, root: Path, out: Path):
    """Seed, build, fit every stage and test; returns (datamodule, model, results per split)."""
    import lightning as L

    L.seed_everything(config["seed"], verbose=False)
    data, model = build(config, str(root))
    fit_stages(model, data, config, out, progress=False)
    metrics = MeshMetricsCallback()
    L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[metrics]).test(model, datamodule=data, verbose=False)
    return data, model, metrics.results


def template_lve(root: Path) -> dict[str, float]:
    anchors = json.loads((root / "anchors.json").read_text())
    return {split: anchors[split]["template"]["lve"] for split in TEMPLATE_FACTORS}


def assert_beats_template(results: dict, root: Path) -> None:
    template = template_lve(root)
    for split, factor in TEMPLATE_FACTORS.items():
        assert results[split]["lve"] < factor * template[split], (split, results[split]["lve"], template[split])
