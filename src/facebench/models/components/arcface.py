"""ArcFace IR-SE50 and E4S's identity loss.

The network is the IR-SE50 face recogniser of TreB1eN's InsightFace_Pytorch as pixel2style2pixel
and E4S load it (`model_ir_se50.pth`): a 3x3 input convolution with BatchNorm and PReLU, 24
improved-residual units with squeeze-and-excitation in four stages (3, 4, 14 and 3 units, 64, 128,
256 and 512 channels, each stage's first unit striding by 2), and an output layer (BatchNorm,
dropout, a linear map of the 512 x 7 x 7 features to 512, BatchNorm1d) for 112 x 112 faces, RGB in
[-1, 1]. The module names and indices are the checkpoint's, so it loads key by key
(facebench.weights).

The loss (E4S's `IDLoss` with `id_loss_multiscale`): both images pooled to 256 x 256, the face
cropped (rows 35-222, columns 32-219), pooled to 112; the features after each stage and the
embedding, each flattened and unit-normalised; per pair 1 - their dot product, averaged over the
images and summed over the five; the real image's are constants. The weights cannot be downloaded
here: the loss runs only where the user gives the file."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facebench.weights import load_published

ARCFACE_ENV = "FACEBENCH_ARCFACE"
ARCFACE_FILE = "the ArcFace IR-SE50 weights (model_ir_se50.pth, TreB1eN/InsightFace_Pytorch as pixel2style2pixel and E4S use them)"
STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))  # (in, out, units) of IR-50
FACE_CROP = (35, 223, 32, 220)  # rows, columns of the 256-px image E4S keeps


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class ResidualUnit(nn.Module):
    """BN, 3x3 conv, PReLU, 3x3 conv (striding), BN, squeeze-and-excitation; plus the shortcut (a
    strided 1x1 conv with BN where the width changes, else the input subsampled)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.shortcut_layer = (
            None if in_channels == out_channels else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))
        )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False), nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), SqueezeExcite(out_channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.shortcut_layer is None else self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class IRSE50(nn.Module):
    """Faces (N, 3, 112, 112) in [-1, 1] -> unit embeddings (N, 512); `features` also gives each
    stage's output."""

    def __init__(self):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = [ResidualUnit(cin if k == 0 else cout, cout, 2 if k == 0 else 1) for cin, cout, n in STAGES for k in range(n)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.6), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))
        self.stage_ends = [sum(n for *_, n in STAGES[: s + 1]) - 1 for s in range(len(STAGES))]  # units 2, 6, 20, 23

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output and the embedding, flattened and unit-normalised (E4S's multi-scale view)."""
        x = self.input_layer(x)
        found = []
        for k, unit in enumerate(self.body):
            x = unit(x)
            if k in self.stage_ends:
                found.append(x.flatten(1))
        found.append(self.output_layer(x))
        return [F.normalize(f, dim=1) for f in found]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]


def load_arcface(path: str | Path) -> IRSE50:
    """IR-SE50 with the published weights from `path`."""
    return load_published(IRSE50(), path, ARCFACE_FILE)


def face_view(images: torch.Tensor) -> torch.Tensor:
    """E4S's view of an image for the recogniser: pooled to 256, the face cropped, pooled to 112."""
    if images.shape[-2:] != (256, 256):
        images = F.adaptive_avg_pool2d(images, (256, 256))
    top, bottom, left, right = FACE_CROP
    return F.adaptive_avg_pool2d(images[:, :, top:bottom, left:right], (112, 112))


def identity_loss(net: IRSE50, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E4S's multi-scale identity loss of images (N, 3, H, W) in [-1, 1]: per stage output and the
    embedding, 1 - the dot product of the unit-normalised features, averaged over the images;
    summed. Gradients reach `fake` only."""
    with torch.no_grad():
        targets = net.features(face_view(real))
    return sum((1 - (f * t).sum(1)).mean() for f, t in zip(net.features(face_view(fake)), targets))
