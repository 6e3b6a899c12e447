"""The reference lip reader and the lip-readability metric: trained once per dataset on the ground
truth, stored with it, frozen, and able to tell readable motion from a still face."""

import copy
import json
import shutil

import pytest
import torch

from facebench.data.datamodule import FaceDataModule
from facebench.data.sequence import collate
from facebench.errors import DataError
from facebench.lipreading import reference as ref
from facebench.lipreading.ctc import edit_distance, phoneme_error_rate, reference_sequences
from facebench.metrics import ConditionedMetrics, MetricInputError
from facebench.metrics.lipreading import LipReadability


@pytest.fixture(scope="session")
def tiny_reader(synth_tiny):
    data = FaceDataModule("synth-tiny", root=str(synth_tiny))
    reader, card = ref.reference_reader(data, progress=False)
    return data, reader, card


def clips_of(data, split):
    dataset = data.split_dataset(split)
    return [dataset[i] for i in range(len(dataset))]


def read_split(reader, clips, motion):
    """Corpus PER of the reader on `motion(clip)` for each clip."""
    batch = collate(clips)
    vertices = torch.nn.utils.rnn.pad_sequence([motion(c) for c in clips], batch_first=True)
    hypotheses = reader.read(vertices, batch.templates, batch.frame_lengths)
    return phoneme_error_rate(hypotheses, reference_sequences(batch.phonemes, batch.frame_lengths))


def smooth(offsets):
    """A 3-frame moving average in time, (T, V, 3)."""
    padded = torch.cat([offsets[:1], offsets, offsets[-1:]])
    return (padded[:-2] + padded[1:-1] + padded[2:]) / 3


@pytest.mark.slow
def test_reader_reads_ground_truth_and_not_a_still_face(tiny_reader):
    data, reader, card = tiny_reader
    synth_data = FaceDataModule("synth-tiny", root=str(data.reader.root), with_deterministic=True)
    for split in ("test_seen", "test_unseen"):
        clips = clips_of(synth_data, split)
        truth = read_split(reader, clips, lambda c: c.vertices)
        still = read_split(reader, clips, lambda c: c.template.expand_as(c.vertices))
        oracle = read_split(reader, clips, lambda c: c.deterministic)
        # Trained with gain and smoothing augmentation: under-articulated, smoothed speech stays readable.
        half = read_split(reader, clips, lambda c: c.template + 0.6 * smooth(c.vertices - c.template))
        assert truth == pytest.approx(card["ground_truth_per"][split])
        # A still face decodes to little more than the pauses (silence is a phoneme label).
        assert truth < 0.5 and still > 0.75, (truth, still)
        assert oracle < 0.5 * still and half < 0.6 * still, (oracle, half, still)


@pytest.mark.slow
def test_reader_is_stored_once_and_reloaded_frozen(tiny_reader, monkeypatch):
    data, reader, card = tiny_reader
    folder = ref.reader_folder(data)
    assert (folder / "reader.pt").is_file() and json.loads((folder / "card.json").read_text()) == card
    assert card["n_phonemes"] == 20 and card["train_clips"] == len(data.split_dataset("train"))

    def no_training(*args, **kwargs):
        raise AssertionError("a stored reader must not be trained again")

    monkeypatch.setattr(ref, "train_reader", no_training)
    state = torch.get_rng_state()
    again, _ = ref.reference_reader(FaceDataModule("synth-tiny", root=str(data.reader.root)), progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # a run's results never depend on loading vs training
    assert not any(p.requires_grad for p in again.parameters()) and not again.training
    batch = collate(clips_of(data, "val")[:3])
    args = (batch.vertices, batch.templates, batch.frame_lengths)
    assert torch.equal(again(*args), reader(*args))



def test_retrain_replaces_the_stored_reader_whole(tiny_reader, tmp_path, monkeypatch):
    """`facebench lipreader --retrain`: a new reader is trained and swapped in for the stored one."""
    data, reader, card = tiny_reader
    corpus = tmp_path / "tiny"
    shutil.copytree(data.reader.root, corpus)
    copied = FaceDataModule("synth-tiny", root=str(corpus))
    stored, _ = ref.reference_reader(copied, progress=False)
    retrained = copy.deepcopy(reader)
    with torch.no_grad():
        for parameter in retrained.parameters():
            parameter.add_(0.5)
    monkeypatch.setattr(ref, "train_reader", lambda *a, **k: (retrained, {**card, "train_seconds": 0.5}))
    again, again_card = ref.reference_reader(copied, retrain=True, progress=False)
    assert again_card == json.loads((ref.reader_folder(copied) / "card.json").read_text())
    assert again_card["train_seconds"] == 0.5 and again.identity != stored.identity
    batch = collate(clips_of(data, "val")[:2])
    args = (batch.vertices, batch.templates, batch.frame_lengths)
    assert torch.equal(again(*args), retrained(*args)) and not torch.equal(again(*args), stored(*args))
    assert sorted(p.name for p in ref.reader_folder(copied).parent.iterdir()) == [f"v{ref.VERSION}", f"v{ref.VERSION}.lock"]

@pytest.mark.slow
def test_training_leaves_the_callers_random_state_alone(synth_tiny):
    data = FaceDataModule("synth-tiny", root=str(synth_tiny), max_train_clips=16)
    state = torch.get_rng_state()
    _, card = ref.train_reader(data, ref.ReaderRecipe(epochs=1), progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert card["train_clips"] == 128  # the whole training split, whatever the run's own limit


def test_missing_labels_are_one_clear_error(biwi_root):
    data = FaceDataModule("biwi", root=str(biwi_root))
    assert not ref.has_phoneme_labels(data)
    with pytest.raises(DataError, match="phonemes.*per-frame phoneme labels"):
        ref.reference_reader(data)


def test_metric_counts_edits_and_merges_across_processes():
    """Streaming state: two halves merged (as DDP's sum does) equal one pass; the floor rides along."""
    torch.manual_seed(0)
    reader = ref.ReferenceLipReader(torch.arange(4), n_phonemes=5, hidden=8)
    template = torch.randn(1, 6, 3)
    clips = [
        (torch.randn(1, t, 6, 3), torch.randn(1, t, 6, 3), torch.randint(0, 5, (1, t))) for t in (7, 9, 5)
    ]
    whole, first, second = LipReadability(reader), LipReadability(reader), LipReadability(reader)
    for i, (pred, target, labels) in enumerate(clips):
        whole.update(pred, target, templates=template, phonemes=labels)
        (first if i < 2 else second).update(pred, target, templates=template, phonemes=labels)
    first.merge_state(second)
    assert whole.compute() == first.compute()
    errors = lengths = 0
    for pred, _, labels in clips:
        (hypothesis,) = reader.read(pred, template, torch.tensor([pred.shape[1]]))
        (reference,) = reference_sequences(labels, torch.tensor([labels.shape[1]]))
        errors, lengths = errors + edit_distance(hypothesis, reference), lengths + len(reference)
    assert float(whole.compute()["per"]) == pytest.approx(errors / lengths)
    with pytest.raises(MetricInputError, match="phoneme labels"):
        LipReadability(reader).update(clips[0][0], clips[0][1], templates=template)


@pytest.mark.slow
def test_conditioned_metrics_report_per_and_floor(tiny_reader):
    data, reader, _ = tiny_reader
    metrics = ConditionedMetrics(data.preset, data.regions(), 1, seen=True, lip_reader=reader)
    for clip in clips_of(data, "test_seen")[:4]:
        metrics.update([clip.vertices], clip.vertices, clip.template, clip.phonemes)
    values = metrics.compute()
    assert values["per"] == values["per_gt"] and values["lve"] == 0.0


def test_the_synthetic_corpora_readers_are_shipped(synth_tiny, tmp_path, monkeypatch):
    """A synthetic corpus of the shipped generator version and seed gets the shipped reader, never
    one trained here: the same judge, so the same PER, on every machine."""
    import hashlib
    import shutil

    corpus = tmp_path / "tiny"
    shutil.copytree(synth_tiny, corpus, ignore=shutil.ignore_patterns("lipreader*"))
    monkeypatch.setattr(ref, "train_reader", lambda *a, **k: pytest.fail("a shipped reader was trained again"))
    data = FaceDataModule("synth-tiny", root=str(corpus))
    shipped = ref.shipped_reader(data)
    assert shipped is not None and shipped.name.startswith("synth-tiny-corpus")
    reader, card = ref.reference_reader(data, progress=False)
    digest = hashlib.sha256((shipped / "reader.pt").read_bytes()).hexdigest()[:12]
    assert reader.identity == f"v{ref.VERSION}:{digest}" and card["trained_on"]["threads"] == 2
    other = json.loads((corpus / "card.json").read_text())
    (corpus / "card.json").write_text(json.dumps({**other, "seed": 7}))  # another corpus: nothing shipped for it
    assert ref.shipped_reader(FaceDataModule("synth-tiny", root=str(corpus))) is None


def test_the_reader_trains_on_its_recipes_threads_and_gives_the_callers_back(synth_tiny, monkeypatch):
    """Its weights depend on torch's threads, so it trains on the recipe's whatever the caller's
    (as the other stored judges), and the caller's threads and random state come back after."""
    seen = []
    real_loss = ref.ctc_loss
    monkeypatch.setattr(ref, "ctc_loss", lambda *a: seen.append(torch.get_num_threads()) or real_loss(*a))
    callers = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(3)
        expected = torch.rand(1)
        torch.manual_seed(3)
        _, card = ref.train_reader(FaceDataModule("synth-tiny", root=str(synth_tiny)), ref.ReaderRecipe(epochs=1), progress=False)
        assert torch.get_num_threads() == 1 and torch.equal(torch.rand(1), expected)
    finally:
        torch.set_num_threads(callers)
    assert seen and set(seen) == {2} and card["trained_on"]["threads"] == 2
