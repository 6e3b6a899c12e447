"""DualTalker: its parts, and that it learns on the synthetic corpus: animation well below the
template, and a lip reader that decodes phonemes from ground-truth motion far above chance."""

import numpy as np
import pytest
import torch

from facebench.bench.config import model_specs, resolve, resolve_models
from facebench.bench.runner import build, fit_stages
from facebench.data.sequence import IGNORE_INDEX, collate
from facebench.lipreading.ctc import edit_distance, greedy_decode, phoneme_error_rate, phoneme_targets
from facebench.models.dualtalker.network import consistency_loss
from tests.learning import assert_beats_template, assert_matches_drift_reference, ci_run


def test_edit_distance_and_per():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 3], [1, 2, 3]) == 1 and edit_distance([], [4, 5]) == 2 and edit_distance([7, 2, 3], [1, 2, 3]) == 1
    assert phoneme_error_rate([[1, 2], []], [[1, 2, 3], [4]]) == pytest.approx(2 / 4)


def test_ctc_targets_merge_repeats_and_skip_padding():
    phonemes = torch.tensor([[0, 0, 3, 3, 1, IGNORE_INDEX], [2, 2, 2, 5, IGNORE_INDEX, IGNORE_INDEX]])
    targets, lengths = phoneme_targets(phonemes, torch.tensor([5, 4]))
    assert targets.tolist() == [1, 4, 2, 3, 6] and lengths.tolist() == [3, 2]
    logits = torch.full((1, 5, 4), -10.0)
    for t, k in enumerate([2, 2, 0, 2, 3]):
        logits[0, t, k] = 0
    assert greedy_decode(logits, torch.tensor([5])) == [[1, 1, 2]]


def test_contrastive_consistency_prefers_matched_frames():
    audio = torch.randn(2, 6, 8)
    lengths = torch.tensor([6, 4])
    matched = consistency_loss(audio, audio, lengths)
    shuffled = consistency_loss(audio, audio[:, torch.randperm(6)].roll(1, 0), lengths)
    assert matched < shuffled
    assert consistency_loss(audio, audio, lengths, "cosine") == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="contrastive, cosine or mse"):
        consistency_loss(audio, audio, lengths, "other")


def test_config_extends_faceformer_and_registers_ablations():
    spec = model_specs()["dualtalker"]
    assert spec.variants[:3] == ["", "no_dual", "no_consistency"] and {"no_velocity", "critic", "ctc"} <= set(spec.variants)
    ci = resolve(spec, "synth-tiny", "ci", 0)["model"]["init_args"]
    assert ci["lr"] == 1e-2 and ci["offset_scale"] == 1e-3 and ci["n_phonemes"] == 0  # FaceFormer's ci, plus its own
    assert resolve(spec, "synth-tiny", "ci", 0, "ctc")["model"]["init_args"]["n_phonemes"] == 20
    critic = resolve(spec, "synth-tiny", "quick", 0, "critic")
    assert critic["model"]["init_args"]["dual_mode"] == "critic" and critic["stages"]["reader"]["trainer"]["max_epochs"] == 10
    assert resolve(spec, "biwi", "full", 0)["model"]["init_args"]["feature_dim"] == 128
    assert resolve(spec, "synth", "quick", 0, "no_dual")["model"]["init_args"]["dual_weight"] == 0.0
    assert resolve_models("dual", "synth")[0].name == "dualtalker"


READER_EPOCHS = 12


@pytest.mark.slow
def test_dualtalker_as_configured_learns_and_matches_the_drift_reference(synth_tiny, tmp_path):
    rows = ci_run("dual", synth_tiny, tmp_path)
    assert_matches_drift_reference(rows)
    assert_beats_template(rows, synth_tiny)


@pytest.mark.slow
def test_the_phoneme_reader_reads_lips(synth_tiny, tmp_path):
    """The `ctc` variant's lip reader learns to read (the animation's learning is the test above);
    about half the ci epochs are enough for that (PER 0.55 against 0.91 for the best constant)."""
    import lightning as L

    (spec,) = resolve_models("dual", "synth-tiny")
    # Only the reader is checked, so the animator trains teacher-forced (parallel, not unrolled
    # frame by frame: the reader's inputs are ground truth either way), is validated once at the end
    # (the checkpoint needs a score) and is not tested.
    trainer = {"max_epochs": READER_EPOCHS, "check_val_every_n_epoch": READER_EPOCHS}
    config = resolve(spec, "synth-tiny", "ci", 0, "ctc", overrides={"trainer": trainer, "model": {"init_args": {"teacher_forcing": True}}})
    L.seed_everything(config["seed"], verbose=False)
    data, model = build(config, str(synth_tiny))
    fit_stages(model, data, config, tmp_path, progress=False)
    # The lip reader, on ground-truth motion of held-out clips, against always guessing the most
    # frequent phoneme once per clip (the best constant decoding).
    model.eval()
    decoded, references = [], []
    clips = data.split_dataset("test_unseen")
    for i in range(len(clips)):
        hypotheses, refs = model.read_phonemes(collate([clips[i]]))
        decoded += hypotheses
        references += refs
    per = phoneme_error_rate(decoded, references)
    common = np.bincount(np.concatenate(references)).argmax()
    chance = phoneme_error_rate([[int(common)]] * len(references), references)
    print(f"PER {per:.3f}, chance {chance:.3f}")
    assert per < 0.75 * chance, (per, chance)


def test_the_critic_reads_first_then_judges_frozen(synth_tiny, tmp_path):
    """The `critic` reading: stage `reader` trains only the lip reader on ground truth (validated
    on its reading), stage `animator` trains the animator with the reader frozen."""
    from facebench.bench.config import deep_merge

    config = resolve(model_specs()["dualtalker"], "synth-tiny", "ci", 0, "critic")
    config = deep_merge(config, {"trainer": {"max_epochs": 1}, "data": {"max_train_clips": 8}, "stages": {"reader": {"trainer": {"max_epochs": 2}}}})
    data, model = build(config, str(synth_tiny))
    fit_stages(model, data, config, tmp_path, progress=False)
    import json

    stages = json.loads((tmp_path / "stages.json").read_text())
    assert [s["stage"] for s in stages] == ["reader", "animator"] and stages[0]["monitor"] == "val/reader" and stages[0]["epochs"] == 2
    after_reading = torch.load(stages[0]["checkpoint"], weights_only=False)["state_dict"]
    now = model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in after_reading.items() if k.startswith(("reader.", "critic_motion.")))
    assert not torch.equal(now["network.vertice_map_r.weight"], after_reading["network.vertice_map_r.weight"])
    assert after_reading["network.vertice_map_r.weight"].abs().max() == 0  # untouched while the reader trained
