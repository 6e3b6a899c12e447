"""Tiny datasets and releases in the exact on-disk formats of the real ones, for the tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import soundfile


def write_clip(root: Path, name: str, n_frames: int, n_vertices: int, fps: float, sample_rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vertices = rng.normal(size=(n_frames, n_vertices * 3)).astype(np.float32) * 0.01
    np.save(root / "vertices_npy" / f"{name}.npy", vertices)
    n_samples = int(round(n_frames / fps * sample_rate))
    soundfile.write(root / "wav" / f"{name}.wav", rng.normal(size=n_samples).astype(np.float32) * 0.1, sample_rate)
    return vertices


def write_dataset(
    root: Path,
    clips: dict[str, int],
    n_vertices: int,
    fps: float,
    sample_rate: int = 16000,
    templates: dict[str, np.ndarray] | None = None,
) -> Path:
    """`clips`: {'<subject>_<sentence>': stored frame count}."""
    (root / "wav").mkdir(parents=True, exist_ok=True)
    (root / "vertices_npy").mkdir(parents=True, exist_ok=True)
    subjects = sorted({name.rsplit("_", 1)[0] for name in clips})
    if templates is None:
        rng = np.random.default_rng(0)
        templates = {s: rng.normal(size=(n_vertices, 3)).astype(np.float32) for s in subjects}
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump(templates, f)
    for i, (name, n_frames) in enumerate(sorted(clips.items())):
        write_clip(root, name, n_frames, n_vertices, fps, sample_rate, seed=i)
    return root


def write_regions(root: Path, regions: dict[str, list[int]]) -> None:
    (root / "regions").mkdir(exist_ok=True)
    for key, indices in regions.items():
        (root / "regions" / f"{key}.txt").write_text(", ".join(map(str, indices)))
