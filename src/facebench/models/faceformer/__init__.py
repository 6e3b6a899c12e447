from facebench.models.faceformer.module import FaceFormer
from facebench.models.faceformer.network import FaceFormerNetwork

__all__ = ["FaceFormer", "FaceFormerNetwork"]
