"""Published weights into our re-implementation of their network (SyncNet, the BiSeNet face parser):
the file read without running code (`weights_only`), every key and shape checked, and one error
naming the file and what does not match."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facebench.errors import FacebenchError


def load_published(model: nn.Module, path: str | Path, what: str) -> nn.Module:
    """`model` with the state dict at `path` (`what` says which file is expected and where it comes
    from). Checkpoints from before BatchNorm counted its batches lack `num_batches_tracked`: those
    buffers stay at 0. Returns the model in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FacebenchError(f"{path}: expected {what}, found no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FacebenchError(f"{path}: expected {what} (a state dict), found an unreadable file ({exc})") from exc
    own = model.state_dict()
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise FacebenchError(f"{path}: expected the keys and shapes of {type(model).__name__}, found missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}, misshapen {wrong[:5]}")  # fmt: skip
    model.load_state_dict({**own, **state})
    return model.eval()
