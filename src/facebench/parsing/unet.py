"""The face-parsing U-Net that E4S's face-parsing loss reads, and that loss.

The network is CelebAMask-HQ's face-parsing U-Net (switchablenorms/CelebAMask-HQ, `face_parsing`;
E4S loads its `model.pth` as `CelebA-Mask-HQ-faceParser`): four encoder levels of two 3x3
convolutions with BatchNorm and ReLU, each followed by a 2x2 max-pool, a centre block, four decoder
levels (a 2x2 transposed convolution, the encoder level's map concatenated, two convolutions) and a
1x1 classifier; widths 64..1024 divided by the `feature_scale` 4 (16..256), 19 classes, RGB in
[-1, 1] at 512 x 512. The module names are the checkpoint's, so it loads key by key
(facebench.weights).

The loss (E4S's `FaceParsingLoss`): both images pooled to the parser's input size, the five
encoder maps (the four levels before pooling and the centre) of each flattened per image and
unit-normalised, and per map 1 - their dot product, averaged over the images and summed over the
maps; the real image's maps are constants. It compares how a parser sees the two images, not
their pixels.

Without the published weights, a video dataset with masks gets its own parser [ours]: the same
network, narrower, trained once on the training split's frames against their masks (12 classes)
and stored with the dataset (`faceparser/v<VERSION>/`, like the sync expert), its per-split mIoU in
its card (docs/architecture.md, "Video judges")."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facebench.data.segmentation import N_CLASSES, UNKNOWN, frames_to_working
from facebench.data.sequence import rgbl
from facebench.weights import fit_judge, judge_training, load_published, stored_judge

PUBLISHED_INPUT_SIZE = 512
PUBLISHED_CLASSES = 19
PARSER_FILE = "CelebAMask-HQ's face-parsing U-Net weights (model.pth, switchablenorms/CelebAMask-HQ face_parsing; E4S's CelebA-Mask-HQ-faceParser)"
VERSION = 1  # bump when the network or the recipe changes: a stored parser of another version is never used


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each with BatchNorm and ReLU (the reference's `unetConv2`)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class UpBlock(nn.Module):
    """A 2x2 transposed convolution, the encoder's map of that level concatenated, a `ConvBlock`."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBlock(in_channels, out_channels)
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, skip: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(below)], 1))


class FaceParsingUNet(nn.Module):
    """RGB (N, 3, S, S) in [-1, 1], S divisible by 16 -> class logits (N, n_classes, S, S).
    `width` 16 and 19 classes are the published network; `input_size` is the size it was trained at
    (`parsing_feature_loss` resizes to it)."""

    def __init__(self, n_classes: int = PUBLISHED_CLASSES, width: int = 16, input_size: int = PUBLISHED_INPUT_SIZE):
        super().__init__()
        self.input_size = input_size
        widths = [width * 2**k for k in range(5)]
        self.conv1, self.conv2 = ConvBlock(3, widths[0]), ConvBlock(widths[0], widths[1])
        self.conv3, self.conv4 = ConvBlock(widths[1], widths[2]), ConvBlock(widths[2], widths[3])
        self.center = ConvBlock(widths[3], widths[4])
        self.up_concat4, self.up_concat3 = UpBlock(widths[4], widths[3]), UpBlock(widths[3], widths[2])
        self.up_concat2, self.up_concat1 = UpBlock(widths[2], widths[1]), UpBlock(widths[1], widths[0])
        self.final = nn.Conv2d(widths[0], n_classes, 1)

    def encoder_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four encoder levels before pooling and the centre block."""
        maps = [self.conv1(x)]
        for block in (self.conv2, self.conv3, self.conv4, self.center):
            maps.append(block(F.max_pool2d(maps[-1], 2)))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1, conv2, conv3, conv4, center = self.encoder_maps(x)
        up = self.up_concat1(conv1, self.up_concat2(conv2, self.up_concat3(conv3, self.up_concat4(conv4, center))))
        return self.final(up)


def load_parsing_unet(path: str | Path) -> FaceParsingUNet:
    """The published face-parsing U-Net from `path`."""
    return load_published(FaceParsingUNet(), path, PARSER_FILE)


def parsing_feature_loss(parser: FaceParsingUNet, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E4S's face-parsing loss of images (N, 3, H, W) in [-1, 1]: per encoder map of `parser`,
    1 - the dot product of the two images' flattened, unit-normalised maps, averaged over the
    images; summed over the maps. Gradients reach `fake` only."""
    size = (parser.input_size, parser.input_size)
    if fake.shape[-2:] != size:  # as E4S: adaptive average pooling (which repeats pixels where it enlarges)
        fake, real = F.adaptive_avg_pool2d(fake, size), F.adaptive_avg_pool2d(real, size)
    with torch.no_grad():
        targets = [F.normalize(m.flatten(1), dim=1) for m in parser.encoder_maps(real)]
    maps = [F.normalize(m.flatten(1), dim=1) for m in parser.encoder_maps(fake)]
    return sum((1 - (m * t).sum(1)).mean() for m, t in zip(maps, targets))


# -- a dataset's own parser, trained once and stored with it -----------------------------------------


@dataclass(frozen=True)
class ParserRecipe:
    width: int = 8
    input_size: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2  # as the sync expert's: the weights depend on torch's threads (facebench.weights.judge_training)


def parser_folder(data) -> Path:
    return data.reader.root / "faceparser" / f"v{VERSION}"


def _split_frames(data, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's frames at `size`: RGB (N, 3, S, S) in [-1, 1] and classes (N, S, S) uint8 (an eighth
    of int64's memory: 12 classes and unknown fit), unknown where no class covers half a pixel."""
    clips = data.split_dataset(split)
    rgb, labels = [], []
    for i in range(len(clips)):
        frames, classes, _ = frames_to_working(rgbl(clips[i].frames), size)
        rgb.append(frames)
        labels.append(classes.to(torch.uint8))
    return torch.cat(rgb), torch.cat(labels)


@torch.no_grad()
def parser_miou(parser: FaceParsingUNet, data, split: str) -> float:
    """Mean over the classes present of the parser's IoU against a split's masks, pooled over its frames."""
    rgb, labels = _split_frames(data, split, parser.input_size)
    found = torch.cat([parser(rgb[s : s + 256]).argmax(1) for s in range(0, len(rgb), 256)])
    known = labels != UNKNOWN
    ious = []
    for k in range(N_CLASSES):
        truth, guess = (labels == k) & known, (found == k) & known
        union = int((truth | guess).sum())
        if int(truth.sum()):
            ious.append(int((truth & guess).sum()) / union)
    return round(sum(ious) / len(ious), 4)


def train_parser(data, recipe: ParserRecipe = ParserRecipe(), progress: bool = True) -> tuple[FaceParsingUNet, dict]:
    """Cross-entropy of the training split's masks (unknown pixels ignored) from its frames."""
    with judge_training(recipe.threads, recipe.seed) as generator:
        rgb, labels = _split_frames(data, "train", recipe.input_size)
        model = FaceParsingUNet(N_CLASSES, recipe.width, recipe.input_size)
        loss = lambda logits, classes: F.cross_entropy(logits, classes.long(), ignore_index=UNKNOWN)  # noqa: E731
        seconds = fit_judge(model, rgb, labels, loss, recipe, generator, f"face parser for {data.name}", progress)
        card = {"version": VERSION, "recipe": asdict(recipe), "dataset": data.name, "train_frames": len(rgb),
                "seconds": seconds, "miou": {split: parser_miou(model, data, split) for split in ("val", *data.test_split_names)}}  # fmt: skip
    return model, card


def stored_parser(data, progress: bool = True) -> FaceParsingUNet:
    """The dataset's own face parser, trained on first use and stored with it."""
    return stored_judge(parser_folder(data), f"the face parser of {data.name}", "parser.pt", lambda: train_parser(data, progress=progress),
                        lambda card: FaceParsingUNet(N_CLASSES, card["recipe"]["width"], card["recipe"]["input_size"]))  # fmt: skip


def dataset_parser(data, path: str | None = None, progress: bool = True) -> FaceParsingUNet:
    """The published U-Net at `path` where given, else the dataset's own."""
    return load_parsing_unet(path) if path else stored_parser(data, progress)
