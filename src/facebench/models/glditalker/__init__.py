"""GLDiTalker: a graph-enhanced quantised motion space and latent diffusion from audio (facebench reconstruction)."""

from facebench.models.glditalker.module import GLDiTalker

__all__ = ["GLDiTalker"]
