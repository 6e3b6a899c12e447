"""face-alignment's 2D-FAN (Bulat & Tzimiropoulos, ICCV 2017), the landmark model of the field's
LMD (the ViCo reference scripts run `face_alignment.FaceAlignment(LandmarksType._2D,
flip_input=True)`), as the mouth-landmark judge of real video (facebench.metrics.landmarks).

Weights: `2DFAN4-11f355bf06.pth.tar` (adrianbulat.com/downloads/python-fan, what face-alignment
downloads), from a path the user gives (`evaluation.landmarks` or $FACEBENCH_LANDMARKS). `FAN` has
face-alignment's module names (four stacked hourglasses), so the state dict loads key by key.

Recipe, as face-alignment's `get_landmarks_from_image` computes it:
- the face box's centre moved up by 0.12 of its height, scale = (box width + height) / 195, and
  the square of side 200 x scale around it cropped (zeros outside the frame) and resized to 256;
- the heatmaps of the last hourglass, plus those of the mirrored crop mirrored back with the 68
  points' left-right pairs swapped (`flip_input=True`);
- each point at its heatmap's maximum, moved a quarter pixel towards the higher neighbour, less
  half a pixel, mapped back to the frame and truncated to whole pixels as face-alignment does;
- lips = points 48-67 (the 68-point scheme's outer and inner lip contours).
Differences, [ours]: frames are used as floats in [0, 1] (not rounded to 8 bits first), and the
crop is resized bilinearly by torch instead of OpenCV. The face box: face-alignment asks a face
detector (S3FD); the talking-face datasets here are face crops already, so the box is found from
FAN itself: a first pass with the whole frame as the box, then the box around the 68 points it
found, and the points of a second pass are kept.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facebench.weights import load_published

FAN_FILE = "face-alignment's 2D-FAN weights (2DFAN4-11f355bf06.pth.tar, adrianbulat.com/downloads/python-fan)"
LIPS = slice(48, 68)
CROP, HEATMAP, REFERENCE_SCALE, CENTRE_SHIFT = 256, 64, 195.0, 0.12
# The 68 points' mirror images (face-alignment's `shuffle_lr`): jaw, brows, nose, eyes, lips.
MIRRORED = (16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 27, 28, 29, 30, 35, 34, 33,
            32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67,
            66, 65)  # fmt: skip


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


class ConvBlock(nn.Module):
    """FAN's residual block: three pre-activated 3x3 convolutions of out/2, out/4, out/4 channels,
    concatenated, plus the input (through BN, ReLU, a 1x1 convolution where the widths differ)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv3x3(cin, cout // 2)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout // 2), conv3x3(cout // 2, cout // 4)
        self.bn3, self.conv3 = nn.BatchNorm2d(cout // 4), conv3x3(cout // 4, cout // 4)
        self.downsample = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False)) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv1(F.relu(self.bn1(x)))
        second = self.conv2(F.relu(self.bn2(first)))
        third = self.conv3(F.relu(self.bn3(second)))
        return torch.cat([first, second, third], 1) + (x if self.downsample is None else self.downsample(x))


class HourGlass(nn.Module):
    """Four levels: at each, a block at this resolution (`b1_<level>`) beside a pooled branch
    (`b2_<level>`, the next level or `b2_plus_1`, then `b3_<level>`) upsampled back."""

    def __init__(self, depth: int = 4, features: int = 256):
        super().__init__()
        self.depth = depth
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(features, features))
            self.add_module(f"b2_{level}", ConvBlock(features, features))
            self.add_module(f"b3_{level}", ConvBlock(features, features))
        self.add_module("b2_plus_1", ConvBlock(features, features))

    def level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self.level(level - 1, low) if level > 1 else self._modules["b2_plus_1"](low)
        return self._modules[f"b1_{level}"](x) + F.interpolate(self._modules[f"b3_{level}"](low), scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.level(self.depth, x)


class FAN(nn.Module):
    """(N, 3, 256, 256) crops in [0, 1] -> (N, 68, 64, 64) heatmaps of the last of `stacks` hourglasses."""

    def __init__(self, stacks: int = 4):
        super().__init__()
        self.stacks = stacks
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64)
        self.conv2, self.conv3, self.conv4 = ConvBlock(64, 128), ConvBlock(128, 128), ConvBlock(128, 256)
        for k in range(stacks):
            self.add_module(f"m{k}", HourGlass())
            self.add_module(f"top_m_{k}", ConvBlock(256, 256))
            self.add_module(f"conv_last{k}", nn.Conv2d(256, 256, 1))
            self.add_module(f"bn_end{k}", nn.BatchNorm2d(256))
            self.add_module(f"l{k}", nn.Conv2d(256, 68, 1))
            if k < stacks - 1:
                self.add_module(f"bl{k}", nn.Conv2d(256, 256, 1))
                self.add_module(f"al{k}", nn.Conv2d(68, 256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(self.conv2(F.relu(self.bn1(self.conv1(x)))), 2, stride=2)
        previous = self.conv4(self.conv3(x))
        for k in range(self.stacks):
            features = self._modules[f"top_m_{k}"](self._modules[f"m{k}"](previous))
            features = F.relu(self._modules[f"bn_end{k}"](self._modules[f"conv_last{k}"](features)))
            heatmaps = self._modules[f"l{k}"](features)
            if k < self.stacks - 1:
                previous = previous + self._modules[f"bl{k}"](features) + self._modules[f"al{k}"](heatmaps)
        return heatmaps


def heatmap_points(heatmaps: torch.Tensor) -> torch.Tensor:
    """(N, P, 64, 64) -> (N, P, 2) heatmap coordinates (x, y): the maximum, a quarter pixel towards
    the higher neighbour where it has both, less half a pixel (face-alignment's `get_preds_fromhm`)."""
    n, p, h, w = heatmaps.shape
    index = heatmaps.flatten(2).argmax(-1)
    x, y = index % w, index // w
    inner = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1)
    flat = heatmaps.flatten(2)
    at = lambda dx, dy: flat.gather(-1, ((y + dy).clamp(0, h - 1) * w + (x + dx).clamp(0, w - 1))[..., None])[..., 0]  # noqa: E731
    shift = torch.stack([torch.sign(at(1, 0) - at(-1, 0)), torch.sign(at(0, 1) - at(0, -1))], -1) * 0.25
    # face-alignment counts from 1 before the shift and subtracts 0.5 after: + 1 - 0.5
    return torch.stack([x, y], -1).float() + 0.5 + shift * inner[..., None]


class FANLandmarks(nn.Module):
    """Frames -> the 20 lip points of 2D-FAN, in pixels of the frame (the module docstring's recipe)."""

    chunk = 16  # frames per pass

    def __init__(self, fan: FAN):
        super().__init__()
        self.fan = fan.eval()
        self.register_buffer("mirrored", torch.tensor(MIRRORED), persistent=False)

    @staticmethod
    def crop(frames: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) frames and (N, 4) boxes (x1, y1, x2, y2) -> the (N, 3, 256, 256) crops, and
        each crop's centre (N, 2) and side (N,) in frame pixels."""
        centre = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], -1)
        centre[:, 1] -= (boxes[:, 3] - boxes[:, 1]) * CENTRE_SHIFT
        side = 200.0 * ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / REFERENCE_SCALE
        h, w = frames.shape[-2:]
        crops = []
        for frame, (cx, cy), s in zip(frames, centre.tolist(), side.tolist()):
            # face-alignment's corners: crop pixels 1 and 256 mapped back and truncated to ints
            left, top = int(cx - s / 2 + s / CROP), int(cy - s / 2 + s / CROP)
            right, bottom = int(cx - s / 2 + s), int(cy - s / 2 + s)
            canvas = frame.new_zeros(3, bottom - top, right - left)
            x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
            if x1 > x0 and y1 > y0:
                canvas[:, y0 - top : y1 - top, x0 - left : x1 - left] = frame[:, y0:y1, x0:x1]
            crops.append(F.interpolate(canvas[None], size=(CROP, CROP), mode="bilinear", align_corners=False)[0])
        return torch.stack(crops), centre, torch.as_tensor(side, dtype=frames.dtype, device=frames.device)

    def points(self, frames: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) frames, (N, 4) face boxes -> (N, 68, 2) points in frame pixels (whole)."""
        crops, centre, side = self.crop(frames, boxes)
        heatmaps = self.fan(crops) + self.fan(crops.flip(-1))[:, self.mirrored].flip(-1)
        found = heatmap_points(heatmaps)
        return (found * (side / HEATMAP)[:, None, None] + centre[:, None] - side[:, None, None] / 2).trunc()

    @torch.no_grad()
    def landmarks(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, H, W, >=3) frames, RGB in [0, 1] -> (T, 20, 2) lip points (x right, y down)."""
        found = []
        for start in range(0, len(frames), self.chunk):
            part = frames[start : start + self.chunk, ..., :3].permute(0, 3, 1, 2).float()
            h, w = part.shape[-2:]
            whole = part.new_tensor([0.0, 0.0, w, h]).expand(len(part), 4)
            first = self.points(part, whole)
            boxes = torch.cat([first.min(1).values, first.max(1).values], -1)
            found.append(self.points(part, boxes)[:, LIPS])
        return torch.cat(found)


def load_fan(path: str | Path) -> FANLandmarks:
    """The lip-landmark judge of real video from face-alignment's 2D-FAN weights at `path`."""
    return FANLandmarks(load_published(FAN(), path, FAN_FILE).requires_grad_(False))
