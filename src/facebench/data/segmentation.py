"""The 12 face classes of the video modality, in SegTalker's order (E4S's merge of the 19
CelebAMask-HQ classes a BiSeNet face parser predicts), the merge itself, and the class maps as
one-hot masks and frames at a working resolution (what the mask-sync expert, the face parser and
SegTalker read).

The order is E4S's (`__ffhq_masks_to_faceParser_mask_detailed`), which SegTalker's 12 classes
follow; docs/architecture.md, "The video modality"."""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch.nn import functional as F

CLASSES = ("background", "lip", "eyebrows", "eyes", "hair", "nose", "skin", "ears", "neck", "mouth", "eye_glass", "ear_rings")
N_CLASSES = len(CLASSES)
# The mouth region of the mouth IoU: the lips and the mouth's inside (teeth included).
MOUTH_CLASSES = (CLASSES.index("lip"), CLASSES.index("mouth"))
# The class of a pixel no mask covers (a set without masks, a hidden part of a pose source).
UNKNOWN = 255

# face-parsing.PyTorch's 19 labels (0 bg, 1 skin, 2 l_brow, 3 r_brow, 4 l_eye, 5 r_eye, 6 eye_g,
# 7 l_ear, 8 r_ear, 9 ear_r, 10 nose, 11 mouth, 12 u_lip, 13 l_lip, 14 neck, 15 neck_l, 16 cloth,
# 17 hair, 18 hat) -> the 12 classes. The necklace, cloth and hat go to the background, as in E4S.
FACE_PARSING_TO_CLASSES = np.array([0, 6, 2, 2, 3, 3, 10, 7, 7, 11, 5, 9, 1, 1, 8, 0, 0, 4, 0], dtype=np.uint8)


def merge_face_parsing(labels: np.ndarray) -> np.ndarray:
    """A face parser's 19-class label map (any shape) as the 12 classes."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(FACE_PARSING_TO_CLASSES)):
        raise ValueError(f"face-parsing labels: expected values in [0, {len(FACE_PARSING_TO_CLASSES)}), found [{labels.min()}, {labels.max()}]")
    return FACE_PARSING_TO_CLASSES[labels]


def one_hot_masks(labels: torch.Tensor) -> torch.Tensor:
    """Class maps (...) -> (..., 12) float one-hot; unknown pixels (255) all zero."""
    labels = labels.round() if labels.is_floating_point() else labels
    return (labels[..., None] == torch.arange(N_CLASSES, device=labels.device, dtype=labels.dtype)).float()


def frames_to_working(frames: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, H, W, 4) float frames (RGB in [0, 1], class) -> at the working resolution R: RGB
    (N, 3, R, R) in [-1, 1] (area or bilinear resizing), the masks (N, 12, R, R) as each class's
    share of every pixel (the one-hot masks area-resized: thin regions such as the lips survive a
    downsizing) and the classes (N, R, R) long, their argmax (255 where no class covers half a pixel)."""
    rgb = rearrange(frames[..., :3], "n h w c -> n c h w") * 2 - 1
    if frames.shape[1] != resolution:
        rgb = F.interpolate(rgb, size=(resolution, resolution), mode="area" if frames.shape[1] > resolution else "bilinear")
    masks = masks_at(frames[..., 3], resolution)
    share, labels = masks.max(1)
    return rgb, torch.where(share >= 0.5, labels, torch.full_like(labels, UNKNOWN)), masks


def masks_at(classes: torch.Tensor, resolution: int) -> torch.Tensor:
    """Class maps (N, H, W) -> each class's share of every pixel at the working resolution
    (N, 12, R, R): the one-hot masks (unknown pixels all zero) area-resized, so thin regions such
    as the lips survive a downsizing."""
    masks = one_hot_masks(classes).permute(0, 3, 1, 2)
    if classes.shape[1] != resolution:
        masks = F.interpolate(masks, size=(resolution, resolution), mode="area" if classes.shape[1] > resolution else "bilinear")
    return masks
