"""FaceFormer training and generation under Lightning. See CARD.md for every choice and its source."""

from __future__ import annotations

import torch

from facebench.data.sequence import Batch, ModelInputs
from facebench.models.base import TalkingFaceModule
from facebench.models.components.audio_encoders import build_audio_encoder
from facebench.models.components.losses import masked_mse, masked_velocity_mse
from facebench.models.faceformer.network import FaceFormerNetwork


class FaceFormer(TalkingFaceModule):
    """FaceFormer (Fan et al., CVPR 2022).

    Args:
        feature_dim: d of the decoder (official: 64 VOCASET, 128 BIWI).
        audio_encoder: `build_audio_encoder` arguments, e.g. {"name": "wav2vec2", "checkpoint": DIR}.
        teacher_forcing: train from ground-truth previous frames (False: autoregressive, official).
        incremental_training: for autoregressive training, decode each frame from cached keys and
            values (same outputs as the official full re-decoding; dropout masks are drawn once per
            frame instead of once per frame and step).
        n_heads, n_layers, dropout: decoder shape (official: 4, 1, 0.1).
        offset_scale: the unit the network sees offsets in (dataset units per network unit). 1.0 is
            the official model; 1e-3 on metre-scale data (VOCASET, synth) lets a learning rate of
            1e-3 train in the few hundred steps of the CPU profiles without the first Adam steps
            throwing the zero-initialised output centimetres off. [ours]
        detach_feedback: in autoregressive training, no gradient through the fed-back frames. [ours]
        velocity_weight: weight of an MSE on frame-to-frame differences added to the official
            vertex MSE; 0 is the official loss. [ours] (the fair baseline for DualTalker, whose
            reconstruction uses one)
        scheduled_sampling: train in two parallel passes instead of the frame-by-frame unroll: a
            teacher-forced pass without gradients, then one whose previous frames are the first
            pass's predictions with this probability (ramped linearly from 0 over the stage's
            epochs), else the ground truth's (Bengio et al. 2015's scheduled sampling, in the
            parallel form of Duckworth et al. 2019). 0: as `teacher_forcing` says. [ours]
    """

    def __init__(
        self,
        n_vertices: int,
        n_styles: int,
        fps: float = 30,
        period: int = 30,
        audio_per_frame: int = 1,
        lr: float = 1e-4,
        feature_dim: int = 64,
        audio_encoder: dict | None = None,
        teacher_forcing: bool = False,
        incremental_training: bool = True,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.1,
        offset_scale: float = 1.0,
        detach_feedback: bool = False,
        velocity_weight: float = 0.0,
        scheduled_sampling: float = 0.0,
    ):
        super().__init__(n_vertices, n_styles, fps, period, audio_per_frame, lr)
        self.offset_scale, self.detach_feedback, self.velocity_weight = offset_scale, detach_feedback, velocity_weight
        self.save_hyperparameters()
        encoder = build_audio_encoder(**(audio_encoder or {"name": "logmel"}))
        self.network = FaceFormerNetwork(encoder, n_vertices, n_styles, feature_dim, period, audio_per_frame, n_heads, n_layers, dropout)
        self.teacher_forcing, self.incremental_training = teacher_forcing, incremental_training
        self.scheduled_sampling = scheduled_sampling

    def offsets(self, batch: Batch, teacher_forcing: bool, features: torch.Tensor | None = None) -> torch.Tensor:
        """Training and validation losses: predicted offsets from the template in network units,
        (B, T, V*3), at the ground truth's length; `features`: the encoded audio when the caller
        has it already."""
        if features is None:
            features = self.network.encode_audio(batch.audio, batch.audio_lengths, batch.frame_lengths)
        one_hot = self.style_one_hot(batch.style)
        if self.scheduled_sampling and self.training:
            return self.scheduled_offsets(features, self.target_offsets(batch), one_hot)
        if teacher_forcing:
            return self.network.teacher_forced(features, self.target_offsets(batch), one_hot)
        incremental = self.incremental_training or not self.training
        return self.network.autoregressive(features, batch.vertices.shape[1], one_hot, incremental, self.detach_feedback and self.training)

    def feedback_share(self) -> float:
        """Scheduled sampling's probability of feeding back the model's own frame: 0 in the first
        epoch, `scheduled_sampling` in the last."""
        trainer = self._trainer
        if trainer is None or not trainer.max_epochs or trainer.max_epochs <= 1:
            return self.scheduled_sampling
        return self.scheduled_sampling * min(1.0, self.current_epoch / (trainer.max_epochs - 1))

    def scheduled_offsets(self, features: torch.Tensor, target: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        """Scheduled sampling in two parallel passes (see `scheduled_sampling`)."""
        with torch.no_grad():
            first = self.network.teacher_forced(features, target, one_hot)
        own = torch.rand(target.shape[:2], device=target.device) < self.feedback_share()
        return self.network.teacher_forced(features, torch.where(own[..., None], first, target), one_hot)

    def animation_losses(self, predicted: torch.Tensor, batch: Batch, unit: float) -> dict[str, torch.Tensor]:
        """The vertex MSE (official) and, with `velocity_weight`, the velocity MSE; `unit` scales
        them from the network's offset units (FaceFormer reports dataset units², offset_scale²)."""
        target, lengths = self.target_offsets(batch), batch.frame_lengths
        parts = {"animation": masked_mse(predicted, target, lengths) * unit}
        parts["loss"] = parts["animation"]
        if self.velocity_weight:
            parts["velocity"] = masked_velocity_mse(predicted, target, lengths) * unit
            parts["loss"] = parts["loss"] + self.velocity_weight * parts["velocity"]
        return parts

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        # Validation scores teacher-forced, as the official code; training as configured.
        return self.animation_losses(self.offsets(batch, self.teacher_forcing or not self.training), batch, self.offset_scale**2)

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        """As the official `predict`: the frame count the audio implies, decoded autoregressively
        (incrementally: the same frames as the official full re-decoding)."""
        features = self.network.encode_audio(inputs.audio, inputs.audio_lengths, inputs.n_frames)
        offsets = self.network.autoregressive(features, inputs.max_frames, self.style_one_hot(inputs.style))
        return self.vertices_from_offsets(inputs.templates, offsets)
