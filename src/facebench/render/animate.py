"""`facebench animate`: a trained run and any audio file -> the vertex sequence (FaceFormer's `.npy`
layout) and an MP4 with the audio. `facebench render`: a dataset clip, predictions of it, or a
run's kept predictions -> a video, side by side with the ground truth where asked.

A run is loaded from its folder: its config (`config.yaml`), its dataset (for the facts the model
was built with, the templates, the mesh's faces) and the best checkpoint of its last stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from facebench.console import console
from facebench.data.audio import SAMPLE_RATE, frames_from_audio, load_audio, normalize_audio
from facebench.data.sequence import ModelInputs
from facebench.errors import DataError, FacebenchError
from facebench.mesh import read_faces
from facebench.models.components.progress import frame_progress
from facebench.render.compose import comparison_frames, lip_opening
from facebench.render.renderer import make_renderer
from facebench.render.video import write_video
from facebench.yamlio import read_yaml


def load_run(run: str | Path, root: str | None = None):
    """(config, datamodule, model with the best weights of its last stage) of a bench run folder."""
    from facebench.bench.runner import build, load_weights

    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise FacebenchError(f"--run {run}: expected a run folder with config.yaml (runs/<dataset>/<run>), found none")
    config = read_yaml((run / "config.yaml").read_text())
    data, model = build(config, root)
    if model.stages:
        last = model.stages[-1].name
        checkpoint = run / "checkpoints" / f"{last}-best.ckpt"
        if not checkpoint.is_file():
            raise FacebenchError(f"--run {run}: expected its best checkpoint {checkpoint.relative_to(run)}, found none (did the run finish?)")
        load_weights(model, checkpoint)
    return config, data, model.eval()


def template_vertices(data, template: str | None) -> tuple[str, np.ndarray]:
    """A dataset subject's template, or a mesh file's vertices (same vertex count and order)."""
    templates = data.reader.templates
    if template is None:
        template = next(iter(templates))
    if template in templates:
        return template, templates[template]
    path = Path(template)
    if path.suffix in (".ply", ".obj") and path.is_file():
        import trimesh

        vertices = np.asarray(trimesh.load(path, process=False, force="mesh").vertices, dtype=np.float32)
        if vertices.shape != (data.n_vertices, 3):
            raise DataError(path, f"a mesh of {data.n_vertices} vertices in the dataset's order", f"{len(vertices)} vertices")
        return path.stem, vertices
    raise FacebenchError(f"--template {template}: expected a subject of {data.name} ({', '.join(sorted(templates)[:8])}...) or a .ply/.obj mesh file")


def styles_of(data, style: str) -> list[int]:
    subjects = list(data.train_subjects)
    if style == "all":
        return list(range(len(subjects)))
    if style not in subjects:
        raise FacebenchError(f"--style {style}: expected a training speaker of {data.name} ({', '.join(subjects)}) or all")
    return [subjects.index(style)]


def animate(run: str | Path, audio_file: str | Path, out: str | Path, style: str, template: str | None = None, root: str | None = None,
            video: bool = True, seed: int = 0, samples: int = 1, intensity: int = 0, size: int = 512, renderer: str = "auto") -> list[Path]:  # fmt: skip
    """Generate motion for any audio file with a trained run; returns the files written."""
    _, data, model = load_run(run, root)
    name, vertices = template_vertices(data, template)
    sound = load_audio(audio_file)  # any rate, channels and container (mp3, m4a through ffmpeg)
    n_frames = frames_from_audio(len(sound), data.fps, data.audio_per_frame)
    if n_frames < 1:
        raise DataError(audio_file, "at least a fraction of a second of audio", f"{len(sound) / SAMPLE_RATE:.2f} s")
    inputs = ModelInputs(
        audio=torch.from_numpy(np.asarray(normalize_audio(sound), dtype=np.float32))[None], audio_lengths=torch.tensor([len(sound)]),
        n_frames=torch.tensor([n_frames]), templates=torch.from_numpy(vertices)[None], style=torch.tensor([-1]), fps=data.fps,
        conditions={"intensity": torch.tensor([intensity])} if "intensity" in model.conditions_used else {},
    )  # fmt: skip
    if model.privileged_inputs:
        raise FacebenchError(f"{type(model).__name__} needs privileged inputs ({', '.join(model.privileged_inputs)}): it cannot animate new audio")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(audio_file).stem
    written = []
    styles = styles_of(data, style)
    with Progress(console=console, transient=True) as bar, torch.no_grad():
        task = bar.add_task(f"{stem}: {n_frames} frames x {len(styles)} style(s) x {samples} sample(s)", total=n_frames * len(styles) * samples)
        with frame_progress(lambda _: bar.advance(task)):
            for s in styles:
                generated = model.sample(inputs.with_styles([s]), samples, seed)[:, 0]  # (S, T, V, 3)
                for k, motion in enumerate(generated.numpy()):
                    suffix = ("" if len(styles) == 1 else f"_condition_{data.train_subjects[s]}") + (f"_sample{k}" if samples > 1 else "")
                    path = out / f"{stem}{suffix}.npy"
                    np.save(path, motion.reshape(len(motion), -1))
                    written.append(path)
    if video:
        faces = read_faces(data.reader.root, data.n_vertices)
        render = make_renderer(faces, vertices, size, renderer, say=console.print)
        for path in list(written):
            motion = np.load(path).reshape(-1, data.n_vertices, 3)
            written.append(write_video((render.render(frame) for frame in motion), path.with_suffix(".mp4"), data.fps, sound))
    return written


def render_clip(data, clip_name: str, out: str | Path, predictions: dict[str, np.ndarray], ground_truth: bool = True, heatmap: bool = False,
                size: int = 512, renderer: str = "auto", still: Path | None = None) -> Path:  # fmt: skip
    """One clip of a dataset to video with its audio: the ground truth and/or predictions side by
    side; `still`: also save the frame where the ground truth's mouth is most open, as a PNG."""
    entry = data.reader.entry(clip_name)
    clip = data.reader.load(entry)
    sequences = ({"ground truth": clip.vertices.numpy()} if ground_truth else {}) | predictions
    if not sequences:
        raise FacebenchError("render: expected predictions or the ground truth to show, found neither")
    faces = read_faces(data.reader.root, data.n_vertices)
    render = make_renderer(faces, clip.template.numpy(), size, renderer, say=console.print)
    lips = data.regions().get("lve")
    frames = comparison_frames(render, sequences, None if lips is None else lips.numpy(), "ground truth" if ground_truth else None,
                               heatmap and ground_truth, data.preset.unit)  # fmt: skip
    if still is not None:
        from PIL import Image

        frames = list(frames)
        widest = int(np.argmax(lip_opening(next(iter(sequences.values())), lips.numpy()))) if lips is not None else len(frames) // 2
        still.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frames[min(widest, len(frames) - 1)]).save(still)
    return write_video(frames, out, data.fps, load_audio(entry.wav))


def render_run(run: str | Path, root: str | None = None, size: int = 512, renderer: str = "auto", heatmap: bool = True,
               per_split: int | None = None, still: Path | None = None) -> list[Path]:  # fmt: skip
    """The run's kept predictions (`per_split` clips of each test split, default all), each beside
    its ground truth, to `<run>/renders/<split>_<clip>.mp4`; `still`: a PNG of the first one."""
    from facebench.data.datamodule import FaceDataModule

    run = Path(run)
    config = read_yaml((run / "config.yaml").read_text())
    data = FaceDataModule(config["dataset"], root=root)
    label = config["model_name"] + (f" ({config['variant']})" if config.get("variant") else "")
    written = []
    for split_folder in sorted((run / "predictions").glob("*")):
        rendered: list[str] = []
        for prediction in sorted(split_folder.glob("*.npy")):
            clip = prediction.stem.split("_condition_")[0]
            if clip in rendered or (per_split is not None and len(rendered) == per_split):
                continue  # one condition of an unseen speaker's clip is enough to look at
            rendered.append(clip)
            motion = {label: np.load(prediction).reshape(-1, data.n_vertices, 3)}
            out = run / "renders" / f"{split_folder.name}_{prediction.stem}.mp4"
            written.append(render_clip(data, clip, out, motion, True, heatmap, size, renderer, still if not written else None))
    return written
