"""FaceFormer's temporal machinery (EvelynFan/FaceFormer `faceformer.py`): the periodic positional
encoding, the periodic ALiBi-style causal bias, and the audio-to-motion alignment mask. Computed for
any length, so clips longer than the official 600 frames work."""

from __future__ import annotations

import math

import torch
from torch import nn


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi head slopes; for 4 heads [0.25, 0.0625, 0.015625, 0.00390625]."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_two(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


def periodic_bias_mask(n_heads: int, length: int, period: int) -> torch.Tensor:
    """(heads, T, T) additive mask: -inf above the diagonal, slope_h * -floor((i - j) / period) on and below."""
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    distance = torch.div(i - j, period, rounding_mode="floor").float()
    bias = -distance.clamp(min=0)
    slopes = torch.tensor(alibi_slopes(n_heads))[:, None, None]
    causal = torch.zeros(length, length).masked_fill(j > i, float("-inf"))
    return causal[None] + slopes * bias[None]


def alignment_mask(n_frames: int, n_audio: int, audio_per_frame: int) -> torch.Tensor:
    """(T, S) bool, True where frame t may *not* attend audio frame s: each frame sees its own
    audio frame (VOCASET, 1 per frame) or its pair 2t, 2t+1 (BIWI)."""
    t = torch.arange(n_frames)[:, None]
    s = torch.arange(n_audio)[None, :]
    return ~((s >= audio_per_frame * t) & (s < audio_per_frame * (t + 1)))


def alignment_bias(blocked: torch.Tensor) -> torch.Tensor:
    """The alignment mask (T, S) bool as the additive bias attention takes: 0 where a frame may
    attend, -inf where not."""
    return torch.zeros(blocked.shape, device=blocked.device).masked_fill(blocked, float("-inf"))


def decoder_masks(n_heads: int, n_frames: int, n_audio: int, period: int, audio_per_frame: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """FaceFormer's decoder masks on `device`: the periodic causal bias and the alignment mask."""
    return periodic_bias_mask(n_heads, n_frames, period).to(device), alignment_mask(n_frames, n_audio, audio_per_frame).to(device)


class PeriodicPositionalEncoding(nn.Module):
    """Sinusoidal encoding of (position mod period), then dropout."""

    def __init__(self, d_model: int, period: int, dropout: float = 0.1):
        super().__init__()
        position = torch.arange(period, dtype=torch.float32)[:, None]
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(period, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)
        self.period = period
        self.dropout = nn.Dropout(dropout)

    def encoding(self, start: int, length: int) -> torch.Tensor:
        first = start % self.period
        if first + length <= self.period:  # within one period (every frame of incremental decoding): a view, no gather
            return self.pe[first : first + length]
        index = torch.arange(start, start + length, device=self.pe.device) % self.period
        return self.pe[index]

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x: (B, T, d), positions start..start+T-1."""
        return self.dropout(x + self.encoding(start, x.shape[1]))
