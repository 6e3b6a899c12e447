"""DualTalker (Su, Yang, Li, arXiv 2311.04766): audio-to-face animation trained jointly with its dual
task, lip reading, sharing the audio and motion encoders, plus a cross-modal consistency loss.
facebench's reconstruction on the FaceFormer backbone; every choice and its source is in CARD.md."""

from __future__ import annotations

import torch

from facebench.data.sequence import Batch
from facebench.lipreading.ctc import ctc_loss, greedy_decode, reference_sequences
from facebench.models.components.losses import masked_mse, masked_velocity_mse
from facebench.models.dualtalker.network import LipReader, consistency_loss
from facebench.models.faceformer import FaceFormer


class DualTalker(FaceFormer):
    """FaceFormer's arguments, and:

    Args:
        n_phonemes: phoneme inventory of the dataset's per-frame labels; 0 disables the CTC head. [ours]
        reader_region: "lips" (the dataset's LVE region) or "face": what the lip reader sees. [ours]
        reader_layers: transformer layers of the lip reader. [ours]
        velocity_weight, dual_weight, ctc_weight, consistency_weight: loss weights (the animation
            term has weight 1, all in the network's offset units). [ours]
        dual_on_prediction: also read the predicted motion, so animation is pushed to be readable
            (SelfTalk's lip-reading interpreter). [ours, after SelfTalk]
        prediction_weight: factor on the dual terms of the predicted motion (the ground truth's
            train the reader; these push the animator, and at full weight they crowd out the
            animation loss). [ours]
        reader_lr: learning rate of the lip reader (default: lr); CTC collapses to blanks at the
            CPU profiles' 1e-2. [ours]
        consistency: "contrastive" (InfoNCE, default), "cosine" or "mse". [ours]
        temperature: of the contrastive form. [ours]
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
        n_phonemes: int = 0,
        reader_region: str = "lips",
        reader_layers: int = 2,
        velocity_weight: float = 1.0,
        dual_weight: float = 0.1,
        ctc_weight: float = 1.0,
        consistency_weight: float = 0.1,
        dual_on_prediction: bool = True,
        prediction_weight: float = 0.1,
        reader_lr: float | None = None,
        consistency: str = "contrastive",
        temperature: float = 0.1,
    ):
        super().__init__(n_vertices, n_styles, fps, period, audio_per_frame, lr, feature_dim, audio_encoder, teacher_forcing,
                         incremental_training, n_heads, n_layers, dropout, offset_scale, detach_feedback)  # fmt: skip
        if reader_region not in ("lips", "face"):
            raise ValueError(f"reader_region: expected 'lips' or 'face', found {reader_region!r}")
        self.reader = LipReader(feature_dim, feature_dim, n_phonemes, reader_layers, dropout=dropout)
        self.reader_region = reader_region
        self.weights = {"velocity": velocity_weight, "dual": dual_weight, "ctc": ctc_weight, "consistency": consistency_weight}
        self.dual_on_prediction, self.prediction_weight = dual_on_prediction, prediction_weight
        self.consistency, self.temperature = consistency, temperature
        self.reader_lr = reader_lr or lr
        # Which offset coordinates the reader sees; the lips come from the datamodule in setup().
        self.register_buffer("reader_mask", torch.ones(3 * n_vertices), persistent=False)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.reader_region == "lips" and datamodule is not None:
            lips = datamodule.regions().get("lve")
            if lips is not None:
                mask = torch.zeros(self.n_vertices, 3, device=self.reader_mask.device)
                mask[lips.to(mask.device)] = 1
                self.reader_mask = mask.flatten()

    def motion_features(self, offsets: torch.Tensor) -> torch.Tensor:
        """The shared motion encoder (FaceFormer's vertice_map) on the reader's region, (B, T, d)."""
        return self.network.vertice_map(offsets * self.reader_mask)

    def frame_audio(self, features: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Audio features per mesh frame (B, T, d): pairs averaged where there are two per frame."""
        return features.view(features.shape[0], n_frames, self.audio_per_frame, -1).mean(2)

    def read(self, offsets: torch.Tensor, batch: Batch, audio_target: torch.Tensor) -> dict[str, torch.Tensor]:
        audio, logits = self.reader(self.motion_features(offsets), batch.frame_lengths)
        parts = {"audio": masked_mse(audio, audio_target, batch.frame_lengths)}
        if logits is not None and batch.phonemes is not None:
            parts["ctc"] = ctc_loss(logits, batch.frame_lengths, batch.phonemes)
        return parts

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        lengths, n_frames = batch.frame_lengths, batch.vertices.shape[1]
        features = self.network.encode_audio(batch.audio, batch.audio_lengths, lengths)
        predicted = self.offsets(batch, self.teacher_forcing or not self.training, features)
        target = self.target_offsets(batch)
        parts = {"animation": masked_mse(predicted, target, lengths), "velocity": masked_velocity_mse(predicted, target, lengths)}
        loss = parts["animation"] + self.weights["velocity"] * parts["velocity"]
        audio = self.frame_audio(features, n_frames)
        if self.weights["dual"] or self.weights["ctc"]:
            # The reader learns from ground-truth motion; reading the prediction trains the animator.
            readings = {"gt": self.read(target, batch, audio.detach())}
            if self.dual_on_prediction:
                readings["pred"] = self.read(predicted, batch, audio.detach())
            for source, reading in readings.items():
                factor = 1.0 if source == "gt" else self.prediction_weight
                for name, value in reading.items():
                    parts[f"dual_{name}_{source}"] = value
                    loss = loss + factor * self.weights["dual" if name == "audio" else "ctc"] * value
        if self.weights["consistency"]:
            parts["consistency"] = consistency_loss(audio, self.network.vertice_map(target), lengths, self.consistency, self.temperature)
            loss = loss + self.weights["consistency"] * parts["consistency"]
        parts["loss"] = loss
        return parts

    def configure_optimizers(self):
        reader = [p for p in self.reader.parameters() if p.requires_grad]
        ids = {id(p) for p in reader}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return torch.optim.Adam([{"params": rest, "lr": self.learning_rate}, {"params": reader, "lr": self.reader_lr}])

    @torch.no_grad()
    def read_phonemes(self, batch: Batch, vertices: torch.Tensor | None = None) -> tuple[list[list[int]], list[list[int]]]:
        """Greedy CTC decoding of the lip reader on `vertices` (default: the ground truth), and the references."""
        if self.reader.to_tokens is None or batch.phonemes is None:
            raise ValueError("lip reading needs n_phonemes > 0 and per-frame phoneme labels")
        vertices = batch.vertices if vertices is None else vertices
        offsets = (vertices - batch.templates[:, None]).flatten(2) / self.offset_scale
        _, logits = self.reader(self.motion_features(offsets), batch.frame_lengths)
        return greedy_decode(logits, batch.frame_lengths), reference_sequences(batch.phonemes, batch.frame_lengths)
