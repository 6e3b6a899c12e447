"""SegTalker: talking segmentation, then mask-guided style injection (CARD.md)."""

from facebench.models.segtalker.module import SegTalker

__all__ = ["SegTalker"]
