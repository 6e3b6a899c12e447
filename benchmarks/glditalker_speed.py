"""GLDiTalker speed at FLAME's size (5,023 vertices, the synthetic face's mesh at that size, the
`full` profile's network): inference real-time factor (compute seconds per second of audio, batch 1)
for 1, 10 and 50 DDIM steps, and training frames per second of each stage (one clip per step,
forward and backward).

wav2vec2-base is built from its config with random weights (no checkpoint can be downloaded here);
speed does not depend on the weights.

    python benchmarks/glditalker_speed.py [--seconds 10] [--vertices 5023] [--steps 1 10 50] [--encoder wav2vec2|logmel] [--device cpu]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from facebench.data.sequence import Sequence, collate
from facebench.data.synth.mesh import build_face
from facebench.mesh import MeshTopology
from facebench.models.glditalker import GLDiTalker

WAV2VEC2_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per clip (inference)")
    parser.add_argument("--train-seconds", type=float, default=4.0, help="audio per training clip")
    parser.add_argument("--vertices", type=int, default=5023)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--encoder", default="wav2vec2", choices=["wav2vec2", "logmel"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    face = build_face(args.vertices)
    with tempfile.TemporaryDirectory() as cache:
        topology = MeshTopology(face.faces, face.vertices, Path(cache))
        factors = (4, 4, 4, 4)
        sizes = [face.n_vertices, *(len(level.kept) for level in topology.pyramid(factors))]
        encoder = {"name": "wav2vec2", "config": WAV2VEC2_BASE} if args.encoder == "wav2vec2" else {"name": "logmel", "output_dim": 64}
        model = GLDiTalker(face.n_vertices, n_styles=8, level_factors=factors, level_sizes=sizes, audio_encoder=encoder)
        model.set_topology(topology)
    model = model.to(args.device)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.encoder}, {face.n_vertices} vertices (pyramid {' -> '.join(map(str, sizes))}), {params / 1e6:.1f} M parameters, "
          f"{args.device} ({torch.get_num_threads()} threads)")

    def clip(seconds: float):
        frames = int(seconds * 30)
        sequence = Sequence(name="speed", subject="s", audio=torch.randn(int(seconds * 16000)), vertices=torch.randn(frames, face.n_vertices, 3) * 1e-3,
                            template=torch.zeros(face.n_vertices, 3), fps=30, style=0)  # fmt: skip
        return collate([sequence]).to(args.device), frames

    # Training: frames per second of each stage (forward and backward of its loss, one clip per step).
    batch, frames = clip(args.train_seconds)
    model.train()
    for stage in ("vqvae", "denoiser"):
        model.set_stage(stage)
        model.train()
        for _repeat in range(3):  # the first is a warm-up
            start = time.perf_counter()
            model.losses(batch)["loss"].backward()
            synchronize(args.device)
            seconds = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        print(f"training stage {stage}: {frames / seconds:.1f} frames/s ({seconds:.2f} s per {args.train_seconds:g} s clip)")

    # Inference: real-time factor per number of DDIM steps.
    model.eval()
    batch, frames = clip(args.seconds)
    inputs = batch.inputs(model.audio_per_frame)
    with torch.no_grad():
        model.generate(inputs, seed=0)  # warm-up
        for steps in args.steps:
            model.sampling_steps = steps
            start = time.perf_counter()
            model.generate(inputs, seed=0)
            synchronize(args.device)
            seconds = time.perf_counter() - start
            print(f"inference, {steps} DDIM steps: {seconds:.2f} s for {args.seconds:g} s of audio, RTF {seconds / args.seconds:.3f}")


if __name__ == "__main__":
    main()
