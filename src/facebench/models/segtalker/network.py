"""SegTalker's networks in plain torch (arXiv 2409.03605, reconstructed: CARD.md gives every part's
source). Images are (N, C, R, R) at the model's working resolution R; RGB in [-1, 1]; masks are
one-hot over the 12 classes (facebench.data.segmentation.CLASSES).

- `UNet`: an image-to-image U-Net with a vector injected at the bottleneck. TSG is one (audio in,
  12-class logits out); the `plain` ablation's generator is another (no region codes).
- `TalkingSegmentationGenerator` (TSG): pose-source mask with the lower face hidden + reference
  mask + a window of audio features -> the frame's mask logits.
- `RegionStyleEncoder` + `MaskGuidedGenerator` (SGI): per-region style codes pooled from the
  reference frame at three scales, painted by a StyleGAN2-style generator whose every convolution is
  modulated per region (E4S's mask-guided injection).
- `MaskConditionedDiscriminator`: frame and mask -> patch logits.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from facebench.data.segmentation import N_CLASSES
from facebench.models.components.audio_encoders import build_audio_encoder


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.GroupNorm(min(8, out_channels), out_channels), nn.LeakyReLU(0.2))


class UNet(nn.Module):
    """`depth` stride-2 levels down, a condition vector concatenated at the bottleneck, the same
    levels up with skip connections; widths double per level up to 4x `width`. The condition also
    scales and shifts every level on the way up (FiLM; [ours]): with the bottleneck alone, the skip
    connections let the U-Net ignore it (TSG's audio)."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, depth: int = 3, condition_dim: int = 0, film: bool = True):
        super().__init__()
        widths = [width * min(2**k, 4) for k in range(depth + 1)]
        self.stem = conv_block(in_channels, width)
        self.down = nn.ModuleList(nn.Sequential(conv_block(widths[k], widths[k + 1], 2), conv_block(widths[k + 1], widths[k + 1])) for k in range(depth))
        self.inject = conv_block(widths[-1] + condition_dim, widths[-1])
        self.up = nn.ModuleList(nn.Sequential(conv_block(widths[k + 1] + widths[k], widths[k]), conv_block(widths[k], widths[k])) for k in reversed(range(depth)))
        self.film = nn.ModuleList(nn.Linear(condition_dim, 2 * widths[k]) for k in reversed(range(depth))) if condition_dim and film else None
        self.head = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = skips.pop()
        if condition is not None:
            h = torch.cat([h, condition[:, :, None, None].expand(-1, -1, *h.shape[-2:])], 1)
        h = self.inject(h)
        for k, block in enumerate(self.up):
            skip = skips.pop()
            h = block(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], 1))
            if self.film is not None and condition is not None:
                scale, shift = self.film[k](condition)[:, :, None, None].chunk(2, 1)
                h = h * (1 + scale) + shift
        return self.head(h)


def hide_lower_face(masks: torch.Tensor, hide_from: float) -> torch.Tensor:
    """(N, 12, R, R) one-hot -> (N, 13, R, R): rows from `hide_from` x R down zeroed, and a channel
    marking them (Wav2Lip's masked lower half, on masks)."""
    rows = masks.shape[-2]
    hidden = torch.zeros_like(masks[:, :1])
    hidden[..., int(hide_from * rows) :, :] = 1
    return torch.cat([masks * (1 - hidden), hidden], 1)


class TalkingSegmentationGenerator(nn.Module):
    """TSG: a U-Net over the pose source's mask (lower face hidden) and the reference mask, with the
    frame's audio window injected at the bottleneck -> 12-class logits. The reference mask, scaled by
    a learnt factor (`reference_skip` at the start), is added to the logits ([ours]): the U-Net
    starts from copying the reference and learns what the audio changes, the mouth."""

    def __init__(self, audio_dim: int, width: int = 32, depth: int = 3, hide_from: float = 0.5, audio_window: int = 5, reference_skip: float = 3.0,
                 downsample: int = 1, film: bool = True):  # fmt: skip
        super().__init__()
        self.hide_from, self.downsample = hide_from, downsample
        self.reference_skip = nn.Parameter(torch.tensor(float(reference_skip)))
        # A centred window of `audio_window` frames of audio features ([ours]: Wav2Lip's 0.2 s mel window).
        self.audio_window = nn.Sequential(nn.Conv1d(audio_dim, audio_dim, audio_window, padding=audio_window // 2), nn.LeakyReLU(0.2))
        self.unet = UNet(2 * N_CLASSES + 1, N_CLASSES, width, depth, condition_dim=audio_dim, film=film)

    def audio_windows(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, C) per-frame audio features -> (B, T, C) windows around each frame."""
        return self.audio_window(features.transpose(1, 2)).transpose(1, 2)

    def forward(self, pose_source: torch.Tensor, reference: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        x = torch.cat([hide_lower_face(pose_source, self.hide_from), reference], 1)
        if self.downsample > 1:  # the U-Net at a lower resolution, its logits resized back ([ours], for CPU profiles)
            x = F.avg_pool2d(x, self.downsample)
        logits = self.unet(x, audio)
        if self.downsample > 1:
            logits = F.interpolate(logits, size=reference.shape[-2:], mode="bilinear", align_corners=False)
        return logits + self.reference_skip * reference


def masked_average(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) features and (N, 12, R, R) masks -> (N, 12, C): each region's mean feature at
    the features' scale (area-resized masks; a region absent from the frame pools to zero)."""
    weights = F.interpolate(masks, size=features.shape[-2:], mode="area")
    return torch.einsum("nchw,nrhw->nrc", features, weights) / weights.sum((2, 3))[..., None].clamp(min=1e-6)


class RegionStyleEncoder(nn.Module):
    """The mask-guided multi-scale encoder: features of the reference frame at R/2, R/4 and R/8,
    each region's masked average at every scale, concatenated, then one MLP per region (E4S's
    `LocalMLP`) -> `n_codes` style codes per region, (N, 12, n_codes, style_dim)."""

    def __init__(self, width: int = 32, n_codes: int = 12, style_dim: int = 64, hidden: int = 128):
        super().__init__()
        self.n_codes, self.style_dim = n_codes, style_dim
        self.stem = conv_block(3, width)
        self.scales = nn.ModuleList([conv_block(width, width, 2), conv_block(width, 2 * width, 2), conv_block(2 * width, 4 * width, 2)])
        pooled = 7 * width
        # One MLP per region, batched: (regions, in, out) weights.
        self.w1 = nn.Parameter(torch.randn(N_CLASSES, pooled, hidden) / math.sqrt(pooled))
        self.b1 = nn.Parameter(torch.zeros(N_CLASSES, hidden))
        self.w2 = nn.Parameter(torch.randn(N_CLASSES, hidden, n_codes * style_dim) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(N_CLASSES, n_codes * style_dim))

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        h, pooled = self.stem(image), []
        for scale in self.scales:
            h = scale(h)
            pooled.append(masked_average(h, masks))
        h = F.leaky_relu(torch.einsum("nri,rio->nro", torch.cat(pooled, -1), self.w1) + self.b1, 0.2)
        codes = torch.einsum("nri,rio->nro", h, self.w2) + self.b2
        return codes.view(len(image), N_CLASSES, self.n_codes, self.style_dim)


class RegionModulatedConv(nn.Module):
    """StyleGAN2's modulated convolution with a style per region: each pixel's input channels are
    scaled by its region's style, and the output demodulated with its region's factor, so a region
    is painted as if the whole layer ran with its code (E4S's mask-guided injection, up to the
    pixels whose kernel window crosses a region border; [ours], one convolution instead of 12)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, kernel: int = 3, demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.scale = 1 / math.sqrt(in_channels * kernel * kernel)
        self.affine = nn.Linear(style_dim, in_channels)
        nn.init.ones_(self.affine.bias)  # styles start at 1: the plain convolution
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel // 2

    def forward(self, x: torch.Tensor, codes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """x (N, C, h, w); codes (N, 12, style_dim) of this layer; masks (N, 12, h', w') at the output size."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        styles = self.affine(codes)  # (N, 12, C_in)
        weight = self.weight * self.scale
        y = F.conv2d(x * torch.einsum("nrc,nrhw->nchw", styles, masks), weight, padding=self.padding)
        if self.demodulate:
            factors = torch.rsqrt(torch.einsum("nrc,oc->nro", styles.pow(2), weight.pow(2).sum((2, 3))) + 1e-8)
            y = y * torch.einsum("nro,nrhw->nohw", factors, masks)
        return y + self.bias[:, None, None]


class MaskGuidedGenerator(nn.Module):
    """A StyleGAN2-style skip generator from a learnt constant at R/8 up to R: two region-modulated
    convolutions and a region-modulated ToRGB per resolution, all driven by the region codes
    (3 codes per resolution); the masks are area-resized to each resolution. No noise inputs: the
    model is deterministic ([ours])."""

    def __init__(self, resolution: int, width: int = 32, style_dim: int = 64, levels: int = 4):
        super().__init__()
        self.levels = levels
        channels = [width * min(2 ** (levels - 1 - k), 4) for k in range(levels)]
        self.constant = nn.Parameter(torch.randn(1, channels[0], resolution // 2 ** (levels - 1), resolution // 2 ** (levels - 1)))
        self.convs, self.to_rgb = nn.ModuleList(), nn.ModuleList()
        for k in range(levels):
            previous = channels[max(k - 1, 0)]
            self.convs.append(nn.ModuleList([RegionModulatedConv(previous, channels[k], style_dim, upsample=k > 0),
                                             RegionModulatedConv(channels[k], channels[k], style_dim)]))  # fmt: skip
            self.to_rgb.append(RegionModulatedConv(channels[k], 3, style_dim, kernel=1, demodulate=False))

    @property
    def n_codes(self) -> int:
        return 3 * self.levels

    def forward(self, masks: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """masks (N, 12, R, R), codes (N, 12, n_codes, style_dim) -> RGB (N, 3, R, R) in about [-1, 1]."""
        x, rgb = self.constant.expand(len(masks), -1, -1, -1), None
        for k in range(self.levels):
            size = self.constant.shape[-1] * 2**k
            local = F.interpolate(masks, size=(size, size), mode="area") if size != masks.shape[-1] else masks
            for j, conv in enumerate(self.convs[k]):
                x = F.leaky_relu(conv(x, codes[:, :, 3 * k + j], local), 0.2) * math.sqrt(2)
            skip = self.to_rgb[k](x, codes[:, :, 3 * k + 2], local)
            rgb = skip if rgb is None else F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + skip
        return rgb


class MaskConditionedDiscriminator(nn.Module):
    """Frame and its mask (3 + 12 channels) -> patch logits at R/8 (no normalisation: R1 is taken on it)."""

    def __init__(self, width: int = 32):
        super().__init__()
        layers, channels = [], 3 + N_CLASSES
        for k in range(3):
            out = width * 2**k
            layers += [nn.Conv2d(channels, out, 3, 2, 1), nn.LeakyReLU(0.2)]
            channels = out
        self.net = nn.Sequential(*layers, nn.Conv2d(channels, 1, 3, 1, 1))

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, masks], 1))


class SegTalkerNetwork(nn.Module):
    """Audio encoder, TSG, and the painter: SGI (`generator="regions"`) or the ablation's plain
    image-to-image U-Net (`generator="plain"`: reference frame and generated mask in, frame out, no
    region codes), plus the discriminator that trains the painter.

    Args:
        resolution: the working resolution R (frames are resized to it and back).
        audio_encoder: the shared audio encoder's config (facebench.models.components.audio_encoders).
        tsg_width, tsg_depth, hide_from, reference_skip: TSG's U-Net, the hidden part of the pose
            source, and the reference mask's initial weight in the logits (0: none).
        tsg_downsample: TSG's U-Net runs at R / tsg_downsample, its logits resized to R.
        audio_per_frame: audio features per frame (the dataset's), concatenated for TSG.
        audio_film: the audio also scales and shifts TSG's every decoder level (False: the
            bottleneck only).
        sgi_width, style_dim, levels: the encoder's and generator's widths, the code size, and the
            generator's resolutions (R / 2^(levels-1) up to R).
        disc_width: the discriminator's first width.
    """

    def __init__(self, resolution: int, audio_encoder: dict | None = None, tsg_width: int = 32, tsg_depth: int = 3, hide_from: float = 0.5,
                 sgi_width: int = 32, style_dim: int = 64, levels: int = 4, disc_width: int = 32, generator: str = "regions",
                 reference_skip: float = 3.0, tsg_downsample: int = 1, audio_per_frame: int = 1, audio_film: bool = True):  # fmt: skip
        super().__init__()
        if generator not in ("regions", "plain"):
            raise ValueError(f"generator: expected 'regions' (SGI) or 'plain' (the ablation), found {generator!r}")
        if resolution % 2 ** (levels - 1):
            raise ValueError(f"resolution: expected a multiple of {2 ** (levels - 1)} for {levels} generator levels, found {resolution}")
        self.resolution, self.generator_kind = resolution, generator
        self.audio_encoder = build_audio_encoder(**(audio_encoder or {"name": "logmel", "output_dim": 64}))
        # a frame's `audio_per_frame` features side by side (25 fps video: two 50 Hz features a frame)
        self.tsg = TalkingSegmentationGenerator(self.audio_encoder.output_dim * audio_per_frame, tsg_width, tsg_depth, hide_from, reference_skip=reference_skip,
                                                downsample=tsg_downsample, film=audio_film)  # fmt: skip
        if generator == "regions":
            self.generator = MaskGuidedGenerator(resolution, sgi_width, style_dim, levels)
            self.encoder = RegionStyleEncoder(sgi_width, self.generator.n_codes, style_dim)
        else:
            self.generator = UNet(3 + 2 * N_CLASSES, 3, sgi_width, levels - 1)
        self.discriminator = MaskConditionedDiscriminator(disc_width)

    def painter_modules(self) -> list[nn.Module]:
        return [self.generator] + ([self.encoder] if self.generator_kind == "regions" else [])

    def style_codes(self, reference: torch.Tensor, reference_masks: torch.Tensor) -> torch.Tensor | None:
        """The reference frames' region codes (N, 12, n_codes, style_dim); None for the plain painter."""
        return self.encoder(reference, reference_masks) if self.generator_kind == "regions" else None

    def paint(self, masks: torch.Tensor, codes: torch.Tensor | None, reference: torch.Tensor, reference_masks: torch.Tensor) -> torch.Tensor:
        """Masks (N, 12, R, R) -> RGB (N, 3, R, R), with one clip's codes or reference per row."""
        if self.generator_kind == "regions":
            return self.generator(masks, codes)
        return self.generator(torch.cat([reference, reference_masks, masks], 1))


def classes_at(logits: torch.Tensor, size: int) -> torch.Tensor:
    """Mask logits (N, 12, R, R) -> classes (N, size, size): the argmax of the logits resized
    bilinearly (sharper borders than resizing the classes)."""
    if logits.shape[-1] != size:
        logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
    return logits.argmax(1)


def working_to_frames(rgb: torch.Tensor, classes: torch.Tensor, size: int) -> torch.Tensor:
    """RGB (N, 3, R, R) in [-1, 1] and classes (N, R', R') -> (N, size, size, 4) frames (RGB in
    [0, 1], class); RGB resized bilinearly, classes by nearest neighbour where not already at `size`."""
    if rgb.shape[-1] != size:
        rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
    if classes.shape[-1] != size:
        classes = F.interpolate(classes[:, None].float(), size=(size, size), mode="nearest")[:, 0]
    return torch.cat([rearrange((rgb.clamp(-1, 1) + 1) / 2, "n c h w -> n h w c"), classes[..., None].float()], -1)
