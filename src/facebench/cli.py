"""The `facebench` command.

Tool commands (prepare, evaluate, synth, bench, leaderboard, drift) are plain subcommands;
`facebench fit|validate|test|predict --config X.yaml` is Lightning's own CLI over facebench's
models and datamodule, as in TorchGeo.
"""

from __future__ import annotations

import argparse
import logging
import sys

from facebench.console import console, metric_table
from facebench.errors import FacebenchError

LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}


def cmd_prepare(args: argparse.Namespace) -> None:
    from facebench.data.prepare import PREPARERS

    count = PREPARERS[args.dataset](args.raw, args.out)
    console.print(f"wrote {count} sequences to {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from facebench.data.presets import get_preset
    from facebench.metrics.evaluate import evaluate_folder

    result = evaluate_folder(args.pred, args.data, args.split, root=args.root)
    scale = get_preset(args.data).display_scale
    rows = [{"metric": k, "value": v, "display": v / scale[k] if k in scale else v} for k, v in result.items() if isinstance(v, (int, float))]
    console.print(metric_table(f"{args.data} / {args.split} ({result['protocol']})", rows, ["metric", "value", "display"]))
    console.print(f"scales: {scale}; regions: {result['region_set']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facebench", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="convert an official raw release into the FaceFormer format")
    p.add_argument("dataset", choices=["vocaset"])
    p.add_argument("--raw", required=True, help="folder of the downloaded release")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("evaluate", help="score a folder of predicted .npy files against a dataset split")
    p.add_argument("--pred", required=True, help="folder of <clip>.npy or <clip>_condition_<subject>.npy")
    p.add_argument("--data", required=True, help="dataset preset or folder")
    p.add_argument("--split", required=True)
    p.add_argument("--root", default=None, help="dataset folder, if not under $FACEBENCH_DATA")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from facebench.lightning_cli import run_lightning_cli

        run_lightning_cli(argv)
        return
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except FacebenchError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
