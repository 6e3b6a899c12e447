"""The sealed evaluation protocol and the runner's contracts: generation from inputs only, the frame
count from the audio, stages with their own settings, sampling, multi-device tests, and every
trainable model on the real datasets' formats."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from facebench.bench.config import ModelSpec, deep_merge, model_specs, resolve
from facebench.bench.runner import build, fit_stages, model_class, run_one
from facebench.data.audio import feature_count, frames_from_audio
from facebench.data.datamodule import FaceDataModule
from facebench.data.sequence import SealedInputError, collate
from facebench.metrics.callback import MeshMetricsCallback
from tests.fabricate import write_own_dataset

REPO = Path(__file__).resolve().parents[1]


def spec_for(class_path: str, **raw) -> ModelSpec:
    return ModelSpec(class_path.rsplit(".", 1)[1].lower(), {"model": {"class_path": class_path}, **raw})


# -- the frame count a model generates comes from the audio -------------------------------------


def test_frame_count_from_audio_follows_the_official_predict():
    # VOCASET (one feature per frame): the 50 Hz features resampled to 30 fps, int(N / 50 * 30).
    two_seconds = 32000
    assert feature_count(two_seconds) == 99 and frames_from_audio(two_seconds, 30, 1) == 59
    # BIWI (two features per frame): audio exactly as long as 100 mesh frames gives 2T - 1 = 199
    # features; the odd one is dropped and 99 frames are decoded.
    four_seconds = 100 * 16000 // 25
    assert feature_count(four_seconds) == 199 and frames_from_audio(four_seconds, 25, 2) == 99


# -- sealing ----------------------------------------------------------------------------------


def garbage(batch):
    """The same clips with every ground-truth field replaced by noise."""
    g = torch.Generator().manual_seed(123)
    return replace(batch, vertices=torch.randn(batch.vertices.shape, generator=g), frame_lengths=batch.frame_lengths * 2,
                   phonemes=None if batch.phonemes is None else torch.randint(0, 20, batch.phonemes.shape, generator=g),
                   emotion=torch.full_like(batch.style, 3), intensity=torch.full_like(batch.style, 1), content=torch.full_like(batch.style, 7),
                   texts=["la la"] * len(batch),
                   names=["nobody_99"] * len(batch), subjects=["nobody"] * len(batch))  # fmt: skip


def removed(batch):
    """The same clips with every ground-truth field gone (the deterministic part kept: privileged)."""
    empty = torch.zeros(len(batch), 0, *batch.vertices.shape[2:])
    return replace(batch, vertices=empty, frame_lengths=torch.zeros_like(batch.frame_lengths), phonemes=None, emotion=None,
                   intensity=None, content=None, texts=[], names=[], subjects=[])  # fmt: skip


@pytest.mark.parametrize("name", sorted(n for n, spec in model_specs().items() if spec.applies_to("synth-tiny")))
@torch.no_grad()
def test_generation_is_sealed_for_every_model(name, synth_tiny):
    """Generations are identical when every ground-truth field is replaced by garbage or removed."""
    spec = model_specs()[name]
    for variant in spec.variants:
        data, model = build(resolve(spec, "synth-tiny", "ci", 0, variant), str(synth_tiny))
        for p in model.parameters():  # away from the zero-initialised output, so frames depend on the inputs
            p.add_(0.05 * torch.randn_like(p))
        model.eval()
        for split in ("test_seen", "test_unseen"):
            clips = data.split_dataset(split)
            batch = collate([clips[0]])
            reference = model.generate_conditions(model.generation_inputs(batch))
            n = frames_from_audio(int(batch.audio_lengths[0]), data.fps, data.audio_per_frame)
            expected = len(batch.vertices[0]) if model.privileged_inputs else n
            assert all(g.shape[1] == expected for g in reference), (name, variant)
            for other in (garbage(batch), removed(batch)):
                # What the model declares stays: its conditions (EmoFace's intensity level), and an
                # oracle's privileged view (the deterministic part at the ground truth's length).
                other = replace(other, **{k: getattr(batch, k) for k in model.conditions_used})
                if model.privileged_inputs:
                    other = replace(other, frame_lengths=batch.frame_lengths)
                again = model.generate_conditions(model.generation_inputs(other))
                for a, b in zip(reference, again):
                    torch.testing.assert_close(a, b, rtol=0, atol=0)
    if not model.privileged_inputs:
        assert n != len(clips[0].vertices)  # the generated length is the audio's, not the ground truth's


def test_sealed_batches_carry_the_inputs_only(synth_tiny):
    data = FaceDataModule("synth-tiny", root=str(synth_tiny))
    batch = next(iter(data.sealed_dataloader("test_unseen")))
    assert set(vars(batch)) == {"inputs", "index"}
    assert set(vars(batch.inputs)) == {"audio", "audio_lengths", "n_frames", "templates", "style", "fps", "conditions", "privileged"}
    with pytest.raises(SealedInputError, match="ground truth"):
        batch.vertices  # noqa: B018
    with pytest.raises(SealedInputError, match="'phonemes' is not a generation input"):
        batch.inputs.phonemes  # noqa: B018
    clip = data.clip("test_unseen", int(batch.index[0]))
    assert int(batch.inputs.n_frames[0]) == frames_from_audio(len(clip.audio), data.fps, data.audio_per_frame)


@pytest.mark.parametrize(("cheater", "message"), [("Cheater", "'vertices' is not a generation input"), ("StepCheater", "'vertices' is ground truth")])
def test_a_cheating_model_cannot_read_the_answer(cheater, message, synth_tiny, tmp_path):
    spec = spec_for(f"tests.models_for_tests.{cheater}")
    with pytest.raises(SealedInputError, match=message):
        run_one(spec, "synth-tiny", "ci", 0, root=str(synth_tiny), leaderboards=tmp_path / "lb", runs=tmp_path, progress=False)
    assert not (tmp_path / "lb").exists()


# -- stages -----------------------------------------------------------------------------------


def test_stages_have_their_own_settings_and_each_starts_from_the_previous_best(synth_tiny, tmp_path):
    stage_settings = {"reconstruct": {"trainer": {"max_epochs": 4}, "data": {"batch_size": 4}, "lr": 0.25}}
    spec = spec_for("tests.models_for_tests.TwoStage", stages=stage_settings,
                    overrides=[{"profile": "ci", "trainer": {"max_epochs": 2}, "data": {"batch_size": 2, "max_train_clips": 4},
                                "model": {"init_args": {"lr": 0.01}}}])  # fmt: skip
    config = resolve(spec, "synth-tiny", "ci", 0)
    data, model = build(config, str(synth_tiny))
    cost = fit_stages(model, data, config, tmp_path, progress=False)
    record = model.record
    # Stage 1: its own epochs (4), batch size (4 clips: one step per epoch) and learning rate; it
    # validates reconstruction and never generates.
    assert record["batch_sizes"]["reconstruct"] == [4] * 4 and record["lr"]["reconstruct"] == 0.25
    assert "reconstruct" not in record["generations"]
    # Stage 2: the defaults (2 epochs of batches of 2, the model's lr); it validates generation.
    assert record["batch_sizes"]["generate"] == [2, 2] * 2 and record["lr"]["generate"] == 0.01
    assert record["generations"]["generate"] > 0
    # w went 0.25, 0.5, 0.75, 1.0 over stage 1; its best epoch (|w - 0.5| = 0) is the second, and
    # stage 2 starts from that checkpoint, not from the last weights.
    stages = json.loads((tmp_path / "stages.json").read_text())
    first = stages[0]
    assert first["monitor"] == "val/reconstruction" and first["best_score"] == pytest.approx(0.0, abs=1e-6)
    best_w = torch.load(first["checkpoint"], weights_only=False)["state_dict"]["w"]
    assert float(best_w) == pytest.approx(0.5) and record["w_at_start"]["generate"] == pytest.approx(0.5)
    assert Path(stages[1]["checkpoint"]).name == "generate-best.ckpt" and stages[1]["monitor"] == "val/lve"
    assert cost["train_time_s"] == pytest.approx(sum(s["train_time_s"] for s in stages))
    assert all(s["validation_time_s"] > 0 and 0 < s["train_time_s"] for s in stages)


# -- sampling ---------------------------------------------------------------------------------


@torch.no_grad()
def test_a_stochastic_model_samples_by_seed(synth_tiny):
    from tests.models_for_tests import NoisyTemplate

    data = FaceDataModule("synth-tiny", root=str(synth_tiny))
    model = NoisyTemplate(n_vertices=data.n_vertices, n_styles=data.n_styles)
    inputs = collate([data.clip("test_seen", 0)]).inputs(data.audio_per_frame)
    a, b, again = model.generate(inputs, seed=1), model.generate(inputs, seed=2), model.generate(inputs, seed=1)
    assert torch.equal(a, again) and not torch.equal(a, b)
    samples = model.sample(inputs, n=3, seed=1)
    assert samples.shape[0] == 3 and torch.equal(samples[0], a) and torch.equal(samples[1], b)


def test_rows_of_a_stochastic_model_carry_sample_diversity(synth_tiny, tmp_path):
    spec = spec_for("tests.models_for_tests.NoisyTemplate", evaluation={"samples": 3})
    rows = pd.DataFrame(run_one(spec, "synth-tiny", "ci", 0, root=str(synth_tiny), leaderboards=None, runs=tmp_path, progress=False))
    assert (rows["samples"] == 3).all()
    # Two independent samples differ per coordinate by N(0, 2 sigma^2): the mean per-vertex distance
    # is sigma * sqrt(2) * E[chi_3] = sigma * sqrt(2) * 2 sqrt(2 / pi).
    expected = 1e-3 * 2**0.5 * 2 * (2 / torch.pi) ** 0.5
    assert rows["sample_diversity"].tolist() == pytest.approx([expected] * 2, rel=0.02)
    unseen = rows[rows.split == "test_unseen"].iloc[0]
    assert unseen["diversity"] == pytest.approx(expected, rel=0.02)  # the first samples of the conditions differ by noise alone
    plain = run_one(spec_for("facebench.models.anchors.Template"), "synth-tiny", "ci", 0, root=str(synth_tiny), leaderboards=None,
                    runs=tmp_path, progress=False)  # fmt: skip
    assert all(r["samples"] == 1 and "sample_diversity" not in r for r in plain)


# -- the real datasets' formats -----------------------------------------------------------------


def trainable_specs() -> list[str]:
    """The models that train on mesh datasets (the formats below)."""
    return sorted(name for name, spec in model_specs().items() if model_class(spec.raw).stages and "mesh" in model_class(spec.raw).modalities)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
@pytest.mark.parametrize("name", trainable_specs())
def test_every_trainable_model_trains_an_epoch_on_the_real_formats(name, dataset, request, tmp_path):
    """VOCASET validates on unseen speakers (losses under the condition protocol), BIWI has two
    speech features per frame; each trainable model trains an epoch and is tested on both."""
    root = request.getfixturevalue(f"{dataset}_root")
    raw = model_specs()[name].raw
    one_epoch = {"max_epochs": 1}  # for every stage: a stage's own trainer settings override the profile's
    stages = {stage.name: {"trainer": one_epoch} for stage in model_class(raw).stages}
    spec = ModelSpec(name, {**raw, "overrides": raw.get("overrides", []) + [{"profile": "ci", "trainer": one_epoch, "stages": stages}]})
    rows = run_one(spec, dataset, "ci", 0, root=str(root), leaderboards=tmp_path / "lb", runs=tmp_path / "runs", progress=False)
    table = pd.read_csv(tmp_path / "lb" / f"{dataset}.csv")
    assert len(rows) == len(table) == len(FaceDataModule(dataset, root=str(root)).test_split_names)
    assert table["lve"].notna().all() and (table["train_time_s"] > 0).all() and (table["clips"] > 0).all()


# -- several devices --------------------------------------------------------------------------


def bench_on_processes(root: str, out: Path, model: str, processes: int, *extra: str) -> pd.DataFrame:
    """`facebench bench` on BIWI's fabricated splits (three clips each: an odd count) with
    `processes` CPU processes (gloo), started by the command itself; its leaderboard rows."""
    command = [sys.executable, "-m", "facebench", "bench", "--model", model, "--variants", "base", "--data", "biwi", "--root", root,
               "--profile", "ci", "--accelerator", "cpu", "--devices", str(processes), "--no-progress",
               "--leaderboards", str(out / "lb"), "--runs", str(out / "runs"), *extra]  # fmt: skip
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return pd.read_csv(out / "lb" / "biwi.csv")


@pytest.mark.slow
def test_a_bench_run_on_two_processes_scores_each_clip_once_and_writes_once(biwi_root, tmp_path):
    one = bench_on_processes(str(biwi_root), tmp_path / "one", "template", 1)
    two = bench_on_processes(str(biwi_root), tmp_path / "two", "template", 2)
    assert list(one["processes"]) == [1, 1] and list(two["processes"]) == [2, 2]  # one row per test split, written once
    for metric in ("clips", "lve", "fdd", "fdd_abs", "mve", "frames_dropped"):
        assert list(two[metric]) == pytest.approx(list(one[metric]), rel=1e-9), metric
    assert list(two["clips"]) == [3, 3]  # a padded sampler would score 4

    # A trained model: one run folder, its stage's checkpoints and stages.json written once.
    rows = bench_on_processes(str(biwi_root), tmp_path / "fit", "faceformer", 2, "--max-epochs", "2")
    assert list(rows["processes"]) == [2, 2] and list(rows["clips"]) == [3, 3] and rows["lve"].notna().all()
    (run,) = (tmp_path / "fit" / "runs" / "biwi").iterdir()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["fit-best.ckpt", "fit-last.ckpt"]
    (stage,) = json.loads((run / "stages.json").read_text())
    assert stage["epochs"] == 2 and rows["checkpoint"].iloc[0].endswith("fit-best.ckpt")


# -- a dataset given as a folder ----------------------------------------------------------------


def test_bench_on_a_folder_writes_under_the_dataset_name(tmp_path, capsys):
    from facebench.cli import main

    folder = write_own_dataset(tmp_path / "somewhere" / "mine-v3", ["cleo"])
    before = sorted(p.name for p in (tmp_path / "somewhere").iterdir())
    main(["bench", "--model", "template", "--data", str(folder), "--profile", "ci", "--no-progress",
          "--leaderboards", str(tmp_path / "lb"), "--runs", str(tmp_path / "runs")])  # fmt: skip
    table = pd.read_csv(tmp_path / "lb" / "mine.csv")
    assert table["dataset"].tolist() == ["mine"] and (tmp_path / "runs" / "mine").is_dir()
    assert sorted(p.name for p in (tmp_path / "somewhere").iterdir()) == before  # nothing written beside the dataset
    assert not list(folder.rglob("*.csv")) and not (folder / "runs").exists()
    assert table["run_dir"].iloc[0].startswith("mine/")
    assert "appended 1 rows to" in capsys.readouterr().out


def test_configs_match_dataset_patterns_by_name(tmp_path):
    spec = ModelSpec("m", {"model": {"class_path": "x.Y"}, "overrides": [{"dataset": "synth*", "model": {"init_args": {"a": 1}}}]})
    assert resolve(spec, "synth-tiny", "ci", 0)["model"].get("init_args") == {"a": 1}
    assert deep_merge({"a": {"b": 1}}, {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}}


def test_metrics_callback_never_trains_a_reader(synth_tiny, monkeypatch, tmp_path):
    """`facebench test` reads lips only with a stored reader; without one it says how to build it."""
    import lightning as L

    from facebench.lipreading import reference
    from facebench.models.anchors import Template

    monkeypatch.setattr(reference, "train_reader", lambda *a, **k: pytest.fail("a metric trained a lip reader"))
    monkeypatch.setattr(reference, "reader_folder", lambda data: tmp_path / "no-reader")
    data = FaceDataModule("synth-tiny", root=str(synth_tiny))
    data.setup()
    metrics = MeshMetricsCallback(stored_lip_reader=True)
    L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[metrics]).test(
        Template(n_vertices=data.n_vertices, n_styles=data.n_styles), datamodule=data, verbose=False)
    assert "per" not in metrics.results["test_seen"] and metrics.results["test_seen"]["per_reader"] == ""
