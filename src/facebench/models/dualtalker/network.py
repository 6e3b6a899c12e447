"""DualTalker's dual-task parts (facebench reconstruction; the paper's code was never released):
a lip reader over the shared motion encoder's features, and the cross-modal consistency loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facebench.data.sequence import frame_mask
from facebench.models.components.periodic import PeriodicPositionalEncoding


class LipReader(nn.Module):
    """Per-frame motion features (B, T, d) -> the frame-level audio representation (B, T, audio_dim)
    and, when `n_tokens` > 0, CTC logits over phonemes (B, T, n_tokens + 1; index 0 is the blank).

    A small transformer encoder over frames, bidirectional: lip reading may look ahead.
    """

    def __init__(self, d_model: int, audio_dim: int, n_tokens: int = 0, n_layers: int = 2, n_heads: int = 4, dropout: float = 0.1):
        super().__init__()
        # A period far beyond any clip: plain sinusoidal positions.
        self.positions = PeriodicPositionalEncoding(d_model, period=10_000, dropout=dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.to_audio = nn.Linear(d_model, audio_dim)
        self.to_tokens = nn.Linear(d_model, n_tokens + 1) if n_tokens else None

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        padding = ~frame_mask(lengths, features.shape[1])
        hidden = self.encoder(self.positions(features), src_key_padding_mask=padding)
        return self.to_audio(hidden), None if self.to_tokens is None else self.to_tokens(hidden)


def consistency_loss(audio: torch.Tensor, motion: torch.Tensor, lengths: torch.Tensor, kind: str = "contrastive", temperature: float = 0.1) -> torch.Tensor:
    """Align audio and motion embeddings (B, T, d) of the same frames.

    contrastive: InfoNCE over all real frames of the batch, both directions: each audio frame must
    pick out its own motion frame among those of other times and clips, which an average mouth
    cannot do. cosine: 1 - cosine similarity per frame. mse: squared distance per frame.
    """
    mask = frame_mask(lengths, audio.shape[1])
    a, m = audio[mask], motion[mask]
    if kind == "mse":
        return F.mse_loss(a, m)
    if kind == "cosine":
        return (1 - F.cosine_similarity(a, m, dim=-1)).mean()
    if kind != "contrastive":
        raise ValueError(f"consistency: expected contrastive, cosine or mse, found {kind!r}")
    logits = F.normalize(a, dim=-1) @ F.normalize(m, dim=-1).T / temperature
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
