"""Where a number was measured: the CPU, the GPU, torch and its threads (leaderboard rows, the drift
reference, the reference lip readers' cards)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpuinfo(field: str) -> str | None:
    """The first value of `field` in /proc/cpuinfo (None where there is no such file or field)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    """The CPU's vendor as the processor reports it (`GenuineIntel`, `AuthenticAMD`): MKL picks
    its code paths by it, so the drift check keeps one reference per vendor (facebench.bench.drift)."""
    return cpuinfo("vendor_id") or platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, str | int]:
    """Where a row was measured: torch version, CPU and GPU names, torch's CPU threads, and the CPU
    kernels (two CPUs with one model name can differ in instruction sets, and so in the rows:
    README, "Determinism")."""
    return {
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "threads": torch.get_num_threads(),
        "kernels": kernels(),
    }


# Kernel choices under which the CPU gives the same floats on every x86-64 machine with AVX2 of one
# vendor (the drift check's reference must hold on whatever machine CI draws; with the native
# kernels two machines labelled `AMD EPYC` trained EmoFace's `ci` run to LVEs 18% apart): torch's
# own vectorised kernels at AVX2, MKL's conditional numerical reproducibility at AVX2 (one code
# path, hence one order of reductions, whatever the CPU model), oneDNN capped at AVX2, and numpy's
# AVX-512 loops (its sin, cos, exp differ in the last bit; the synthetic corpus is made with them)
# off. They are read when the libraries load, so they must be in the environment before numpy and
# torch import. MKL honours its AVX2 branch on Intel CPUs only; elsewhere it takes its automatic
# branch (MKL's developer guide, "Getting Started with Conditional Numerical Reproducibility"), so
# an Intel and an AMD machine still differ (measured: README, "Drift check").
PORTABLE_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}


def portable_kernels() -> bool:
    """Whether this process runs with `PORTABLE_KERNELS`."""
    return all(os.environ.get(k) == v for k, v in PORTABLE_KERNELS.items())


def kernels() -> str:
    """The CPU kernels this process uses: torch's vectorised kernels' capability, oneDNN's
    instruction-set cap (`native`: the CPU's; `off` where torch does not call it), and MKL's
    reproducibility mode. Torch's and oneDNN's both change a training run's floats (measured:
    README, "Determinism")."""
    onednn = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "native") if torch.backends.mkldnn.enabled else "off"
    return f"{torch.backends.cpu.get_cpu_capability()}, oneDNN {onednn}, MKL_CBWR={os.environ.get('MKL_CBWR', 'auto')}"
