"""The two-stage training that CodeTalker and GLDiTalker share: stage `vqvae` learns a motion
auto-encoder with a quantised latent space (`network.autoencoder`) alone; the later stage learns to
reach that space from audio with the auto-encoder frozen (and in eval mode, as CodeTalker's
official training loop puts it).

The auto-encoder is not causal (convolutions over time, attention over all frames), so each clip
is encoded and decoded on its own, at its own length: padding never enters another frame's
features. Its forward maps one clip's offsets (1, T, V*3) to (reconstruction, quantisation loss,
{"perplexity", "indices"}).
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

from facebench.data.sequence import Batch
from facebench.models.base import Stage


class CodebookStages:
    """Mixin for a `TalkingFaceModule` whose `network.autoencoder` is learnt in stage `vqvae`.

    The model sets `weights["quantization"]` (stage 1's quantisation loss weight) and `vq_lr`,
    `vq_weight_decay`, `vq_lr_step`, `vq_lr_gamma` (stage 1's AdamW and optional StepLR; the later
    stage uses Adam at `lr`)."""

    vqvae_stage = Stage("vqvae", monitor="val/reconstruction", generates=False)

    def in_vqvae_stage(self) -> bool:
        return self.stage is not None and self.stage.name == self.vqvae_stage.name

    def set_stage(self, name: str, lr: float | None = None) -> None:
        """Stage `vqvae` trains the auto-encoder alone; the next stage everything else."""
        super().set_stage(name, lr)
        vqvae = self.in_vqvae_stage()
        self.network.requires_grad_(not vqvae)
        self.network.autoencoder.requires_grad_(vqvae)
        if hasattr(self.network.audio_encoder, "model"):  # a pretrained CNN stays frozen, as the official code's
            self.network.audio_encoder.model.feature_extractor._freeze_parameters()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage is not None and not self.in_vqvae_stage():
            self.network.autoencoder.eval()
        return self

    @property
    def learning_rate(self) -> float:
        if self.stage_lr is None and self.in_vqvae_stage():
            return self.vq_lr
        return super().learning_rate

    def configure_optimizers(self):
        parameters = [p for p in self.parameters() if p.requires_grad]
        if not self.in_vqvae_stage():
            return torch.optim.Adam(parameters, lr=self.learning_rate)
        optimizer = torch.optim.AdamW(parameters, lr=self.learning_rate, weight_decay=self.vq_weight_decay)
        if self.vq_lr_step is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, self.vq_lr_step, self.vq_lr_gamma)}

    def reconstruction_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Stage 1: L1 reconstruction (dataset units) + quantisation loss, clip by clip at each
        clip's length, averaged over clips; the codebook's perplexity is logged."""
        target = self.target_offsets(batch)
        parts = {"reconstruction": [], "quantization": [], "perplexity": []}
        for b, length in enumerate(batch.frame_lengths.tolist()):
            reconstructed, quantization, info = self.network.autoencoder(target[b : b + 1, :length])
            parts["reconstruction"].append((reconstructed - target[b : b + 1, :length]).abs().mean() * self.offset_scale)
            parts["quantization"].append(quantization)
            parts["perplexity"].append(info["perplexity"].detach())
        losses = {k: torch.stack(v).mean() for k, v in parts.items()}
        losses["loss"] = losses["reconstruction"] + self.weights["quantization"] * losses["quantization"]
        return losses

    def quantised_targets(self, target: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """The ground truth's quantised latents (B, T, H, C) through the frozen encoder, each clip
        at its length; zeros past it."""
        with torch.no_grad():
            codes = [self.network.autoencoder.encode(target[b : b + 1, :length])[0][0] for b, length in enumerate(lengths)]
        return pad_sequence(codes, batch_first=True)

    def decode_latents(self, latents: torch.Tensor, lengths: list[int], quantize: bool = True) -> torch.Tensor:
        """Latents (B, T, H, C) through the quantiser (`quantize`) and the decoder, each clip at its
        own length; zeros past it. Returns offsets (B, T, V*3)."""
        autoencoder = self.network.autoencoder
        out = latents.new_zeros(*latents.shape[:2], 3 * self.n_vertices)
        for b, length in enumerate(lengths):
            clip = latents[b : b + 1, :length]
            out[b, :length] = autoencoder.decode(autoencoder.quantize(clip)[0] if quantize else clip)[0]
        return out

    @torch.no_grad()
    def reconstructed_vertices(self, batch: Batch) -> torch.Tensor:
        """The auto-encoder's reconstruction of the batch's own ground truth, as vertices (B, T, V, 3),
        each clip at its length: the best the later stage can reach by choosing latents (the
        learning tests; `benchmarks/codebook_ceiling.py`)."""
        lengths = batch.frame_lengths.tolist()
        offsets = self.decode_latents(self.quantised_targets(self.target_offsets(batch), lengths), lengths, quantize=False)
        return self.vertices_from_offsets(batch.templates, offsets)

    def validation_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.in_vqvae_stage():  # reconstruction needs no style
            return self.reconstruction_losses(batch)
        return super().validation_losses(batch)
