"""Why signed FDD is shown but never ranked: noise added to a prediction moves FDD toward 0 (and past
it) while every error metric gets worse. Scores the template and the protocol oracle on the synthetic
corpus' test splits, as they are and with i.i.d. Gaussian noise on every vertex coordinate of every
frame (seeded), with the same metrics as any leaderboard row.

    python benchmarks/fdd_noise.py [--preset small] [--sigma 0.0005 0.001 0.002]
"""

import argparse

import pandas as pd
import torch

from facebench.data.datamodule import FaceDataModule
from facebench.data.sequence import collate
from facebench.data.synth import SYNTH_PRESETS, cached_corpus
from facebench.data.synth.generator import synth_dataset_name
from facebench.metrics import ConditionedMetrics
from facebench.models.anchors import ProtocolOracle, Template


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small", choices=sorted(SYNTH_PRESETS))
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.0005, 0.001, 0.002], help="noise std in metres")
    args = parser.parse_args()
    root = cached_corpus(args.preset, 0)
    data = FaceDataModule(synth_dataset_name(args.preset), root=str(root), with_deterministic=True)
    regions, styles = data.regions(), len(data.train_subjects)
    anchors = {"template": Template(n_vertices=data.n_vertices, n_styles=styles),
               "protocol_oracle": ProtocolOracle(n_vertices=data.n_vertices, n_styles=styles)}  # fmt: skip
    rows = []
    for split in data.test_split_names:
        clips, seen = data.split_dataset(split), data.preset.split(split).seen
        versions = [(name, sigma) for name in anchors for sigma in (0.0, *args.sigma)]
        scores = {v: ConditionedMetrics(data.preset, regions, styles, seen=seen) for v in versions}
        noise = torch.Generator().manual_seed(0)
        for i in range(len(clips)):
            clip = clips[i]
            batch = collate([clip])
            for name, model in anchors.items():
                generated = model.generate_conditions(model.generation_inputs(batch))
                for sigma in (0.0, *args.sigma):
                    noisy = [g + sigma * torch.randn(g.shape, generator=noise, dtype=g.dtype) for g in generated]
                    scores[(name, sigma)].update(noisy, clip.vertices, clip.template)
        for (name, sigma), metrics in scores.items():
            values = metrics.compute()
            rows.append({"split": split, "anchor": name, "noise_mm": sigma * 1e3,
                         **{k: float(values[k]) for k in ("lve", "eve", "mve", "fdd", "fdd_abs")}})  # fmt: skip
    print(f"synth-{args.preset}: anchors with Gaussian noise per vertex coordinate and frame")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
