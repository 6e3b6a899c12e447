"""The anchors that bound every score on the synthetic corpus, computed with the same metrics as any
model and by the anchor models themselves (so the stored values are what their leaderboard rows
show): the static template (worst sensible) at the frame count the audio implies; the protocol
oracle, the deterministic part under the protocol's conditions (best achievable); and the full
oracle, the deterministic part with the speaker's own articulation (a diagnostic: what remains is
the random part no model can predict)."""

from __future__ import annotations

import json
from pathlib import Path

from facebench.data.datamodule import FaceDataModule
from facebench.data.sequence import collate, rgbl
from facebench.metrics import ConditionedMetrics
from facebench.models.anchors import Oracle, ProtocolOracle, Template

ANCHOR_MODELS = {"template": Template, "protocol_oracle": ProtocolOracle, "oracle": Oracle}

ANCHORS_FILE = "anchors.json"


def anchor_metrics(root: Path, dataset: str, splits: tuple[str, ...] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {anchor: metrics}} for the template, the protocol oracle and the full oracle, each
    under the condition protocol as its leaderboard rows are."""
    data = FaceDataModule(dataset, root=str(root), with_deterministic=True)
    regions = data.regions()
    styles = len(data.train_subjects)
    # Video has no protocol oracle: a clip's condition is its own reference frame, which every model gets.
    names = ("template", "oracle") if data.preset.modality == "video" else ANCHOR_MODELS
    models = {name: ANCHOR_MODELS[name](n_vertices=data.n_vertices, n_styles=styles) for name in names}
    result = {}
    for split in splits or ("val", *data.test_split_names):
        clips = data.split_dataset(split)
        seen = data.preset.split(split).seen
        anchors = {name: ConditionedMetrics(data.preset, regions, styles, seen=seen) for name in models}
        for i in range(len(clips)):
            clip = clips[i]
            batch = collate([clip])
            for name, model in models.items():
                anchors[name].update(model.generate_conditions(model.generation_inputs(batch)), rgbl(clip.target), rgbl(clip.template))
        result[split] = {name: {k: v for k, v in metrics.compute().items() if k != "clips"} for name, metrics in anchors.items()}
    return result


def write_anchors(root: Path, dataset: str) -> dict:
    values = anchor_metrics(root, dataset)
    (Path(root) / ANCHORS_FILE).write_text(json.dumps(values, indent=2, sort_keys=True))
    return values
