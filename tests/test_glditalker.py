"""GLDiTalker: the spiral pyramid encoder, the stages, seeded sampling, the learning test (the drift
check's `ci` run), and a BIWI-format run end to end."""

from __future__ import annotations

import pytest
import torch

from facebench.bench.config import model_specs, resolve
from facebench.bench.runner import build
from facebench.cli import main
from facebench.data.sequence import collate
from facebench.metrics.evaluate import evaluate_folder
from facebench.models.glditalker import GLDiTalker
from facebench.models.glditalker.network import PyramidSpiralEncoder
from tests.learning import (
    assert_beats_template,
    assert_codebook_reconstructs,
    assert_matches_drift_reference,
    ci_run,
)


def ci_model(root):
    config = resolve(model_specs()["glditalker"], "synth-tiny", "ci", 0)
    return build(config, str(root))


def test_pyramid_encoder_fuses_every_level():
    """One feature per frame; each level's features reach it (a change at one vertex of the finest
    level changes the output through the averaged levels and the kept coarsest one)."""
    torch.manual_seed(0)
    encoder = PyramidSpiralEncoder([10, 5, 2], [4, 6], length=3, dim=8)
    spirals = [torch.stack([torch.arange(10), (torch.arange(10) + 1) % 10, (torch.arange(10) + 2) % 10], 1),
               torch.stack([torch.arange(5), (torch.arange(5) + 1) % 5, (torch.arange(5) + 2) % 5], 1)]  # fmt: skip
    encoder.set_topology(spirals, [torch.tensor([0, 2, 4, 6, 8]), torch.tensor([1, 3])])
    x = torch.randn(10, 7, 3)
    out = encoder(x)
    assert out.shape == (7, 8)
    moved = x.clone()
    moved[3, 2] += 1.0
    changed = (encoder(moved) - out).abs().sum(-1) > 0
    assert changed.tolist() == [False, False, True, False, False, False, False]  # frames stay apart
    with pytest.raises(ValueError, match="pyramid level 2: expected 2 kept vertices, found 3"):
        encoder.set_topology(spirals, [torch.tensor([0, 2, 4, 6, 8]), torch.tensor([1, 3, 4])])


def test_glditalker_needs_its_pyramid_and_the_runner_gives_it(synth_tiny):
    with pytest.raises(ValueError, match="level_sizes: expected the vertices of each mesh pyramid level"):
        GLDiTalker(n_vertices=306, n_styles=4)
    data, model = ci_model(synth_tiny)
    sizes = model.hparams.level_sizes
    assert sizes[0] == data.n_vertices and len(sizes) == 3 and sizes[0] > sizes[1] > sizes[2] > 0
    model.set_topology(data.topology)
    assert int(model.network.autoencoder.spatial.kept_1.max()) < sizes[1]  # kept indexes the level above


def test_glditalker_stages_train_their_parts(synth_tiny):
    """Stage 1 trains the auto-encoder only; stage 2 everything else with the auto-encoder frozen,
    on the clean latents of the ground truth (scaled once, by the first training batch)."""
    data, model = ci_model(synth_tiny)
    model.set_topology(data.topology)
    batch = collate([data.split_dataset("train")[i] for i in range(3)])
    model.set_stage("vqvae")
    assert set(model.losses(batch)) == {"reconstruction", "quantization", "perplexity", "loss"}
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"autoencoder"}
    model.set_stage("denoiser")
    model.train()
    assert not model.network.autoencoder.training
    losses = model.losses(batch)
    assert set(losses) == {"latent", "velocity", "loss"} and torch.isfinite(losses["loss"])
    assert float(model.latent_scale) > 0
    losses["loss"].backward()
    assert all(p.grad is None for p in model.network.autoencoder.parameters())
    assert model.network.denoiser.out.weight.grad.abs().sum() > 0


def test_glditalker_samples_follow_their_seed(synth_tiny):
    """The same seed gives the same motion; another seed another motion, of the length the audio implies."""
    data, model = ci_model(synth_tiny)
    model.set_topology(data.topology)
    model.eval()
    inputs = collate([data.split_dataset("test_seen")[0]]).inputs(model.audio_per_frame)
    with torch.no_grad():
        first, again, other = (model.generate(inputs, seed=s) for s in (0, 0, 1))
    assert first.shape == (1, inputs.max_frames, data.n_vertices, 3)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_glditalker_learns_and_matches_the_drift_reference(synth_tiny, tmp_path):
    """After the ci profile (the drift check's run, its rows compared with the reference): the
    stage-1 auto-encoder reconstructs held-out motion far better than the template; generated
    motion beats the template on held-out clips; the samples of one clip differ across seeds, by
    less than they differ from the ground truth (MVE)."""
    rows = ci_run("glditalker", synth_tiny, tmp_path)  # the drift check's run
    assert_matches_drift_reference(rows)
    assert_beats_template(rows, synth_tiny)
    assert_codebook_reconstructs(rows, synth_tiny, tmp_path / "runs")
    for row in rows:
        assert row["samples"] == 2 and row["sample_diversity"] > 0
        assert row["sample_diversity"] < row["mve"]
    # The run through Lightning's CLI (its cli.yaml carries the pyramid's sizes): the first sample
    # again, scored as the row (this process has the native kernels: equal to float precision).
    run = tmp_path / "runs" / rows[0]["run_dir"]
    main(["predict", "--config", str(run / "cli.yaml"), "--ckpt_path", str(run / "checkpoints" / "denoiser-best.ckpt"),
          "--predictions", str(tmp_path / "pred"), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
          "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    for row in rows:
        result = evaluate_folder(tmp_path / "pred" / row["split"], "synth-tiny", row["split"], root=str(synth_tiny))
        assert result["lve"] == pytest.approx(row["lve"], rel=1e-3), row["split"]
