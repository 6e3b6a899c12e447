"""LPIPS (Zhang et al., CVPR 2018), version 0.1 with the AlexNet backbone: the perceptual distance
the talking-face papers report, and a loss.

Recipe (richzhang/PerceptualSimilarity's `lpips.LPIPS(net="alex", version="0.1")`): frames in
[0, 1] mapped to [-1, 1], shifted and scaled per channel (the `ScalingLayer`), AlexNet's five ReLU
outputs, each unit-normalised over its channels (x / (|x| + 1e-10)), the squared difference weighted
per channel by the learned 1x1 heads, averaged over the map and summed over the five layers. The
spatial form (`maps`) upsamples each layer's map bilinearly to the frame before summing, as
`spatial=True` does; the region columns average it inside a region.

Weights: the five linear heads (v0.1) are the ones torchmetrics ships beside its own LPIPS; the
backbone is torchvision's ImageNet AlexNet (`alexnet-owt-7be5be79.pth`), read from a path the user
gives (`$FACEBENCH_ALEXNET` or the run's `evaluation.alexnet`). Why not the libraries themselves:
`lpips`, `torch-fidelity` and torchmetrics' wrapper all build the backbone with torchvision, and no
torchvision build imports beside the pinned CPU torch; our `AlexNet` has torchvision's module names
and indices, so its checkpoint loads key by key (facebench.weights)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchmetrics.functional.image.lpips as torchmetrics_lpips
from torch import nn

from facebench.weights import load_published, weights_identity

ALEXNET_ENV = "FACEBENCH_ALEXNET"
ALEXNET_FILE = "torchvision's ImageNet AlexNet weights (alexnet-owt-7be5be79.pth, download.pytorch.org/models)"
HEADS = Path(torchmetrics_lpips.__file__).parent / "lpips_models" / "alex.pth"
# Where each of LPIPS's five layers ends in AlexNet's `features` (after ReLU 1 to 5).
LAYER_ENDS = (2, 5, 8, 10, 12)
CHANNELS = (64, 192, 384, 256, 256)


class AlexNet(nn.Module):
    """torchvision's AlexNet (`torchvision.models.alexnet`), same names and indices."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class LPIPS(nn.Module):
    """Frozen LPIPS v0.1 (AlexNet). `forward(a, b)`: (N, 3, H, W) in [0, 1] -> (N,) distances;
    `maps(a, b)`: (N, H, W) per-pixel distances whose mean over the frame is `forward`'s value up to
    the upsampling."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        state = torch.load(HEADS, map_location="cpu", weights_only=True)
        self.heads.load_state_dict({f"{k}.weight": state[f"lin{k}.model.1.weight"] for k in range(len(CHANNELS))})
        self.requires_grad_(False)
        self.eval()

    def layer_distances(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, (N, 1, h, w): the head-weighted squared difference of unit-normalised features."""
        x = (torch.cat([a, b]) * 2 - 1 - self.shift) / self.scale
        distances, start = [], 0
        for end, head in zip(LAYER_ENDS, self.heads):
            x = self.features[start:end](x)
            start = end
            unit = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            first, second = unit.chunk(2)
            distances.append(head((first - second).pow(2)))
        return distances

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return distance(self.layer_distances(a, b))

    def maps(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return distance_maps(self.layer_distances(a, b), a.shape[-2:])


def distance(layers: list[torch.Tensor]) -> torch.Tensor:
    """LPIPS per image (N,) from `LPIPS.layer_distances`: each layer's mean over its map, summed."""
    return sum(d.mean((1, 2, 3)) for d in layers)


def distance_maps(layers: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """LPIPS per pixel (N, H, W) from `LPIPS.layer_distances`: each layer upsampled, summed."""
    return sum(nn.functional.interpolate(d, size=size, mode="bilinear", align_corners=False) for d in layers)[:, 0]


def load_lpips(path: str | Path) -> LPIPS:
    """LPIPS with the backbone of torchvision's AlexNet checkpoint at `path` and the v0.1 heads."""
    return LPIPS(load_published(AlexNet(), path, ALEXNET_FILE).features)


def lpips_from(path: str | None = None) -> tuple[LPIPS | None, str]:
    """(LPIPS, identity) from `path` or $FACEBENCH_ALEXNET; (None, "") where neither is given (the
    LPIPS columns stay empty). The identity, `alexnet:<sha256[:12]>-lpips-v0.1`, names the backbone."""
    path = path or os.environ.get(ALEXNET_ENV)
    if not path:
        return None, ""
    return load_lpips(path), weights_identity("alexnet", path) + "-lpips-v0.1"
