"""`facebench bench`: train a model (its stages in order, the checkpoint chosen on validation),
test it on every test split under the condition protocol, measure its cost, keep the run folder,
and append one leaderboard row per test split."""

from __future__ import annotations

import datetime as dt
import json
import logging
import resource
import subprocess
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import instantiate_class
from lightning.pytorch.loggers import CSVLogger

import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
from facebench.bench.config import ModelSpec, config_hash, resolve
from facebench.bench.leaderboard import append_rows, leaderboard_path
from facebench.data.datamodule import FaceDataModule
from facebench.lipreading.reference import dataset_lip_reader
from facebench.metrics.callback import MeshMetricsCallback, trainable_parameters
from facebench.models.base import TalkingFaceModule

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


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(config: dict, root: str | None) -> tuple[FaceDataModule, TalkingFaceModule]:
    model_class = config["model"]["class_path"]
    module_name, class_name = model_class.rsplit(".", 1)
    needs_deterministic = getattr(__import__(module_name, fromlist=[class_name]), class_name).needs_deterministic
    data = FaceDataModule(config["dataset"], root=root, seed=config["seed"], with_deterministic=needs_deterministic, **config.get("data", {}))
    data.setup()  # reads and validates the dataset before any training: a missing one fails here
    preset = data.preset
    facts = {"n_vertices": data.n_vertices, "n_styles": len(data.train_subjects), "fps": preset.fps,
             "period": preset.period, "audio_per_frame": preset.audio_per_frame}  # fmt: skip
    init = {"class_path": model_class, "init_args": {**config["model"].get("init_args", {}), **facts}}
    return data, instantiate_class((), init)


def trainer_for(config: dict, run_dir: Path, callbacks: list, progress: bool, **overrides) -> L.Trainer:
    args = {**config["trainer"], **overrides}
    if progress:
        callbacks = [*callbacks, RichProgressBar(leave=False)]
    return L.Trainer(
        default_root_dir=run_dir,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=progress,
        log_every_n_steps=10,
        **args,
    )


def fit_stages(model: TalkingFaceModule, data: FaceDataModule, config: dict, run_dir: Path, progress: bool) -> dict:
    """Each stage a fit; the best checkpoint on validation LVE is loaded before the next stage."""
    seconds, frames, checkpoints = 0.0, 0, []
    for stage in model.stages:
        model.set_stage(stage)
        best = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename=f"{stage}-best", monitor="val/lve", mode="min", save_top_k=1)
        trainer = trainer_for(config, run_dir, [MeshMetricsCallback(), best], progress, logger=CSVLogger(run_dir, name="logs", version=stage))
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        seconds += time.perf_counter() - start
        frames += data.split_dataset("train").frames * trainer.current_epoch
        if best.best_model_path:
            state = torch.load(best.best_model_path, map_location=model.device, weights_only=False)["state_dict"]
            model.load_state_dict(state)
            checkpoints.append(best.best_model_path)
    return {"train_time_s": seconds, "train_frames_per_s": frames / seconds if seconds else None, "checkpoint": ";".join(checkpoints)}


@torch.no_grad()
def real_time_factor(model: TalkingFaceModule, data: FaceDataModule, clips: int = 3) -> float:
    """Compute seconds per second of audio, batch 1, one condition, on the first test clips."""
    model.eval()
    loader = data.test_dataloader()[0]
    seconds = audio = 0.0
    for i, batch in enumerate(loader):
        if i == clips:
            break
        batch = batch.to(model.device)
        batch.style = batch.style.clamp(min=0)
        start = time.perf_counter()
        model.generate(batch)
        seconds += time.perf_counter() - start
        audio += float(batch.audio_lengths[0]) / 16000
    return seconds / audio


@torch.no_grad()
def save_predictions(model: TalkingFaceModule, data: FaceDataModule, folder: Path) -> None:
    """A few predictions per test split, named as FaceFormer saves them."""
    model.eval()
    for split, loader in zip(data.test_split_names, data.test_dataloader()):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i, batch in enumerate(loader):
            if i == PREDICTIONS_KEPT:
                break
            batch = batch.to(model.device)
            styles = model.conditions(batch)
            for style, pred in zip(styles, model.generate_conditions(batch)):
                suffix = "" if len(styles) == 1 else f"_condition_{data.train_subjects[style]}"
                np.save(folder / split / f"{batch.names[0]}{suffix}.npy", pred.cpu().numpy().reshape(len(pred), -1))


def run_one(spec: ModelSpec, dataset: str, profile: str, seed: int, variant: str = "", root: str | None = None,
            leaderboards: Path | None = Path("leaderboards"), runs: Path = Path("runs"), progress: bool = True) -> list[dict]:  # fmt: skip
    """Train and test one model variant; returns its rows (appended to the leaderboard unless None)."""
    config = resolve(spec, dataset, profile, seed, variant)
    L.seed_everything(seed, workers=True, verbose=False)
    data, model = build(config, root)
    dataset_lip_reader(data, progress)  # trained once per dataset, before the timed training
    stamp = dt.datetime.now(dt.timezone.utc)
    label = spec.name + (f"-{variant}" if variant else "")
    run_dir = runs / dataset / f"{label}-{profile}-seed{seed}-{stamp:%Y%m%dT%H%M%S%f}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cost = {"train_time_s": 0.0, "train_frames_per_s": None, "checkpoint": ""}
    if model.stages:
        cost = fit_stages(model, data, config, run_dir, progress)
    metrics = MeshMetricsCallback()
    tester = trainer_for(config, run_dir, [metrics], progress, logger=False)
    model.inference_seconds = model.inference_audio_seconds = 0.0
    tester.test(model, datamodule=data, verbose=False)
    device = tester.strategy.root_device
    cost.update(
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=trainable_parameters(model),
        rtf=real_time_factor(model, data),
        peak_memory_mb=peak_memory_mb(device),
        device=str(device),
        precision=str(tester.precision),
    )
    save_predictions(model, data, run_dir / "predictions")
    encoder = config["model"].get("init_args", {}).get("audio_encoder", {})
    rows = []
    for split, values in metrics.results.items():
        rows.append({
            "model": spec.name, "variant": variant, "dataset": dataset, "split": split, "profile": profile,
            "seed": seed, "git_sha": git_sha(), "date": stamp.isoformat(timespec="seconds"),
            **{k: v for k, v in values.items() if k not in ("region_set", "protocol")},
            **cost, "protocol": values["protocol"], "config_hash": config_hash(config),
            "region_set": values["region_set"], "audio_encoder": encoder.get("name", ""),
            "official_code": bool(spec.raw.get("official_code", spec.raw.get("anchor", False))), "run_dir": str(run_dir),
        })  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(rows, indent=2, default=str))
    if leaderboards is not None:
        append_rows(leaderboard_path(leaderboards, dataset), rows)
    return rows
