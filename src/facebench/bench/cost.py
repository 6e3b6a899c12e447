"""The cost and environment columns of a leaderboard row, measured the same way for every model
(docs/architecture.md, "Leaderboard rows"):

- peak memory: what a run's training and test added to the process at their peak. On CUDA, the
  allocator's peak above what was allocated when the run began (counters reset first). On the CPU,
  the resident set's high-water mark (Linux VmHWM, reset through /proc/self/clear_refs) above the
  resident set when the run began. `facebench bench` runs each model in a fresh process, so no run
  inherits another's memory and the value does not depend on run order.
- training time: the fit's wall time without its validation passes (`StageTimer`).
- real-time factor: compute seconds per second of audio at batch 1, one condition, after one
  warm-up clip, over a fixed number of test clips.
"""

from __future__ import annotations

import itertools
import resource
import time
from pathlib import Path

import lightning as L
import torch

RTF_CLIPS = 10  # clips timed for the real-time factor, after one warm-up clip


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a block of work, in MiB above what the process held when it began."""

    def __enter__(self) -> PeakMemory:
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.cuda_base = torch.cuda.memory_allocated()
        self.rss_reset = _reset_peak_rss()
        self.rss_base = _status_kib("VmRSS") or 0
        return self

    def __exit__(self, *exc) -> None:
        self.cuda_peak = torch.cuda.max_memory_allocated() if self.cuda else 0
        high_water = _status_kib("VmHWM") if self.rss_reset else None
        if high_water is None:  # no reset possible: the process's lifetime peak (ru_maxrss, KiB on Linux)
            high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.rss_peak = high_water

    def mb(self, device: torch.device) -> float:
        if device.type == "cuda":
            return (self.cuda_peak - self.cuda_base) / 2**20
        return max(0, self.rss_peak - self.rss_base) / 1024


class StageTimer(L.Callback):
    """Wall time of a fit, and how much of it validation took."""

    def on_fit_start(self, trainer, pl_module) -> None:
        self.start, self.validation_s = time.perf_counter(), 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.validation_s += time.perf_counter() - self._validation_start

    def on_fit_end(self, trainer, pl_module) -> None:
        self.total_s = time.perf_counter() - self.start

    @property
    def train_s(self) -> float:
        return self.total_s - self.validation_s


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def real_time_factor(model, data, clips: int = RTF_CLIPS) -> tuple[float, int]:
    """Compute seconds per second of audio, batch 1, one condition (own style, else the first
    training style), on the first test split's clips after one warm-up clip; and the clips timed."""
    model.eval()
    device = model.device
    loader = data.sealed_dataloader(data.test_split_names[0], model.conditions_used, model.privileged_inputs)
    inputs = []
    for batch in itertools.islice(loader, clips + 1):
        x = batch.inputs.to(device)
        inputs.append(x.with_styles([max(int(x.style[0]), 0)]))
    model.generate(inputs[0], seed=0)  # warm-up: first-call allocations and kernel selection
    timed = inputs[1:] or inputs
    synchronize(device)
    start = time.perf_counter()
    for x in timed:
        model.generate(x, seed=0)
    synchronize(device)
    seconds = time.perf_counter() - start
    return seconds / sum(float(x.audio_lengths[0]) / 16000 for x in timed), len(timed)
