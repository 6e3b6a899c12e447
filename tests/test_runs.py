"""Runs that give the same numbers on every machine setting, that stop cleanly and resume, and the
rough edges a new user hits: mixed splits, short predictions, messages."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebench.bench import leaderboard as lb
from facebench.cli import main
from facebench.environment import kernels
from tests.fabricate import write_own_dataset

REPO = Path(__file__).resolve().parents[1]
# Two epochs on eight clips, teacher-forced (parallel): these tests are about runs, not about FaceFormer.
SHORT = ["--set", "trainer.max_epochs=2", "--set", "data.max_train_clips=8", "--set", "model.init_args.teacher_forcing=true"]


def bench(synth_tiny: Path, out: Path, *extra: str, env: dict | None = None, wait: bool = True):
    command = [sys.executable, "-m", "facebench", "bench", "--model", "ff", "--variants", "base", "--data", "synth-tiny",
               "--root", str(synth_tiny), "--profile", "ci", "--leaderboards", str(out / "lb"), "--runs", str(out / "runs"), "--no-progress", *extra]  # fmt: skip
    environment = {**os.environ, **(env or {})}
    if wait:
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, cwd=REPO)
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)


@pytest.mark.slow
def test_the_thread_setting_not_the_machines_default_decides_the_numbers(synth_tiny, tmp_path):
    """Runs with different OMP_NUM_THREADS and the same `threads` give identical rows, which record it."""
    for name, omp in (("one", "1"), ("two", "2")):
        result = bench(synth_tiny, tmp_path / name, *SHORT, "--threads", "2", env={"OMP_NUM_THREADS": omp})
        assert result.returncode == 0, result.stdout + result.stderr
    one, two = (pd.read_csv(tmp_path / n / "lb" / "synth-tiny.csv") for n in ("one", "two"))
    assert (one.threads == 2).all() and (two.threads == 2).all() and one.cpu.iloc[0]
    assert one.kernels.str.startswith(kernels().split(",")[0] + ", oneDNN ").all()  # torch's capability: the environment's, as here
    for metric in ("lve", "fdd", "mve", "eve", "per"):
        assert one[metric].tolist() == two[metric].tolist(), metric


def test_the_leaderboard_keeps_environments_apart():
    row = {"model": "m", "variant": "", "dataset": "d", "split": "s", "profile": "quick", "config_hash": "h", "seed": 0,
           "date": "2026-01-01", "lve": 1.0, "torch": "2.13.0", "cpu": "AMD EPYC", "gpu": "", "threads": 2}  # fmt: skip
    # One CPU name with other kernels (instruction sets) is another environment too; a row from
    # before the `kernels` column keeps its label.
    avx512 = {**row, "date": "2026-01-03", "lve": 5.0, "kernels": "AVX512, oneDNN native, MKL_CBWR=auto"}
    rows = pd.DataFrame([row, {**row, "date": "2026-01-02", "lve": 3.0, "cpu": "Intel Xeon"}, {**row, "seed": 1, "lve": 2.0}, avx512])
    table = lb.summarise(rows)
    assert sorted(table.lve_mean.tolist()) == [1.5, 3.0, 5.0]  # the other machines' seed 0 did not replace this one's
    header, lines, _, _ = lb.split_tables("d", rows)["s"]
    assert "environment" in header and {line[header.index("environment")] for line in lines} == {
        "AMD EPYC, 2 threads, torch 2.13.0", "Intel Xeon, 2 threads, torch 2.13.0", "AMD EPYC (AVX512, oneDNN native, MKL_CBWR=auto), 2 threads, torch 2.13.0"}


def test_rows_given_the_clips_own_ground_truth_are_marked_and_not_ranked():
    """A model that declares the `pose` condition (the driving video is the clip itself) is shown
    with a dagger and its footnote, and the bold goes to the best of the others."""
    row = {"model": "seg", "variant": "", "dataset": "d", "split": "s", "profile": "quick", "config_hash": "h", "seed": 0,
           "date": "2026-01-01", "psnr": 20.0, "inputs": "audio, reference frame and its mask, frame count from audio"}  # fmt: skip
    posed = {**row, "variant": "driving_pose", "config_hash": "p", "psnr": 21.0, "inputs": row["inputs"] + ", pose: the driving video's masks, lower half hidden"}
    header, lines, best, note = lb.split_tables("d", pd.DataFrame([row, posed]))["s"]
    variants = [line[header.index("variant")] for line in lines]
    assert variants == ["", "driving_pose †"] and best["PSNR"] == 0 and note.startswith("† also given part of the clip's own ground truth")
    assert "†" not in lb.split_tables("d", pd.DataFrame([row]))["s"][3]


@pytest.mark.slow
def test_an_interrupted_run_exits_non_zero_and_resumes(synth_tiny, tmp_path):
    running = bench(synth_tiny, tmp_path, "--set", "trainer.max_epochs=6", "--set", "data.max_train_clips=8", wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs").rglob("fit-last.ckpt")):
        time.sleep(0.5)
    (last,) = (tmp_path / "runs").rglob("fit-last.ckpt")
    running.send_signal(signal.SIGTERM)
    out = running.communicate(timeout=120)[0]
    run = last.parents[1]
    assert running.returncode == 143 and f"--resume {run}" in out and "Traceback" not in out, out
    assert not (tmp_path / "lb" / "synth-tiny.csv").exists()
    resumed = bench(synth_tiny, tmp_path, "--resume", str(run))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    stages = pd.read_json(run / "stages.json")
    assert stages.resumed.tolist() == [True] and stages.epochs.tolist() == [6]
    assert len(pd.read_csv(tmp_path / "lb" / "synth-tiny.csv")) == 2


def test_a_split_may_mix_seen_and_unseen_speakers(tmp_path):
    """The README's own-dataset example with a test split of a training speaker and a new one."""
    folder = write_own_dataset(tmp_path / "mine", ["anna", "cleo"])
    from facebench.bench.config import resolve_models
    from facebench.bench.runner import run_one

    (spec,) = resolve_models("template", str(folder))
    (row,) = run_one(spec, str(folder), "ci", 0, leaderboards=None, runs=tmp_path / "runs", progress=False)
    assert row["clips"] == 2 and row["protocol"] == "own style for seen speakers, mean over 2 training styles for unseen"


def test_short_predictions_are_refused_unless_allowed(synth_tiny, tmp_path, monkeypatch):
    from facebench.data.datamodule import FaceDataModule
    from facebench.errors import DataError
    from facebench.metrics import evaluate
    from facebench.metrics.evaluate import evaluate_folder

    monkeypatch.setattr(evaluate, "dataset_lip_reader", lambda data, progress: None)  # PER is not the point here

    data = FaceDataModule("synth-tiny", root=str(synth_tiny))
    clips = data.split_dataset("test_seen")
    for i in range(len(clips)):
        clip = clips[i]
        keep = len(clip.vertices) // 2 if i < 3 else len(clip.vertices) - 1
        np.save(tmp_path / f"{clip.name}.npy", clip.vertices[:keep].numpy().reshape(keep, -1))
    with pytest.raises(DataError, match=r"3 shorter: S01_s37.npy \(\d+ of \d+ frames\)"):
        evaluate_folder(tmp_path, "synth-tiny", "test_seen", root=str(synth_tiny), progress=False)
    result = evaluate_folder(tmp_path, "synth-tiny", "test_seen", root=str(synth_tiny), progress=False, allow_short=True)
    assert result["lve"] == 0 and result["frames_dropped"] > 3 * 15


def test_messages_keep_their_brackets_and_say_where_to_look(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "facebench.yaml").write_text("name: mine\nfps: 30\n")
    with pytest.raises(SystemExit):
        main(["bench", "--model", "template", "--data", str(tmp_path / "mine")])
    assert "['fps', 'name', 'splits', 'test_splits', 'train_subjects']" in capsys.readouterr().out
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    with pytest.raises(SystemExit):
        main(["bench", "--model", "template", "--data", "vocaset"])
    out = capsys.readouterr().out
    assert "$FACEBENCH_DATA" in out and "--root" in out


def test_command_line_trainer_settings_are_every_stages(synth_tiny):
    """`--max-epochs` (any trainer or data setting from the command line) reaches a stage that sets
    its own too, instead of being undone by it."""
    from facebench.bench.config import ModelSpec, model_specs, resolve
    from facebench.cli import build_parser, command_line_overrides

    overrides = command_line_overrides(build_parser().parse_args(["bench", "--model", "ct", "--max-epochs", "2", "--precision", "bf16-mixed"]))
    plain = resolve(model_specs()["codetalker"], "synth-tiny", "quick", 0)
    config = resolve(model_specs()["codetalker"], "synth-tiny", "quick", 0, overrides=overrides)
    assert {s: t["trainer"]["max_epochs"] for s, t in plain["stages"].items()} == {"vqvae": 30, "predictor": 30}
    assert {s: t["trainer"] for s, t in config["stages"].items()} == {s: {"max_epochs": 2, "precision": "bf16-mixed"} for s in ("vqvae", "predictor")}
    assert config["trainer"]["max_epochs"] == 2
    raw = model_specs()["codetalker"].raw  # a stage with a batch size of its own keeps the command line's
    staged = ModelSpec("codetalker", {**raw, "stages": {**raw["stages"], "vqvae": {**raw["stages"]["vqvae"], "data": {"batch_size": 8}}}})
    batch = command_line_overrides(build_parser().parse_args(["bench", "--model", "ct", "--batch-size", "2"]))
    assert resolve(staged, "synth-tiny", "quick", 0, overrides=batch)["stages"]["vqvae"]["data"] == {"batch_size": 2}


def test_set_values_and_configs_read_exponent_floats_as_numbers():
    """`--set model.init_args.lr=1e-3` is the number 0.001: YAML 1.1 (PyYAML's safe loader) reads
    `1e-3` as text, which reached the model as a string and failed deep inside training."""
    import yaml

    from facebench.cli import build_parser, command_line_overrides
    from facebench.yamlio import read_yaml

    args = build_parser().parse_args(["bench", "--model", "ct", "--set", "model.init_args.lr=1e-3", "--set", "model.init_args.motion_weight=1e6",
                                      "--set", "data.names=[2e5, abc, 0x10, 1.5]"])  # fmt: skip
    assert command_line_overrides(args) == {"model": {"init_args": {"lr": 0.001, "motion_weight": 1e6}}, "data": {"names": [2e5, "abc", 16, 1.5]}}
    assert read_yaml("lr: 3e-3\nname: e5\nday: 2026-11-25") == {"lr": 0.003, "name": "e5", "day": __import__("datetime").date(2026, 11, 25)}
    assert yaml.safe_load("1e6") == "1e6"  # PyYAML's own loader is left as it is


def test_model_arguments_are_checked_against_the_models_signature():
    """A wrong type or a misspelt name in `model.init_args` (a `--set`, a variant) is one error
    naming the key, before the model is built; every shipped config passes."""
    import inspect

    from facebench.bench.config import model_specs, resolve
    from facebench.bench.runner import check_init_args, model_class
    from facebench.errors import FacebenchError
    from facebench.models.faceformer import FaceFormer

    facts = {"n_vertices": 100, "n_styles": 4}
    with pytest.raises(FacebenchError, match=r"model FaceFormer: Parser key \"model.init_args.lr\": Expected a <class 'float'>. Got value: fast"):
        check_init_args(FaceFormer, {**facts, "lr": "fast"})
    with pytest.raises(FacebenchError, match="does not accept option 'lrr'"):
        check_init_args(FaceFormer, {**facts, "lrr": 1e-3})
    for spec in model_specs().values():
        for variant in spec.variants:
            config = resolve(spec, "synth", "quick", 0, variant)
            cls = model_class(config)
            optional = {"image_size": 64, "n_classes": 12, "n_emotions": 8, "n_levels": 3}
            accepted = {k: v for k, v in optional.items() if k in inspect.signature(cls.__init__).parameters}
            check_init_args(cls, {**config["model"].get("init_args", {}), **facts, **accepted})


def test_bench_run_settings_for_several_devices_are_checked(capsys):
    from facebench.bench.distributed import requested_processes
    from facebench.cli import build_parser, command_line_overrides

    parse = build_parser().parse_args
    trainer = command_line_overrides(parse(["bench", "--model", "ff", "--devices", "[0,1]", "--num-nodes", "2", "--strategy", "ddp"]))["trainer"]
    assert trainer == {"devices": [0, 1], "num_nodes": 2, "strategy": "ddp"} and requested_processes(trainer) == 4
    assert requested_processes({"devices": 3}) == 3 and requested_processes({"devices": "0,1"}) == 2 and requested_processes({}) == 1
    for several in ("auto", "-1", "[]"):
        with pytest.raises(SystemExit):
            main(["bench", "--model", "template", "--data", "synth-tiny", "--devices", several])
        out = capsys.readouterr().out
        assert f"--devices {several}" in out and "expected a count of devices per node" in out, out
    with pytest.raises(SystemExit):  # several nodes need a launcher on each
        main(["bench", "--model", "template", "--data", "synth-tiny", "--devices", "1", "--num-nodes", "2"])
    assert "--num-nodes 2: expected the command to be started on every node by a launcher" in capsys.readouterr().out


def test_variants_are_chosen_by_name(capsys):
    from facebench.bench.config import model_specs
    from facebench.cli import build_parser, chosen_variants

    parse, dual = build_parser().parse_args, model_specs()["dualtalker"]
    assert chosen_variants(dual, parse(["bench", "--model", "dual", "--variants", "base,no_dual"])) == ["", "no_dual"]
    assert chosen_variants(dual, parse(["bench", "--model", "dual"])) == dual.variants  # one model: all by default
    assert chosen_variants(dual, parse(["bench", "--model", "all"])) == [""]
    with pytest.raises(SystemExit):
        main(["bench", "--model", "dual", "--data", "synth-tiny", "--variants", "base,no_such"])
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "--variants base,no_such: expected all, base, or variants of dualtalker joined by '+'" in out, out
    assert "variant 'no_such' (in 'no_such'): expected one of no_dual," in out, out
    with pytest.raises(SystemExit):  # `base` is the model as configured, not a part of a composition
        main(["bench", "--model", "dual", "--data", "synth-tiny", "--variants", "base+no_dual"])
    assert "variant 'base' (in 'base+no_dual')" in " ".join(capsys.readouterr().out.split())


def test_variants_compose_in_order_on_the_command_line_and_in_yaml(capsys):
    from facebench.bench.config import model_specs, resolve
    from facebench.cli import build_parser, chosen_variants
    from facebench.errors import FacebenchError

    parse, dual = build_parser().parse_args, model_specs()["dualtalker"]
    assert chosen_variants(dual, parse(["bench", "--model", "dual", "--variants", "base,no_dual+ctc"])) == ["", "no_dual+ctc"]
    init = lambda variant: resolve(dual, "synth", "quick", 0, variant)["model"]["init_args"]  # noqa: E731
    assert init("cosine+mse")["consistency"] == "mse" and init("mse+cosine")["consistency"] == "cosine"  # the later one wins
    # A YAML list composes too, here with a variant of the model DualTalker extends (`faceformer.<name>`),
    # which is not one of DualTalker's own variants: the same config as the names joined by `+`.
    assert "faceformer.velocity" not in dual.variants and "velocity" not in dual.variants
    listed, joined = (resolve(dual, "synth", "quick", 0, v) for v in ("no_dual_teacher_forcing_cosine", "no_dual+teacher_forcing_cosine"))
    assert {**listed, "variant": ""} == {**joined, "variant": ""}
    assert listed["lr_schedule"] == "cosine" and listed["trainer"]["max_epochs"] == 40
    assert listed["model"]["init_args"]["dual_weight"] == 0.0 and listed["model"]["init_args"]["teacher_forcing"] is True
    with pytest.raises(FacebenchError, match=r"model dualtalker: variant 'no_such' \(in 'no_dual\+no_such'\): expected one of no_dual,"):
        resolve(dual, "synth", "quick", 0, "no_dual+no_such")
    with pytest.raises(SystemExit):
        main(["bench", "--model", "dual", "--data", "synth-tiny", "--variants", "no_dual+no_such"])
    assert "variant 'no_such' (in 'no_dual+no_such')" in " ".join(capsys.readouterr().out.split())


def test_a_variant_list_that_contains_itself_is_one_error():
    from facebench.bench.config import ModelSpec
    from facebench.errors import FacebenchError

    spec = ModelSpec("m", {"variants": {"x": {"model": {"init_args": {"a": 1}}}, "loop": ["x", "loop"], "uses_loop": ["loop"]}})
    assert spec.variant_settings("x") == {"model": {"init_args": {"a": 1}}}
    for variant in ("loop", "uses_loop", "x+loop"):
        with pytest.raises(FacebenchError, match=r"^model m: variant 'loop' \(in 'x\+loop'\): it contains itself$"):
            spec.variant_settings(variant)


def test_the_progress_bar_counts_epochs_from_one():
    from types import SimpleNamespace

    from facebench.bench.progress import DisplayScaleProgressBar

    bar = DisplayScaleProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=12)
    assert bar._get_train_description(11).strip() == "Epoch 12/12"


def test_make_install_is_per_python_environment(tmp_path):
    """A stamp per interpreter prefix: another environment installs again."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    # -B: ours may be installed already (no recipe to print); its stamp's name is what is compared
    ours = subprocess.run(["make", "-n", "-B", f"PYTHON={sys.executable}", "install"], cwd=REPO, env=env, capture_output=True, text=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    other = subprocess.run(["make", "-n", f"PYTHON={venv / 'bin' / 'python'}", "install"], cwd=REPO, env=env, capture_output=True, text=True)
    assert "pip install" in other.stdout and "install-" in other.stdout
    assert ours.stdout.split("install-")[1][:12] != other.stdout.split("install-")[1][:12]


def test_the_compile_switch_compiles_every_part_of_the_networks_in_place(synth_tiny):
    """`compile` (a profile's, a model YAML's or `--set compile=...`) puts the parts of a model's
    networks under torch.compile before training. Here with the `eager` backend, which traces
    through TorchDynamo and runs the traced graphs as they are: so the losses equal the uncompiled
    model's to the last digit (inductor's generated kernels may not; benchmarks/training_speed.py
    --compile measures those), checkpoints keep their keys, the row names the backend, and a wrong
    value is one error naming the key."""
    import lightning as L
    import torch

    from facebench.bench.config import model_specs, resolve
    from facebench.bench.runner import build, compile_label
    from facebench.data.sequence import collate
    from facebench.errors import FacebenchError

    spec = model_specs()["dualtalker"]  # FaceFormer's network and a lip reader beside it
    configs = {name: resolve(spec, "synth-tiny", "ci", 0, overrides=overrides)
               for name, overrides in (("eager", {}), ("compiled", {"compile": {"backend": "eager"}}))}  # fmt: skip
    models = {}
    for name, config in configs.items():
        L.seed_everything(0, verbose=False)
        data, models[name] = build(config, str(synth_tiny))
    compiled = [name for name, module in models["compiled"].named_modules() if getattr(module, "_compiled_call_impl", None) is not None]
    assert {"network.audio_encoder", "network.transformer_decoder", "reader.encoder"} <= set(compiled), compiled
    assert not any(getattr(module, "_compiled_call_impl", None) for module in models["eager"].modules())
    assert models["compiled"].state_dict().keys() == models["eager"].state_dict().keys()
    batch = collate([data.split_dataset("train")[i] for i in range(2)])
    losses = {}
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            losses[name] = model.losses(batch)["loss"]
    assert torch.equal(losses["compiled"], losses["eager"]) and torch.isfinite(losses["eager"])
    assert compile_label(configs["compiled"]) == "eager" and compile_label(configs["eager"]) == ""
    assert compile_label({"compile": True}) == "inductor" and compile_label({"compile": {"mode": "max-autotune"}}) == "inductor, max-autotune"
    assert "compile" in lb.COLUMNS
    with pytest.raises(FacebenchError, match=r"compile: expected true, false or a mapping of backend, mode, dynamic, fullgraph, found 'fast'"):
        resolve(spec, "synth-tiny", "ci", 0, overrides={"compile": "fast"})
