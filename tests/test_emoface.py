"""EmoFace: its parts (Mesh Attention, fusion, the self-growing schedule, cross-reconstruction) and
that it learns on the synthetic corpus with emotions, and runs on the emotional sets' layouts."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from facebench.bench.config import ModelSpec, model_specs, resolve
from facebench.bench.runner import build, run_one
from facebench.data.datamodule import PairedClips, paired_collate
from facebench.data.sequence import collate
from tests.fabricate import write_mead3d, write_ravdess
from tests.learning import assert_beats_template, assert_matches_drift_reference, ci_run, template_lve


@pytest.fixture(scope="module")
def tiny_emoface(synth_tiny):
    config = resolve(model_specs()["emoface"], "synth-tiny", "ci", 0)
    data, model = build(config, str(synth_tiny))
    model.set_topology(data.topology)
    return data, model


def test_the_self_growing_schedule(tiny_emoface):
    """p(GT) is 1 during the warm-up, a cosine down to 0 by (N + θ) / 2, then 0 (θ = 0.1 N)."""
    _, model = tiny_emoface
    probabilities = []
    for epoch in range(200):
        model._trainer = SimpleNamespace(max_epochs=200, current_epoch=epoch)
        model.__dict__["_current_epoch_for_test"] = epoch
        type(model).current_epoch = property(lambda self: self.__dict__.get("_current_epoch_for_test", 0))
        probabilities.append(model.ground_truth_probability())
    model._trainer = None
    del type(model).current_epoch
    assert probabilities[:20] == [1.0] * 20 and probabilities[111:] == [0.0] * 89
    assert probabilities[20] == 1.0 and probabilities[65] == pytest.approx(math.cos(math.pi * 45 / 180))
    assert all(a >= b for a, b in zip(probabilities, probabilities[1:]))


def test_mesh_attention_weighs_the_branches_per_vertex_and_frame(tiny_emoface):
    data, model = tiny_emoface
    network = model.network
    content, emotion = torch.randn(2, 11, 64), torch.randn(2, 11, 64)
    weights = network.fusion_weights(content, emotion)
    assert weights.shape == (2, 11, data.n_vertices) and (weights > 0).all() and (weights < 1).all()
    # Causal in time: changing the audio from frame 6 on leaves the earlier weights as they were.
    later = emotion.clone()
    later[:, 6:] += 1
    torch.testing.assert_close(network.fusion_weights(content, later)[:, :6], weights[:, :6])
    d_e, d_c = torch.randn(2, 11, 3 * data.n_vertices), torch.randn(2, 11, 3 * data.n_vertices)
    fused = network.fuse(weights, d_e, d_c).view(2, 11, -1, 3)
    w = weights[..., None]
    torch.testing.assert_close(fused, w * d_e.view(2, 11, -1, 3) + (1 - w) * d_c.view(2, 11, -1, 3))
    assert torch.equal(network.fuse(None, d_e, d_c), d_e + d_c)  # the Add ablation


def test_cross_reconstruction_reads_the_other_take(tiny_emoface):
    """A training batch carries, per clip, a take of the same text in another emotion; the loss has
    self- and cross-reconstruction terms on both branches and the fused output."""
    data, model = tiny_emoface
    pairs = PairedClips(data.split_dataset("train"), seed=0)
    batch = paired_collate([pairs[i] for i in range(4)])
    assert torch.equal(batch.content, batch.partner.content) and (batch.emotion != batch.partner.emotion).all()
    model.train()
    for branch in (model.network.emotion, model.network.content):  # away from the zero-initialised outputs,
        torch.nn.init.normal_(branch.vertice_map_r.weight, std=0.01)  # where the fusion weights get no gradient
    parts = model.losses(batch)
    for name in ("self_fused", "self_emotion_branch", "self_content_branch", "cross_fused", "cross_emotion_branch", "velocity", "classification"):
        assert torch.isfinite(parts[name]) and parts[name] > 0, name
    parts["loss"].backward()
    assert model.network.attention.vertex_embedding.grad.abs().sum() > 0 and model.network.classifier.weight.grad.abs().sum() > 0


@torch.no_grad()
def test_the_reconstruction_loss_is_l1_or_squared_as_configured(tiny_emoface, monkeypatch):
    """`loss_power` 1 (the paper): L1 in dataset units; 2: the squared error in the network's unit
    times that unit (so both are about equal where the error is one unit). Branches that miss the
    truth by a known error give exactly those terms."""
    data, model = tiny_emoface
    batch = collate([data.split_dataset("train")[i] for i in range(2)])
    truth = model.to_offsets(batch.vertices, batch.templates)
    error = torch.full_like(truth, 3.0)
    error[:, 1::2] = -1.0
    monkeypatch.setattr(model.network, "teacher_forced", lambda *a, **k: (truth + error, truth + 2 * error, truth))
    model.eval()
    mask = torch.arange(truth.shape[1])[None] < batch.frame_lengths[:, None]
    mean = lambda x: ((x.mean(-1) * mask).sum(1) / batch.frame_lengths).mean()  # noqa: E731
    unit = model.offset_scale
    try:
        for power, expect in ((1, lambda e: mean(e.abs()) * unit), (2, lambda e: mean(e**2) * unit)):
            model.loss_power = power
            own = model.reconstruct(batch, batch)
            torch.testing.assert_close(own["fused"], expect(error))
            torch.testing.assert_close(own["emotion_branch"], expect(2 * error))
            assert float(own["content_branch"]) == 0.0
            # the error alternates +3 and -1 from frame to frame: its velocity is +-4 everywhere
            assert float(own["velocity"]) == pytest.approx(4 * unit if power == 1 else 16 * unit, rel=1e-5)
    finally:
        model.loss_power = 1
    with pytest.raises(ValueError, match="loss_power: expected 1 .* or 2 .*, found 3"):
        type(model)(**{**model.hparams, "loss_power": 3})


@torch.no_grad()
def test_generation_uses_the_intensity_level_and_hears_the_emotion(tiny_emoface):
    data, model = tiny_emoface
    model.eval()
    for p in model.parameters():
        p.add_(0.02 * torch.randn_like(p))
    batch = collate([data.clip("test_seen", 0)])
    inputs = model.generation_inputs(batch)
    normal = model.generate(inputs)
    inputs.conditions["intensity"] = 1 - inputs.conditions["intensity"]
    assert normal.shape[1] == int(inputs.n_frames[0]) and not torch.equal(model.generate(inputs), normal)
    assert model.predict_emotion(inputs).shape == (1,)


def test_variants_are_the_papers_ablations_and_the_other_reading_of_self_growing():
    spec = model_specs()["emoface"]
    assert spec.variants == ["", "add_fusion", "teacher_forcing", "spiral_2d", "first_pass_gradient"]
    assert resolve(spec, "synth", "quick", 0, "first_pass_gradient")["model"]["init_args"]["first_pass_gradient"] is True
    assert resolve(spec, "synth", "quick", 0, "spiral_2d")["model"]["init_args"]["attention_frames"] == 1
    full = resolve(spec, "ravdess3d", "full", 0)["model"]["init_args"]
    assert full["classification_weight"] == 1e-4 and full["emotion_encoder"]["checkpoint"].startswith("r-f/")


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["ravdess3d", "mead3d"])
def test_emoface_runs_end_to_end_on_the_emotional_layouts(dataset, tmp_path):
    if dataset == "ravdess3d":
        root = write_ravdess(tmp_path / "data", [(1, 1, 1, 1, 1), (1, 3, 2, 1, 1), (2, 4, 2, 1, 1), (2, 1, 1, 1, 2), (21, 3, 1, 1, 1), (23, 8, 2, 2, 1)])
    else:
        speakers = [f"M{i:03d}" for i in (3, 5, 7, 9, 11, 12, 13, 19)]
        root = write_mead3d(tmp_path / "data", [(s, e, 1, 1) for s in speakers for e in ("neutral", "happy")])
    raw = model_specs()["emoface"].raw
    spec = ModelSpec("emoface", {**raw, "overrides": raw["overrides"] + [{"profile": "ci", "trainer": {"max_epochs": 1}}]})
    rows = run_one(spec, dataset, "ci", 0, root=str(root), leaderboards=tmp_path / "lb", runs=tmp_path / "runs", progress=False)
    (row,) = rows
    assert row["dataset"] == dataset and row["lve"] > 0 and "emotion_accuracy" in row and row["inputs"].endswith("intensity")
    assert list((root / "topology").glob("spirals-*-L9-d1.npy"))  # the mesh's spirals, cached beside the dataset
    assert json.loads((tmp_path / "runs" / row["run_dir"] / "stages.json").read_text())[0]["epochs"] == 1


def new_voices(n_speakers: int = 20) -> list:
    """Takes of the tiny corpus' test sentences by voices no model has heard (speaker indices past
    the corpus'), built with the corpus' own generator: (audio, emotion) pairs. The 8 test_unseen
    clips are too few to judge a 5-way classifier; 80 takes are enough."""
    from facebench.data.synth.generator import SYNTH_PRESETS, TEST_SENTENCES, make_clip, make_speaker
    from facebench.data.synth.mesh import build_face

    config = SYNTH_PRESETS["tiny"]
    face = build_face(config.n_vertices)
    takes = []
    for index in range(100, 100 + n_speakers):
        speaker = make_speaker(config, face, index, f"N{index}", seen=False, seed=0)
        for sentence in range(TEST_SENTENCES[0], TEST_SENTENCES[1] + 1):
            clip = make_clip(config, face, speaker, index, sentence, seed=0)
            takes.append((clip.audio, clip.emotion))
    return takes


@pytest.mark.slow
def test_emoface_learns_and_hears_emotions_of_new_voices(synth_tiny, tmp_path):
    """After the ci profile (the drift check's run, its metrics compared with the reference),
    EmoFace's lip error on held-out clips is well below the template's, and its emotion classifier, on takes by voices it never heard, beats chance (balanced accuracy
    1/5) and always guessing the most frequent emotion (plain accuracy)."""
    import numpy as np

    from facebench.data.audio import frames_from_audio, normalize_audio
    from facebench.data.sequence import ModelInputs
    from facebench.render.animate import load_run

    rows = ci_run("emoface", synth_tiny, tmp_path)  # the drift check's run
    assert_matches_drift_reference(rows)
    assert_beats_template(rows, synth_tiny)
    results = {row["split"]: row for row in rows}
    _, data, model = load_run(tmp_path / "runs" / rows[0]["run_dir"], root=str(synth_tiny))
    heard, truth = [], []
    with torch.no_grad():
        for audio, emotion in new_voices():
            n_frames = frames_from_audio(len(audio), data.fps, data.audio_per_frame)
            inputs = ModelInputs(audio=torch.from_numpy(normalize_audio(audio).astype(np.float32))[None], audio_lengths=torch.tensor([len(audio)]),
                                 n_frames=torch.tensor([n_frames]), templates=data.clip("test_unseen", 0).template[None],
                                 style=torch.tensor([-1]), fps=data.fps, conditions={"intensity": torch.tensor([0])})  # fmt: skip
            heard.append(int(model.predict_emotion(inputs)[0]))
            truth.append(emotion)
    heard, truth = np.array(heard), np.array(truth)
    accuracy = float((heard == truth).mean())
    balanced = float(np.mean([(heard[truth == e] == e).mean() for e in np.unique(truth)]))
    majority = float(np.bincount(truth).max() / len(truth))
    template = template_lve(synth_tiny)
    print(f"LVE {results['test_seen']['lve']:.3g} / {results['test_unseen']['lve']:.3g} (template "
          f"{template['test_seen']:.3g} / {template['test_unseen']:.3g}); new voices: "
          f"accuracy {accuracy:.3f} (majority {majority:.3f}), balanced {balanced:.3f} (chance 0.2), classes {np.bincount(truth).tolist()}")
    assert balanced > 0.35 and accuracy > majority + 0.1, (accuracy, balanced, majority, np.bincount(truth))
