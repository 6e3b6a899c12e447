"""The two anchors every leaderboard is read between: the static template (worst sensible) and,
on synthetic data, the oracle (best achievable). Neither trains nor uses the style."""

from __future__ import annotations

import torch

from facebench.data.sequence import Batch
from facebench.models.base import TalkingFaceModule


class Template(TalkingFaceModule):
    """Predicts the subject's neutral template at every frame."""

    stages = ()

    def generate(self, batch: Batch) -> torch.Tensor:
        return batch.templates[:, None].expand_as(batch.vertices).clone()


class Oracle(TalkingFaceModule):
    """Returns the deterministic part of each synthetic clip: what a perfect model could predict."""

    stages = ()
    needs_deterministic = True

    def generate(self, batch: Batch) -> torch.Tensor:
        if batch.deterministic is None:
            raise ValueError("the oracle needs the deterministic part of each clip, which only synthetic corpora have")
        return batch.deterministic
