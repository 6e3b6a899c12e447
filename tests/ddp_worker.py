"""Test the template on a BIWI-format folder on one device or, under torchrun, on several CPU
processes (gloo); rank 0 writes the results. Used by tests/test_protocol.py.

    python tests/ddp_worker.py ROOT OUT.json
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py ROOT OUT.json
"""

import json
import os
import sys

import lightning as L

from facebench.data.datamodule import FaceDataModule
from facebench.metrics.callback import MeshMetricsCallback
from facebench.models.anchors import Template


def main(root: str, out: str) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    data = FaceDataModule("biwi", root=root)
    model = Template(n_vertices=data.n_vertices, n_styles=data.n_styles)
    metrics = MeshMetricsCallback()
    trainer = L.Trainer(accelerator="cpu", devices=world, strategy="ddp" if world > 1 else "auto", logger=False, callbacks=[metrics],
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.test(model, datamodule=data, verbose=False)
    if trainer.global_rank == 0:
        with open(out, "w") as f:
            json.dump({"world_size": trainer.world_size, "results": metrics.results}, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
