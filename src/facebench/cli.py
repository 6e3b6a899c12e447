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


def cmd_synth(args: argparse.Namespace) -> None:
    import time

    from facebench.data.synth import SYNTH_PRESETS, generate
    from facebench.data.synth.anchors import write_anchors
    from facebench.data.synth.generator import synth_dataset_name
    from facebench.data.synth.plot import plot_clip

    start = time.perf_counter()
    out = generate(SYNTH_PRESETS[args.preset], args.out, seed=args.seed)
    anchors = write_anchors(out, synth_dataset_name(args.preset))
    console.print(f"wrote the {args.preset} corpus (seed {args.seed}) to {out} in {time.perf_counter() - start:.1f} s")
    rows = [{"split": split, "anchor": name, **values} for split, pair in anchors.items() for name, values in pair.items()]
    console.print(metric_table("anchors", rows, ["split", "anchor", "lve", "fdd", "mve", "eve"]))
    if args.plot:
        clip = args.clip or sorted(p.stem for p in (out / "vertices_npy").glob("*.npy"))[0]
        console.print(f"plot: {plot_clip(out, clip, args.plot)}")


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
    p = sub.add_parser("synth", help="generate the synthetic corpus")
    p.add_argument("--preset", default="small", choices=["tiny", "small", "vocaset"])
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="also draw a clip (waveform, mouth opening, frames) to this PNG")
    p.add_argument("--clip", default=None, help="the clip to draw (default: the first)")
    p.set_defaults(func=cmd_synth)
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
