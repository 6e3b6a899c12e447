from facebench.models.codetalker.module import CodeTalker
from facebench.models.codetalker.network import CodeTalkerNetwork, VQAutoEncoder

__all__ = ["CodeTalker", "CodeTalkerNetwork", "VQAutoEncoder"]
