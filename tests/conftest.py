import pickle

import numpy as np
import pytest
import torch

from facebench.data.presets import BIWI, VOCASET
from tests.fabricate import write_dataset, write_regions, write_template_mesh

VOCA_SENTENCES = (1, 20, 21, 40)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def vocaset_root(tmp_path_factory):
    """All twelve VOCASET subjects, four sentences each, stored at 60 fps with 22 kHz audio."""
    subjects = [*VOCASET.train_subjects, *VOCASET.splits["val"].subjects, *VOCASET.splits["test"].subjects]
    clips = {f"{s}_sentence{n:02d}": 7 + n % 3 for s in subjects for n in VOCA_SENTENCES}
    root = write_dataset(tmp_path_factory.mktemp("vocaset"), clips, VOCASET.n_vertices, fps=60, sample_rate=22000)
    masks = {"lips": np.array([1576, 1577, 1577, 3928]), "forehead": np.arange(10, 20), "eye_region": np.arange(30, 45)}
    with open(root / "FLAME_masks.pkl", "wb") as f:
        pickle.dump(masks, f)
    write_template_mesh(root, "templates/FLAME_sample.ply", VOCASET.n_vertices)
    return root


@pytest.fixture(scope="session")
def biwi_root(tmp_path_factory):
    """A few BIWI subjects (seen and unseen) at the real vertex count, 25 fps, 44.1 kHz audio."""
    clips = {f"F2_e{n:02d}": 4 for n in (1, 32, 33, 36, 37, 40)}
    clips |= {f"M5_e{n:02d}": 5 for n in (1, 37)}
    clips |= {f"F1_e{n:02d}": 4 for n in (1, 37, 40)}
    clips |= {"M6_e38": 3}
    root = write_dataset(tmp_path_factory.mktemp("biwi"), clips, BIWI.n_vertices, fps=25, sample_rate=44100)
    write_regions(root, {"lve": [2, 5, 23339], "fdd": list(range(100, 140))})
    write_template_mesh(root, "templates/BIWI.ply", BIWI.n_vertices)
    return root


@pytest.fixture
def tiny_encoder_config():
    """A wav2vec2/HuBERT architecture small enough to run in milliseconds."""
    return dict(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip


@pytest.fixture(scope="session")
def synth_tiny(tmp_path_factory):
    """The tiny synthetic corpus, generated once per test session."""
    from facebench.data.synth import SYNTH_PRESETS, generate
    from facebench.data.synth.anchors import write_anchors

    root = generate(SYNTH_PRESETS["tiny"], tmp_path_factory.mktemp("synth") / "tiny", seed=0, progress=False)
    write_anchors(root, "synth-tiny")
    return root


@pytest.fixture(scope="session")
def short_run(synth_tiny, tmp_path_factory):
    """FaceFormer, two epochs on eight clips of the tiny corpus, through the runner."""
    out = tmp_path_factory.mktemp("run")
    from facebench.bench.config import ModelSpec, model_specs
    from facebench.bench.runner import run_one

    raw = model_specs()["faceformer"].raw
    spec = ModelSpec("faceformer", {**raw, "overrides": raw["overrides"] + [{"profile": "ci", "trainer": {"max_epochs": 2}, "data": {"max_train_clips": 8}}]})
    rows = run_one(spec, "synth-tiny", "ci", 0, root=str(synth_tiny), leaderboards=out / "lb", runs=out / "runs", progress=False)
    return out, rows




@pytest.fixture(scope="session")
def alexnet_checkpoint(tmp_path_factory):
    """torchvision's AlexNet checkpoint layout (random weights), for LPIPS."""
    from tests.fabricate import write_alexnet_checkpoint

    return write_alexnet_checkpoint(tmp_path_factory.mktemp("alexnet") / "alexnet-owt-7be5be79.pth")


@pytest.fixture(scope="session")
def inception_checkpoint(tmp_path_factory):
    """The FID Inception's checkpoint layout (random weights), for FID."""
    from tests.fabricate import write_fid_inception_checkpoint

    return write_fid_inception_checkpoint(tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth")
