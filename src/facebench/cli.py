"""The `facebench` command.

Tool commands (prepare, evaluate, synth, bench, leaderboard, drift, lipreader) are plain subcommands;
`facebench fit|validate|test|predict --config X.yaml` is Lightning's own CLI over facebench's
models and datamodule, as in TorchGeo.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facebench.console import configure_logging, console, metric_table
from facebench.errors import FacebenchError
from facebench.yamlio import read_yaml

LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict"}


def cmd_prepare(args: argparse.Namespace) -> None:
    from facebench.data.prepare import PREPARERS

    count = PREPARERS[args.dataset](args.raw, args.out)
    console.print(f"wrote {count} sequences to {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from facebench.data.presets import get_preset
    from facebench.errors import DataError

    get_preset(args.data).split(args.split)  # argument errors before the heavy imports
    if not Path(args.pred).is_dir():
        raise DataError(args.pred, "a folder of predicted .npy (video: .npz or .mp4) files", "no such folder")
    from facebench.metrics.evaluate import evaluate_folder

    result = evaluate_folder(args.pred, args.data, args.split, root=args.root, allow_short=args.allow_short)
    scale = get_preset(args.data).display_scale
    rows = [{"metric": k, "value": v, "display": v / scale[k] if k in scale else v} for k, v in result.items() if isinstance(v, (int, float))]
    console.print(metric_table(f"{args.data} / {args.split} ({result['protocol']})", rows, ["metric", "value", "display"]))
    console.print(f"scales: {scale}; regions: {result['region_set']}" if result["region_set"] else f"sync judge: {result.get('sync_judge') or 'none'}")


def cmd_synth(args: argparse.Namespace) -> None:
    import time

    from facebench.data.synth import SYNTH_PRESETS, VIDEO_PRESETS, generate
    from facebench.data.synth.anchors import write_anchors
    from facebench.data.synth.generator import synth_dataset_name
    from facebench.data.synth.plot import plot_clip, plot_video_clip
    from facebench.data.synth.video import generate_video, video_dataset_name

    start = time.perf_counter()
    video = args.preset in VIDEO_PRESETS
    if video:
        out = generate_video(VIDEO_PRESETS[args.preset], args.out, seed=args.seed)
        anchors = write_anchors(out, video_dataset_name(args.preset))
    else:
        out = generate(SYNTH_PRESETS[args.preset], args.out, seed=args.seed)
        anchors = write_anchors(out, synth_dataset_name(args.preset))
    console.print(f"wrote the {args.preset} corpus (seed {args.seed}) to {out} in {time.perf_counter() - start:.1f} s")
    rows = [{"split": split, "anchor": name, **values} for split, pair in anchors.items() for name, values in pair.items()]
    console.print(metric_table("anchors", rows, ["split", "anchor", *(["psnr", "ssim", "mouth_iou", "miou"] if video else ["lve", "fdd", "mve", "eve"])]))
    if args.plot:
        clip = args.clip or sorted(p.stem for p in (out / ("video" if video else "vertices_npy")).glob("*.*"))[0]
        console.print(f"plot: {(plot_video_clip if video else plot_clip)(out, clip, args.plot)}")


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an exception so a run stops the same way as with Ctrl-C."""


def raise_interrupted(signum, frame) -> None:
    raise Interrupted


def cmd_bench(args: argparse.Namespace) -> None:
    import signal
    from pathlib import Path

    from facebench.bench.config import dataset_name, model_specs, resolve_models
    from facebench.data.layouts import check_dataset

    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise FacebenchError(f"--resume {args.resume}: expected a run folder with config.yaml, found none")
        config = read_yaml(saved.read_text())
        jobs = [(model_specs()[config["model_name"]], config["variant"])]
        data, profile, seed = config["dataset"], config["profile"], config["seed"]
    else:
        jobs = [(spec, variant) for spec in resolve_models(args.model, args.data) for variant in chosen_variants(spec, args)]
        data, profile, seed = args.data, args.profile, args.seed
    name = dataset_name(data)
    overrides = command_line_overrides(args)
    check_dataset(data, args.root)  # a missing or malformed dataset stops here, before the training stack loads

    from functools import partial

    from facebench.bench import distributed
    from facebench.bench.leaderboard import leaderboard_path
    from facebench.bench.runner import new_run_dir, run_isolated, run_one
    from facebench.data.datamodule import FaceDataModule
    from facebench.lipreading.reference import dataset_lip_reader

    # Several devices: one process each, started here unless a launcher started them (torchrun, srun).
    trainer = overrides.get("trainer", {})
    processes = distributed.requested_processes(trainer)
    if processes > 1 and distributed.launcher_environment() is None:
        sys.exit(distributed.relaunch(args.argv, processes, int(trainer.get("num_nodes", 1))))
    distributed.join(trainer)
    # Each run in a fresh process, so that its peak memory is its own (README, "Leaderboard rows");
    # under a launcher each process is its own already, and runs the command's runs in turn.
    run = run_one if distributed.joined() else partial(run_isolated, args.verbose)

    # Built (once, visibly) here rather than in a run's process, whose peak memory must be its own.
    with distributed.main_first():
        dataset_lip_reader(FaceDataModule(data, root=args.root), progress=not args.no_progress)

    signal.signal(signal.SIGTERM, raise_interrupted)
    rows, current = [], None
    try:
        for spec, variant in jobs:
            label = spec.name + (f" ({variant})" if variant else "")
            current = Path(args.resume) if args.resume else distributed.from_main(new_run_dir(Path(args.runs), name, spec, profile, seed, variant))
            if distributed.is_main():
                console.rule(f"{label} on {name}, profile {profile}, seed {seed}")
            rows += run(spec=spec, dataset=data, profile=profile, seed=seed, variant=variant, root=args.root, leaderboards=Path(args.leaderboards),
                        runs=current.parents[1], progress=not args.no_progress and distributed.is_main(), overrides=overrides, run_dir=current)  # fmt: skip
    except KeyboardInterrupt as exc:
        kept = current is not None and (current / "config.yaml").is_file()
        where = f"kept {current} (its config and checkpoints so far): continue it with `facebench bench --resume {current}`" if kept else "no run folder was written"
        console.print(f"interrupted: {len(rows)} rows appended before; {where}", highlight=False, markup=False, soft_wrap=True)  # one line to copy
        sys.exit(143 if isinstance(exc, Interrupted) else 130)
    if not distributed.is_main():
        return
    scores = ["psnr", "ssim", "mouth_iou", "miou", "lse_d", "lse_c"] if any("psnr" in row for row in rows) else ["lve", "fdd", "mve", "eve", "per"]
    columns = ["model", "variant", "split", *scores, "train_time_s", "rtf", "peak_memory_mb", "params"]
    console.print(metric_table(f"{name} ({profile}, seed {seed}): raw units", rows, columns))
    console.print(f"appended {len(rows)} rows to {leaderboard_path(args.leaderboards, name)}")


def chosen_variants(spec, args: argparse.Namespace) -> list[str]:
    """`--variants`: all, base, or a comma-separated list of names (`base` for the model as
    configured; `a+b` for variants a and b together, b's settings over a's); by default all for
    one model and the base model for `--model all`. Each name is checked by the one that reads it,
    `ModelSpec.variant_settings`, before anything trains."""
    choice = args.variants or ("base" if args.model == "all" else "all")
    if choice == "all":
        return list(spec.variants)
    names = [name.strip() for name in choice.split(",")]
    for name in names:
        if name == "base":
            continue
        try:
            spec.variant_settings(name)
        except FacebenchError as error:
            raise FacebenchError(f"--variants {choice}: expected all, base, or variants of {spec.name} joined by '+'; {error}") from None
    return ["" if name == "base" else name for name in names]


def command_line_overrides(args: argparse.Namespace) -> dict:
    """The run settings given on the command line, as a config to merge over the resolved one."""
    from facebench.bench.config import deep_merge

    devices = read_yaml(str(args.devices)) if args.devices is not None else None  # 2, or [0, 1]
    trainer = {k: v for k, v in (("accelerator", args.accelerator), ("devices", devices), ("num_nodes", args.num_nodes),
                                 ("strategy", args.strategy), ("precision", args.precision), ("max_epochs", args.max_epochs))
               if v is not None}  # fmt: skip
    overrides: dict = {"trainer": trainer} if trainer else {}
    if args.batch_size is not None:
        overrides["data"] = {"batch_size": args.batch_size}
    if args.threads is not None:
        overrides["threads"] = args.threads
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FacebenchError(f"--set {item}: expected KEY=VALUE with a dotted key (model.init_args.lr=1e-3), found no '='")
        nested: dict = read_yaml(value) if value else None
        for part in reversed(key.split(".")):
            nested = {part: nested}
        overrides = deep_merge(overrides, nested)
    return overrides


def cmd_animate(args: argparse.Namespace) -> None:
    from facebench.render.animate import animate

    written = animate(args.run, args.audio, args.out, args.style, args.template, args.root, not args.no_video, args.seed, args.samples,
                      args.intensity, args.size, args.renderer)  # fmt: skip
    for path in written:
        console.print(f"wrote {path}", highlight=False, markup=False)


def cmd_render(args: argparse.Namespace) -> None:
    from facebench.render.animate import render_clip, render_run

    if args.run:
        written = render_run(args.run, args.root, args.size, args.renderer, args.heatmap)
    else:
        if not args.data or not args.clip or not args.out:
            raise FacebenchError("render: expected --run RUN, or --data, --clip and --out (with --pred files to compare)")
        from facebench.data.datamodule import FaceDataModule

        data = FaceDataModule(args.data, root=args.root)
        names = args.name or [Path(p).stem for p in args.pred or []]
        if len(names) != len(args.pred or []):
            raise FacebenchError(f"--name: expected one per --pred ({len(args.pred or [])}), found {len(names)}")
        from facebench.metrics.evaluate import load_prediction

        predictions = {n: load_prediction(Path(p), data.n_vertices).numpy() for n, p in zip(names, args.pred or [])}
        written = [render_clip(data, args.clip, args.out, predictions, not args.no_ground_truth, args.heatmap, args.size, args.renderer)]
    for path in written:
        console.print(f"wrote {path}", highlight=False, markup=False)


def parse_frame(text: str, flag: str) -> tuple[str, int]:
    """`CLIP[:FRAME]` -> (clip, frame index)."""
    name, _, frame = text.partition(":")
    if frame and not frame.isdigit():
        raise FacebenchError(f"{flag} {text}: expected CLIP or CLIP:FRAME with FRAME a frame index, found {frame!r}")
    return name, int(frame or 0)


def cmd_edit(args: argparse.Namespace) -> None:
    from facebench.data.synth.plot import plot_frames_and_masks
    from facebench.models.segtalker.editing import edit_frame
    from facebench.render.animate import load_run

    _, data, model = load_run(args.run, args.root)
    frames = {}
    for flag, text in (("--source", args.source), ("--donor", args.donor)):
        name, index = parse_frame(text, flag)
        clip = data.reader.load(data.reader.entry(name))
        if index >= len(clip.frames):
            raise FacebenchError(f"{flag} {text}: clip {name} has {len(clip.frames)} frames, found frame {index}")
        frames[flag] = clip.frames[index]
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    edited = edit_frame(model, frames["--source"], frames["--donor"], regions, args.alpha, args.shape)
    unchanged = edit_frame(model, frames["--source"], frames["--source"], regions)
    columns = {f"source {args.source}": frames["--source"].numpy(), f"donor {args.donor}": frames["--donor"].numpy(),
               "repainted (own codes)": unchanged.cpu().numpy(), f"{', '.join(regions)} from donor" + (" (shape too)" if args.shape else ""):
               edited.cpu().numpy()}  # fmt: skip
    out = plot_frames_and_masks(columns, args.out, f"SegTalker region edit ({Path(args.run).name})")
    console.print(f"wrote {out}", highlight=False, markup=False)


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from pathlib import Path

    from rich.table import Table

    from facebench.bench.leaderboard import read_rows, render, split_tables

    folder = Path(args.folder)
    render(folder)
    for path in sorted(folder.glob("*.csv")):
        for split, (header, lines, best, footnote) in split_tables(path.stem, read_rows(path)).items():
            table = Table(title=f"{path.stem} / {split}")
            for column in header:
                table.add_column(column, justify="left" if column in ("model", "variant", "profile") else "right")
            for i, line in enumerate(lines):
                table.add_row(*[f"[bold]{c}[/]" if best.get(header[j]) == i else c for j, c in enumerate(line)])
            console.print(table)
            if footnote:
                console.print(footnote)
    console.print(f"wrote {folder / 'README.md'}")


def cmd_lipreader(args: argparse.Namespace) -> None:
    import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
    from facebench.data.datamodule import FaceDataModule
    from facebench.lipreading.reference import reader_folder, reference_reader

    data = FaceDataModule(args.data, root=args.root)
    _, card = reference_reader(data, retrain=args.retrain)
    rows = [{"split": split, "per": value} for split, value in card["ground_truth_per"].items()]
    console.print(metric_table(f"reference lip reader of {args.data}: phoneme error rate on the ground truth", rows, ["split", "per"]))
    console.print(f"{card['n_phonemes']} phonemes, {card['region_vertices']} vertices read, trained on {card['train_clips']} clips "
                  f"in {card['train_seconds']} s; stored in {reader_folder(data)}")  # fmt: skip


def cmd_parse(args: argparse.Namespace) -> None:
    from facebench.data.presets import get_preset, resolve_root
    from facebench.errors import FacebenchError
    from facebench.parsing import write_masks

    preset = get_preset(args.data)
    if preset.modality != "video":
        raise FacebenchError(f"dataset {preset.name}: expected a video dataset to parse, found a {preset.modality} one")
    written = write_masks(resolve_root(preset, args.root), args.checkpoint, overwrite=args.overwrite, device=args.device)
    console.print(f"wrote the 12-class masks of {len(written)} clips to {resolve_root(preset, args.root) / 'masks'}")


def cmd_drift(args: argparse.Namespace) -> None:
    import os
    from pathlib import Path

    from facebench.environment import PORTABLE_KERNELS, portable_kernels

    if not portable_kernels():
        # The same command again, in a process that loads numpy and torch with the portable kernels
        # and keeps what it generates (the tiny corpus, its lip reader, its topology) apart from
        # what other processes made with the native ones.
        from facebench.data.synth.generator import cache_root

        env = {**os.environ, **PORTABLE_KERNELS, "FACEBENCH_CACHE": str(cache_root() / "portable-kernels")}
        argv = ["drift", "--models", args.models, "--reference", args.reference]
        argv += ["--update"] * args.update + ["--no-progress"] * args.no_progress
        os.execve(sys.executable, [sys.executable, "-m", "facebench", *argv], env)
    from facebench.bench.drift import (
        current_metrics,
        drift_from_reference,
        environments,
        update_reference,
        vendor_rows,
    )
    from facebench.bench.leaderboard import read_rows

    reference = Path(args.reference)
    current = current_metrics(args.models, progress=not args.no_progress)
    if args.update:
        table = update_reference(current, reference, all_models=args.models == "all")
        console.print(f"wrote {len(current)} reference rows to {reference} ({len(table) - len(current)} rows of other models or CPU vendors kept)")
        return
    if not reference.is_file():
        raise FacebenchError(f"{reference}: expected the drift reference, found no file (make it with `facebench drift --update`)")
    ref = read_rows(reference)
    drifted = drift_from_reference(current, ref, all_models=args.models == "all")
    if drifted:
        console.print(metric_table("metrics that drifted", drifted, ["model", "variant", "split", "metric", "reference", "current", "difference"]))
        console.print(f"[bold red]drift:[/] {len(drifted)} value(s) outside tolerance (benchmarks/drift.yaml)")
        console.print(f"reference made with {environments(vendor_rows(ref, current['model']))}; now {environments(current)}", highlight=False, markup=False)
        sys.exit(1)
    console.print(f"no drift: {len(current)} rows x {len(current.columns) - 3} metrics within tolerance of {reference}")


def registered_models() -> str:
    """The models of benchmarks/models, for help texts: 'faceformer (ff), ...'."""
    try:
        from facebench.bench.config import model_specs

        return ", ".join(f"{s.name} ({', '.join(s.aliases)})" if s.aliases else s.name for s in model_specs().values())
    except FacebenchError:
        return "see benchmarks/models"


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
    p.add_argument("--allow-short", action="store_true", help="score predictions shorter than their clips on the overlap")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("bench", help="train, test on every test split, append leaderboard rows")
    p.add_argument("--model", default="all", help=f"model name or alias ({registered_models()}), or all")
    p.add_argument("--data", default="synth", help="dataset preset or folder")
    p.add_argument("--profile", default="quick", choices=["ci", "quick", "full"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=None,
                   help="all, base, or variant names, comma-separated (e.g. base,no_dual); default: all for one model, base for --model all")
    p.add_argument("--root", default=None, help="dataset folder, if not under $FACEBENCH_DATA")
    p.add_argument("--leaderboards", default="leaderboards", help="folder of the leaderboard CSVs")
    p.add_argument("--runs", default="runs", help="folder of run folders (config, checkpoints, predictions)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--resume", metavar="RUN", default=None, help="continue an interrupted run from its folder (runs/<dataset>/<run>)")
    run = p.add_argument_group("run settings (over the profile's; recorded in the run's config and its hash)")
    run.add_argument("--threads", type=int, default=None, help="torch's CPU threads for the run (profile default)")
    run.add_argument("--accelerator", default=None, help="cpu, gpu, auto")
    run.add_argument("--devices", default=None, help="devices per node: a count (2) or indices ([0,1]); several run as processes (README, 'Several devices')")
    run.add_argument("--num-nodes", type=int, default=None, help="nodes, each started by a launcher (torchrun, srun)")
    run.add_argument("--strategy", default=None, help="Lightning's strategy for several devices (default: ddp)")
    run.add_argument("--precision", default=None, help="e.g. 32-true, bf16-mixed")
    run.add_argument("--max-epochs", type=int, default=None, help="epochs of every stage")
    run.add_argument("--batch-size", type=int, default=None, help="training clips per batch")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="any config value by dotted key, e.g. model.init_args.audio_encoder.checkpoint=/path (repeatable)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("leaderboard", help="render leaderboards/README.md and charts from the CSVs")
    p.add_argument("--folder", default="leaderboards")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("lipreader", help="train (once) and show a dataset's reference lip reader")
    p.add_argument("--data", default="synth", help="dataset preset or folder (with per-frame phoneme labels)")
    p.add_argument("--root", default=None, help="dataset folder, if not under $FACEBENCH_DATA")
    p.add_argument("--retrain", action="store_true", help="train again and replace the stored reader")
    p.set_defaults(func=cmd_lipreader)

    p = sub.add_parser("parse", help="face-parse a video dataset's clips into 12-class masks (BiSeNet, 79999_iter.pth)")
    p.add_argument("--data", required=True, help="video dataset preset or folder")
    p.add_argument("--root", default=None, help="dataset folder, if not under $FACEBENCH_DATA")
    p.add_argument("--checkpoint", required=True, help="the face-parsing weights 79999_iter.pth (zllrunning/face-parsing.PyTorch)")
    p.add_argument("--overwrite", action="store_true", help="parse clips that have masks again")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("drift", help="run the ci profile of every model and compare with the reference")
    p.add_argument("--update", action="store_true", help="rewrite the reference instead of comparing (with --models: only those models' rows)")
    p.add_argument("--models", default="all", help="one model (name or alias) instead of all")
    p.add_argument("--reference", default="leaderboards/ci/reference.csv")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_drift)

    for name, what in (("fit", "train"), ("validate", "validate"), ("test", "test"), ("predict", "write predictions of")):
        sub.add_parser(name, help=f"Lightning's CLI: {what} a model (`facebench {name} --help`)", add_help=False)

    p = sub.add_parser("animate", help="animate any audio file with a trained run: .npy and an MP4 with the audio")
    p.add_argument("--run", required=True, help="a bench run folder (runs/<dataset>/<run>)")
    p.add_argument("--audio", required=True, help="any audio file: wav, flac, ogg, mp3, m4a; any rate and length")
    p.add_argument("--style", required=True, help="a training speaker of the run's dataset, or all")
    p.add_argument("--template", default=None, help="a subject of the dataset or a .ply/.obj mesh (default: the first subject)")
    p.add_argument("--out", default="animations", help="output folder")
    p.add_argument("--no-video", action="store_true", help="the .npy only")
    p.add_argument("--seed", type=int, default=0, help="stochastic models: the first sample's seed")
    p.add_argument("--samples", type=int, default=1, help="stochastic models: samples per style")
    p.add_argument("--intensity", type=int, default=0, help="models that take an intensity level (EmoFace): its index")
    p.add_argument("--size", type=int, default=512, help="video frame size in pixels")
    p.add_argument("--renderer", default="auto", choices=["auto", "gl", "software"])
    p.add_argument("--root", default=None, help="the run's dataset folder, if not under $FACEBENCH_DATA")
    p.set_defaults(func=cmd_animate)

    p = sub.add_parser("render", help="a dataset clip, predictions of it, or a run's predictions to MP4 with sound")
    p.add_argument("--run", default=None, help="a run folder: its kept predictions beside their ground truth, to <run>/renders/")
    p.add_argument("--data", default=None, help="dataset preset or folder")
    p.add_argument("--clip", default=None, help="the clip's name, e.g. S01_s37")
    p.add_argument("--pred", action="append", help="a prediction of the clip (.npy, frames x 3V); repeat to compare")
    p.add_argument("--name", action="append", help="a label per --pred (default: the file names)")
    p.add_argument("--no-ground-truth", action="store_true", help="the predictions only")
    p.add_argument("--heatmap", action="store_true", help="each prediction's per-vertex error beside it")
    p.add_argument("--out", default=None, help="the video file (.mp4)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--renderer", default="auto", choices=["auto", "gl", "software"])
    p.add_argument("--root", default=None, help="dataset folder, if not under $FACEBENCH_DATA")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("edit", help="SegTalker: repaint a frame with regions (textures, optionally shapes) of another frame")
    p.add_argument("--run", required=True, help="a SegTalker run folder (runs/<dataset>/segtalker-...)")
    p.add_argument("--source", required=True, help="CLIP[:FRAME], the frame to edit (default frame 0)")
    p.add_argument("--donor", required=True, help="CLIP[:FRAME], the frame whose regions it takes")
    p.add_argument("--regions", default="hair", help="comma-separated classes, e.g. hair,lip,eyebrows")
    p.add_argument("--alpha", type=float, default=1.0, help="blend of the donor's codes (1: replace)")
    p.add_argument("--shape", action="store_true", help="also take the regions' shapes from the donor's mask")
    p.add_argument("--out", required=True, help="the PNG: source, donor, repainted, edited, with their masks")
    p.add_argument("--root", default=None, help="dataset folder, if not under $FACEBENCH_DATA")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("synth", help="generate the synthetic corpus")
    p.add_argument("--preset", default="small", choices=["tiny", "small", "vocaset", "video-tiny", "video-small", "video-large"])
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="also draw a clip (waveform, mouth opening, frames) to this PNG")
    p.add_argument("--clip", default=None, help="the clip to draw (default: the first)")
    p.set_defaults(func=cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in LIGHTNING_COMMANDS:
            from facebench.lightning_cli import run_lightning_cli

            run_lightning_cli(argv)
            return
        args = build_parser().parse_args(argv)
        args.argv = list(argv)  # what `bench` on several devices starts again in each process
        configure_logging(args.verbose)
        args.func(args)
    except FacebenchError as exc:
        console.print("[bold red]error:[/] ", end="")
        console.print(str(exc), highlight=False, markup=False)  # messages may hold [...] that markup would eat
        sys.exit(2)
