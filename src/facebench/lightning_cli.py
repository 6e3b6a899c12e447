"""`facebench fit|validate|test|predict`: Lightning's CLI over any facebench model and the dataset
datamodule, as TorchGeo does. The dataset's facts (vertex count, styles, frame rate, period,
audio alignment) are linked into the model, and every run is scored by the shared metrics callback.
The checkpoint kept is the one `bench` keeps, the best on the model's first stage's validation
metric (the model's `configure_callbacks`); multi-stage models train all their stages with `bench`.

    facebench fit --model FaceFormer --data.dataset synth --trainer.max_epochs 10
    facebench test --model FaceFormer --data.dataset synth --ckpt_path best-or-a-path.ckpt
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
import facebench.models.anchors  # noqa: F401  (so short class names resolve)
import facebench.models.dualtalker  # noqa: F401
import facebench.models.faceformer  # noqa: F401
from facebench.bench.progress import DisplayScaleProgressBar
from facebench.data.datamodule import FaceDataModule
from facebench.metrics.callback import MeshMetricsCallback
from facebench.models.base import TalkingFaceModule

DATASET_FACTS = ("n_vertices", "n_styles", "fps", "period", "audio_per_frame")


class FacebenchCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        for fact in DATASET_FACTS:
            parser.link_arguments(f"data.{fact}", f"model.init_args.{fact}", apply_on="instantiate")

    def _instantiate_trainer(self, config: dict, callbacks: list):
        # Lightning refuses a progress bar callback when the bar is switched off.
        if config.get("enable_progress_bar", True) is not False:
            callbacks = [*callbacks, DisplayScaleProgressBar()]
        return super()._instantiate_trainer(config, callbacks)


def run_lightning_cli(args: list[str]) -> FacebenchCLI:
    return FacebenchCLI(
        model_class=TalkingFaceModule,
        datamodule_class=FaceDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [MeshMetricsCallback(stored_lip_reader=True)], "num_sanity_val_steps": 0},
        args=args,
    )
