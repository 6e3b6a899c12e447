"""`facebench fit|validate|test|predict`: Lightning's CLI over any facebench model and the dataset
datamodule, as TorchGeo does. The dataset's facts (vertex count, styles, frame rate, period,
audio alignment) are linked into the model, and every run is scored by the shared metrics callback.

    facebench fit --model FaceFormer --data.dataset synth --trainer.max_epochs 10
    facebench fit --config run.yaml        # a config.yaml saved by `facebench bench` works too
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
import facebench.models.anchors  # noqa: F401  (so short class names resolve)
import facebench.models.dualtalker  # noqa: F401
import facebench.models.faceformer  # noqa: F401
from facebench.data.datamodule import FaceDataModule
from facebench.metrics.callback import MeshMetricsCallback
from facebench.models.base import TalkingFaceModule

DATASET_FACTS = ("n_vertices", "n_styles", "fps", "period", "audio_per_frame")


class FacebenchCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        for fact in DATASET_FACTS:
            parser.link_arguments(f"data.{fact}", f"model.init_args.{fact}", apply_on="instantiate")


def run_lightning_cli(args: list[str]) -> FacebenchCLI:
    return FacebenchCLI(
        model_class=TalkingFaceModule,
        datamodule_class=FaceDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [MeshMetricsCallback()], "num_sanity_val_steps": 0},
        args=args,
    )
