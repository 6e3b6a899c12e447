"""A picture of one clip: the waveform, the mouth opening and the phonemes, and a few frames of
the mesh, so a user sees what the corpus is."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from facebench.data.datamodule import FaceDataModule  # noqa: E402
from facebench.data.synth.generator import synth_dataset_name  # noqa: E402


def read_region(root: Path, name: str) -> np.ndarray:
    return np.array([int(x) for x in (root / "regions" / f"{name}.txt").read_text().split(",")])


def plot_clip(root: str | Path, clip: str, out: str | Path) -> Path:
    root, out = Path(root), Path(out)
    card = json.loads((root / "card.json").read_text())
    audio, sr = soundfile.read(root / "wav" / f"{clip}.wav")
    vertices = np.load(root / "vertices_npy" / f"{clip}.npy").reshape(-1, card["n_vertices"], 3)
    data = FaceDataModule(synth_dataset_name(card["config"]["preset"]), root=str(root), with_deterministic=True)
    oracle = data.reader.load(data.reader.entry(clip)).deterministic.numpy()
    phonemes = np.load(root / "phonemes" / f"{clip}.npy")
    faces = np.load(root / "faces.npy")
    upper, lower = read_region(root, "upper_lip"), read_region(root, "lower_lip")
    fps = card["config"]["fps"]
    t = np.arange(len(vertices)) / fps

    def lip_gap(v: np.ndarray) -> np.ndarray:
        return 1000 * (v[:, upper, 1].mean(1) - v[:, lower, 1].mean(1))

    opening, deterministic_opening = lip_gap(vertices), lip_gap(oracle)
    fig = plt.figure(figsize=(11, 6.5), constrained_layout=True)
    grid = fig.add_gridspec(3, 5, height_ratios=[1, 1.2, 1.6])
    ax = fig.add_subplot(grid[0, :])
    ax.plot(np.arange(len(audio)) / sr, audio, lw=0.4, color="0.3")
    ax.set_ylabel("waveform")
    ax.set_xlim(0, t[-1])
    ax.set_title(f"synthetic corpus, clip {clip} (16 kHz audio, {fps:g} fps mesh, {card['n_vertices']} vertices)")
    ax = fig.add_subplot(grid[1, :], sharex=ax)
    ax.plot(t, opening, label="mouth opening (recorded)", color="C0")
    ax.plot(t, deterministic_opening, "--", label="deterministic part (the oracle)", color="C1")
    symbols = card["phonemes"]
    changes = np.flatnonzero(np.diff(phonemes, prepend=-1))
    for k in changes:
        ax.axvline(t[k], color="0.85", lw=0.6, zorder=0)
        ax.text(t[k], opening.max(), symbols[phonemes[k]], fontsize=7, va="bottom")
    ax.set_ylabel("lip gap, mm")
    ax.set_xlabel("seconds")
    ax.legend(loc="lower right", fontsize=8)
    frames = np.linspace(0, len(vertices) - 1, 5).astype(int)
    for i, frame in enumerate(frames):
        ax = fig.add_subplot(grid[2, i])
        v = vertices[frame]
        ax.triplot(v[:, 0], v[:, 1], faces, lw=0.25, color="0.4")
        ax.scatter(v[upper, 0], v[upper, 1], s=2, color="C3")
        ax.scatter(v[lower, 0], v[lower, 1], s=2, color="C0")
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(f"t = {t[frame]:.2f} s", fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def mask_palette():
    """One colour per class of the 12-class masks (matplotlib colormap; class k at value k)."""
    from matplotlib.colors import ListedColormap

    from facebench.data.segmentation import CLASSES

    return ListedColormap(plt.get_cmap("tab20").colors[: len(CLASSES)])


def plot_frames_and_masks(columns: dict[str, np.ndarray], out: str | Path, title: str = "") -> Path:
    """Frames side by side (a column per named (H, W, 4) frame: RGB in [0, 1] or 0-255, and its
    classes), their masks below; a legend of the classes shown."""
    from facebench.data.segmentation import CLASSES

    out, palette = Path(out), mask_palette()
    fig, axes = plt.subplots(2, len(columns), figsize=(2.2 * len(columns), 4.8), squeeze=False, constrained_layout=True)
    present = set()
    for k, (name, frame) in enumerate(columns.items()):
        frame = np.asarray(frame, dtype=np.float32)
        rgb = frame[..., :3] / (255.0 if frame[..., :3].max() > 1.5 else 1.0)
        axes[0, k].imshow(rgb.clip(0, 1), interpolation="nearest")
        axes[0, k].set_title(name, fontsize=8)
        labels = np.where(frame[..., 3] < len(CLASSES), frame[..., 3], np.nan)
        axes[1, k].imshow(labels, cmap=palette, vmin=-0.5, vmax=len(CLASSES) - 0.5, interpolation="nearest")
        present |= set(np.unique(frame[..., 3][frame[..., 3] < len(CLASSES)]).astype(int).tolist())
        for ax in axes[:, k]:
            ax.set_axis_off()
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette(c)) for c in sorted(present)]
    fig.legend(handles, [CLASSES[c] for c in sorted(present)], loc="lower center", ncol=min(len(present), 6), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, -0.06))  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_video_clip(root: str | Path, clip: str, out: str | Path) -> Path:
    """One clip of the video corpus: its waveform, the mouth's area in its masks and in the
    oracle's over time, and five frames above their 12-class masks."""
    from facebench.data.segmentation import CLASSES, MOUTH_CLASSES
    from facebench.data.synth.video import video_dataset_name

    root, out = Path(root), Path(out)
    card = json.loads((root / "card.json").read_text())
    data = FaceDataModule(video_dataset_name(card["config"]["preset"]), root=str(root), with_deterministic=True)
    sequence = data.reader.load(data.reader.entry(clip))
    frames, oracle = sequence.frames.numpy(), sequence.deterministic.numpy()
    audio, sr = soundfile.read(root / "wav" / f"{clip}.wav")
    t = np.arange(len(frames)) / card["fps"]
    area = lambda f: np.isin(f[..., 3], MOUTH_CLASSES).mean((1, 2)) * 100  # noqa: E731
    palette = mask_palette()
    fig = plt.figure(figsize=(11, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(4, 5, height_ratios=[0.8, 1, 1.4, 1.4])
    ax = fig.add_subplot(grid[0, :])
    ax.plot(np.arange(len(audio)) / sr, audio, lw=0.4, color="0.3")
    ax.set_ylabel("waveform")
    ax.set_xlim(0, t[-1])
    size = card["config"]["size"]
    ax.set_title(f"synthetic video corpus, clip {clip} (16 kHz audio, {card['fps']:g} fps, {size}x{size} px, 12-class masks)")
    ax = fig.add_subplot(grid[1, :], sharex=ax)
    ax.plot(t, area(frames), label="lips + mouth, % of the frame (ground-truth masks)", color="C0")
    ax.plot(t, area(oracle), "--", label="the same in the oracle's masks (deterministic part)", color="C1")
    ax.set_xlabel("seconds")
    ax.legend(loc="upper right", fontsize=8)
    for i, k in enumerate(np.linspace(0, len(frames) - 1, 5).astype(int)):
        ax = fig.add_subplot(grid[2, i])
        ax.imshow(frames[k, :, :, :3], interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"t = {t[k]:.2f} s", fontsize=8)
        ax = fig.add_subplot(grid[3, i])
        ax.imshow(frames[k, :, :, 3], cmap=palette, vmin=-0.5, vmax=len(CLASSES) - 0.5, interpolation="nearest")
        ax.set_axis_off()
    present = sorted(set(np.unique(frames[..., 3]).tolist()))
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette(c)) for c in present]
    fig.legend(handles, [CLASSES[c] for c in present], loc="lower center", ncol=len(present), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
