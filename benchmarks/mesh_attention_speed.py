"""Mesh Attention's first SpiralConv3D layer, the way EmoFace computes it against the reference path,
in the same process: its input is the broadcast sum audio (B, T, C) + vertex embedding (V, C), so
`SpiralConv3D.of_sum` convolves the two parts separately (a causal convolution in time and a spiral
convolution of the embedding) where the reference path forms the (V, B, T, C) sum and convolves it
(`SpiralConv3D.forward`, one spiral position at a time). One forward and backward each, at the
sizes of EmoFace's `quick` profile (the 990-vertex `synth` mesh, batches of 4 clips of 155 frames,
8 channels, δ = 2) and of its `full` profile (a FLAME-sized mesh, one 600-frame clip, 64 channels,
δ = 4, `chunk_frames` 64). Prints seconds, the ratio and the largest difference of the outputs.

    python benchmarks/mesh_attention_speed.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from facebench.data.synth.mesh import build_face
from facebench.mesh import MeshTopology
from facebench.models.components.spiral import SpiralConv3D

SIZES = {  # name: (vertices, clips, frames, channels, δ, chunk_frames)
    "quick": (990, 4, 155, 8, 2, None),
    "full": (5023, 1, 600, 64, 4, 64),
}


def seconds(step, repeats: int) -> float:
    step()  # warm-up: allocator and kernel selection
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def measure(vertices: int, clips: int, frames: int, channels: int, delta: int, chunk: int | None, repeats: int) -> tuple[int, float, float, float]:
    """(vertices of the mesh built, reference s, ours s, largest output difference) at one size."""
    face = build_face(vertices)
    with tempfile.TemporaryDirectory() as cache:
        spirals = torch.as_tensor(MeshTopology(face.faces, face.vertices, Path(cache)).spirals(9, 1))
    torch.manual_seed(0)
    conv = SpiralConv3D(channels, channels, len(face.vertices), 9, delta, chunk)
    conv.set_spirals(spirals)
    audio = torch.randn(clips, frames, channels, requires_grad=True)
    embedding = torch.randn(len(face.vertices), channels, requires_grad=True)

    def reference() -> torch.Tensor:
        return conv(audio[None] + embedding[:, None, None])

    def ours() -> torch.Tensor:
        return conv.of_sum(audio, embedding)

    with torch.no_grad():
        difference = (reference() - ours()).abs().max().item()
    formed = seconds(lambda: reference().square().mean().backward(), repeats)
    split = seconds(lambda: ours().square().mean().backward(), repeats)
    return len(face.vertices), formed, split, difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs after one warm-up (the full size takes about a minute a run on 2 cores)")
    args = parser.parse_args()
    table = Table(title=f"Mesh Attention's first layer, forward + backward, {torch.get_num_threads()} threads")
    for column in ("size", "V x B x T x C, δ", "formed sum (reference) s", "split (ours) s", "reference ÷ ours", "max |difference|"):
        table.add_column(column)
    for name, (vertices, clips, frames, channels, delta, chunk) in SIZES.items():
        n_vertices, formed, split, difference = measure(vertices, clips, frames, channels, delta, chunk, args.repeats)
        table.add_row(name, f"{n_vertices} x {clips} x {frames} x {channels}, {delta}", f"{formed:.3f}", f"{split:.3f}", f"{formed / split:.1f}",
                      f"{difference:.1e}")  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
