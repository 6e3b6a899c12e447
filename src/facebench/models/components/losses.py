"""Losses over padded batches, averaged per clip then over clips, so a batch of B clips gives the
loss of the B clips one at a time (DESIGN §3)."""

from __future__ import annotations

import torch

from facebench.data.sequence import frame_mask


def masked_mse(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor, power: int = 2) -> torch.Tensor:
    """pred, target: (B, T, ...). Mean squared error (`power=1`: absolute error) over each clip's
    real frames, then over clips."""
    mask = frame_mask(lengths, pred.shape[1]).to(pred.dtype)
    error = pred - target
    per_frame = (error**2 if power == 2 else error.abs().pow(power)).flatten(2).mean(-1)  # (B, T)
    return ((per_frame * mask).sum(1) / lengths.to(pred.dtype)).mean()


def masked_velocity_mse(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor, power: int = 2) -> torch.Tensor:
    """The same on frame-to-frame differences (a clip of one frame contributes zero)."""
    velocity = lambda x: x[:, 1:] - x[:, :-1]  # noqa: E731
    return masked_mse(velocity(pred), velocity(target), (lengths - 1).clamp(min=1), power)
