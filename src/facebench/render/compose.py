"""Comparison views: sequences side by side with labels (ground truth | model A | model B), each
model's per-vertex error as a heat map with a colour bar in dataset units, and every sequence's lip
opening over time, plotted under the video with a cursor at the current frame."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

HEAT = "inferno"
BAR_WIDTH = 90


def lip_opening(vertices: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(T,) the vertical extent of the lip region per frame: grows as the mouth opens."""
    y = vertices[:, lips, 1]
    return y.max(1) - y.min(1)


def heat_colors(error: np.ndarray, vmax: float) -> np.ndarray:
    """(V,) errors -> (V, 3) colours of the heat map, 0 to vmax."""
    import matplotlib

    return matplotlib.colormaps[HEAT](np.clip(error / vmax, 0, 1))[:, :3].astype(np.float32)


def labelled(frame: np.ndarray, text: str) -> np.ndarray:
    """The frame with a caption band above it."""
    band = Image.new("RGB", (frame.shape[1], 28), "white")
    ImageDraw.Draw(band).text((8, 8), text, fill="black")
    return np.concatenate([np.asarray(band), frame], axis=0)


def colour_bar(height: int, vmax: float, unit: str, width: int = 90) -> np.ndarray:
    """A vertical colour bar from 0 to vmax, labelled in dataset units."""
    import matplotlib

    ramp = matplotlib.colormaps[HEAT](np.linspace(1, 0, height - 40))[:, :3]
    image = Image.new("RGB", (width, height), "white")
    image.paste(Image.fromarray((np.repeat(ramp[:, None], 20, axis=1) * 255).astype(np.uint8)), (8, 20))
    draw = ImageDraw.Draw(image)
    draw.text((32, 14), f"{vmax:.2g} {unit}", fill="black")
    draw.text((32, height - 28), f"0 {unit}", fill="black")
    draw.text((4, 2), "error", fill="black")
    return np.asarray(image)


class LipPlot:
    """Lip opening of each sequence over time, drawn once; a cursor marks the current frame."""

    def __init__(self, series: dict[str, np.ndarray], width: int, unit: str, height: int = 160):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
        self.ax = fig.add_axes((0.07, 0.22, 0.9, 0.7))
        for name, values in series.items():
            self.ax.plot(values, label=name, linewidth=1.2)
        self.ax.set_xlabel("frame", fontsize=7)
        self.ax.set_ylabel(f"lip opening ({unit})" if unit else "lip opening", fontsize=7)
        self.ax.tick_params(labelsize=6)
        self.ax.legend(fontsize=6, loc="upper right")
        self.frames = max(len(v) for v in series.values())
        fig.canvas.draw()
        self.image = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
        box = self.ax.get_window_extent()
        self.x0, self.x1 = box.x0, box.x1
        self.y0, self.y1 = height - box.y1, height - box.y0
        self.xlim = self.ax.get_xlim()
        plt.close(fig)

    def at(self, frame: int) -> np.ndarray:
        image = self.image.copy()
        x = int(self.x0 + (frame - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (self.x1 - self.x0))
        image[int(self.y0) : int(self.y1), max(x - 1, 0) : x + 1] = (220, 30, 30)
        return image


def comparison_frames(renderer, sequences: dict[str, np.ndarray], lips: np.ndarray | None = None, truth: str | None = None,
                      heatmap: bool = False, unit: str = "", vmax: float | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Frames of the sequences side by side (each (T, V, 3); the shortest sets the length), with
    the heat map of each model's error against `truth` and the lip-opening plot where asked."""
    names = list(sequences)
    length = min(len(v) for v in sequences.values())
    errors = {}
    if heatmap and truth is not None:
        errors = {n: np.linalg.norm(sequences[n][:length] - sequences[truth][:length], axis=-1) for n in names if n != truth}
        vmax = vmax or max(float(np.percentile(e, 99)) for e in errors.values()) or 1.0
    width = renderer.size * (len(names) + len(errors)) + (BAR_WIDTH if errors else 0)
    plot = LipPlot({n: lip_opening(v[:length], lips) for n, v in sequences.items()}, width, unit) if lips is not None else None
    for t in range(length):
        panels = [labelled(renderer.render(sequences[n][t]), n) for n in names]
        panels += [labelled(renderer.render(sequences[n][t], heat_colors(errors[n][t], vmax)), f"{n}: error") for n in errors]
        row = np.concatenate(panels, axis=1)
        if errors:
            row = np.concatenate([row, colour_bar(row.shape[0], vmax, unit, BAR_WIDTH)], axis=1)
        if plot is not None:
            row = np.concatenate([row, plot.at(t)], axis=0)
        yield row
