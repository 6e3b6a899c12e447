"""`facebench fit|validate|test|predict`: Lightning's CLI over any facebench model and the dataset
datamodule, as TorchGeo does. The dataset's facts (vertex count, styles, frame rate, period,
audio alignment) are linked into the model, and every run is scored by the shared metrics callback.
The checkpoint kept is the one `bench` keeps, the best on the model's first stage's validation
metric (the model's `configure_callbacks`); multi-stage models train all their stages with `bench`.

    facebench fit --model FaceFormer --data.dataset synth --trainer.max_epochs 10
    facebench test --config runs/<dataset>/<run>/cli.yaml --ckpt_path runs/<dataset>/<run>/checkpoints/fit-best.ckpt
    facebench predict --config runs/.../cli.yaml --ckpt_path ... --predictions DIR [--data.predict_splits '[test_seen]']
"""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
import facebench.models.anchors  # noqa: F401  (so short class names resolve)
import facebench.models.dualtalker  # noqa: F401
import facebench.models.emoface  # noqa: F401
import facebench.models.faceformer  # noqa: F401
import facebench.models.glditalker  # noqa: F401
from facebench.bench.predictions import PredictionWriter
from facebench.bench.progress import DisplayScaleProgressBar
from facebench.data.datamodule import FaceDataModule
from facebench.errors import FacebenchError
from facebench.metrics.callback import MeshMetricsCallback
from facebench.models.base import TalkingFaceModule
from facebench.yamlio import read_yaml

DATASET_FACTS = ("n_vertices", "n_styles", "fps", "period", "audio_per_frame")


class FacebenchCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        for fact in DATASET_FACTS:
            parser.link_arguments(f"data.{fact}", f"model.init_args.{fact}", apply_on="instantiate")
        parser.add_argument("--predictions", default="predictions", help="predict: the folder the .npy files are written to")

    def _parse_ckpt_path(self) -> None:
        # The model's configuration comes from the --config file (a run's cli.yaml has it whole);
        # Lightning would otherwise re-read it from the checkpoint, where a model built by `bench`
        # stores its hyperparameters without a class path.
        return

    def before_predict(self) -> None:
        self.trainer.callbacks.append(PredictionWriter(self.config["predict"]["predictions"]))

    def _instantiate_trainer(self, config: dict, callbacks: list):
        # Lightning refuses a progress bar callback when the bar is switched off.
        if config.get("enable_progress_bar", True) is not False:
            callbacks = [*callbacks, DisplayScaleProgressBar()]
        return super()._instantiate_trainer(config, callbacks)


def check_paths(args: list[str]) -> None:
    """The files a command names exist and are what it needs: one line each, before Lightning starts."""
    for flag, value in zip(args, args[1:]):
        if flag == "--ckpt_path" and value not in ("best", "last", "hpc", "registry") and not Path(value).is_file():
            raise FacebenchError(f"--ckpt_path: expected a checkpoint file, found no file at {value}")
        if flag == "--config" and Path(value).is_file():
            raw = read_yaml(Path(value).read_text()) or {}
            if isinstance(raw, dict) and "model_name" in raw:
                cli = Path(value).with_name("cli.yaml")
                raise FacebenchError(f"--config {value}: expected a Lightning CLI config, found a bench run's config.yaml; "
                                     + (f"use {cli}" if cli.is_file() else "this run folder is from an older version (no cli.yaml): run bench again"))  # fmt: skip


def run_lightning_cli(args: list[str]) -> FacebenchCLI:
    check_paths(args)
    return FacebenchCLI(
        model_class=TalkingFaceModule,
        datamodule_class=FaceDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [MeshMetricsCallback(stored_lip_reader=True)], "num_sanity_val_steps": 0},
        args=None if args == sys.argv[1:] else args,  # from the shell Lightning reads sys.argv itself (both: a warning)
    )
