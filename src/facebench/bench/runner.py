"""`facebench bench`: train a model (its stages in order, each with its own settings and its
checkpoint chosen on its own validation metric), test it on every test split under the sealed
condition protocol, measure its cost, keep the run folder, and append one leaderboard row per test
split (docs/architecture.md, "The bench runner")."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import multiprocessing
import subprocess
from pathlib import Path

import lightning as L
import torch
import yaml
from jsonargparse import ArgumentError, ArgumentParser
from lightning.pytorch.cli import instantiate_class
from lightning.pytorch.loggers import CSVLogger

import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
from facebench.bench import distributed
from facebench.bench.config import ModelSpec, compile_options, config_hash, deep_merge, resolve
from facebench.bench.cost import PeakMemory, StageTimer, real_time_factor
from facebench.bench.leaderboard import append_rows, leaderboard_path
from facebench.bench.predictions import prediction_names, save_prediction
from facebench.bench.progress import DisplayScaleProgressBar
from facebench.bench.schedule import LearningRateSchedule
from facebench.data.datamodule import FaceDataModule
from facebench.data.segmentation import N_CLASSES
from facebench.environment import environment, portable_kernels
from facebench.errors import FacebenchError
from facebench.lipreading.reference import dataset_lip_reader
from facebench.metrics.callback import MeshMetricsCallback, trainable_parameters
from facebench.metrics.judges import JUDGE_COLUMNS, VideoJudges, video_judges
from facebench.models.base import TalkingFaceModule
from facebench.yamlio import read_yaml

log = logging.getLogger(__name__)
PREDICTIONS_KEPT = 2  # clips per test split whose predictions are saved with the run


def git_sha() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
        # The leaderboard CSVs are results, not code: a run appending to them leaves the code clean.
        code = ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)leaderboards"]
        dirty = subprocess.run(code, capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_class(config: dict) -> type[TalkingFaceModule]:
    module_name, class_name = config["model"]["class_path"].rsplit(".", 1)
    return getattr(__import__(module_name, fromlist=[class_name]), class_name)


def reads_deterministic(cls: type[TalkingFaceModule]) -> bool:
    """Whether a model's privileged inputs need the synthetic corpus' deterministic part (the
    oracles), which the reader then loads with every clip."""
    return bool(set(cls.privileged_inputs) & {"deterministic", "protocol_oracle"})


def check_init_args(cls: type, init_args: dict) -> None:
    """The model's arguments against its signature's types (jsonargparse, as LightningCLI checks
    them): one error naming the key, instead of a wrong type (`--set model.init_args.lr=fast`) or a
    misspelt name failing inside training. Only checked: the model gets `init_args` as they are."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "model.init_args")
    try:
        parser.parse_object({"model": {"init_args": init_args}})
    except ArgumentError as error:
        raise FacebenchError(f"model {cls.__name__}: {' '.join(str(error).split())}") from None


def build(config: dict, root: str | None) -> tuple[FaceDataModule, TalkingFaceModule]:
    """The datamodule (read and validated: a missing or malformed dataset fails here, before any
    training) and the model, with the dataset's facts and the evaluation settings."""
    cls = model_class(config)
    data = FaceDataModule(config["dataset"], root=root, seed=config["seed"], with_deterministic=reads_deterministic(cls), **config.get("data", {}))
    if data.preset.modality not in cls.modalities:
        raise FacebenchError(f"model {cls.__name__}: generates {' or '.join(cls.modalities)}, but dataset {data.preset.name} is "
                             f"{data.preset.modality}; expected a {' or '.join(cls.modalities)} dataset")  # fmt: skip
    data.setup()
    preset = data.preset
    facts = {"n_vertices": data.n_vertices, "n_styles": len(data.train_subjects), "fps": preset.fps,
             "period": preset.period, "audio_per_frame": preset.audio_per_frame}  # fmt: skip
    # Facts only some models take: the dataset's emotion classes and intensity levels; a video
    # dataset's frame size and class count.
    accepted = inspect.signature(cls.__init__).parameters
    optional = (("n_emotions", data.n_emotions), ("n_levels", data.n_levels), ("image_size", preset.image_size), ("n_classes", N_CLASSES))
    facts |= {k: v for k, v in optional if k in accepted}  # 0: none labelled
    facts |= cls.dataset_facts(data, config["model"].get("init_args", {}))
    init = {"class_path": config["model"]["class_path"], "init_args": {**config["model"].get("init_args", {}), **facts}}
    check_init_args(cls, init["init_args"])
    model = instantiate_class((), init)
    evaluation = config.get("evaluation", {})
    model.evaluation_samples = int(evaluation.get("samples", 1)) if model.stochastic else 1
    model.sample_seed = int(evaluation.get("seed", 0))
    options = compile_options(config)
    if options is not None:
        model.compile_networks(**options)
    return data, model


def compile_label(config: dict) -> str:
    """The row's `compile`: empty where the networks run eagerly, else the backend and mode."""
    options = compile_options(config)
    if options is None:
        return ""
    return ", ".join([options.get("backend", "inductor"), *([options["mode"]] if options.get("mode") else [])])


def trainer_for(trainer_args: dict, run_dir: Path, callbacks: list, progress: bool, **overrides) -> L.Trainer:
    if progress:
        callbacks = [*callbacks, DisplayScaleProgressBar(leave=False)]
    return L.Trainer(
        default_root_dir=run_dir,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=progress,
        log_every_n_steps=10,
        **{**trainer_args, **overrides},
    )


def load_weights(model: TalkingFaceModule, checkpoint: str | Path) -> None:
    model.load_state_dict(torch.load(checkpoint, map_location=model.device, weights_only=False)["state_dict"])


def fit_stages(model: TalkingFaceModule, data: FaceDataModule, config: dict, run_dir: Path, progress: bool) -> dict:
    """Each stage a fit with its own settings (`config["stages"][name]`: trainer, data, lr, over
    the defaults), validated and checkpointed on its own monitor; the next stage starts from this
    one's best weights. `run_dir/stages.json` records each stage as it finishes. A run folder that
    has some (`bench --resume`) skips the finished stages and continues the interrupted one from
    its last checkpoint (`<stage>-last.ckpt`, saved at every epoch's end)."""
    model.checkpoint_dir = str(run_dir / "checkpoints")
    progress_file = run_dir / "stages.json"
    finished = {r["stage"]: r for r in json.loads(progress_file.read_text())} if progress_file.is_file() else {}
    default_batch_size = data.batch_size
    records = []
    for stage in model.stages:
        if stage.name in finished:
            records.append(finished[stage.name])
            load_weights(model, finished[stage.name]["checkpoint"])
            continue
        settings = config.get("stages", {}).get(stage.name, {})
        model.set_stage(stage.name, lr=settings.get("lr"))
        data.batch_size = settings.get("data", {}).get("batch_size", default_batch_size)
        timer = StageTimer()
        schedule = LearningRateSchedule(settings.get("lr_schedule", config.get("lr_schedule", "constant")))
        trainer = trainer_for(deep_merge(config["trainer"], settings.get("trainer", {})), run_dir, [MeshMetricsCallback(), timer, schedule], progress,
                              logger=CSVLogger(run_dir, name="logs", version=stage.name))  # fmt: skip
        last = run_dir / "checkpoints" / f"{stage.name}-last.ckpt"
        resumed = last.is_file()  # an interrupted stage continues from its last epoch
        trainer.fit(model, datamodule=data, ckpt_path=str(last) if resumed else None)
        best = trainer.checkpoint_callback
        if not best.best_model_path:
            raise RuntimeError(f"stage '{stage.name}' saved no checkpoint: was '{stage.monitor}' logged during validation?")
        load_weights(model, best.best_model_path)
        records.append({
            "stage": stage.name, "monitor": stage.monitor, "best_score": float(best.best_model_score),
            "checkpoint": best.best_model_path, "epochs": trainer.current_epoch, "batch_size": data.batch_size,
            "frames": data.split_dataset("train").frames * trainer.current_epoch, "lr": model.learning_rate, "lr_schedule": schedule.name,
            "train_time_s": timer.train_s, "validation_time_s": timer.validation_s, "resumed": resumed,
        })  # fmt: skip
        if distributed.is_main():
            progress_file.write_text(json.dumps(records, indent=2))
    data.batch_size = default_batch_size
    seconds = sum(r["train_time_s"] for r in records)
    frames = sum(r["frames"] for r in records)
    return {"train_time_s": seconds, "train_frames_per_s": frames / seconds if seconds else None, "stages": records}


@torch.no_grad()
def save_predictions(model: TalkingFaceModule, data: FaceDataModule, folder: Path) -> None:
    """A few predictions per test split, named as FaceFormer saves them (a stochastic model's first sample)."""
    model.eval()
    for split in data.test_split_names:
        entries = data.split_dataset(split).entries
        loader = data.sealed_dataloader(split, model.conditions_used, model.privileged_inputs)
        for i, batch in enumerate(loader):
            if i == PREDICTIONS_KEPT:
                break
            inputs = batch.inputs.to(model.device)
            names = prediction_names(entries[int(batch.index[0])].name, model.conditions(inputs), data.train_subjects)
            for name, samples in zip(names, model.generate_conditions(inputs)):
                save_prediction(folder / split, name, samples)


LINKED_FACTS = ("n_vertices", "n_styles", "fps", "period", "audio_per_frame")  # linked from the datamodule by the Lightning CLI


def lightning_config(config: dict, model: TalkingFaceModule, root: str | None, data: FaceDataModule) -> dict:
    """The run as a `facebench fit|test|predict --config` file (LightningCLI's format)."""
    # Facts the CLI does not link: the emotion labels' sizes and the model's own `dataset_facts`.
    names = ("n_emotions", "n_levels", "image_size", *type(model).dataset_facts(data, config["model"].get("init_args", {})))
    injected = {k: model.hparams[k] for k in names if k in model.hparams}
    init = {k: v for k, v in {**config["model"].get("init_args", {}), **injected}.items() if k not in LINKED_FACTS}
    data = {"dataset": config["dataset"], "root": root, "seed": config["seed"], **config.get("data", {})}
    if reads_deterministic(type(model)):
        data["with_deterministic"] = True
    return {"seed_everything": config["seed"], "model": {"class_path": config["model"]["class_path"], "init_args": init},
            "data": data, "trainer": config["trainer"]}  # fmt: skip


def still_path(leaderboards: Path, dataset: str, model: str, variant: str = "") -> Path:
    """`leaderboards/stills/<dataset>/<model>[-<variant>].png`: what the leaderboard shows of a model."""
    return Path(leaderboards) / "stills" / dataset / (model + (f"-{variant}" if variant else "") + ".png")


def render_kept(run_dir: Path, root: str | None, clips: int, still: Path | None) -> None:
    """Videos of a few kept predictions beside their ground truth, and a still for the leaderboard.
    Outside the metric path: a rendering failure is said in one line and the run goes on."""
    from facebench.render.animate import render_run

    try:
        render_run(run_dir, root, size=256, per_split=clips, still=still)
    except Exception as exc:  # rendering is a view of the results, never a condition of them
        log.warning("rendering the run's clips failed (%s); the rows are unaffected", exc)


def relative(path: str | Path, runs: Path) -> str:
    """A path inside the runs folder, relative to it (rows stay valid when the folder moves)."""
    try:
        return str(Path(path).resolve().relative_to(runs.resolve()))
    except ValueError:
        return str(path)


def new_run_dir(runs: Path, dataset_name: str, spec: ModelSpec, profile: str, seed: int, variant: str = "") -> Path:
    """`runs/<dataset name>/<model>[-<variant>]-<profile>-seed<seed>-<UTC time>`."""
    label = spec.name + (f"-{variant}" if variant else "")
    return runs / dataset_name / f"{label}-{profile}-seed{seed}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}"


def run_one(spec: ModelSpec, dataset: str, profile: str, seed: int, variant: str = "", root: str | None = None,
            leaderboards: Path | None = Path("leaderboards"), runs: Path = Path("runs"), progress: bool = True,
            overrides: dict | None = None, run_dir: Path | None = None) -> list[dict]:  # fmt: skip
    """Train and test one model variant; returns its rows (appended to the leaderboard unless None).
    `overrides` is merged over the resolved config (the command line's settings). `run_dir`: the
    run's folder (default a new one); a folder that already holds the run's config is continued."""
    saved = run_dir / "config.yaml" if run_dir is not None else None
    config = read_yaml(saved.read_text()) if saved is not None and saved.is_file() else resolve(spec, dataset, profile, seed, variant, overrides)
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))  # fixed for the run: results depend on it (README, "Determinism")
    if portable_kernels():
        # oneDNN's convolutions block their reductions by the CPU's cache sizes; torch's own goes
        # through MKL's matrix products, which the portable kernels fix (facebench.environment).
        torch.backends.mkldnn.enabled = False
    distributed.join(config["trainer"])  # several processes: one group for every run of the command
    L.seed_everything(seed, workers=True, verbose=False)
    data, model = build(config, root)
    with distributed.main_first():  # trained once per dataset, visibly, before the timed training
        lip_reader = dataset_lip_reader(data, progress)
        judges = video_judges(data, config.get("evaluation"), progress) if data.preset.modality == "video" else VideoJudges()
    stamp = distributed.from_main(dt.datetime.now(dt.timezone.utc))
    run_dir = distributed.from_main(run_dir or new_run_dir(runs, data.name, spec, profile, seed, variant))
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (run_dir / "cli.yaml").write_text(yaml.safe_dump(lightning_config(config, model, root, data), sort_keys=False))
    distributed.barrier()
    cost = {"train_time_s": 0.0, "train_frames_per_s": None, "stages": []}
    with PeakMemory() as memory:
        if model.stages:
            cost = fit_stages(model, data, config, run_dir, progress)
        metrics = MeshMetricsCallback(lip_reader=lip_reader, judges=judges)
        tester = trainer_for(config["trainer"], run_dir, [metrics], progress, logger=False)
        tester.test(model, datamodule=data, verbose=False)
    device = tester.strategy.root_device
    if not distributed.is_main():  # the main process measures, keeps and writes; the others are done
        distributed.barrier()
        return []
    rtf, rtf_clips = real_time_factor(model, data)
    save_predictions(model, data, run_dir / "predictions")
    if config.get("render_clips") and data.preset.modality == "mesh":
        still = None if leaderboards is None else still_path(leaderboards, data.name, spec.name, variant)
        render_kept(run_dir, root, int(config["render_clips"]), still)
    encoder = config["model"].get("init_args", {}).get("audio_encoder", {})
    rows = []
    for split, values in metrics.results.items():
        rows.append({
            "model": spec.name, "variant": variant, "dataset": data.name, "split": split, "profile": profile,
            "seed": seed, "git_sha": git_sha(), "date": stamp.isoformat(timespec="seconds"),
            **{k: v for k, v in values.items() if k not in ("region_set", "protocol", "per_reader", *JUDGE_COLUMNS)},
            "params": sum(p.numel() for p in model.parameters()), "trainable_params": trainable_parameters(model),
            "train_time_s": cost["train_time_s"], "train_frames_per_s": cost["train_frames_per_s"],
            "rtf": rtf, "rtf_clips": rtf_clips, "peak_memory_mb": memory.mb(device), "device": str(device), "processes": tester.world_size,
            "precision": str(tester.precision), "compile": compile_label(config), **environment(device),
            "protocol": values["protocol"], "inputs": model.describe_inputs(data.preset.modality), "samples": model.evaluation_samples,
            "config_hash": config_hash(config), "checkpoint": ";".join(relative(s["checkpoint"], runs) for s in cost["stages"]),
            "region_set": values["region_set"], "per_reader": values["per_reader"], **{k: values[k] for k in JUDGE_COLUMNS},
            "audio_encoder": encoder.get("name", ""),
            "official_code": spec.official_code(profile, variant), "run_dir": relative(run_dir, runs),
        })  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(rows, indent=2, default=str))
    if leaderboards is not None:
        append_rows(leaderboard_path(leaderboards, data.name), rows)
    distributed.barrier()
    return rows


def _run_in_child(kwargs: dict, verbose: bool, results) -> None:
    from facebench.console import configure_logging

    configure_logging(verbose)
    try:
        results.send(run_one(**kwargs))
    except BaseException as exc:  # the parent re-raises it; Lightning turns Ctrl-C into SystemExit
        try:
            results.send(exc)
        except Exception:  # an exception that does not pickle: its text
            results.send(RuntimeError(f"{type(exc).__name__}: {exc}"))


def run_isolated(verbose: bool = False, **kwargs) -> list[dict]:
    """`run_one` in a fresh process: each run's peak memory is its own, whatever ran before it.
    Interrupting the caller (Ctrl-C, SIGTERM) stops the run's process too."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_run_in_child, args=(kwargs, verbose, sender))
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"the run's process ended without a result (exit code {process.exitcode})") from None
    except BaseException:
        process.terminate()
        raise
    finally:
        process.join()
    if isinstance(result, BaseException):
        raise result
    return result
