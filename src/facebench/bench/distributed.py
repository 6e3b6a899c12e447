"""A bench run on several processes (devices, nodes), with Lightning's DDP strategy
(docs/architecture.md, "Several devices").

Every process runs the whole `facebench bench` command: the processes are started by a launcher
(`torchrun`, or `srun` under SLURM) or, for `--devices N` on one machine without one, by
`facebench bench` itself through `torch.distributed.run`. They join one process group before the
first run, so that they agree on what one process decides (the run folder's name) and so that the
work done once (building the reference lip reader, writing `stages.json`, predictions, rows) is
done by the main process while the others wait. Lightning's trainers then reuse that group.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from typing import Any

import torch

from facebench.errors import FacebenchError


def launcher_environment():
    """Lightning's cluster environment of the launcher that started this process (torchrun or
    SLURM), or None for a process started on its own."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for environment in (TorchElasticEnvironment, SLURMEnvironment):
        if environment.detect():
            return environment()
    return None


def joined() -> bool:
    """Whether this process is in a process group (several processes, after `join`)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    """Processes in the run: the process group's, else the launcher's, else 1."""
    if joined():
        return torch.distributed.get_world_size()
    environment = launcher_environment()
    return environment.world_size() if environment is not None else 1


def is_main() -> bool:
    return not joined() or torch.distributed.get_rank() == 0


def requested_processes(trainer: dict) -> int:
    """Processes a run's trainer settings ask for: devices per node (a count, or a list of device
    indices) × nodes. `auto` and -1 are refused: the count must be known to start the processes."""
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if isinstance(devices, str) and all(part.strip().isdigit() for part in devices.split(",")):
        devices = [int(part) for part in devices.split(",")]  # Lightning's "0,1"
    if isinstance(devices, (list, tuple)) and devices and all(isinstance(d, int) and d >= 0 for d in devices):
        count = len(devices)
    elif isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
        count = devices
    else:
        raise FacebenchError(f"--devices {devices}: expected a count of devices per node (2) or their indices ([0,1]), found {devices!r}")
    if not isinstance(nodes, int) or nodes < 1:
        raise FacebenchError(f"--num-nodes {nodes}: expected a count of nodes, 1 or more; found {nodes!r}")
    return count * nodes


def join(trainer: dict) -> None:
    """Join the launcher's process group (once per process) after checking that the launcher
    started as many processes as the trainer settings ask for."""
    environment = launcher_environment()
    if environment is None or joined():
        return
    expected = requested_processes(trainer)
    if environment.world_size() != expected:
        raise FacebenchError(f"the launcher started {environment.world_size()} processes; expected {expected} "
                             f"(--devices {trainer.get('devices', 1)} x --num-nodes {trainer.get('num_nodes', 1)})")  # fmt: skip
    from lightning.fabric.utilities.distributed import _init_dist_connection

    cuda = torch.cuda.is_available() and trainer.get("accelerator", "auto") in ("auto", "gpu", "cuda")
    if cuda:  # NCCL's collectives run on the current device: this process's, as Lightning will choose
        torch.cuda.set_device(environment.local_rank())
    _init_dist_connection(environment, "nccl" if cuda else "gloo")


def from_main(value: Any) -> Any:
    """The main process's `value`, on every process."""
    if not joined():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if joined():
        torch.distributed.barrier()


@contextmanager
def main_first():
    """The main process runs the block first (e.g. builds and stores a file), the others after it
    (e.g. read what it stored)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def relaunch(argv: list[str], processes: int, nodes: int) -> int:
    """Run the `facebench` command `argv` as `processes` processes on this machine (torch.distributed.run,
    standalone rendezvous); returns the launcher's exit status. Several nodes need a launcher on
    each node, which facebench cannot start."""
    if nodes > 1:
        raise FacebenchError(f"--num-nodes {nodes}: expected the command to be started on every node by a launcher "
                             "(torchrun or srun: README, 'Several devices'); found none")  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m", "facebench", *argv]
    return subprocess.run(command, check=False).returncode
