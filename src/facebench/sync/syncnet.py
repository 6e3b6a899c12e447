"""SyncNet as `joonson/syncnet_python` builds it (`SyncNetModel.py`, class `S`), with the same
attribute names and `nn.Sequential` indices, so the official `syncnet_v2.model` state dict loads key
by key. Lips: (B, 3, 5, 224, 224) BGR frames in raw 0-255; audio: (B, 1, 13, 20) MFCC windows;
both to 1024-d embeddings compared by Euclidean distance (no normalisation)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facebench.sync.scores import audio_windows
from facebench.weights import load_published


def _conv_bn(conv: nn.Module, channels: int, three_d: bool = False) -> list[nn.Module]:
    return [conv, (nn.BatchNorm3d if three_d else nn.BatchNorm2d)(channels), nn.ReLU(inplace=True)]


class SyncNet(nn.Module):
    """The official architecture (class `S`)."""

    # What a judge's embeddings take: five frames of `image_size` pixels, the whole face crop.
    image_size = 224
    frames_per_window = 5

    def __init__(self, num_layers_in_fc_layers: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv_bn(nn.Conv2d(1, 64, 3, padding=1), 64), nn.MaxPool2d(1, 1),
            *_conv_bn(nn.Conv2d(64, 192, 3, padding=1), 192), nn.MaxPool2d(3, (1, 2)),
            *_conv_bn(nn.Conv2d(192, 384, 3, padding=1), 384),
            *_conv_bn(nn.Conv2d(384, 256, 3, padding=1), 256),
            *_conv_bn(nn.Conv2d(256, 256, 3, padding=1), 256), nn.MaxPool2d(3, (2, 2)),
            *_conv_bn(nn.Conv2d(256, 512, (5, 4), padding=0), 512),
        )  # fmt: skip
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, num_layers_in_fc_layers))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, num_layers_in_fc_layers))
        self.netcnnlip = nn.Sequential(
            *_conv_bn(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2), padding=0), 96, True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, True),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, True),
            *_conv_bn(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn(nn.Conv3d(256, 512, (1, 6, 6), padding=0), 512, True),
        )  # fmt: skip

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(x).flatten(1))

    def view_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., H, W, 4) frames -> the RGB it judges (..., H, W, 3)."""
        return frames[..., :3].float()

    def audio_input(self, audio, n_frames: int) -> torch.Tensor:
        """A clip's 16 kHz samples -> its MFCC windows (N, 1, 13, 20), the official recipe."""
        return audio_windows(audio, n_frames)

    def lip_input(self, frames: torch.Tensor) -> torch.Tensor:
        """Windows of frames (N, 5, H, W, 3) RGB in [0, 1] -> the official input: the whole frame
        resized to 224 (the LRS path of Wav2Lip's scoring scripts), BGR, 0-255, (N, 3, 5, 224, 224)."""
        n, t, h, w, _ = frames.shape
        x = frames.flip(-1).permute(0, 1, 4, 2, 3).reshape(n * t, 3, h, w) * 255
        if (h, w) != (self.image_size, self.image_size):
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return x.view(n, t, 3, self.image_size, self.image_size).transpose(1, 2)


def load_syncnet(path: str | Path) -> SyncNet:
    """The official SyncNet from `syncnet_v2.model` (a state dict; the official loader copies it key by key)."""
    return load_published(SyncNet(), path, "the official SyncNet weights syncnet_v2.model (VGG; joonson/syncnet_python, download_model.sh)")
