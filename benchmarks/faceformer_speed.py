"""FaceFormer inference speed: real-time factor (compute seconds per second of audio) at batch 1,
with incremental decoding and with the official full re-decoding, at VOCASET size (5,023 vertices).

The wav2vec2-base architecture is built from its config with random weights (no checkpoint can be
downloaded here); speed does not depend on the weights.

    python benchmarks/faceformer_speed.py [--seconds 10] [--vertices 5023] [--encoder wav2vec2|logmel] [--device cpu]
"""

import argparse
import time

import torch

from facebench.data.sequence import Sequence, collate
from facebench.models.faceformer import FaceFormer

WAV2VEC2_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--vertices", type=int, default=5023)
    parser.add_argument("--encoder", default="wav2vec2", choices=["wav2vec2", "logmel"])
    parser.add_argument("--feature-dim", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full-redecoding", action="store_true", help="also time the official full re-decoding")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = {"name": "wav2vec2", "config": WAV2VEC2_BASE} if args.encoder == "wav2vec2" else {"name": "logmel", "output_dim": 64}
    model = FaceFormer(args.vertices, n_styles=8, feature_dim=args.feature_dim, audio_encoder=encoder).to(args.device).eval()
    frames = int(args.seconds * 30)
    clip = Sequence(name="speed", subject="s", audio=torch.randn(int(args.seconds * 16000)), vertices=torch.zeros(frames, args.vertices, 3),
                    template=torch.zeros(args.vertices, 3), fps=30, style=0)  # fmt: skip
    batch = collate([clip]).to(args.device)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        model.generate(batch)  # warm-up
        modes = [("incremental", True)] + ([("full re-decoding", False)] if args.full_redecoding else [])
        for label, incremental in modes:
            start = time.perf_counter()
            features = model.network.encode_audio(batch.audio, batch.audio_lengths, batch.frame_lengths)
            encoded = time.perf_counter()
            model.network.autoregressive(features, frames, model.style_one_hot(batch.style), incremental=incremental)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            end = time.perf_counter()
            print(f"{args.encoder}, {args.vertices} vertices, d={args.feature_dim}, {params / 1e6:.1f} M parameters, {args.device} "
                  f"({torch.get_num_threads()} threads), {label}: {end - start:.2f} s for {args.seconds:g} s of audio, "
                  f"RTF {(end - start) / args.seconds:.3f} (audio encoder {encoded - start:.2f} s, decoding {end - encoded:.2f} s)")


if __name__ == "__main__":
    main()
