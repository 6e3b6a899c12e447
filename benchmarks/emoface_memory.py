"""What Mesh Attention needs at the paper's size: one training step's forward and backward of the
attention (1024-wide audio features, `attention_dim` 64, two SpiralConv3D layers, spiral length 9,
δ = 4) on a FLAME-sized mesh (5,023 vertices) and a 600-frame clip, with and without
`chunk_frames` (activation checkpointing in time). Peak memory above the start (CUDA: the
allocator's peak; CPU: the resident set's high-water mark) and seconds.

    python benchmarks/emoface_memory.py [--vertices 5023] [--frames 600] [--chunks 0 64]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from facebench.bench.cost import PeakMemory
from facebench.data.synth.mesh import build_face
from facebench.mesh import MeshTopology
from facebench.models.emoface.network import MeshAttention


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vertices", type=int, default=5023)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--dim", type=int, default=64, help="attention_dim")
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 64], help="chunk_frames to try (0: none)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    face = build_face(args.vertices)  # a procedural face of about that many vertices
    n_vertices = len(face.vertices)
    with tempfile.TemporaryDirectory() as cache:
        spirals = torch.as_tensor(MeshTopology(face.faces, face.vertices, Path(cache)).spirals(9, 1))
    print(f"Mesh Attention, {n_vertices} vertices x {args.frames} frames, attention_dim {args.dim}, 2 layers, L = 9, δ = 4, on {device}")
    for chunk in args.chunks:
        torch.manual_seed(0)
        attention = MeshAttention(1024, 1024, n_vertices, args.dim, 9, 4, 2, chunk or None).to(device)
        attention.set_spirals(spirals.to(device))
        content, emotion = (torch.randn(1, args.frames, 1024, device=device) for _ in range(2))
        with PeakMemory() as peak:
            start = time.perf_counter()
            attention(content, emotion).mean().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        print(f"chunk_frames {chunk or 'none'}: peak {peak.mb(device):.0f} MiB, {seconds:.1f} s forward + backward")


if __name__ == "__main__":
    main()
