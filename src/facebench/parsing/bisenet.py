"""BiSeNet as the face-parsing checkpoint `79999_iter.pth` was trained (zllrunning's
face-parsing.PyTorch: a ResNet-18 context path whose 1/8 features stand in for the spatial path, two
attention refinement modules, a feature fusion module and three output heads), with the same module
names, so the checkpoint loads key by key. 19 CelebAMask-HQ classes; the parser's input is the image
resized to 512 x 512 and ImageNet-normalised, and its labels are the argmax of the first output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facebench.weights import load_published

N_FACE_PARSING_CLASSES = 19
INPUT_SIZE = 512
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if in_channels != out_channels or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu((x if self.downsample is None else self.downsample(x)) + residual)


class ResNet18(nn.Module):
    """The 1/8, 1/16 and 1/32 feature maps."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stage = lambda i, o, s: nn.Sequential(BasicBlock(i, o, s), BasicBlock(o, o, 1))  # noqa: E731
        self.layer1, self.layer2, self.layer3, self.layer4 = stage(64, 64, 1), stage(64, 128, 2), stage(128, 256, 2), stage(256, 512, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.layer1(self.maxpool(F.relu(self.bn1(self.conv1(x)))))
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinement(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels)
        self.conv_atten = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean((2, 3), keepdim=True))))


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16, self.arm32 = AttentionRefinement(256, 128), AttentionRefinement(512, 128)
        self.conv_head32, self.conv_head16 = ConvBNReLU(128, 128), ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        context = self.conv_avg(feat32.mean((2, 3), keepdim=True))
        up32 = self.conv_head32(F.interpolate(self.arm32(feat32) + context, feat16.shape[2:], mode="nearest"))
        up16 = self.conv_head16(F.interpolate(self.arm16(feat16) + up32, feat8.shape[2:], mode="nearest"))
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_channels, out_channels, kernel=1, padding=0)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], 1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(feat.mean((2, 3), keepdim=True)))))
        return feat * attention + feat


class Head(nn.Module):
    def __init__(self, in_channels: int, mid_channels: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels)
        self.conv_out = nn.Conv2d(mid_channels, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """Images (B, 3, H, W), ImageNet-normalised -> three logit maps (B, 19, H, W); the first is the parse."""

    def __init__(self, n_classes: int = N_FACE_PARSING_CLASSES):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out, self.conv_out16, self.conv_out32 = Head(256, 256, n_classes), Head(128, 64, n_classes), Head(128, 64, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x.shape[2:]
        feat8, context8, context16 = self.cp(x)
        outputs = (self.conv_out(self.ffm(feat8, context8)), self.conv_out16(context8), self.conv_out32(context16))
        return tuple(F.interpolate(o, size, mode="bilinear", align_corners=True) for o in outputs)


def load_face_parser(path: str | Path) -> BiSeNet:
    """BiSeNet with the public face-parsing weights (`79999_iter.pth`)."""
    return load_published(BiSeNet(), path, "the face-parsing checkpoint 79999_iter.pth (zllrunning/face-parsing.PyTorch, linked from its README)")


@torch.no_grad()
def parse_frames(parser: BiSeNet, frames: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 RGB -> the parser's 19-class labels (T, H, W) uint8: each frame
    resized to 512 (bilinear), normalised as in training, the first output's argmax, resized back
    to the frame (nearest)."""
    device = next(parser.parameters()).device
    mean, std = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None], torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    labels = []
    for start in range(0, len(frames), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch_size])).to(device).permute(0, 3, 1, 2).float() / 255
        x = (F.interpolate(x, (INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False) - mean) / std
        parsed = parser(x)[0].argmax(1, keepdim=True).float()
        labels.append(F.interpolate(parsed, frames.shape[1:3], mode="nearest")[:, 0].to(torch.uint8).cpu().numpy())
    return np.concatenate(labels)
