"""The two anchors every leaderboard is read between: the static template (worst sensible) and,
on synthetic data, the oracle (best achievable). Neither trains nor uses the style."""

from __future__ import annotations

import torch

from facebench.data.sequence import ModelInputs
from facebench.models.base import TalkingFaceModule


class Template(TalkingFaceModule):
    """Predicts the subject's neutral template at every frame the audio implies."""

    stages = ()

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        return inputs.templates[:, None].expand(-1, inputs.max_frames, -1, -1).clone()


class Oracle(TalkingFaceModule):
    """Returns the deterministic part of each synthetic clip: what a perfect model could predict.

    The one declared exception to sealed evaluation: it reads the corpus' deterministic part (at the
    ground truth's length), a privileged input its rows name in their `inputs` column."""

    stages = ()
    privileged_inputs = ("deterministic",)

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        return inputs.privileged["deterministic"]
