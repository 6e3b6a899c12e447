"""EmoFace training and generation under Lightning: self- and cross-reconstruction losses on both
branches and the fused output, the emotion classifier, and the self-growing schedule (teacher
forcing, then inputs that mix ground truth and the model's own predictions). See CARD.md for the
source of every choice."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facebench.data.sequence import Batch, ModelInputs
from facebench.models.base import TalkingFaceModule
from facebench.models.components.audio_encoders import build_audio_encoder
from facebench.models.components.losses import masked_mse, masked_velocity_mse
from facebench.models.emoface.network import EmoFaceNetwork

FIRST_FRAMES = ("template", "ground_truth")


class EmoFace(TalkingFaceModule):
    """EmoFace (Lin, Peng, Fan et al., arXiv 2408.11518), facebench reconstruction.

    Args:
        n_emotions, n_levels: emotion classes and intensity levels of the dataset (from its preset).
        content_encoder, emotion_encoder: `build_audio_encoder` arguments of the two audio encoders.
        feature_dim, n_heads, n_layers, dropout: each branch decoder's shape (FaceFormer's).
        offset_scale: the unit the network sees offsets in (as FaceFormer's). [ours]
        fusion: "mesh_attention" (the paper) or "add" (its ablation).
        attention_dim: channels of Mesh Attention (the paper: C/16 of a 1024-wide encoder). [ours]
        spiral_length, spiral_dilation, attention_frames (δ), attention_layers: SpiralConv3D's
            neighbourhood; δ = 1 is the paper's SpiralConv2D ablation. [ours] values
        chunk_frames: frames per chunk of the SpiralConv3D gathers (memory; None: all). [ours]
        self_growing: the two-pass schedule (the paper); False trains with teacher forcing only.
        warmup_fraction: θ / N, the share of epochs with p(GT) = 1 before the cosine decay. [ours]
        first_pass_gradient: whether the first (teacher-forced) pass is also trained. [ours]
        reconstruction_weight, cross_weight, velocity_weight, classification_weight: the paper's
            λ (1000 / 1000 / 500 / 1e-4) on L1 losses in dataset units.
        first_frame: "template" (the first input is a zero offset, as FaceFormer's: no ground truth
            at test) or "ground_truth" (the paper's 3D-RAVDESS setting: the ground truth's first frame
            is the first input, in training and at test; a privileged input, so rows are marked).
            [paper / ours: how it enters the decoder]
        loss_power: 1, the paper's L1 losses in dataset units; 2, squared errors in the network's
            unit times that unit (the same size where the error is one unit), to test whether the
            L1 holds EmoFace's LVE back (CARD.md, "Quick-profile skill"). [ours]
    """

    conditions_used = ("intensity",)
    training_pairs = True  # cross-reconstruction: each training clip with a take of the same text in another emotion

    def __init__(
        self,
        n_vertices: int,
        n_styles: int,
        fps: float = 30,
        period: int = 30,
        audio_per_frame: int = 1,
        lr: float = 1e-4,
        n_emotions: int = 8,
        n_levels: int = 2,
        content_encoder: dict | None = None,
        emotion_encoder: dict | None = None,
        feature_dim: int = 64,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.1,
        offset_scale: float = 1.0,
        fusion: str = "mesh_attention",
        attention_dim: int = 16,
        spiral_length: int = 9,
        spiral_dilation: int = 1,
        attention_frames: int = 4,
        attention_layers: int = 2,
        chunk_frames: int | None = None,
        self_growing: bool = True,
        warmup_fraction: float = 0.1,
        first_pass_gradient: bool = False,
        reconstruction_weight: float = 1000.0,
        cross_weight: float = 1000.0,
        velocity_weight: float = 500.0,
        classification_weight: float = 1e-4,
        first_frame: str = "template",
        loss_power: int = 1,
    ):
        super().__init__(n_vertices, n_styles, fps, period, audio_per_frame, lr)
        if first_frame not in FIRST_FRAMES:
            raise ValueError(f"first_frame: expected one of {FIRST_FRAMES}, found {first_frame!r}")
        if loss_power not in (1, 2):
            raise ValueError(f"loss_power: expected 1 (L1, the paper's) or 2 (squared), found {loss_power!r}")
        self.save_hyperparameters()
        self.n_levels, self.n_emotions, self.offset_scale, self.first_frame = n_levels, n_emotions, offset_scale, first_frame
        self.loss_power = loss_power
        if n_levels == 0:  # a dataset without intensity labels (VOCASET, BIWI): one level, nothing to declare
            self.conditions_used = ()
        self.spiral_length, self.spiral_dilation = spiral_length, spiral_dilation
        self.self_growing, self.warmup_fraction, self.first_pass_gradient = self_growing, warmup_fraction, first_pass_gradient
        self.weights = {"self": reconstruction_weight, "cross": cross_weight, "velocity": velocity_weight, "classification": classification_weight}
        if first_frame == "ground_truth":
            self.privileged_inputs = ("first_frame",)
        encoder = lambda spec: build_audio_encoder(**(spec or {"name": "logmel"}))  # noqa: E731
        self.network = EmoFaceNetwork(encoder(content_encoder), encoder(emotion_encoder), n_vertices, n_styles, max(n_levels, 1), max(n_emotions, 1),
                                      feature_dim, period, audio_per_frame, n_heads, n_layers, dropout, fusion, attention_dim,
                                      spiral_length, attention_frames, attention_layers, chunk_frames)  # fmt: skip

    # -- dataset facts ------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """The mesh's spirals, from the dataset's topology (computed once and cached beside it)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and self.network.attention is not None:
            self.set_topology(datamodule.topology)

    def set_topology(self, topology) -> None:
        spirals = torch.as_tensor(topology.spirals(self.spiral_length, self.spiral_dilation), device=self.device)
        self.network.attention.set_spirals(spirals)

    # -- helpers ------------------------------------------------------------------------------------

    def level_one_hot(self, intensity: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """The intensity level as a one-hot; level 0 for every clip of a dataset without levels."""
        levels = max(self.n_levels, 1)
        if intensity is None:
            intensity = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        return F.one_hot(intensity.clamp(0, levels - 1), levels).to(self.dtype)

    def ground_truth_probability(self) -> float:
        """p(GT) of the self-growing schedule at this epoch: 1 during the warm-up θ = fraction x N,
        a cosine from 1 to 0 by (N + θ) / 2, then 0 (EmoFace §3.3.1)."""
        if not self.self_growing or self._trainer is None:
            return 1.0
        n, total = self.current_epoch, max(self.trainer.max_epochs or 1, 1)
        warmup = round(self.warmup_fraction * total)
        if n < warmup:
            return 1.0
        if n > (total + warmup) / 2:
            return 0.0
        return math.cos(math.pi * (n - warmup) / max(total - warmup, 1))

    # -- training -----------------------------------------------------------------------------------

    def reconstruct(self, content_from: Batch, target: Batch) -> dict[str, torch.Tensor]:
        """The target clip's motion from `content_from`'s content features (aligned to the target's
        frames) and the target's own emotion features: L1 of the fused output and of each branch
        (intermediate supervision), and the velocity L1 of the fused output, in dataset units."""
        lengths = target.frame_lengths
        content = self.network.encode(content_from.audio, content_from.audio_lengths, lengths, "content")
        emotion = self.network.encode(target.audio, target.audio_lengths, lengths, "emotion")
        weights = self.network.fusion_weights(content, emotion)
        truth = self.to_offsets(target.vertices, target.templates)
        style, level = self.style_one_hot(target.style), self.level_one_hot(target.intensity, len(target.templates))
        given = truth[:, 0] if self.first_frame == "ground_truth" else None
        inputs = truth
        p_gt = self.ground_truth_probability() if self.training else 1.0
        if p_gt < 1.0:  # self-growing: the second pass reads the first pass's predictions where the coin says so
            with torch.set_grad_enabled(self.first_pass_gradient and torch.is_grad_enabled()):
                first_pass, _, _ = self.network.teacher_forced(content, emotion, truth, style, level, weights, given)
            keep = torch.rand(truth.shape[:2], device=truth.device) < p_gt
            inputs = torch.where(keep[..., None], truth, first_pass)
        fused, d_e, d_c = self.network.teacher_forced(content, emotion, inputs, style, level, weights, given)
        unit = self.offset_scale
        # evaluated in the order the terms are listed, as before loss_power: the backward pass sums in that order
        if self.loss_power == 1:  # the paper's L1, in dataset units
            error = lambda pred: masked_mse(pred * unit, truth * unit, lengths, power=1)  # noqa: E731
            velocity = lambda pred: masked_velocity_mse(pred * unit, truth * unit, lengths, power=1)  # noqa: E731
        else:  # squared, in the network's unit, times that unit
            error = lambda pred: masked_mse(pred, truth, lengths) * unit  # noqa: E731
            velocity = lambda pred: masked_velocity_mse(pred, truth, lengths) * unit  # noqa: E731
        return {"fused": error(fused), "emotion_branch": error(d_e), "content_branch": error(d_c), "velocity": velocity(fused), "emotion_features": emotion}

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        own = self.reconstruct(batch, batch)
        parts = {f"self_{k}": own[k] for k in ("fused", "emotion_branch", "content_branch")}
        loss = self.weights["self"] * sum(parts.values()) + self.weights["velocity"] * own["velocity"]
        parts["velocity"] = own["velocity"]
        logits = self.network.classify(own["emotion_features"], batch.frame_lengths)
        if batch.emotion is not None:
            parts["classification"] = F.cross_entropy(logits, batch.emotion)
            parts["emotion_accuracy"] = (logits.argmax(1) == batch.emotion).float().mean().detach()
            loss = loss + self.weights["classification"] * parts["classification"]
        partner = getattr(batch, "partner", None)
        if partner is not None and self.weights["cross"]:
            cross = self.reconstruct(batch, partner)  # content of this take, emotion of the other take of the same text
            for k in ("fused", "emotion_branch", "content_branch"):
                parts[f"cross_{k}"] = cross[k]
            loss = loss + self.weights["cross"] * (cross["fused"] + cross["emotion_branch"] + cross["content_branch"])
        parts["loss"] = loss
        return parts

    def on_train_epoch_start(self) -> None:
        self.log("train/p_gt", self.ground_truth_probability(), on_epoch=True, on_step=False)

    # -- generation ---------------------------------------------------------------------------------

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        """Autoregressive, both branches fed back the fused motion; the intensity level is an input,
        the emotion is heard by the emotion branch."""
        content = self.network.encode(inputs.audio, inputs.audio_lengths, inputs.n_frames, "content")
        emotion = self.network.encode(inputs.audio, inputs.audio_lengths, inputs.n_frames, "emotion")
        weights = self.network.fusion_weights(content, emotion)
        level = self.level_one_hot(inputs.condition("intensity") if self.conditions_used else None, len(inputs.templates))
        given = self.to_offsets(inputs.privileged["first_frame"][:, None], inputs.templates)[:, 0] if self.first_frame == "ground_truth" else None
        offsets = self.network.autoregressive(content, emotion, inputs.max_frames, self.style_one_hot(inputs.style), level, weights, given)
        return self.vertices_from_offsets(inputs.templates, offsets)

    def predict_emotion(self, inputs: ModelInputs) -> torch.Tensor | None:
        """The emotion heard, per clip (B,); None on a dataset without emotion classes."""
        if self.n_emotions == 0:
            return None
        emotion = self.network.encode(inputs.audio, inputs.audio_lengths, inputs.n_frames, "emotion")
        return self.network.classify(emotion, inputs.n_frames).argmax(1)
