"""The README's SegTalker figures from a finished run: generated frames of a held-out clip beside its
ground truth (and, where given, the `plain_generator` ablation's), each over its mask.

    python benchmarks/segtalker_figures.py --run runs/synth-video/segtalker-quick-seed0-... \\
        [--plain runs/synth-video/segtalker-plain_generator-quick-seed0-...] --out docs/segtalker_frames.png

The region-edit figure is `facebench edit` (README, "SegTalker").
"""

from __future__ import annotations

import argparse

import torch

from facebench.data.sequence import collate, rgbl
from facebench.data.synth.plot import plot_frames_and_masks
from facebench.render.animate import load_run


@torch.no_grad()
def generated(run: str, split: str, index: int) -> tuple[object, torch.Tensor]:
    _, data, model = load_run(run)
    clip = data.split_dataset(split)[index]
    return clip, model.generate(model.generation_inputs(collate([clip])))[0]  # with the conditions the model declares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--plain", default=None, help="a run of the plain_generator ablation, shown beside")
    parser.add_argument("--split", default="test_unseen")
    parser.add_argument("--clip", type=int, default=0, help="the clip's index in the split")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 12, 24])
    parser.add_argument("--out", default="docs/segtalker_frames.png")
    args = parser.parse_args()
    clip, seg = generated(args.run, args.split, args.clip)
    plain = generated(args.plain, args.split, args.clip)[1] if args.plain else None
    truth = rgbl(clip.frames)
    columns = {}
    for t in args.frames:
        t = min(t, len(truth) - 1, len(seg) - 1)
        columns[f"ground truth, frame {t}"] = truth[t].numpy()
        columns[f"SegTalker, frame {t}"] = seg[t].numpy()
        if plain is not None:
            columns[f"plain generator, frame {t}"] = plain[t].numpy()
    out = plot_frames_and_masks(columns, args.out, f"{clip.name} ({args.split}): generated from its audio and first frame")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
