"""The anchors every leaderboard is read between: the static template (worst sensible) and, on
synthetic data, the protocol oracle (the best achievable under the protocol) with the full-knowledge
oracle as a diagnostic beside it; on video, the calibration rows: the ground truth itself, and the
ground truth out of sync with its audio. None of them trains."""

from __future__ import annotations

import torch

from facebench.data.sequence import ModelInputs
from facebench.models.base import TalkingFaceModule


class Template(TalkingFaceModule):
    """Predicts the subject's neutral template at every frame the audio implies; on video, the
    reference frame and its mask, repeated."""

    stages = ()
    modalities = ("mesh", "video")

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        templates = inputs.templates
        return templates[:, None].expand(-1, inputs.max_frames, *templates.shape[1:]).clone()


class Oracle(TalkingFaceModule):
    """Returns the deterministic part of each synthetic clip: what a perfect model could predict.

    The one declared exception to sealed evaluation: it reads the corpus' deterministic part (at the
    ground truth's length), a privileged input its rows name in their `inputs` column. On the video
    corpus, that part rendered with the clip's head pose, and its masks."""

    stages = ()
    privileged_inputs = ("deterministic",)
    modalities = ("mesh", "video")

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        return inputs.privileged["deterministic"]


class ProtocolOracle(TalkingFaceModule):
    """The best a model can do with exactly the protocol's inputs, on synthetic data: the corpus'
    deterministic part computed with what the protocol gives. A seen speaker is conditioned on its
    own style, so this is the full oracle; an unseen speaker's clip is generated under each
    training style with that speaker's articulation (its own is unknowable), the metrics averaged
    over conditions as for any model. The emotion is the one heard (the corpus makes it audible;
    README, "The synthetic corpus"). Privileged like the oracle, and marked so in its rows."""

    stages = ()
    privileged_inputs = ("protocol_oracle",)

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        per_condition = inputs.privileged["protocol_oracle"]  # (B, C, T, V, 3), C = 1 for a seen speaker
        index = inputs.style.clamp(min=0) if per_condition.shape[1] > 1 else torch.zeros_like(inputs.style)
        return per_condition[torch.arange(len(index), device=index.device), index]


class GroundTruth(TalkingFaceModule):
    """Calibration (video): the ground-truth frames themselves, so a reader sees each metric's best
    value on this data (PSNR 80 dB, SSIM and IoUs 1) and what the sync judge makes of real sync.
    Privileged, and marked so in its rows."""

    stages = ()
    privileged_inputs = ("frames",)
    modalities = ("video",)

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        return inputs.privileged["frames"]


class GroundTruthOffset(GroundTruth):
    """Calibration (video): the ground-truth frames rolled in time by half the clip, so real footage
    of the speaker plays against audio from elsewhere in the clip: the lip-sync scores of real video
    out of sync (the frame metrics of a plausible but wrong take)."""

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        frames = inputs.privileged["frames"].clone()
        for i, n in enumerate(inputs.n_frames.tolist()):
            frames[i, :n] = torch.roll(frames[i, :n], n // 2, dims=0)
        return frames
