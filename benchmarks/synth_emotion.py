"""How well the synthetic corpus' emotions can be heard, and what the protocol oracle's use of the
heard emotion is worth.

The protocol oracle shows each clip's true emotion and intensity: the corpus makes them audible, but
not perfectly. This script classifies every clip's emotion (5 classes) and, for emotional clips,
its intensity (2) from audio features alone, leave-one-speaker-out (`emotion_probe`), and scores
three versions of the protocol oracle on the test splits: with the true emotion, with the emotion
the classifier heard, and always neutral. The gap between the first two bounds how optimistic the
protocol oracle is where the emotion is misheard, as a share of the template-to-oracle range.

    python benchmarks/synth_emotion.py [--preset small] [--seed 0]
"""

import argparse
import json
import time

import numpy as np
import pandas as pd
import soundfile
import torch

from facebench.data.datamodule import FaceDataModule
from facebench.data.synth import SYNTH_PRESETS, cached_corpus
from facebench.data.synth.emotion_probe import emotion_features, leave_one_speaker_out
from facebench.data.synth.generator import build_face, make_clip, make_speaker, synth_dataset_name
from facebench.data.synth.motion import EMOTIONS, INTENSITY_SCALE
from facebench.metrics import ConditionedMetrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small", choices=sorted(SYNTH_PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config, root = SYNTH_PRESETS[args.preset], cached_corpus(args.preset, args.seed)
    meta = pd.read_csv(root / "metadata.csv", keep_default_na=False)
    start = time.perf_counter()
    features = np.stack([emotion_features(soundfile.read(root / "wav" / f"{n}.wav")[0]) for n in meta.name])
    speakers = meta.subject.to_numpy()
    accuracy, balanced, confusion, emotion = leave_one_speaker_out(features, meta.emotion.to_numpy(), speakers, len(EMOTIONS))
    emotional = meta.emotion.to_numpy() > 0
    _, intensity_balanced, _, intensity = leave_one_speaker_out(features[emotional], meta.intensity.to_numpy()[emotional],
                                                                speakers[emotional], len(INTENSITY_SCALE))  # fmt: skip
    heard_intensity = np.zeros(len(meta), dtype=int)
    heard_intensity[emotional] = intensity
    print(f"{args.preset} (seed {args.seed}): {len(meta)} clips, features and classifiers in {time.perf_counter() - start:.1f} s")
    print(f"emotion, leave one speaker out: accuracy {accuracy:.3f}, balanced accuracy {balanced:.3f} (chance 0.2)")
    print(pd.DataFrame(confusion, index=[f"true {e}" for e in EMOTIONS], columns=list(EMOTIONS)).to_string())
    print(f"intensity of emotional clips: balanced accuracy {intensity_balanced:.3f} (chance 0.5)")

    data = FaceDataModule(synth_dataset_name(args.preset), root=str(root), with_deterministic=True)
    face = build_face(config.n_vertices)
    all_speakers = [make_speaker(config, face, i, name, seen, args.seed) for i, (name, seen) in enumerate(config.speakers())]
    training_styles = [s.articulation for s in all_speakers if s.seen]
    blendshapes = torch.from_numpy(face.blendshapes).float()
    heard = {name: (int(e), int(i)) for name, e, i in zip(meta.name, emotion, heard_intensity)}
    anchors = json.loads((root / "anchors.json").read_text())
    for split in data.test_split_names:
        clips, seen = data.split_dataset(split), data.preset.split(split).seen
        versions = {"true emotion": None, "heard emotion": "heard", "neutral": (0, 0)}
        scores = {v: ConditionedMetrics(data.preset, data.regions(), data.n_styles, seen=seen) for v in versions}
        for k in range(len(clips)):
            clip = clips[k]
            index = next(i for i, s in enumerate(all_speakers) if s.name == clip.subject)
            speaker = all_speakers[index]
            sentence = int(clip.name[-2:])
            for version, shown in versions.items():
                shown = heard[clip.name] if shown == "heard" else shown
                made = make_clip(config, face, speaker, index, sentence, args.seed, None if seen else training_styles, shown)
                weights = torch.from_numpy(made.protocol_weights)  # (C, T, K), speaker scale included
                generations = [clip.template + torch.einsum("tk,kvc->tvc", w, blendshapes) for w in weights]
                scores[version].update(generations, clip.vertices, clip.template)
        base = anchors[split]["template"]
        values = {v: m.compute() for v, m in scores.items()}
        print(f"\n{split}: share of the template-to-protocol-oracle range lost by each version")
        for metric in ("lve", "eve", "mve"):
            span = base[metric] - values["true emotion"][metric]
            lost = {v: (values[v][metric] - values["true emotion"][metric]) / span for v in versions}
            print(f"  {metric}: " + ", ".join(f"{v} {values[v][metric]:.4g} ({lost[v]:+.1%})" for v in versions) + f"; template {base[metric]:.4g}")


if __name__ == "__main__":
    main()
