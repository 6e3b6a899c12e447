"""The two anchors that bound every score on the synthetic corpus, computed with the same metrics
as any model and by the anchor models themselves (so the stored values are what their leaderboard
rows show): the static template (worst sensible) at the frame count the audio implies, and the
oracle, the deterministic part of each clip (best achievable: what remains is the random part no
model can predict)."""

from __future__ import annotations

import json
from pathlib import Path

from facebench.data.datamodule import FaceDataModule
from facebench.data.sequence import collate
from facebench.metrics import ConditionedMetrics
from facebench.models.anchors import Oracle, Template

ANCHORS_FILE = "anchors.json"


def anchor_metrics(root: Path, dataset: str, splits: tuple[str, ...] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {"template": metrics, "oracle": metrics}}. Neither anchor uses a style, so one
    condition stands for all and the unseen-speaker average equals it."""
    data = FaceDataModule(dataset, root=str(root), with_deterministic=True)
    regions = data.regions()
    models = {name: cls(n_vertices=data.n_vertices, n_styles=1) for name, cls in (("template", Template), ("oracle", Oracle))}
    result = {}
    for split in splits or ("val", *data.test_split_names):
        clips = data.split_dataset(split)
        anchors = {name: ConditionedMetrics(data.preset, regions, 1, seen=True) for name in models}
        for i in range(len(clips)):
            clip = clips[i]
            batch = collate([clip])
            for name, model in models.items():
                anchors[name].update([model.generate(model.generation_inputs(batch))[0]], clip.vertices, clip.template)
        result[split] = {name: {k: v for k, v in metrics.compute().items() if k != "clips"} for name, metrics in anchors.items()}
    return result


def write_anchors(root: Path, dataset: str) -> dict:
    values = anchor_metrics(root, dataset)
    (Path(root) / ANCHORS_FILE).write_text(json.dumps(values, indent=2, sort_keys=True))
    return values
