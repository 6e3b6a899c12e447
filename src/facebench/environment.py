"""Where a number was measured: the CPU, the GPU, torch and its threads (leaderboard rows, the drift
reference, the reference lip readers' cards)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, str | int]:
    """Where a row was measured: torch version, CPU and GPU names, torch's CPU threads."""
    return {
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "threads": torch.get_num_threads(),
    }
