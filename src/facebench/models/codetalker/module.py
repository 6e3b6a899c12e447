"""CodeTalker training and generation under Lightning: stage `vqvae` learns the motion codebook,
stage `predictor` learns to predict codes from audio with the codebook frozen (the stages:
facebench.models.components.codebook_stages). See CARD.md for every choice and its source."""

from __future__ import annotations

import torch

from facebench.data.sequence import Batch, ModelInputs
from facebench.models.base import Stage, TalkingFaceModule
from facebench.models.codetalker.network import CodeTalkerNetwork, VQAutoEncoder
from facebench.models.components.audio_encoders import build_audio_encoder
from facebench.models.components.codebook_stages import CodebookStages
from facebench.models.components.losses import masked_mse


class CodeTalker(CodebookStages, TalkingFaceModule):
    """CodeTalker (Xing et al., CVPR 2023).

    Args:
        hidden_size, vq_layers, vq_heads, intermediate_size: the auto-encoder's transformers
            (official: 1024, 6, 8, 1536).
        face_quan_num, zquant_dim, n_embed, beta: the factorised codebook (official VOCASET 16 x 64,
            BIWI 8 x 128; 256 entries; 0.25).
        code_projection, output_bias: BIWI's auto-encoder (linear maps between the model width and
            the code width; no bias on the output map) where True / False.
        frame_positions: encode each frame's position in the auto-encoder (False: the official
            layer's behaviour at batch size 1, every frame gets position 0's encoding). [ours: the switch]
        instance_norm: the instance norms after the auto-encoder's convolutions (official: True);
            they remove what is constant through a clip. [ours: the switch]
        feature_dim, n_layers, n_heads: the predictor's decoder (official: 1024, 6 VOCASET / 12 BIWI, 4).
        quant_loss_weight: stage 1's quantisation loss weight (official 1.0) beside its L1 reconstruction.
        motion_weight, reg_weight: stage 2's vertex MSE and feature MSE weights (official 1.0, 1.0).
        vq_lr, vq_weight_decay, vq_lr_step, vq_lr_gamma: stage 1's AdamW and StepLR (official 1e-4,
            torch's default 0.01, VOCASET 20 epochs x 0.5, BIWI none); stage 2 uses Adam at `lr`.
        offset_scale: dataset units per network unit of the offsets, as FaceFormer's. [ours]
    """

    stages = (CodebookStages.vqvae_stage, Stage("predictor"))

    def __init__(
        self,
        n_vertices: int,
        n_styles: int,
        fps: float = 30,
        period: int = 30,
        audio_per_frame: int = 1,
        lr: float = 1e-4,
        hidden_size: int = 1024,
        vq_layers: int = 6,
        vq_heads: int = 8,
        intermediate_size: int = 1536,
        face_quan_num: int = 16,
        zquant_dim: int = 64,
        n_embed: int = 256,
        beta: float = 0.25,
        code_projection: bool = False,
        output_bias: bool = True,
        frame_positions: bool = False,
        instance_norm: bool = True,
        feature_dim: int = 1024,
        n_layers: int = 6,
        n_heads: int = 4,
        dropout: float = 0.1,
        audio_encoder: dict | None = None,
        quant_loss_weight: float = 1.0,
        motion_weight: float = 1.0,
        reg_weight: float = 1.0,
        vq_lr: float = 1e-4,
        vq_weight_decay: float = 0.01,
        vq_lr_step: int | None = None,
        vq_lr_gamma: float = 0.5,
        offset_scale: float = 1.0,
    ):
        super().__init__(n_vertices, n_styles, fps, period, audio_per_frame, lr)
        self.save_hyperparameters()
        autoencoder = VQAutoEncoder(n_vertices, hidden_size, vq_layers, vq_heads, intermediate_size, face_quan_num, zquant_dim, n_embed, beta,
                                    code_projection=code_projection, output_bias=output_bias, frame_positions=frame_positions,
                                    instance_norm=instance_norm)  # fmt: skip
        encoder = build_audio_encoder(**(audio_encoder or {"name": "logmel"}))
        self.network = CodeTalkerNetwork(encoder, autoencoder, n_vertices, n_styles, feature_dim, period, audio_per_frame, n_heads, n_layers, dropout)
        self.offset_scale = offset_scale
        self.weights = {"quantization": quant_loss_weight, "motion": motion_weight, "features": reg_weight}
        self.vq_lr, self.vq_weight_decay, self.vq_lr_step, self.vq_lr_gamma = vq_lr, vq_weight_decay, vq_lr_step, vq_lr_gamma

    # -- losses ---------------------------------------------------------------------------------

    def prediction_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Stage 2, teacher-forced as the official training: vertex MSE of the decoded prediction
        (dataset units²) + MSE of the predicted features to the ground truth's quantised ones."""
        target = self.target_offsets(batch)
        lengths = batch.frame_lengths.tolist()
        features = self.network.teacher_forced(self.network.encode_audio(batch.audio, batch.audio_lengths, batch.frame_lengths), target, batch.style)
        codes = self.quantised_targets(target, lengths)
        motion = masked_mse(self.decode_latents(features, lengths), target, batch.frame_lengths) * self.offset_scale**2
        feature = masked_mse(features, codes, batch.frame_lengths)
        return {"motion": motion, "features": feature, "loss": self.weights["motion"] * motion + self.weights["features"] * feature}

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.in_vqvae_stage():
            return self.reconstruction_losses(batch)
        return self.prediction_losses(batch)

    # -- generation -----------------------------------------------------------------------------

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        """As the official `predict`: the frame count the audio implies, features decoded
        autoregressively, each fed back through the quantiser and decoder; then all quantised
        and decoded, each clip at its length."""
        features = self.network.encode_audio(inputs.audio, inputs.audio_lengths, inputs.n_frames)
        predicted = self.network.autoregressive(features, inputs.max_frames, inputs.style)
        offsets = self.decode_latents(predicted, inputs.n_frames.tolist())
        return self.vertices_from_offsets(inputs.templates, offsets)
