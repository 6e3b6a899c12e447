"""FaceFormer training schemes side by side: the faithful frame-by-frame autoregressive unroll
(the official training, the `full` profile's default) against parallel passes (teacher forcing,
and scheduled sampling in two passes), on the same data, seed and settings.

For each scheme: training frames per second (training time without validation), the validation
LVE of motion generated from audio after every epoch, and the training time until it first reaches
a target LVE (by default the faithful scheme's best x 1.05). Prints the ratios to the faithful
scheme, measured in this process.

    python benchmarks/training_speed.py [--profile ci] [--data synth-tiny] [--epochs 25] [--target X] [--compile [YAML]]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning as L
import torch
from rich.console import Console
from rich.table import Table

from facebench.bench.config import deep_merge, model_specs, resolve
from facebench.bench.cost import StageTimer
from facebench.bench.runner import build, trainer_for
from facebench.metrics.callback import MeshMetricsCallback
from facebench.yamlio import read_yaml

SCHEMES = {  # each a config overlay
    "autoregressive (faithful)": {},
    "teacher forcing": {"model": {"init_args": {"teacher_forcing": True}}},
    "scheduled sampling 0.5": {"model": {"init_args": {"scheduled_sampling": 0.5}}},
}


class EpochRecord(StageTimer):
    """After each validation: the training seconds so far (validation excluded) and val/lve."""

    def on_fit_start(self, trainer, pl_module) -> None:
        super().on_fit_start(trainer, pl_module)
        self.epochs: list[tuple[float, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        trained = self._validation_start - self.start - self.validation_s
        super().on_validation_end(trainer, pl_module)
        self.epochs.append((trained, float(trainer.callback_metrics["val/lve"])))


def train(config: dict, root: str | None, scheme: dict, folder: Path) -> tuple[EpochRecord, int]:
    config = deep_merge(config, scheme)
    torch.set_num_threads(int(config["threads"]))
    L.seed_everything(config["seed"], workers=True, verbose=False)
    data, model = build(config, root)
    model.checkpoint_dir = str(folder)
    record = EpochRecord()
    trainer = trainer_for(config["trainer"], folder, [MeshMetricsCallback(), record], progress=False, logger=False)
    trainer.fit(model, datamodule=data)
    return record, data.split_dataset("train").frames


def frames_per_s(record: EpochRecord, frames: int, after_first: bool = False) -> float:
    """Training frames per training second over the whole fit (`frames`: one epoch's); `after_first`:
    without the first epoch (where torch.compile compiles most of its graphs; nan after one epoch)."""
    if after_first:
        if len(record.epochs) < 2:
            return float("nan")
        return (len(record.epochs) - 1) * frames / (record.epochs[-1][0] - record.epochs[0][0])
    return len(record.epochs) * frames / record.epochs[-1][0]


def time_to(record: EpochRecord, target: float) -> float | None:
    return next((seconds for seconds, lve in record.epochs if lve <= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--data", default="synth-tiny")
    parser.add_argument("--root", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=None, help="validation LVE to reach (default: the faithful best x 1.05)")
    parser.add_argument("--compile", nargs="?", const="true", default=None, metavar="YAML",
                        help="also teacher forcing with the run setting `compile` (true, or a mapping such as '{dynamic: true}')")
    args = parser.parse_args()
    config = resolve(model_specs()["faceformer"], args.data, args.profile, args.seed)
    if args.epochs:
        config["trainer"]["max_epochs"] = args.epochs
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # --compile: the fastest scheme again with its networks' parts under torch.compile
        compiled = {f"teacher forcing, compile {args.compile}": {**SCHEMES["teacher forcing"], "compile": read_yaml(args.compile)}} if args.compile else {}
        for i, (name, scheme) in enumerate({**SCHEMES, **compiled}.items()):
            results[name] = train(config, args.root, scheme, Path(tmp) / str(i))
    faithful, faithful_frames = results[next(iter(SCHEMES))]
    target = args.target or 1.05 * min(lve for _, lve in faithful.epochs)
    table = Table(title=f"FaceFormer, {args.profile} on {args.data}, {config['trainer']['max_epochs']} epochs, seed {args.seed}; "
                        f"target val LVE {target:.4g}")  # fmt: skip
    for column in ("scheme", "train frames/s", "× faithful", "after epoch 1", "best val LVE", "epoch of best", "train s to target", "faithful ÷ this"):
        table.add_column(column)
    faithful_fps = frames_per_s(faithful, faithful_frames)
    faithful_to = time_to(faithful, target)
    for name, (record, frames) in results.items():
        fps = frames_per_s(record, frames)
        best_epoch, (_, best) = min(enumerate(record.epochs), key=lambda item: item[1][1])
        reached = time_to(record, target)
        ratio = f"{faithful_to / reached:.2f}" if reached and faithful_to else "not reached"
        table.add_row(name, f"{fps:.0f}", f"{fps / faithful_fps:.2f}", f"{frames_per_s(record, frames, after_first=True):.0f}", f"{best:.4g}", str(best_epoch + 1),
                      f"{reached:.1f}" if reached is not None else "not reached", ratio)  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
