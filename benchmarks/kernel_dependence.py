"""Which CPU kernels a training run's numbers depend on (README, "Determinism"): the same short run
(one model, seed, config) in a fresh process under each setting, natively and with torch's
vectorised kernels, oneDNN and numpy's loops each capped at AVX2, then all three (an AVX2 host as
this machine can emulate it). Prints each setting's recorded `kernels` and its test LVEs to seven
digits, and how far they are from the native run's. On an AVX2-only machine the caps change nothing.

    python benchmarks/kernel_dependence.py [--model ct] [--data synth] [--epochs 2]

Measured on 25 November 2026 (AVX-512 `AMD EPYC`, CodeTalker, quick, seed 0, 2 epochs): torch's
kernels and oneDNN each change test-seen LVE (2.525867 natively, 2.532070 and 2.542151), numpy's
loops do not (the corpus is made once and cached).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from facebench.bench.config import dataset_name
from facebench.bench.leaderboard import leaderboard_path, read_rows
from facebench.environment import PORTABLE_KERNELS

# The drift check's portable kernels, one library at a time, then together. MKL's conditional
# reproducibility is left out: without it these three reproduce an AVX2 host's rows (README).
CAPS = {"torch's kernels at AVX2": "ATEN_CPU_CAPABILITY", "oneDNN at AVX2": "ONEDNN_MAX_CPU_ISA", "numpy's AVX-512 loops off": "NPY_DISABLE_CPU_FEATURES"}
SETTINGS = {"native": {}, **{name: {key: PORTABLE_KERNELS[key]} for name, key in CAPS.items()},
            "all three": {key: PORTABLE_KERNELS[key] for key in CAPS.values()}}  # fmt: skip


def run(setting: dict[str, str], args: argparse.Namespace, folder: Path) -> pd.DataFrame:
    """The run's rows, from a process started with `setting` in its environment (the libraries
    read these variables when they load)."""
    command = [sys.executable, "-m", "facebench", "bench", "--model", args.model, "--variants", "base", "--data", args.data,
               "--profile", args.profile, "--seed", str(args.seed), "--max-epochs", str(args.epochs),
               "--leaderboards", str(folder / "lb"), "--runs", str(folder / "runs"), "--no-progress"]  # fmt: skip
    if args.root:
        command += ["--root", args.root]
    done = subprocess.run(command, env={**os.environ, **setting}, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return read_rows(leaderboard_path(folder / "lb", dataset_name(args.data)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ct")
    parser.add_argument("--data", default="synth")
    parser.add_argument("--root", default=None, help="dataset folder (default: the dataset's usual place)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every stage (--max-epochs)")
    args = parser.parse_args()
    native = None
    with tempfile.TemporaryDirectory() as scratch:
        for i, (name, setting) in enumerate(SETTINGS.items()):
            rows = run(setting, args, Path(scratch) / str(i)).set_index("split")[["lve", "kernels"]]
            native = rows if native is None else native
            lves = ", ".join(f"{split} {lve:.7g}" for split, lve in rows["lve"].items())
            apart = float(((rows["lve"] - native["lve"]).abs() / native["lve"].abs()).max())
            same = "the native run's, bit for bit" if apart == 0 else f"up to {apart:.1e} relative from native"
            print(f"{name:28s} kernels: {rows['kernels'].iloc[0]:40s} LVE {lves} ({same})", flush=True)


if __name__ == "__main__":
    main()
