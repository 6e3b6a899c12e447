"""The synthetic talking-face video corpus (`DATA=synth-video`): the synthetic 3D corpus' clips rendered
to frames at 25 fps, with per-speaker textures for every region, a small head motion, and exact
12-class segmentation masks (the region each pixel was rendered from).

    facebench synth --preset video-tiny --out DIR

It is written in the video layout the HDTF and MEAD readers read (facebench.data.video_format):
`video/<name>.mp4` (H.264, 4:4:4, constant quality 0: what is decoded is what was rendered, up to
the RGB/YUV rounding), `wav/<name>.wav`, `masks/<name>.npz`, plus what only a synthetic corpus
has: the frames and masks of the deterministic part rendered with the clip's head pose
(`deterministic/`, the oracle's), the head pose (`pose/`) and the lip vertices projected to pixels
(`lips/`). Every random draw is seeded by (corpus seed, purpose, speaker, sentence).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

from facebench.data.faceformer_format import load_pickle
from facebench.data.segmentation import CLASSES
from facebench.data.synth.generator import SYNTH_PRESETS, cache_root, cached_corpus
from facebench.data.synth.mesh import FaceMesh, build_face
from facebench.storage import stored_once

VIDEO_VERSION = "1"  # bump on any change to what this writes (the cache is keyed by it)
VIDEO_FPS = 25.0


@dataclass(frozen=True)
class VideoConfig:
    preset: str  # video-tiny, video-small, video-large
    mesh_preset: str  # the 3D corpus it renders
    size: int  # frames are size x size pixels
    pose_degrees: float = 3.0  # head rotation amplitude per axis
    pose_shift: float = 0.002  # head translation amplitude, metres
    texture: float = 0.06  # per-face brightness variation of each region's colour


VIDEO_PRESETS = {
    "video-tiny": VideoConfig("video-tiny", "tiny", 64),
    "video-small": VideoConfig("video-small", "small", 96),
    "video-large": VideoConfig("video-large", "small", 256),  # for GPUs
}

# Region colours (RGB in [0, 1]) a speaker's are drawn around.
SKIN_TONES = np.array([[0.93, 0.78, 0.66], [0.84, 0.64, 0.50], [0.66, 0.47, 0.34], [0.45, 0.31, 0.22], [0.96, 0.84, 0.74]])
HAIR_COLOURS = np.array([[0.10, 0.07, 0.05], [0.35, 0.22, 0.12], [0.62, 0.45, 0.25], [0.80, 0.68, 0.45], [0.45, 0.15, 0.08]])
HAIR_FROM_V = 0.72  # face coordinate above which the surface is hair


def video_dataset_name(preset: str) -> str:
    return "synth-video" if preset == "video-small" else f"synth-{preset}"


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, 101, *keys])


def face_classes(face: FaceMesh) -> np.ndarray:
    """(F,) class of every triangle of the synthetic face: the class most of its corners have."""
    klass = np.full(face.n_vertices, CLASSES.index("skin"), dtype=np.int64)
    klass[face.uv[:, 1] > HAIR_FROM_V] = CLASSES.index("hair")
    for region, name in (("nose", "nose"), ("brows", "eyebrows"), ("eyes", "eyes"), ("lips", "lip")):
        klass[face.regions[region]] = CLASSES.index(name)
    corners = klass[face.faces]  # (F, 3)
    counts = np.stack([(corners == c).sum(1) for c in range(len(CLASSES))], axis=1)
    return counts.argmax(1)


def mouth_inside(template: np.ndarray, lips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inside of the mouth behind the lips, seen when they part: a dark quad and a strip of
    upper teeth in front of it. Returns vertices (8, 3), triangles (4, 3) indexed from 0 and
    their colours (4, 3). Counter-clockwise seen from the camera (+z)."""
    lip = template[lips]
    (x0, x1), mouth_y, z = (lip[:, 0].min(), lip[:, 0].max()), np.median(lip[:, 1]), lip[:, 2].min() - 0.012
    quad = lambda y0, y1, depth: [[x0, y0, depth], [x1, y0, depth], [x1, y1, depth], [x0, y1, depth]]  # noqa: E731
    vertices = np.array(quad(mouth_y - 0.026, mouth_y + 0.006, z) + quad(mouth_y - 0.004, mouth_y + 0.006, z + 0.002), np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    colours = np.array([[0.28, 0.06, 0.08]] * 2 + [[0.93, 0.92, 0.86]] * 2, np.float32)
    return vertices, triangles, colours


def speaker_palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A speaker's colour per class (skin tone, hair, lips, brows, eyes, background)."""
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.94, 1.06, 3), 0, 1)
    hair = np.clip(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3), 0, 1)
    return {
        "skin": skin, "nose": skin * 0.94, "hair": hair, "eyebrows": np.clip(hair * 0.8 + 0.02, 0, 1),
        "lip": np.clip(skin * np.array([0.95, 0.55, 0.55]) + rng.uniform(-0.05, 0.05, 3), 0, 1),
        "eyes": np.array([0.12, 0.10, 0.10]) + rng.uniform(0, 0.25) * np.array([0.2, 0.5, 0.8]),
        "background": rng.uniform(0.35, 0.9, 3),
    }  # fmt: skip


def pose_track(rng: np.random.Generator, n_frames: int, config: VideoConfig) -> np.ndarray:
    """(T, 6) smooth head pose per frame: rotations about x, y, z (radians) and a translation (metres),
    each a sum of two slow sinusoids of random frequency and phase."""
    t = np.arange(n_frames) / VIDEO_FPS
    amplitude = np.array([np.radians(config.pose_degrees)] * 3 + [config.pose_shift] * 3)
    track_ = np.zeros((n_frames, 6))
    for k in range(6):
        for _ in range(2):
            track_[:, k] += np.sin(2 * np.pi * rng.uniform(0.1, 0.6) * t + rng.uniform(0, 2 * np.pi)) * amplitude[k] / 2
    return track_.astype(np.float32)


def posed(vertices: np.ndarray, pose: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Vertices (V, 3) rotated about `center` by the pose's angles (x, then y, then z) and shifted."""
    ax, ay, az = pose[:3]
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return ((vertices - center) @ (rz @ ry @ rx).T + center + pose[3:]).astype(np.float32)


def at_video_rate(frames: np.ndarray, fps: float) -> np.ndarray:
    """(T, ...) at `fps` -> the same span at 25 fps, linearly interpolated in time."""
    n = int(np.floor(len(frames) / fps * VIDEO_FPS + 1e-9))
    position = np.arange(n) * fps / VIDEO_FPS
    low = np.minimum(np.floor(position).astype(int), len(frames) - 1)
    high = np.minimum(low + 1, len(frames) - 1)
    weight = (position - low).reshape(-1, *([1] * (frames.ndim - 1)))
    return ((1 - weight) * frames[low] + weight * frames[high]).astype(np.float32)


class ClipPainter:
    """Renders one speaker's frames and masks: the face mesh plus the inside of the mouth, each
    triangle in its class's colour with a fixed per-triangle brightness (the texture)."""

    def __init__(self, face: FaceMesh, template: np.ndarray, palette: dict[str, np.ndarray], texture: np.ndarray, size: int, renderer=None):
        from facebench.render.renderer import make_renderer

        inside, inside_faces, inside_colours = mouth_inside(template, face.regions["lips"])
        self.inside = inside
        self.faces = np.concatenate([face.faces, inside_faces + face.n_vertices])
        classes = face_classes(face)
        colours = np.stack([palette[CLASSES[c]] for c in classes]) * texture[:, None]
        self.colours = np.clip(np.concatenate([colours, inside_colours]), 0, 1).astype(np.float32)
        self.labels = np.concatenate([classes, [CLASSES.index("mouth")] * len(inside_faces)]).astype(np.uint8)
        self.background = palette["background"]
        self.center = template.mean(0) - np.array([0, 0, 0.05], np.float32)  # the neck pivot, behind the face
        self.renderer = renderer or make_renderer(self.faces, np.concatenate([template, inside]), size)

    def paint(self, vertices: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face vertices (V, 3) and a pose (6,) -> frame (S, S, 3) uint8 and mask (S, S) uint8."""
        mesh = posed(np.concatenate([vertices, self.inside]), pose, self.center)
        labels = self.renderer.render_labels(mesh, self.labels)
        empty = labels == 255
        frame = self.renderer.render(mesh, face_colors=self.colours)
        frame[empty] = np.round(self.background * 255).astype(np.uint8)
        labels[empty] = CLASSES.index("background")
        return frame, labels


def projected(renderer, vertices: np.ndarray) -> np.ndarray:
    """(V, 3) -> (V, 2) pixel coordinates (x right, y down) in the renderer's frame."""
    clip = renderer.camera.to_clip(vertices)
    return np.stack([(clip[:, 0] + 1) / 2 * renderer.size, (1 - clip[:, 1]) / 2 * renderer.size], axis=1).astype(np.float32)


def generate_video(config: VideoConfig, out: str | Path, seed: int = 0, progress: bool = True, mesh_root: Path | None = None,
                   clips: list[str] | None = None) -> Path:  # fmt: skip
    """Write the video corpus into `out` (created; must not hold files already), rendering the 3D
    corpus of the same seed (generated into the cache if needed, or read from `mesh_root`);
    `clips`: only these (by name), for a look at a few."""
    from facebench.render.video import write_video

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: expected an empty or new folder for the corpus, found files")
    mesh_root = Path(mesh_root) if mesh_root is not None else cached_corpus(config.mesh_preset, seed, progress)
    for sub in ("video", "wav", "masks", "deterministic/video", "deterministic/masks", "pose", "lips"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    mesh_config = SYNTH_PRESETS[config.mesh_preset]
    face = build_face(mesh_config.n_vertices)
    templates = load_pickle(mesh_root / "templates.pkl")
    blendshapes = np.load(mesh_root / "blendshapes.npy")
    metadata = pd.read_csv(mesh_root / "metadata.csv", keep_default_na=False)
    if clips is not None:
        metadata = metadata[metadata["name"].isin(clips)]
    subjects = list(templates)
    painters: dict[str, ClipPainter] = {}

    def painter_for(subject: str) -> ClipPainter:
        if subject not in painters:
            rng = _rng(seed, 1, subjects.index(subject))
            palette = speaker_palette(rng)
            texture = 1 + rng.uniform(-config.texture, config.texture, len(face.faces))
            # One camera for every speaker, framed from the first speaker's template.
            shared = painters[subjects[0]].renderer if painters else None
            painters[subject] = ClipPainter(face, templates[subject], palette, texture, config.size, shared)
        return painters[subject]

    renderer = painter_for(subjects[0]).renderer
    rows = []
    for row in track(metadata.to_dict("records"), description=f"synth {config.preset}", disable=not progress):
        name, subject, sentence = row["name"], row["subject"], int(row["sentence"])
        speaker = subjects.index(subject)
        painter = painter_for(subject)
        vertices = at_video_rate(np.load(mesh_root / "vertices_npy" / f"{name}.npy").reshape(-1, face.n_vertices, 3), mesh_config.fps)
        weights = at_video_rate(np.load(mesh_root / "deterministic" / f"{name}.npy"), mesh_config.fps)
        deterministic = templates[subject] + np.einsum("tk,kvc->tvc", weights, blendshapes)
        pose = pose_track(_rng(seed, 2, speaker, sentence), len(vertices), config)
        frames, masks = zip(*(painter.paint(v, p) for v, p in zip(vertices, pose)))
        oracle_frames, oracle_masks = zip(*(painter.paint(v, p) for v, p in zip(deterministic, pose)))
        lips = np.stack([projected(renderer, posed(np.concatenate([v, painter.inside]), p, painter.center)[face.regions["lips"]])
                         for v, p in zip(vertices, pose)])  # fmt: skip
        write_video(frames, out / "video" / f"{name}.mp4", VIDEO_FPS, lossless=True)
        write_video(oracle_frames, out / "deterministic" / "video" / f"{name}.mp4", VIDEO_FPS, lossless=True)
        np.savez_compressed(out / "masks" / f"{name}.npz", masks=np.stack(masks))
        np.savez_compressed(out / "deterministic" / "masks" / f"{name}.npz", masks=np.stack(oracle_masks))
        np.save(out / "pose" / f"{name}.npy", pose)
        np.save(out / "lips" / f"{name}.npy", lips)
        shutil.copyfile(mesh_root / "wav" / f"{name}.wav", out / "wav" / f"{name}.wav")
        rows.append({**{k: row[k] for k in ("name", "subject", "sentence", "content", "emotion", "intensity", "text")}, "frames": len(frames)})
    pd.DataFrame(rows).to_csv(out / "metadata.csv", index=False)
    card = {
        "generator": "facebench.data.synth.video", "version": VIDEO_VERSION, "seed": seed, "config": asdict(config),
        "mesh_corpus": json.loads((mesh_root / "card.json").read_text())["config"], "fps": VIDEO_FPS, "classes": list(CLASSES),
        "renderer": renderer.name, "clips": len(rows), "frames": int(sum(r["frames"] for r in rows)),
        "seconds_to_generate": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    (out / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True))
    return out


def cached_video_corpus(preset: str = "video-tiny", seed: int = 0, progress: bool = True) -> Path:
    """The video corpus in the cache, generated on first use (whole or absent, as the 3D corpus),
    with its anchors' scores (`anchors.json`)."""
    from facebench.data.synth.anchors import write_anchors

    def make(scratch: Path) -> None:
        generate_video(VIDEO_PRESETS[preset], scratch, seed, progress)
        write_anchors(scratch, video_dataset_name(preset))

    return stored_once(cache_root() / "synth" / f"video{VIDEO_VERSION}-{preset}-seed{seed}", f"the {preset} corpus", make, announce=False)
