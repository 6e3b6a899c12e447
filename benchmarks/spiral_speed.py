"""The two orders of a spiral convolution (facebench.models.components.spiral) at every level of
GLDiTalker's spiral pyramid, in the same process: projecting the input once per spiral position and
gathering rows of the output's width (the order for wide inputs), against gathering the L input
rows first and mapping them in one matmul (`gathers_input`, the order for narrow inputs). One
forward and backward each, on one clip's frames as stage 1 encodes them: the `quick` profile's
pyramid (the 990-vertex `synth` mesh, factors 4, 4, channels 16, 32, 155 frames) and the `full`
profile's (a FLAME-sized mesh, factors 4, 4, 4, 4, channels 32, 32, 32, 64, 600 frames). Prints
seconds, the ratio, the order the rule picks, and the largest difference of the outputs.

    python benchmarks/spiral_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from mesh_attention_speed import seconds  # this folder's timing rule: one warm-up, then the mean
from rich.console import Console
from rich.table import Table

from facebench.data.synth.mesh import build_face
from facebench.mesh import MeshTopology
from facebench.models.components.spiral import SpiralConv

SIZES = {  # name: (vertices, level factors, channels, frames)
    "quick": (990, (4, 4), (16, 32), 155),
    "full": (5023, (4, 4, 4, 4), (32, 32, 32, 64), 600),
}


def levels(vertices: int, factors: tuple[int, ...]) -> list[torch.Tensor]:
    """Each pyramid level's spirals (length 9), as GLDiTalker's `set_topology` builds them."""
    face = build_face(vertices)
    with tempfile.TemporaryDirectory() as cache:
        mesh = MeshTopology(face.faces, face.vertices, Path(cache))
        spirals = []
        for level in mesh.pyramid(factors):
            spirals.append(torch.as_tensor(mesh.spirals(9, 1)))
            mesh = mesh.coarser(level)
    return spirals


def measure(conv: SpiralConv, frames: int, repeats: int) -> tuple[float, float, float]:
    """(projected s, gathered s, largest output difference) for one level."""
    torch.manual_seed(0)
    x = torch.randn(len(conv.spirals), frames, conv.weight.shape[1], requires_grad=True)
    chosen = conv.gathers_input
    outputs, times = [], []
    for gathers in (False, True):
        conv.gathers_input = gathers
        with torch.no_grad():
            outputs.append(conv(x))
        times.append(seconds(lambda: conv(x).square().mean().backward(), repeats))
    conv.gathers_input = chosen
    return times[0], times[1], (outputs[0] - outputs[1]).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    args = parser.parse_args()
    table = Table(title=f"Spiral convolutions of GLDiTalker's pyramid, forward + backward, {torch.get_num_threads()} threads")
    for column in ("profile, level", "V x T, C_in -> C_out", "projected s", "gathered s", "projected ÷ gathered", "rule picks", "max |difference|"):
        table.add_column(column)
    for name, (vertices, factors, channels, frames) in SIZES.items():
        widths = (3, *channels)
        for i, spirals in enumerate(levels(vertices, factors)):
            conv = SpiralConv(widths[i], widths[i + 1], len(spirals), 9)
            conv.set_spirals(spirals)
            projected, gathered, difference = measure(conv, frames, args.repeats)
            table.add_row(f"{name}, {i + 1}", f"{len(spirals)} x {frames}, {widths[i]} -> {widths[i + 1]}", f"{projected:.4f}", f"{gathered:.4f}",
                          f"{projected / gathered:.2f}", "gathered" if conv.gathers_input else "projected", f"{difference:.1e}")  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
