"""Local editing with a trained SegTalker (README, "SegTalker"): the region codes of a frame,
swapped per region with another frame's (E4S's `face_edit`: mixed = (1 - alpha) source + alpha
donor for the chosen regions), and masks edited by taking a region's shape from another frame.
Codes belong to a reference frame, not to a frame of the clip, so one swap applies to every
generated frame of a clip and the edit holds through time.

    model = load_run("runs/synth-video/segtalker-...")[2]
    codes = swap_regions(region_codes(model, source), region_codes(model, donor), ["hair", "lip"])
    edited = model.paint(labels, source, codes)          # (T, H, W, 4) frames
"""

from __future__ import annotations

import torch

from facebench.data.segmentation import CLASSES
from facebench.data.sequence import rgbl
from facebench.errors import FacebenchError


def region_indices(regions: list[str] | tuple[str, ...]) -> list[int]:
    """Class names (`facebench.data.segmentation.CLASSES`) -> their indices, with one clear error."""
    unknown = [r for r in regions if r not in CLASSES]
    if unknown or not regions:
        raise FacebenchError(f"regions: expected names among {', '.join(CLASSES)}, found {', '.join(unknown) or 'none'}")
    return [CLASSES.index(r) for r in regions]


def _require_regions(model) -> None:
    if model.network.generator_kind != "regions":
        raise FacebenchError("editing: the model's painter has no region codes (generator 'plain', the ablation); use an SGI model")


@torch.no_grad()
def region_codes(model, frame: torch.Tensor) -> torch.Tensor:
    """A frame (H, W, 4; stored uint8 or float) -> its region codes (12, n_codes, style_dim)."""
    _require_regions(model)
    rgb, _, masks = model.working(rgbl(frame)[None].to(model.device))
    return model.network.style_codes(rgb, masks)[0]


def swap_regions(codes: torch.Tensor, donor: torch.Tensor, regions: list[str], alpha: float = 1.0) -> torch.Tensor:
    """`codes` with the chosen regions' codes blended towards (alpha 1: replaced by) `donor`'s."""
    mixed = codes.clone()
    index = region_indices(regions)
    mixed[index] = (1 - alpha) * codes[index] + alpha * donor[index]
    return mixed


def transplant_regions(labels: torch.Tensor, donor: torch.Tensor, regions: list[str]) -> torch.Tensor:
    """A mask edit: the chosen regions take the donor mask's shape. Pixels the donor has in them
    join them; pixels the source had in them that the donor has not take the donor's class there."""
    chosen = torch.tensor(region_indices(regions), device=labels.device)
    in_source, in_donor = torch.isin(labels, chosen), torch.isin(donor, chosen)
    edited = labels.clone()
    edited[in_donor | in_source] = donor[in_donor | in_source]
    return edited


@torch.no_grad()
def edit_frame(model, source: torch.Tensor, donor: torch.Tensor, regions: list[str], alpha: float = 1.0, shape: bool = False) -> torch.Tensor:
    """`source` (H, W, 4) repainted with the chosen regions' textures from `donor` (and, with
    `shape`, their shapes from the donor's mask) -> (H, W, 4) frame, RGB in [0, 1] and its classes."""
    source, donor = rgbl(source).to(model.device), rgbl(donor).to(model.device)
    codes = swap_regions(region_codes(model, source), region_codes(model, donor), regions, alpha)
    _, labels, _ = model.working(source[None])
    if shape:
        labels = transplant_regions(labels, model.working(donor[None])[1], regions)
    return model.paint(labels, source, codes)[0]
