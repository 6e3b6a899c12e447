"""The two anchors that bound every score on the synthetic corpus, computed with the same metrics
as any model: the static template (worst sensible) and the oracle, the deterministic part of each
clip (best achievable: what remains is the random part no model can predict)."""

from __future__ import annotations

import json
from pathlib import Path

from facebench.data.datamodule import FaceDataModule
from facebench.metrics import ConditionedMetrics

ANCHORS_FILE = "anchors.json"


def anchor_metrics(root: Path, dataset: str, splits: tuple[str, ...] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {"template": metrics, "oracle": metrics}}. Neither anchor uses a style, so one
    condition stands for all and the unseen-speaker average equals it."""
    data = FaceDataModule(dataset, root=str(root), with_deterministic=True)
    regions = data.regions()
    result = {}
    for split in splits or ("val", *data.test_split_names):
        clips = data.split_dataset(split)
        anchors = {name: ConditionedMetrics(data.preset, regions, 1, seen=True) for name in ("template", "oracle")}
        for i in range(len(clips)):
            clip = clips[i]
            template = clip.template.expand_as(clip.vertices)
            anchors["template"].update([template], clip.vertices, clip.template)
            anchors["oracle"].update([clip.deterministic], clip.vertices, clip.template)
        result[split] = {name: metrics.compute() for name, metrics in anchors.items()}
    return result


def write_anchors(root: Path, dataset: str) -> dict:
    values = anchor_metrics(root, dataset)
    (Path(root) / ANCHORS_FILE).write_text(json.dumps(values, indent=2, sort_keys=True))
    return values
