"""EVE of an emotion-classifying model's run, split by whether the model heard each test clip's
emotion right: is its eye-and-forehead error from misheard emotions? Generates every test clip
under the sealed protocol with the run's best checkpoint.

    python benchmarks/eve_by_heard_emotion.py runs/synth/emoface-quick-seed0-<time> [--root DIR]
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from facebench.bench.runner import build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", help="a bench run folder of a model with predict_emotion (EmoFace)")
    parser.add_argument("--root", default=None, help="dataset folder (default: the dataset's usual place)")
    args = parser.parse_args()
    run = Path(args.run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    torch.set_num_threads(int(config.get("threads", 2)))
    data, model = build(config, args.root)
    (checkpoint,) = sorted((run / "checkpoints").glob("*-best.ckpt"))[-1:]
    data.setup("test")
    if getattr(model.network, "attention", None) is not None:
        model.set_topology(data.topology)
    model.load_state_dict(torch.load(checkpoint, weights_only=False)["state_dict"])
    model.eval()
    eve = torch.as_tensor(data.regions()["eve"])
    for split in data.test_split_names:
        errors = {True: [], False: []}
        with torch.no_grad():
            for batch in data.sealed_dataloader(split, model.conditions_used, model.privileged_inputs):
                clip = data.clip(split, int(batch.index[0]))
                heard_right = int(model.predict_emotion(batch.inputs)[0]) == int(clip.emotion)
                for generated in model.generate_conditions(batch.inputs):
                    n = min(generated.shape[1], len(clip.vertices))
                    squared = ((generated[0, :n] - clip.vertices[:n]) ** 2).sum(-1)
                    errors[heard_right].append(squared[:, eve].amax(1).mean().item())
        print(f"{split}: heard right {len(errors[True])} generations, EVE {np.mean(errors[True]):.3g}; "
              f"misheard {len(errors[False])}, EVE {np.mean(errors[False]) if errors[False] else float('nan'):.3g}")  # fmt: skip


if __name__ == "__main__":
    main()
