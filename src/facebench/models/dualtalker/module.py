"""DualTalker (Su, Yang, Li, arXiv 2311.04766): audio-to-face animation trained jointly with its dual
task, lip reading, sharing the audio and motion encoders, plus a cross-modal consistency loss.
facebench's reconstruction on the FaceFormer backbone; every choice and its source is in CARD.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facebench.data.audio import align_features
from facebench.data.sequence import Batch
from facebench.lipreading.ctc import ctc_loss, greedy_decode, reference_sequences
from facebench.models.base import Stage
from facebench.models.components.audio_encoders import LogMelSpectrogram
from facebench.models.components.losses import masked_mse
from facebench.models.dualtalker.network import LipReader, consistency_loss
from facebench.models.faceformer import FaceFormer

DUAL_MODES = ("joint", "critic")


class DualTalker(FaceFormer):
    """FaceFormer's arguments, and:

    Args:
        n_phonemes: phoneme inventory of per-frame labels for an extra CTC head of the lip reader;
            0 (default) reads the audio representation only, as on VOCASET and BIWI, which have no
            phoneme labels. [ours]
        reader_region: "lips" (the dataset's LVE region) or "face": what the lip reader sees. [ours]
        reader_layers: transformer layers of the lip reader. [ours]
        velocity_weight: FaceFormer's velocity loss weight (FaceFormer's default is 0). [ours]
        dual_weight, ctc_weight, consistency_weight: loss weights (the animation term has weight 1,
            all in the network's offset units). [ours]
        dual_on_prediction: also read the predicted motion, so animation is pushed to be readable
            (SelfTalk's lip-reading interpreter; a duality constraint between the two tasks'
            outputs). [ours, after SelfTalk]
        prediction_weight: factor on the dual terms of the predicted motion. [ours]
        dual_audio_gradient: the dual task's audio target is the shared audio encoder's output; True
            lets the dual loss train that encoder too (the encoders shared through the dual task),
            False (default) treats it as a fixed target. [ours]
        reader_lr: learning rate of the lip reader (default: lr); CTC collapses to blanks at the
            CPU profiles' 1e-2. [ours]
        consistency: "contrastive" (InfoNCE, default), "cosine" or "mse". [ours]
        temperature: of the contrastive form. [ours]
        dual_mode: "joint" (default): reader and animator trained together, one stage. "critic":
            two stages, the lip reader trained alone on ground-truth motion (with its own motion
            encoder, to a fixed log-mel target, and phonemes if `n_phonemes`), then frozen as a
            perceptual critic: the animator matches the critic's reading of the ground truth. [ours]
        critic_weight: weight of the critic's perceptual term (critic mode). [ours]
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
        velocity_weight: float = 1.0,
        n_phonemes: int = 0,
        reader_region: str = "lips",
        reader_layers: int = 2,
        dual_weight: float = 0.1,
        ctc_weight: float = 1.0,
        consistency_weight: float = 0.1,
        dual_on_prediction: bool = True,
        prediction_weight: float = 0.1,
        dual_audio_gradient: bool = False,
        reader_lr: float | None = None,
        consistency: str = "contrastive",
        temperature: float = 0.1,
        dual_mode: str = "joint",
        critic_weight: float = 0.1,
    ):
        super().__init__(n_vertices, n_styles, fps, period, audio_per_frame, lr, feature_dim, audio_encoder, teacher_forcing,
                         incremental_training, n_heads, n_layers, dropout, offset_scale, detach_feedback, velocity_weight)  # fmt: skip
        if reader_region not in ("lips", "face"):
            raise ValueError(f"reader_region: expected 'lips' or 'face', found {reader_region!r}")
        if dual_mode not in DUAL_MODES:
            raise ValueError(f"dual_mode: expected one of {DUAL_MODES}, found {dual_mode!r}")
        self.dual_mode = dual_mode
        if dual_mode == "critic":
            # The critic reads a fixed acoustic target through its own motion encoder, so that the
            # animator's training cannot move what it judges by.
            self.spectrogram = LogMelSpectrogram()
            self.critic_motion = nn.Linear(3 * n_vertices, feature_dim)
            self.stages = (Stage("reader", monitor="val/reader", generates=False), Stage("animator"))
            self.stage = self.stages[0]
            audio_dim = self.spectrogram.n_mels
        else:
            audio_dim = feature_dim
        self.reader = LipReader(feature_dim, audio_dim, n_phonemes, reader_layers, dropout=dropout)
        self.reader_region = reader_region
        self.weights = {"dual": dual_weight, "ctc": ctc_weight, "consistency": consistency_weight, "critic": critic_weight}
        self.dual_on_prediction, self.prediction_weight = dual_on_prediction, prediction_weight
        self.dual_audio_gradient = dual_audio_gradient
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

    # -- stages (critic mode) -----------------------------------------------------------------------

    def critic_parts(self) -> list[nn.Module]:
        return [self.reader, self.critic_motion] if self.dual_mode == "critic" else []

    def set_stage(self, name: str, lr: float | None = None) -> None:
        super().set_stage(name, lr)
        if self.dual_mode == "critic":
            training_reader = name == "reader"
            self.requires_grad_(not training_reader)
            self.network.audio_encoder.requires_grad_(not training_reader)
            for part in self.critic_parts():
                part.requires_grad_(training_reader)
            if hasattr(self.network.audio_encoder, "model"):  # the pretrained CNN stays frozen, as FaceFormer's
                self.network.audio_encoder.model.feature_extractor._freeze_parameters()

    # -- the dual task ------------------------------------------------------------------------------

    def motion_features(self, offsets: torch.Tensor) -> torch.Tensor:
        """The reader's input: the lip region of the offsets through the shared motion encoder
        (FaceFormer's vertice_map), or the critic's own, (B, T, d)."""
        encoder = self.critic_motion if self.dual_mode == "critic" else self.network.vertice_map
        return encoder(offsets * self.reader_mask)

    def frame_audio(self, features: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Audio features per mesh frame (B, T, d): pairs averaged where there are two per frame."""
        return features.view(features.shape[0], n_frames, self.audio_per_frame, -1).mean(2)

    def critic_target(self, batch: Batch) -> torch.Tensor:
        """The fixed acoustic target of the critic: the clip's log-mel at the mesh frames, (B, T, n_mels)."""
        frames = []
        for clip, n_samples, n_frames in zip(batch.audio, batch.audio_lengths.tolist(), batch.frame_lengths.tolist()):
            mel = self.spectrogram(clip[None, :n_samples]).transpose(1, 2)
            frames.append(F.pad(align_features(mel, n_frames, 1)[0], (0, 0, 0, batch.vertices.shape[1] - n_frames)))
        return torch.stack(frames)

    def read(self, offsets: torch.Tensor, batch: Batch, audio_target: torch.Tensor) -> dict[str, torch.Tensor]:
        audio, logits = self.reader(self.motion_features(offsets), batch.frame_lengths)
        parts = {"audio": masked_mse(audio, audio_target, batch.frame_lengths)}
        if logits is not None and batch.phonemes is not None:
            parts["ctc"] = ctc_loss(logits, batch.frame_lengths, batch.phonemes)
        return parts

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.dual_mode == "critic":
            return self.reader_losses(batch) if self.stage.name == "reader" else self.critic_losses(batch)
        lengths, n_frames = batch.frame_lengths, batch.vertices.shape[1]
        features = self.network.encode_audio(batch.audio, batch.audio_lengths, lengths)
        predicted = self.offsets(batch, self.teacher_forcing or not self.training, features)
        parts = self.animation_losses(predicted, batch, unit=1.0)  # offset units, as the dual terms
        loss = parts["loss"]
        audio = self.frame_audio(features, n_frames)
        target = self.target_offsets(batch)
        if self.weights["dual"] or self.weights["ctc"]:
            # The reader learns from ground-truth motion; reading the prediction trains the animator.
            audio_target = audio if self.dual_audio_gradient else audio.detach()
            readings = {"gt": self.read(target, batch, audio_target)}
            if self.dual_on_prediction:
                readings["pred"] = self.read(predicted, batch, audio_target)
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

    def reader_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Critic stage 1: the reader alone, on ground-truth motion."""
        reading = self.read(self.target_offsets(batch), batch, self.critic_target(batch))
        loss = self.weights["dual"] * reading["audio"] + self.weights["ctc"] * reading.get("ctc", 0.0)
        return {"reader": loss, **{f"reader_{k}": v for k, v in reading.items()}, "loss": loss}

    def critic_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Critic stage 2: the animator, judged also by the frozen reader (perceptual feature matching
        of its readings of the prediction and of the ground truth)."""
        lengths = batch.frame_lengths
        features = self.network.encode_audio(batch.audio, batch.audio_lengths, lengths)
        predicted = self.offsets(batch, self.teacher_forcing or not self.training, features)
        parts = self.animation_losses(predicted, batch, unit=1.0)
        target = self.target_offsets(batch)
        with torch.no_grad():
            reference, _ = self.reader(self.motion_features(target), lengths)
        reading, _ = self.reader(self.motion_features(predicted), lengths)
        parts["critic"] = masked_mse(reading, reference, lengths)
        loss = parts["loss"] + self.weights["critic"] * parts["critic"]
        if self.weights["consistency"]:
            audio = self.frame_audio(features, batch.vertices.shape[1])
            parts["consistency"] = consistency_loss(audio, self.network.vertice_map(target), lengths, self.consistency, self.temperature)
            loss = loss + self.weights["consistency"] * parts["consistency"]
        parts["loss"] = loss
        return parts

    def configure_optimizers(self):
        reader = [p for p in self.reader.parameters() if p.requires_grad]
        ids = {id(p) for p in reader}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [g for g in ({"params": rest, "lr": self.learning_rate}, {"params": reader, "lr": self.reader_lr}) if g["params"]]
        return torch.optim.Adam(groups)

    @torch.no_grad()
    def read_phonemes(self, batch: Batch, vertices: torch.Tensor | None = None) -> tuple[list[list[int]], list[list[int]]]:
        """Greedy CTC decoding of the lip reader on `vertices` (default: the ground truth), and the references."""
        if self.reader.to_tokens is None or batch.phonemes is None:
            raise ValueError("lip reading needs n_phonemes > 0 and per-frame phoneme labels")
        vertices = batch.vertices if vertices is None else vertices
        offsets = (vertices - batch.templates[:, None]).flatten(2) / self.offset_scale
        _, logits = self.reader(self.motion_features(offsets), batch.frame_lengths)
        return greedy_decode(logits, batch.frame_lengths), reference_sequences(batch.phonemes, batch.frame_lengths)
