"""Weights of the frozen networks facebench scores with. Published weights go into our
re-implementation of their network (SyncNet, the BiSeNet face parser, AlexNet, the FID Inception,
2D-FAN, CelebAMask-HQ's face-parsing U-Net, ArcFace IR-SE50):
the file read without running code (`weights_only`), every key and shape checked, and one error
naming the file and what does not match. Judges trained on a dataset are stored with it, once."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import torch
from rich.progress import Progress
from torch import nn

from facebench.console import console
from facebench.errors import FacebenchError
from facebench.storage import stored_once


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


def stored_judge(folder: Path, what: str, file: str, train: Callable[[], tuple[nn.Module, dict]], build: Callable[[dict], nn.Module]) -> nn.Module:
    """A judge trained on a dataset and stored with it in `folder`: on first use `train()` gives
    (network, card), saved as `file` and `card.json` (`stored_once`); then `build(card)` makes the
    network, which takes the stored weights. Returned in eval mode."""

    def make(scratch: Path) -> None:
        model, card = train()
        torch.save(model.state_dict(), scratch / file)
        (scratch / "card.json").write_text(json.dumps(card, indent=2))

    stored_once(folder, what, make)
    model = build(json.loads((folder / "card.json").read_text()))
    model.load_state_dict(torch.load(folder / file, map_location="cpu", weights_only=True))
    return model.eval()


class JudgeRecipe(Protocol):
    """What `fit_judge` reads of a judge's recipe (`ParserRecipe`, `LandmarkRecipe`:
    each its own dataclass, because their defaults differ and their fields are stored, in order, in
    the judge's card)."""

    steps: int
    batch_size: int
    lr: float


def fit_judge(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              recipe: JudgeRecipe, generator: torch.Generator, label: str, progress: bool = True) -> float:  # fmt: skip
    """The supervised recipe of the stored judges: Adam at `recipe.lr`, decayed along a cosine over
    `recipe.steps` steps, each on `recipe.batch_size` examples drawn with `generator`; `loss(output,
    target)`. Leaves `model` in eval mode; returns the seconds it took."""
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, recipe.steps)
    start = time.perf_counter()
    with Progress(console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task(label, total=recipe.steps)
        for _ in range(recipe.steps):
            at = torch.randint(len(inputs), (recipe.batch_size,), generator=generator)
            value = loss(model(inputs[at]), targets[at])
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            schedule.step()
            bar.advance(task)
    model.eval()
    return round(time.perf_counter() - start, 1)


@contextmanager
def judge_training(threads: int, seed: int) -> Iterator[torch.Generator]:
    """Where a stored judge trains: torch's CPU threads set to `threads` (its weights depend on
    them, and must not depend on whichever process happened to train it first), and torch's random
    state forked and seeded with `seed`, so a run that trains the judge goes on from the same random
    state as one that loads it. Yields a private generator seeded with `seed` for the judge's own
    draws. The caller's threads and random state are given back after."""
    callers = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(callers)


def weights_identity(kind: str, path: Path) -> str:
    """`<kind>:<first 12 hex digits of the file's sha256>`: which weights scored a row's column."""
    return f"{kind}:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
