"""FID (Heusel et al., 2017) of generated frames against the ground truth's, pooled over a test
split, as the talking-face papers compute it (docs/architecture.md, "Video metrics").

Recipe (mseitzer/pytorch-fid, which Wav2Lip's evaluation and the ViCo reference scripts' `piq.FID`
both run): frames in [0, 1] resized bilinearly to 299 x 299 (`align_corners=False`), mapped to
[-1, 1], through the TensorFlow FID Inception v3 (`pt_inception-2015-12-05-6726825d.pth`) to its
2048-d final average pool; the Fréchet distance of the Gaussians fitted to the two sets of features.
The frames are used as they are (floats), not written to image files and read back first.

The distance and its streaming states are torchmetrics' `FrechetInceptionDistance` with our network
as its feature extractor (sums in float64, reduced with "sum" across processes: exact under DDP).
Why our own network: torchmetrics' default extractor is torch-fidelity's, and torch-fidelity and
pytorch-fid both need torchvision, which does not import beside the pinned CPU torch (facebench.
metrics.lpips says the same of AlexNet). `FIDInception` has the module names of torchvision's
`Inception3` that the checkpoint was saved from, so it loads key by key (facebench.weights), and
the four blocks the FID port changed (`count_include_pad=False` average pools, and max pooling in
the last block's pool branch) as pytorch-fid has them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from facebench.metrics.video import align_frames, nchw
from facebench.weights import load_published, weights_identity

INCEPTION_ENV = "FACEBENCH_INCEPTION"
INCEPTION_FILE = ("the FID Inception v3 weights (pt_inception-2015-12-05-6726825d.pth, the release "
                  "'fid_weights' of github.com/mseitzer/pytorch-fid)")  # fmt: skip
INPUT_SIZE = 299
FEATURES = 2048


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU: Inception's unit."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def tf_average_pool(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's 3x3 average pool: the padding's zeros are not counted."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(tf_average_pool(x)),
        ], 1)  # fmt: skip


class InceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)  # fmt: skip


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = x
        for k in range(1, 6):
            double = getattr(self, f"branch7x7dbl_{k}")(double)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(tf_average_pool(x)),
        ], 1)  # fmt: skip


class InceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3_2(self.branch3x3_1(x)),
            self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)  # fmt: skip


class InceptionE(nn.Module):
    """`max_pool`: the FID port's last block pools its pool branch by maximum, not by average."""

    def __init__(self, in_channels: int, max_pool: bool = False):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else tf_average_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(single), self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ], 1)  # fmt: skip


class FIDInception(nn.Module):
    """The FID Inception v3: (N, 3, H, W) frames in [0, 1] -> (N, 2048) final-pool features. Module
    names are those of the checkpoint (torchvision's `Inception3` with 1008 classes, no auxiliary
    head); `fc` is kept only so the checkpoint loads whole."""

    num_features = FEATURES  # torchmetrics reads it instead of running a dummy image

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURES, 1008)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(frames, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False) * 2 - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, kernel_size=3, stride=2)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{block}")(x)
        return x.mean((2, 3))


def load_fid_inception(path: str | Path) -> FIDInception:
    """The FID Inception with the weights at `path` (frozen, eval mode)."""
    return load_published(FIDInception(), path, INCEPTION_FILE).requires_grad_(False)


def inception_from(path: str | None = None) -> tuple[FIDInception | None, str]:
    """(network, identity) from `path` or $FACEBENCH_INCEPTION; (None, "") where neither is given
    (the FID column stays empty). The identity, `inception:<sha256[:12]>-pool3`, names the weights."""
    path = path or os.environ.get(INCEPTION_ENV)
    if not path:
        return None, ""
    return load_fid_inception(path), weights_identity("inception", path) + "-pool3"


class FrameFID(FrechetInceptionDistance):
    """FID of a split's generated frames against its ground-truth frames, fed one clip at a time
    (the frames both have; facebench.metrics.video counts the rest). `compute()` -> {"fid": value},
    NaN while either side has fewer than two frames (a covariance needs two)."""

    chunk = 16  # frames per Inception pass: bounds the 299-px activations' memory

    def __init__(self, inception: nn.Module, **kwargs):
        super().__init__(feature=inception, normalize=True, **kwargs)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        """`pred` (1, T', H, W, 4) and `target` (1, T, H, W, 4), RGB in [0, 1] (the collection's call)."""
        pred, target, _ = align_frames(pred, target)
        with torch.no_grad():
            for start in range(0, len(pred), self.chunk):
                super().update(nchw(pred[start : start + self.chunk].clamp(0, 1)), real=False)
                super().update(nchw(target[start : start + self.chunk]), real=True)

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        if min(int(self.real_features_num_samples), int(self.fake_features_num_samples)) < 2:
            return {"fid": torch.tensor(math.nan, dtype=torch.float64, device=self.real_features_sum.device)}
        return {"fid": super().compute()}
