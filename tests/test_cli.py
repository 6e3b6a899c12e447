"""Every command the CLI offers does its job (a smoke test over the parser's own list and the
README's make targets), `facebench predict` then `facebench evaluate` reproduce a run's rows, and
the failures a user can cause end in one line, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from facebench.cli import build_parser, main
from facebench.metrics.evaluate import evaluate_folder

REPO = Path(__file__).resolve().parents[1]


def lightning_args(out: Path) -> list[str]:
    return ["--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--trainer.default_root_dir", str(out)]


@pytest.mark.slow
def test_predict_then_evaluate_reproduces_the_runs_rows(short_run, synth_tiny, tmp_path):
    out, rows = short_run
    run = out / "runs" / rows[0]["run_dir"]
    main(["predict", "--config", str(run / "cli.yaml"), "--ckpt_path", str(out / "runs" / rows[0]["checkpoint"]),
          "--predictions", str(tmp_path / "pred"), *lightning_args(tmp_path)])  # fmt: skip
    for row in rows:
        folder = tmp_path / "pred" / row["split"]
        assert len(list(folder.glob("*.npy"))) == row["clips"] * (1 if row["protocol"] == "own style" else 4)
        result = evaluate_folder(folder, "synth-tiny", row["split"], root=str(synth_tiny))
        for metric in ("lve", "fdd", "mve", "eve", "per", "per_gt", "frames_dropped", "clips"):
            assert result[metric] == pytest.approx(row[metric], rel=1e-6, abs=1e-12), (row["split"], metric)


def smoke_commands(synth_tiny: Path, run: Path, checkpoint: Path, tmp: Path) -> dict[str, list[str]]:
    """One real invocation per subcommand (on the tiny corpus, ci profile)."""
    data = ["--data.dataset", "synth-tiny", "--data.root", str(synth_tiny)]
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"]
    return {
        "prepare": ["prepare", "vocaset", "--help"],  # tested on a fabricated release in test_data.py
        "evaluate": ["evaluate", "--pred", str(run / "predictions" / "test_seen"), "--data", "synth-tiny", "--split", "test_seen",
                     "--root", str(synth_tiny)],  # noqa: E501  (the run keeps two clips: a missing one is named)
        "bench": ["bench", "--model", "template", "--data", "synth-tiny", "--root", str(synth_tiny), "--profile", "ci",
                  "--leaderboards", str(tmp / "lb"), "--runs", str(tmp / "runs"), "--no-progress"],
        "leaderboard": ["leaderboard", "--folder", str(tmp / "lb")],
        "lipreader": ["lipreader", "--data", "synth-tiny", "--root", str(synth_tiny)],
        "drift": ["drift", "--help"],  # run for one model in test_bench.py
        "parse": ["parse", "--help"],  # run on a fabricated checkpoint and video set in test_video.py
        "edit": ["edit", "--help"],  # run on a trained SegTalker in test_segtalker.py
        "fit": ["fit", "--model", "FaceFormer", *data, *short, *lightning_args(tmp)],
        "validate": ["validate", "--config", str(run / "cli.yaml"), "--ckpt_path", str(checkpoint), *short[2:], *lightning_args(tmp)],
        "test": ["test", "--config", str(run / "cli.yaml"), "--ckpt_path", str(checkpoint), *lightning_args(tmp)],
        "predict": ["predict", "--config", str(run / "cli.yaml"), "--ckpt_path", str(checkpoint), "--predictions", str(tmp / "p"),
                    *lightning_args(tmp)],
        "synth": ["synth", "--preset", "tiny", "--out", str(tmp / "corpus")],
        "animate": ["animate", "--run", str(run), "--audio", str(Path(__file__).parent / "data" / "speech.wav"), "--style", "S02",
                    "--root", str(synth_tiny), "--out", str(tmp / "animations"), "--size", "64"],
        "render": ["render", "--data", "synth-tiny", "--root", str(synth_tiny), "--clip", "S01_s37", "--out", str(tmp / "clip.mp4"),
                   "--size", "64", "--renderer", "software"],
    }


@pytest.mark.slow
def test_every_subcommand_runs(short_run, synth_tiny, tmp_path, capsys):
    out, rows = short_run
    listed = set(build_parser()._subparsers._group_actions[0].choices)
    commands = smoke_commands(synth_tiny, out / "runs" / rows[0]["run_dir"], out / "runs" / rows[0]["checkpoint"], tmp_path)
    assert listed == set(commands), "every command `facebench --help` lists has a smoke run here"
    for name, argv in commands.items():
        if name == "evaluate":
            with pytest.raises(SystemExit) as exit_info:  # two of sixteen clips kept with the run: the third is named
                main(argv)
            assert exit_info.value.code == 2 and "S01_s39" in capsys.readouterr().out, name
            continue
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code in (0, None), (name, exc.code)
    assert pd.read_csv(tmp_path / "lb" / "synth-tiny.csv").model.tolist() == ["template", "template"]
    assert (tmp_path / "lb" / "README.md").is_file() and (tmp_path / "corpus" / "card.json").is_file()
    assert len(list((tmp_path / "p").rglob("*.npy"))) > 0
    assert (tmp_path / "animations" / "speech.mp4").is_file() and (tmp_path / "clip.mp4").is_file()


@pytest.mark.slow
def test_the_readmes_make_targets_run(synth_tiny, tmp_path):
    """`make bench`, `make leaderboard`, `make lint` run; `make test` and `make install` are what
    CI runs (checked here for what they would do)."""
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "FACEBENCH_DATA": str(tmp_path), "HOME": str(tmp_path)}
    make = lambda *a: subprocess.run(["make", f"PYTHON={sys.executable}", *a], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # noqa: E731
    readme = (REPO / "README.md").read_text()
    for target in ("bench", "test", "install", "lint", "leaderboard", "drift"):
        assert f"make {target}" in readme
    bench = make("bench", "MODEL=template", "DATA=synth-tiny", "PROFILE=ci", f"LEADERBOARDS={tmp_path}/lb", f"RUNS={tmp_path}/runs",
                 f"BENCH_ARGS=--root {synth_tiny} --no-progress")  # fmt: skip
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert make("leaderboard", f"LEADERBOARDS={tmp_path}/lb").returncode == 0 and (tmp_path / "lb" / "README.md").is_file()
    assert make("lint").returncode == 0
    for target, expected in (("test", "pytest"), ("install", "pip install"), ("drift", "facebench drift")):
        dry = make("-n", "-B", target)
        assert dry.returncode == 0 and expected in dry.stdout, (target, dry.stdout)


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "--model", "nope", "--data", "synth-tiny"], "model 'nope': expected one of"),
    (["bench", "--model", "ff", "--data", "nowhere"], "dataset 'nowhere': expected a preset name"),
    (["evaluate", "--pred", ".", "--data", "synth-tiny", "--split", "test_b"], "split 'test_b' of dataset synth-tiny: expected one of"),
    (["test", "--model", "Template", "--data.dataset", "synth-tiny", "--ckpt_path", "/no/such.ckpt"], "--ckpt_path: expected a checkpoint file"),
])  # fmt: skip
def test_a_users_mistake_is_one_line(argv, message, capsys, synth_tiny, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", str(synth_tiny.parent))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    assert exit_info.value.code == 2 and message in out.out and "Traceback" not in out.out + out.err


def test_an_unknown_profile_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--profile", "fast"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "invalid choice: 'fast'" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_bench_config_passed_to_the_lightning_cli_is_named(short_run, capsys):
    out, rows = short_run
    run = out / "runs" / rows[0]["run_dir"]
    with pytest.raises(SystemExit):
        main(["test", "--config", str(run / "config.yaml")])
    assert f"use {run / 'cli.yaml'}" in capsys.readouterr().out
    (run / "cli.yaml").rename(run / "old.yaml")  # a run folder from before cli.yaml existed
    try:
        with pytest.raises(SystemExit):
            main(["test", "--config", str(run / "config.yaml")])
        assert "older version" in capsys.readouterr().out
    finally:
        (run / "old.yaml").rename(run / "cli.yaml")


def test_argument_errors_come_before_the_training_stack_loads():
    """A mistyped model or dataset is answered without importing Lightning (seconds, not tens)."""
    code = ("import sys\nfrom facebench.cli import main\n"
            "for argv in (['bench', '--model', 'nope'], ['bench', '--model', 'ff', '--data', 'nope']):\n"
            "    try:\n        main(argv)\n    except SystemExit as exc:\n        assert exc.code == 2\n"
            "print('lightning loaded' if 'lightning' in sys.modules else 'lightning not loaded')")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "error: model 'nope'" in result.stdout and "lightning not loaded" in result.stdout, result.stdout + result.stderr
