"""The ceiling a codebook model's stage 1 sets: how well the quantised auto-encoder (CodeTalker,
GLDiTalker: stage `vqvae`) reconstructs each test split's ground-truth motion, from the run's best
checkpoint (the auto-encoder is frozen after stage 1, so the last stage's holds it). The stage-2 model can only choose codes, so its lip error cannot go below this one
(short of an auto-encoder that decodes better from codes it never saw encoded).

Prints, per test split, the reconstruction's LVE and, where the leaderboard holds the dataset's
`template` and `protocol_oracle` rows, the skill that LVE would give: (template - LVE) / (template -
protocol oracle), the anchors' mean LVE over their rows.

    python benchmarks/codebook_ceiling.py runs/synth/codetalker-quick-seed0-<time> [--leaderboards leaderboards]
"""

import argparse
from pathlib import Path

import pandas as pd
import torch

from facebench.bench.leaderboard import add_skill, leaderboard_path, read_rows
from facebench.data.sequence import collate
from facebench.metrics.mesh import LipVertexError
from facebench.render.animate import load_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", help="a bench run folder of a model with a `vqvae` stage (CodeTalker, GLDiTalker)")
    parser.add_argument("--root", default=None, help="dataset folder (default: the dataset's usual place)")
    parser.add_argument("--leaderboards", default="leaderboards", help="where the anchors' rows are read")
    args = parser.parse_args()
    run = Path(args.run)
    config, data, model = load_run(run, root=args.root)
    torch.set_num_threads(int(config.get("threads", 2)))
    rows = read_rows(leaderboard_path(args.leaderboards, data.name))
    for split in data.test_split_names:
        metric = LipVertexError(data.regions()["lve"])
        clips = data.split_dataset(split)
        for i in range(len(clips)):
            batch = collate([clips[i]])
            metric.update(model.reconstructed_vertices(batch), batch.vertices)
        lve = float(metric.compute())
        line = f"{split}: stage-1 reconstruction LVE {lve:.4g}"
        anchors = rows[(rows["model"].isin(["template", "protocol_oracle"])) & (rows["split"] == split)].groupby("model")["lve"].mean()
        if len(anchors) == 2:  # both anchors on the board: the leaderboard's own skill
            table = add_skill(pd.DataFrame({"model": [*anchors.index, "stage1"], "lve_mean": [*anchors.values, lve]}))
            line += f", skill ceiling {table['skill'].iloc[-1]:.3f} (template {anchors['template']:.4g}, protocol oracle {anchors['protocol_oracle']:.4g})"
        print(line)


if __name__ == "__main__":
    main()
