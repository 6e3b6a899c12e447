"""The learning check every trained model's test shares, and the drift check on the same runs.

`trained_and_tested` trains a resolved config through all its stages in this process and tests it
under the sealed protocol; `assert_beats_template` compares its lip error on held-out clips with
the static template's (the anchors stored with the corpus).

`ci_run` runs a model's `ci` profile through the runner in a fresh process that loads torch with
the drift check's portable kernels (facebench.environment.PORTABLE_KERNELS): the same run as
`facebench drift`, so `assert_matches_drift_reference` compares its rows with
`leaderboards/ci/reference.csv` under `benchmarks/drift.yaml`. The learning tests of the models in
the reference use it, so the test suite is the drift check and CI trains each model once."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from facebench.bench.config import resolve_models
from facebench.bench.drift import KEY, drift_from_reference
from facebench.bench.leaderboard import METRICS, read_rows
from facebench.bench.runner import build, fit_stages, run_isolated
from facebench.data.sequence import collate
from facebench.environment import PORTABLE_KERNELS
from facebench.metrics.callback import MeshMetricsCallback
from facebench.metrics.mesh import LipVertexError
from facebench.render.animate import load_run

REFERENCE = Path(__file__).resolve().parents[1] / "leaderboards" / "ci" / "reference.csv"
# The models whose `ci` runs the tests compare with the reference (every registered one must be).
DRIFT_CHECKED = {"template", "oracle", "protocol_oracle", "faceformer", "emoface", "dualtalker", "glditalker", "codetalker"}

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


def ci_run(model: str, root: Path | None, out: Path, dataset: str = "synth-tiny") -> list[dict]:
    """The model's `ci` run (seed 0, as configured) on the tiny corpus at `root` (None: the cached
    one), as `facebench drift` runs it; rows as the runner returns them (`run_dir` relative to
    `out / "runs"`). Portable kernels make the run the same on every CI machine of one CPU vendor
    (the reference has rows per vendor): with the native ones, training amplifies the last bits in
    which two CPUs differ."""
    (spec,) = resolve_models(model, dataset)
    with pytest.MonkeyPatch.context() as patch:  # a spawned process takes the environment it starts in
        for name, value in PORTABLE_KERNELS.items():
            patch.setenv(name, value)
        return run_isolated(spec=spec, dataset=dataset, profile="ci", seed=0, root=None if root is None else str(root),
                            leaderboards=out / "leaderboards", runs=out / "runs", progress=False)  # fmt: skip


def assert_matches_drift_reference(rows: list[dict] | pd.DataFrame) -> None:
    current = pd.DataFrame(rows)
    drifted = drift_from_reference(current[KEY + [m for m in METRICS if m in current]], read_rows(REFERENCE), all_models=False)
    assert not drifted, "metrics drifted from leaderboards/ci/reference.csv:\n" + pd.DataFrame(drifted).to_string()


def template_lve(root: Path) -> dict[str, float]:
    anchors = json.loads((root / "anchors.json").read_text())
    return {split: anchors[split]["template"]["lve"] for split in TEMPLATE_FACTORS}


def assert_beats_template(results: dict | list[dict], root: Path) -> None:
    """`results`: metrics per split, or the runner's rows (one per split)."""
    if isinstance(results, list):
        results = {row["split"]: row for row in results}
    template = template_lve(root)
    for split, factor in TEMPLATE_FACTORS.items():
        assert results[split]["lve"] < factor * template[split], (split, results[split]["lve"], template[split])


def assert_codebook_reconstructs(rows: list[dict], root: Path, runs: Path, factor: float = 0.5) -> None:
    """A two-stage codebook model's (CodeTalker, GLDiTalker) stage-1 auto-encoder, from the run's
    checkpoint, reconstructs the held-out clips' motion with a lip error below `factor` x the
    template's."""
    template = template_lve(root)
    _, data, model = load_run(runs / rows[0]["run_dir"], root=str(root))
    for split in TEMPLATE_FACTORS:
        metric = LipVertexError(data.regions()["lve"])
        clips = data.split_dataset(split)
        for i in range(len(clips)):
            batch = collate([clips[i]])
            metric.update(model.reconstructed_vertices(batch), batch.vertices)
        assert float(metric.compute()) < factor * template[split], (split, float(metric.compute()), template[split])
