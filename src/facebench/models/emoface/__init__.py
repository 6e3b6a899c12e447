from facebench.models.emoface.module import EmoFace
from facebench.models.emoface.network import EmoFaceNetwork, MeshAttention

__all__ = ["EmoFace", "EmoFaceNetwork", "MeshAttention"]
