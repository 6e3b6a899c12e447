from facebench.models.dualtalker.module import DualTalker
from facebench.models.dualtalker.network import LipReader, consistency_loss

__all__ = ["DualTalker", "LipReader", "consistency_loss"]
