"""Progress of long generations: a caller (`facebench animate`) sets a callback for the duration of
a `generate` call, and the decoding loops report each frame to it. Nothing is reported when no
callback is set (training, the benchmark)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_frame_callback: ContextVar[Callable[[int], None] | None] = ContextVar("frame_callback", default=None)


@contextmanager
def frame_progress(callback: Callable[[int], None]) -> Iterator[None]:
    token = _frame_callback.set(callback)
    try:
        yield
    finally:
        _frame_callback.reset(token)


def report_frame(frame: int) -> None:
    callback = _frame_callback.get()
    if callback is not None:
        callback(frame)
