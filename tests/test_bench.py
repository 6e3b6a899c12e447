"""The bench runner, leaderboards and drift check, and the learning test of FaceFormer."""

import multiprocessing as mp
import os
import subprocess

import pandas as pd
import pytest
import torch

from facebench.bench import leaderboard as lb
from facebench.bench.config import ModelSpec, config_hash, model_specs, resolve, resolve_models
from facebench.bench.drift import compare, load_tolerances
from facebench.bench.runner import run_one
from facebench.cli import main
from facebench.errors import FacebenchError
from tests.learning import DRIFT_CHECKED, REFERENCE, assert_matches_drift_reference, ci_run


@pytest.fixture(scope="session")
def bench_ci(synth_tiny, tmp_path_factory):
    """The anchors and FaceFormer through the real runner, ci profile, on the tiny corpus, each in
    its own process as `facebench bench` runs them."""
    out = tmp_path_factory.mktemp("bench")
    rows = []
    for name in ("template", "oracle", "protocol_oracle", "ff"):
        rows += ci_run(name, synth_tiny, out)  # the drift check's runs (tests/learning.py)
    return out, pd.DataFrame(rows)


def lve(rows, model, split):
    return float(rows[(rows.model == model) & (rows.split == split)]["lve"].iloc[0])


@pytest.mark.slow
def test_faceformer_learns(bench_ci):
    """After the ci profile, FaceFormer's lip error on held-out clips is well below the template's;
    its metrics and the anchors' are the drift reference's."""
    _, rows = bench_ci
    assert_matches_drift_reference(rows)
    assert lve(rows, "faceformer", "test_seen") < 0.6 * lve(rows, "template", "test_seen")
    assert lve(rows, "faceformer", "test_unseen") < 0.8 * lve(rows, "template", "test_unseen")
    assert lve(rows, "oracle", "test_seen") < lve(rows, "faceformer", "test_seen")


@pytest.mark.slow
def test_rows_and_run_folder(bench_ci, synth_tiny):
    out, rows = bench_ci
    table = pd.read_csv(out / "leaderboards" / "synth-tiny.csv")
    assert len(table) == 8 and set(table.split) == {"test_seen", "test_unseen"}
    assert list(table.columns[: len(lb.COLUMNS)]) == lb.COLUMNS
    ff = table[table.model == "faceformer"].iloc[0]
    assert ff.params > 0 and ff.train_time_s > 0 and ff.rtf > 0 and ff.rtf_clips == 10 and ff.device == "cpu"
    assert ff.audio_encoder == "logmel" and "lve=regions/lve.txt" in ff.region_set and ff.config_hash
    assert ff.torch and ff.cpu and ff.threads >= 1 and ff.per_reader.startswith("v2:") and ff.samples == 1
    assert ff.inputs == "audio, template, style, frame count from audio" and not ff.official_code  # ci: [ours] settings
    oracle = table[table.model == "oracle"].iloc[0]
    assert oracle.inputs.endswith("privileged: deterministic") and not oracle.official_code
    # Each run's own memory: the anchors, which train nothing, need far less than FaceFormer's training.
    peaks = table.groupby("model").peak_memory_mb.max()
    assert 0 <= peaks["template"] < 0.5 * peaks["faceformer"] and peaks["oracle"] < 0.5 * peaks["faceformer"], peaks
    # The frame count comes from the audio: about one frame per clip differs from the ground truth.
    oracles = table.model.str.endswith("oracle")
    assert (table[~oracles].frames_dropped > 0).all() and (table[oracles].frames_dropped == 0).all()
    assert set(table.clips) == {16, 8}
    unseen = table[(table.model == "faceformer") & (table.split == "test_unseen")].iloc[0]
    assert unseen.protocol == "mean over 4 training styles" and unseen.diversity > 0
    # Lip readability: one frozen reader judges every model (same floor), and a still face is unreadable.
    assert (table.groupby("split").per_gt.nunique() == 1).all() and (table.per_gt < 0.5).all()
    for split in ("test_seen", "test_unseen"):
        per = table[table.split == split].set_index("model").per
        assert per["template"] > 0.75 and per["oracle"] < 0.6 * per["template"], per
    run = out / "runs" / ff.run_dir  # paths relative to the runs folder
    assert (run / "config.yaml").is_file() and (run / "metrics.json").is_file() and (out / "runs" / ff.checkpoint).is_file()
    assert ff.checkpoint.endswith("checkpoints/fit-best.ckpt") and (run / "stages.json").is_file()
    assert not pd.read_json(run / "stages.json").resumed.any()  # a fresh run, not a continued one
    assert len(list((run / "predictions" / "test_unseen").glob("*_condition_S01.npy"))) == 2
    # The anchors' rows equal the anchors stored with the corpus.
    import json

    anchors = json.loads((synth_tiny / "anchors.json").read_text())
    for model in ("template", "oracle", "protocol_oracle"):
        for split in ("test_seen", "test_unseen"):
            assert lve(rows, model, split) == pytest.approx(anchors[split][model]["lve"], rel=1e-9), (model, split)


@pytest.mark.slow
def test_leaderboard_renders(bench_ci, tmp_path):
    out, _ = bench_ci
    folder = tmp_path / "lb"
    folder.mkdir()
    table = pd.read_csv(out / "leaderboards" / "synth-tiny.csv")
    # A second seed of FaceFormer, to show mean and spread.
    second = table[table.model == "faceformer"].assign(seed=1, lve=lambda t: t.lve * 1.1)
    pd.concat([table, second]).to_csv(folder / "synth-tiny.csv", index=False)
    markdown = lb.render(folder)
    assert (folder / "synth-tiny.png").stat().st_size > 5000 and "![synth-tiny](synth-tiny.png)" in markdown
    assert "LVE ×1e-05" in markdown and "| skill |" in markdown
    lines = [line for line in markdown.splitlines() if line.startswith("| faceformer")]
    assert len(lines) == 2 and all("| 2 |" in line and "±" in line and "**" in line for line in lines)
    template_line = next(line for line in markdown.splitlines() if line.startswith("| template"))
    assert "| 0.000 |" in template_line  # skill of the template is 0, of the protocol oracle 1
    assert "| 1.000 |" in next(line for line in markdown.splitlines() if line.startswith("| protocol_oracle"))
    # Signed FDD is shown but never bold; the oracles' PER is named beside the ground truth's.
    fdd = [line.split("|")[6] for line in markdown.splitlines() if line.startswith("| faceformer")]
    assert all("**" not in cell for cell in fdd) and "protocol oracle" in markdown and "ground truth's motion" in markdown


def test_config_resolution():
    specs = model_specs()
    assert {"template", "oracle", "faceformer"} <= set(specs)
    ff = specs["faceformer"]
    full_biwi = resolve(ff, "biwi", "full", 0)
    assert full_biwi["model"]["init_args"]["feature_dim"] == 128 and full_biwi["model"]["init_args"]["audio_encoder"]["name"] == "wav2vec2"
    assert resolve(ff, "vocaset", "full", 0)["model"]["init_args"]["feature_dim"] == 64
    assert resolve(ff, "synth", "ci", 0)["model"]["init_args"]["audio_encoder"]["name"] == "logmel"
    assert resolve(ff, "synth", "ci", 0)["trainer"]["deterministic"] is True
    assert config_hash(resolve(ff, "synth", "ci", 0)) == config_hash(resolve(ff, "synth", "ci", 1))
    assert [s.name for s in resolve_models("ff", "biwi")] == ["faceformer"]
    assert "oracle" not in [s.name for s in resolve_models("all", "biwi")]
    with pytest.raises(FacebenchError, match="synthetic corpora only"):
        resolve_models("oracle", "biwi")
    with pytest.raises(FacebenchError, match="expected one of"):
        resolve_models("nope", "synth")


def _append_many(args):
    path, worker = args
    for i in range(15):
        lb.append_rows(path, [{"model": f"m{worker}", "seed": i, "lve": worker + i / 100}])


def test_concurrent_appends_lose_nothing(tmp_path):
    path = tmp_path / "board.csv"
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(path, w) for w in range(4)])
    table = pd.read_csv(path)
    assert len(table) == 60 and table.groupby("model").size().tolist() == [15] * 4
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_interrupted_append_leaves_the_board_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "board.csv"
    lb.append_rows(path, [{"model": "a", "lve": 1.0}])
    before = path.read_bytes()

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lb.append_rows(path, [{"model": "b", "lve": 2.0}])
    assert path.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def test_an_interrupted_run_writes_no_row(synth_tiny, tmp_path, monkeypatch):
    from facebench.bench import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "fit_stages", interrupted)
    (spec,) = resolve_models("ff", "synth-tiny")
    with pytest.raises(KeyboardInterrupt):
        run_one(spec, "synth-tiny", "ci", 0, root=str(synth_tiny), leaderboards=tmp_path / "lb", runs=tmp_path / "runs", progress=False)
    assert not (tmp_path / "lb" / "synth-tiny.csv").exists()


@pytest.mark.parametrize("model", ["template", "gldi"])
def test_missing_dataset_gives_one_clear_message(model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--model", model, "--data", "biwi", "--no-progress", "--leaderboards", str(tmp_path / "lb")])
    assert exit_info.value.code == 2
    out = capsys.readouterr().out
    assert str(tmp_path / "biwi") in out and "expected layout" in out and "vertices_npy" in out and "CodeTalker" in out
    assert "Traceback" not in out


def test_same_seed_same_metrics(synth_tiny, tmp_path):
    """Two runs of one config and seed give identical metrics (a short FaceFormer run)."""
    raw = model_specs()["faceformer"].raw
    spec = ModelSpec("faceformer", {**raw, "overrides": raw["overrides"] + [{"profile": "ci", "trainer": {"max_epochs": 2}, "data": {"max_train_clips": 8}}]})
    runs = [run_one(spec, "synth-tiny", "ci", 3, root=str(synth_tiny), leaderboards=None, runs=tmp_path, progress=False) for _ in range(2)]
    for a, b in zip(*runs):
        assert {k: a[k] for k in lb.METRICS if k in a} == {k: b[k] for k in lb.METRICS if k in b}


def test_every_registered_model_is_in_the_drift_reference_and_checked_by_a_test():
    registered = {spec.name for spec in resolve_models("all", "synth-tiny")}
    assert registered == set(lb.read_rows(REFERENCE).model) == DRIFT_CHECKED


def test_drift_compare_flags_what_moved():
    reference = pd.DataFrame([{"model": "m", "variant": "", "split": "s", "lve": 1.0, "fdd": 0.5, "frames_dropped": 0}])
    tolerances = load_tolerances()
    assert compare(reference.copy(), reference, tolerances) == []
    moved = reference.assign(lve=1.05)
    (row,) = compare(moved, reference, tolerances)
    assert row["metric"] == "lve" and row["difference"] == pytest.approx(0.05)
    extra = pd.concat([reference, reference.assign(model="new")])
    assert compare(extra, reference, tolerances)[0]["reference"] == "missing"


def test_updating_the_reference_for_one_model_keeps_the_others(tmp_path):
    from facebench.bench.drift import update_reference

    path = tmp_path / "reference.csv"
    old = pd.DataFrame([{"model": m, "variant": "", "split": "s", "lve": 1.0} for m in ("a", "b")])
    update_reference(old, path)
    update_reference(pd.DataFrame([{"model": "b", "variant": "", "split": "s", "lve": 2.0, "diversity": 0.5}]), path, all_models=False)
    table = lb.read_rows(path)
    assert table.set_index("model")["lve"].to_dict() == {"a": 1.0, "b": 2.0} and len(table) == 2
    update_reference(old.iloc[:1], path)  # every model: the reference is what was run
    assert list(lb.read_rows(path).model) == ["a"]


def test_the_drift_reference_keeps_one_set_of_rows_per_cpu_vendor(tmp_path, monkeypatch):
    """MKL's reproducible branch is Intel's only, so a run is compared with the rows its CPU vendor
    made, `--update` replaces only those, and a vendor with no rows for a model is one error."""
    import facebench.bench.drift as drift

    path = tmp_path / "reference.csv"
    made_on = lambda vendor, lve, models=("a", "b"): pd.DataFrame(  # noqa: E731
        [{"model": m, "variant": "", "split": "s", "lve": lve, "vendor": vendor} for m in models])
    drift.update_reference(made_on("AuthenticAMD", 1.0), path)
    drift.update_reference(made_on("GenuineIntel", 2.0), path)
    drift.update_reference(made_on("GenuineIntel", 3.0, ("b",)), path, all_models=False)
    table = lb.read_rows(path)
    assert table.groupby("vendor")["lve"].apply(list).to_dict() == {"AuthenticAMD": [1.0, 1.0], "GenuineIntel": [2.0, 3.0]}
    monkeypatch.setattr(drift, "cpu_vendor", lambda: "GenuineIntel")
    assert drift.drift_from_reference(made_on("GenuineIntel", 2.0, ("a",)), table, all_models=False) == []
    (moved,) = drift.drift_from_reference(made_on("GenuineIntel", 1.0, ("a",)), table, all_models=False)  # AMD's value: drifted here
    assert moved["reference"] == 2.0
    monkeypatch.setattr(drift, "cpu_vendor", lambda: "HygonGenuine")
    with pytest.raises(FacebenchError, match="rows made on a HygonGenuine CPU for a, b .* found rows for AuthenticAMD, GenuineIntel only; "
                                             "make them on this machine with `facebench drift --update"):  # fmt: skip
        drift.drift_from_reference(made_on("HygonGenuine", 1.0), table)


def test_drift_command_runs_again_with_portable_kernels_and_its_own_cache(tmp_path, monkeypatch):
    """The drift check's numbers must not depend on which x86 CPU CI draws: the command replaces
    its process by one that loads torch with the portable kernels, on a cache of its own."""
    from facebench.environment import PORTABLE_KERNELS

    for name in PORTABLE_KERNELS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACEBENCH_CACHE", str(tmp_path))
    calls = []

    def execve(*call):  # the real one never returns
        calls.append(call)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    with pytest.raises(SystemExit):
        main(["drift", "--models", "ff", "--reference", "ref.csv", "--update", "--no-progress"])
    ((executable, argv, env),) = calls
    assert argv == [executable, "-m", "facebench", "drift", "--models", "ff", "--reference", "ref.csv", "--update", "--no-progress"]
    assert {k: env[k] for k in PORTABLE_KERNELS} == PORTABLE_KERNELS and env["FACEBENCH_CACHE"] == str(tmp_path / "portable-kernels")
    # the process it starts takes the kernels: torch's vectorised code at AVX2 (where the CPU has it)
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        capability = subprocess.run([executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                                    env=env, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        assert capability == "AVX2"


@pytest.mark.slow
def test_drift_command_passes_and_fails_when_perturbed(synth_tiny, tmp_path, monkeypatch, capsys):
    """The comparison, in this process (as if the command had started it again with the kernels)."""
    import facebench.environment

    monkeypatch.setattr(facebench.environment, "portable_kernels", lambda: True)
    monkeypatch.setenv("FACEBENCH_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "synth"
    cache.mkdir(parents=True)
    from facebench.data.synth.generator import VERSION

    os.symlink(synth_tiny, cache / f"v{VERSION}-tiny-seed0")  # the corpus the tests made, as the cache
    reference = tmp_path / "reference.csv"
    main(["drift", "--models", "template", "--update", "--reference", str(reference), "--no-progress"])
    main(["drift", "--models", "template", "--reference", str(reference), "--no-progress"])
    assert "no drift" in capsys.readouterr().out
    table = pd.read_csv(reference)
    table.loc[0, "lve"] *= 1.1
    table.to_csv(reference, index=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["drift", "--models", "template", "--reference", str(reference), "--no-progress"])
    assert exit_info.value.code == 1 and "lve" in capsys.readouterr().out


def test_lightning_cli_fits_a_model_and_keeps_the_best_checkpoint(synth_tiny, tmp_path):
    main(["fit", "--model", "FaceFormer", "--model.lr", "0.001", "--data.dataset", "synth-tiny", "--data.root", str(synth_tiny),
          "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    assert list(tmp_path.rglob("config.yaml"))
    # the best on validation LVE, as `bench` keeps, and the last one, that a resumed run starts from
    checkpoints = {path.name: path for path in tmp_path.rglob("*.ckpt")}
    assert sorted(checkpoints) == ["fit-best.ckpt", "fit-last.ckpt"]
    import torch

    state = torch.load(checkpoints["fit-best.ckpt"], weights_only=False)
    (callback,) = [v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert callback["monitor"] == "val/lve"


def test_appends_rewrite_earlier_rows_byte_for_byte(tmp_path):
    path = tmp_path / "board.csv"
    lb.append_rows(path, [{"model": "a", "processes": 1, "lve": 1.25e-05}])
    lb.append_rows(path, [{"model": "b", "lve": 2.0}])  # no `processes`: the column is empty in this row
    before = path.read_text().splitlines()
    lb.append_rows(path, [{"model": "c", "processes": 2, "lve": 3.0, "psnr": 30.5}])  # a new column widens the header
    after = path.read_text().splitlines()
    assert len(after) == 4 and [line.rstrip(",") for line in after[1:3]] == [line.rstrip(",") for line in before[1:]]
    assert after[1].split(",")[list(lb.COLUMNS).index("processes")] == "1"


def test_appends_keep_the_files_mode(tmp_path):
    path = tmp_path / "board.csv"
    old = os.umask(0o022)
    try:
        lb.append_rows(path, [{"model": "a", "lve": 1.0}])
        assert path.stat().st_mode & 0o777 == 0o644  # a new file: what the umask gives (not the temporary file's 0600)
        path.chmod(0o664)
        lb.append_rows(path, [{"model": "b", "lve": 2.0}])
        assert path.stat().st_mode & 0o777 == 0o664  # an existing file keeps its mode
    finally:
        os.umask(old)


def test_chart_and_table_count_a_rerun_seed_once():
    row = {"model": "m", "variant": "", "profile": "quick", "config_hash": "h", "split": "s", "dataset": "d"}
    rows = pd.DataFrame([{**row, "seed": 0, "lve": 1.0, "date": "2026-01-01"}, {**row, "seed": 0, "lve": 3.0, "date": "2026-01-02"},
                         {**row, "seed": 1, "lve": 5.0, "date": "2026-01-01"}])  # fmt: skip
    kept = lb.latest_per_seed(rows)
    assert sorted(kept.lve) == [3.0, 5.0]
    assert lb.summarise(rows).lve_mean.tolist() == [4.0] and lb.metric_by_model(rows)["mean"].tolist() == [4.0]


def test_progress_bar_shows_display_scale_and_unit():
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import RichProgressBar

    from facebench.bench.progress import DisplayScaleProgressBar, display_label
    from facebench.data.presets import VOCASET

    assert display_label("lve", 1e-5, "m") == "LVE ×1e-05 m²" and display_label("mve", 1e-3, "m") == "MVE ×0.001 m"
    bar = DisplayScaleProgressBar()
    trainer = SimpleNamespace(datamodule=SimpleNamespace(preset=VOCASET))
    original = RichProgressBar.get_metrics
    RichProgressBar.get_metrics = lambda self, t, m: {"v_num": 3, "val/lve": 1.3e-5, "train/loss": 2.9e-7}
    try:
        shown = bar.get_metrics(trainer, None)
    finally:
        RichProgressBar.get_metrics = original
    assert shown == {"v_num": 3, "val LVE ×1e-05 m²": "1.300", "train/loss": "2.9e-07"}
