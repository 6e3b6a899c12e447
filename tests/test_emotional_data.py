"""The emotional 3D datasets' layouts (3D-RAVDESS, MEAD-3D): splits, labels, pairs of takes,
templates and their errors, on fabricated folders in the exact layouts."""

import pytest

from facebench.data.datamodule import FaceDataModule, PairedClips
from facebench.errors import DataError
from tests.fabricate import write_mead3d, write_ravdess

SPEAKERS = [f"M{i:03d}" for i in (3, 5, 7, 9, 11, 12, 13, 19)]


@pytest.fixture(scope="module")
def ravdess_root(tmp_path_factory):
    clips = [(1, 1, 1, 1, 1), (1, 3, 2, 1, 1), (1, 5, 1, 2, 2), (2, 4, 2, 1, 1), (2, 1, 1, 1, 2), (21, 3, 1, 1, 1), (23, 8, 2, 2, 1), (24, 1, 1, 1, 1)]
    return write_ravdess(tmp_path_factory.mktemp("ravdess3d"), clips)


@pytest.fixture(scope="module")
def mead_root(tmp_path_factory):
    clips = [(s, e, level, i) for s in SPEAKERS for e, level in (("neutral", 1), ("happy", 3)) for i in (1, 2)]
    return write_mead3d(tmp_path_factory.mktemp("mead3d"), clips)


def test_ravdess_splits_labels_and_pairs(ravdess_root):
    data = FaceDataModule("ravdess3d", root=str(ravdess_root))
    data.setup()
    train = data.split_dataset("train")
    assert [e.subject for e in train.entries] == ["Actor_01"] * 3 + ["Actor_02"] * 2
    assert [len(data.split_dataset(s)) for s in ("val", "test")] == [1, 2]
    clip = data.clip("train", 1)  # 01-01-03-02-01-01-01: happy, strong, statement 1
    assert (clip.emotion, clip.intensity, clip.content) == (2, 1, 1) and clip.vertices.shape[1:] == (5023, 3)
    assert len(clip.vertices) == 9 and data.preset.emotions[clip.emotion] == "happy"
    # Takes of one actor and statement in other emotions are partners; a clip without one is its own.
    pairs = PairedClips(train)
    assert pairs.candidates[0] == [1] and pairs.candidates[2] == [] and pairs.candidates[3] == [4]
    assert not data.preset.split("test").seen and data.n_styles == 20


def test_ravdess_names_and_folders_are_checked(tmp_path, ravdess_root):
    with pytest.raises(DataError, match="Actor_XX folders"):
        FaceDataModule("ravdess3d", root=str(tmp_path)).setup()
    bad = write_ravdess(tmp_path / "bad", [(1, 1, 1, 1, 1)])
    (bad / "Actor_01" / "01-01-01-01-01-01-01.npy").rename(bad / "Actor_01" / "take1.npy")
    with pytest.raises(DataError, match="seven two-digit fields"):
        FaceDataModule("ravdess3d", root=str(bad)).setup()


def test_mead3d_speaker_splits_templates_and_labels(mead_root):
    data = FaceDataModule("mead3d", root=str(mead_root))
    data.setup()
    assert data.train_subjects == tuple(SPEAKERS[:6]) and data.preset.split("val").subjects == (SPEAKERS[6],)
    assert data.preset.split("test").subjects == (SPEAKERS[7],) and not data.preset.split("test").seen
    assert (mead_root / "templates.pkl").is_file()  # each speaker's mean neutral frame, computed once
    clip = data.clip("test", 0)  # M019_happy_level_3_001 (clips in path order)
    assert clip.name == "M019_happy_level_3_001" and (clip.emotion, clip.intensity) == (4, 2) and clip.content is None
    assert clip.vertices.shape == (8, 5023, 3)


def test_mead3d_missing_audio_is_named(tmp_path):
    root = write_mead3d(tmp_path / "m", [(s, "neutral", 1, 1) for s in SPEAKERS])
    (root / SPEAKERS[0] / "audio" / "neutral" / "level_1" / "001.wav").unlink()
    with pytest.raises(DataError, match="001.wav: expected the audio of 001.npy"):
        FaceDataModule("mead3d", root=str(root)).setup()


def test_the_emotional_sets_missing_give_one_clear_message(tmp_path, monkeypatch, capsys):
    from facebench.cli import main

    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    for dataset, words in (("ravdess3d", "EMOCA"), ("mead3d", "MEAD-3D")):
        with pytest.raises(SystemExit) as exit_info:
            main(["bench", "--model", "template", "--data", dataset, "--no-progress", "--leaderboards", str(tmp_path / "lb")])
        out = capsys.readouterr().out
        assert exit_info.value.code == 2 and str(tmp_path / dataset) in out and words in out and "Traceback" not in out
