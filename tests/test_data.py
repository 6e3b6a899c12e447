"""Readers, presets, datamodule and batching on fabricated VOCASET- and BIWI-format datasets."""

import dataclasses
import pickle

import numpy as np
import pytest
import soundfile
import torch

from facebench.data.datamodule import FaceDataModule
from facebench.data.faceformer_format import FaceFormerFormat, parse_name
from facebench.data.prepare import prepare_vocaset
from facebench.data.presets import BIWI, VOCASET, get_preset
from facebench.data.sequence import IGNORE_INDEX, Sequence, collate
from facebench.errors import DataError, FacebenchError
from tests.fabricate import write_dataset, write_regions


def names(data: FaceDataModule, split: str) -> set[str]:
    return {e.name for e in data.split_dataset(split).entries}


def test_parse_name_follows_faceformer():
    assert parse_name("FaceTalk_170809_00138_TA_sentence21") == ("FaceTalk_170809_00138_TA", 21)
    assert parse_name("F2_e01") == ("F2", 1)


def test_vocaset_splits_are_exact(vocaset_root):
    data = FaceDataModule("vocaset", root=str(vocaset_root))
    train = names(data, "train")
    assert len(train) == 8 * 4  # every sentence 1-40 of the eight training speakers
    assert all(n.rsplit("_", 1)[0] in VOCASET.train_subjects for n in train)
    # Validation and test speakers only contribute sentences 21-40.
    assert names(data, "val") == {f"{s}_sentence{n}" for s in ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA") for n in (21, 40)}
    assert names(data, "test") == {f"{s}_sentence{n}" for s in ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA") for n in (21, 40)}
    assert data.conditions("FaceTalk_170809_00138_TA") == list(range(8))
    assert data.conditions(VOCASET.train_subjects[3]) == [3]


def test_vocaset_is_read_at_30_fps_with_every_second_frame(vocaset_root):
    data = FaceDataModule("vocaset", root=str(vocaset_root))
    clips = data.split_dataset("test")
    clip = clips[0]
    stored = np.load(vocaset_root / "vertices_npy" / f"{clip.name}.npy")
    assert clip.fps == 30
    assert torch.equal(clip.vertices, torch.from_numpy(stored[::2].reshape(-1, 5023, 3)))
    assert clip.style == -1
    # 22 kHz audio arrives at 16 kHz, normalised.
    assert abs(len(clip.audio) - len(stored) / 60 * 16000) <= 1
    assert abs(float(clip.audio.mean())) < 1e-4 and abs(float(clip.audio.std()) - 1) < 1e-2


def test_vocaset_regions_come_from_flame_masks(vocaset_root):
    data = FaceDataModule("vocaset", root=str(vocaset_root))
    regions = data.regions()
    assert regions["lve"].tolist() == [1576, 1577, 3928]  # duplicates folded
    assert regions["fdd"].tolist() == list(range(10, 20)) + list(range(30, 45))
    assert "lips" in VOCASET.region_set and "eye_region" in VOCASET.region_set


def test_biwi_splits_fps_and_regions(biwi_root):
    data = FaceDataModule("biwi", root=str(biwi_root))
    assert names(data, "train") == {"F2_e01", "F2_e32", "M5_e01"}
    assert names(data, "val") == {"F2_e33", "F2_e36"}
    assert names(data, "test_a") == {"F2_e37", "F2_e40", "M5_e37"}
    assert names(data, "test_b") == {"F1_e37", "F1_e40", "M6_e38"}
    assert data.test_split_names == ("test_a", "test_b")
    clip = data.split_dataset("test_a")[0]
    assert clip.fps == 25 and clip.vertices.shape == (4, 23370, 3)
    assert clip.style == BIWI.train_subjects.index("F2")
    assert data.regions()["lve"].tolist() == [2, 5, 23339]
    assert BIWI.audio_per_frame == 2 and BIWI.display_scale["lve"] == 1e-4


def test_datamodule_loaders(biwi_root):
    data = FaceDataModule("biwi", root=str(biwi_root), batch_size=2)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert len(batch) == 2 and batch.vertices.shape[0] == 2
    assert [len(loader.dataset) for loader in data.test_dataloader()] == [3, 3]


def test_custom_preset_from_yaml(tmp_path):
    root = write_dataset(tmp_path / "mine", {"anna_01": 6, "anna_02": 6, "anna_03": 6, "ben_03": 6}, n_vertices=10, fps=30)
    write_regions(root, {"lips": [0, 1, 2]})
    (root / "facebench.yaml").write_text(
        "name: mine\nfps: 30\ntrain_subjects: [anna]\ntest_splits: [test]\n"
        "splits:\n  train: {subjects: [anna], sentences: [1, 1]}\n  val: {subjects: [anna], sentences: [2, 2]}\n"
        "  test: {subjects: [anna, ben], sentences: [3, 3]}\n"
        "regions: {lve: regions/lips.txt}\ndisplay_scale: {lve: 1.0e-4}\n"
    )
    data = FaceDataModule(str(root))
    assert names(data, "test") == {"anna_03", "ben_03"}
    assert data.regions()["lve"].tolist() == [0, 1, 2]
    assert data.preset.display_scale == {"lve": 1e-4}


def test_custom_preset_errors_name_the_file(tmp_path):
    (tmp_path / "facebench.yaml").write_text("name: x\nfps: 30\n")
    with pytest.raises(DataError, match="facebench.yaml.*train_subjects"):
        get_preset(str(tmp_path))
    with pytest.raises(FacebenchError, match="expected a preset name"):
        get_preset("no-such-dataset")


def test_prepare_vocaset_from_a_release(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(30, 5023, 3)).astype(np.float32)
    np.save(raw / "data_verts.npy", verts)
    subject = VOCASET.train_subjects[0]
    index = {subject: {"sentence01": {i: 10 + i for i in range(12)}, "sentence02": {i: i for i in range(8)}}}
    audio = {subject: {s: {"audio": (rng.normal(size=int(len(f) / 60 * 22000)) * 1000).astype(np.int16), "sample_rate": 22000}
                       for s, f in index[subject].items()}}  # fmt: skip
    for name, obj in (("subj_seq_to_idx.pkl", index), ("raw_audio_fixed.pkl", audio), ("templates.pkl", {subject: verts[0]})):
        with open(raw / name, "wb") as f:
            pickle.dump(obj, f)
    out = tmp_path / "vocaset"
    assert prepare_vocaset(raw, out, progress=False) == 2
    written = np.load(out / "vertices_npy" / f"{subject}_sentence01.npy")
    assert written.shape == (12, 15069)
    assert np.array_equal(written, verts[10:22].reshape(12, -1))
    assert soundfile.info(str(out / "wav" / f"{subject}_sentence01.wav")).samplerate == 22000
    clips = FaceDataModule("vocaset", root=str(out)).split_dataset("train")
    assert len(clips) == 2 and clips[0].vertices.shape == (6, 5023, 3)


def test_prepare_vocaset_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="data_verts.npy"):
        prepare_vocaset(tmp_path, tmp_path / "out")


def _sequence(name, frames, samples, phonemes=True, v=4):
    return Sequence(
        name=name, subject="s", audio=torch.randn(samples), vertices=torch.randn(frames, v, 3),
        template=torch.randn(v, 3), fps=30, style=0, emotion=1, intensity=0,
        phonemes=torch.arange(frames) if phonemes else None,
    )  # fmt: skip


def test_collate_pads_and_unbatch_restores():
    a, b = _sequence("a", 5, 800), _sequence("b", 3, 500)
    batch = collate([a, b])
    assert batch.vertices.shape == (2, 5, 4, 3) and batch.audio.shape == (2, 800)
    assert batch.frame_lengths.tolist() == [5, 3] and batch.audio_lengths.tolist() == [800, 500]
    assert torch.all(batch.vertices[1, 3:] == 0) and torch.all(batch.phonemes[1, 3:] == IGNORE_INDEX)
    assert batch.frame_mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    for i, original in enumerate((a, b)):
        restored = batch.unbatch(i)
        assert torch.equal(restored.vertices, original.vertices) and torch.equal(restored.audio, original.audio)
    assert collate([a]).vertices.shape == (1, 5, 4, 3)  # batch 1 works
    assert collate([a, _sequence("c", 2, 100, phonemes=False)]).phonemes is None


# -- bad input: one clear error naming the file ---------------------------------------------------


@pytest.fixture
def small_root(tmp_path):
    root = write_dataset(tmp_path / "d", {"anna_01": 6, "anna_02": 6, "anna_03": 6}, n_vertices=5, fps=30)
    (root / "facebench.yaml").write_text(
        "name: small\nfps: 30\ntrain_subjects: [anna]\ntest_splits: [test]\n"
        "splits:\n  train: {subjects: [anna], sentences: [1, 1]}\n  val: {subjects: [anna], sentences: [2, 2]}\n"
        "  test: {subjects: [anna, bob], sentences: [3, 3]}\nregions: {lve: regions/lve.txt}\n"
    )
    write_regions(root, {"lve": [0, 1]})
    return root


def load_all(root, split="train", **kwargs):
    data = FaceDataModule(str(root), **kwargs)
    clips = data.split_dataset(split)
    return [clips[i] for i in range(len(clips))], data


def test_missing_folder_says_where_and_what(tmp_path):
    with pytest.raises(DataError, match=r"no such folder.*expected layout"):
        FaceFormerFormat(tmp_path / "nowhere", VOCASET)
    with pytest.raises(DataError, match="vertices_npy"):
        (tmp_path / "wav").mkdir()
        FaceFormerFormat(tmp_path, VOCASET)


def test_missing_wav(small_root):
    (small_root / "wav" / "anna_01.wav").unlink()
    with pytest.raises(DataError, match="anna_01.wav.*no such file"):
        load_all(small_root)


def test_undecodable_wav(small_root):
    (small_root / "wav" / "anna_01.wav").write_bytes(b"not a wav at all")
    with pytest.raises(DataError, match="anna_01.wav.*undecodable"):
        load_all(small_root)


def test_empty_wav(small_root):
    soundfile.write(small_root / "wav" / "anna_01.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="anna_01.wav.*0 samples"):
        load_all(small_root)


def test_vertex_width_must_match_template(small_root):
    np.save(small_root / "vertices_npy" / "anna_01.npy", np.zeros((6, 14), dtype=np.float32))
    with pytest.raises(DataError, match=r"anna_01.npy.*\(frames, 15\).*\(6, 14\)"):
        load_all(small_root)


def test_empty_vertex_file(small_root):
    np.save(small_root / "vertices_npy" / "anna_01.npy", np.zeros((0, 15), dtype=np.float32))
    with pytest.raises(DataError, match="anna_01.npy.*0 frames"):
        load_all(small_root)


def test_subject_without_template(small_root):
    write_dataset(small_root, {"bob_03": 6}, n_vertices=5, fps=30, templates={"anna": np.zeros((5, 3), np.float32)})
    with pytest.raises(DataError, match="bob_03.npy.*template for subject 'bob'"):
        load_all(small_root, "test")


def test_nan_vertices(small_root):
    vertices = np.zeros((6, 15), dtype=np.float32)
    vertices[2, 3] = np.nan
    np.save(small_root / "vertices_npy" / "anna_01.npy", vertices)
    with pytest.raises(DataError, match="anna_01.npy.*NaN"):
        load_all(small_root)


def test_nan_in_template(small_root):
    with open(small_root / "templates.pkl", "wb") as f:
        pickle.dump({"anna": np.full((5, 3), np.inf, np.float32)}, f)
    with pytest.raises(DataError, match="templates.pkl.*'anna'"):
        load_all(small_root)


def test_region_out_of_range(small_root):
    write_regions(small_root, {"lve": [0, 5]})
    _, data = load_all(small_root)
    with pytest.raises(DataError, match=r"lve.txt.*\[0, 5\).*\[5\]"):
        data.regions()


def test_audio_and_vertices_of_different_duration(small_root):
    soundfile.write(small_root / "wav" / "anna_01.wav", np.zeros(16000 * 2, np.float32), 16000)
    with pytest.raises(DataError, match=r"anna_01.npy.*0.20 s of vertices.*2.00 s of audio"):
        load_all(small_root)


def test_skip_bad_skips_with_a_list(small_root):
    (small_root / "wav" / "anna_01.wav").unlink()
    write_dataset(small_root, {"anna_11": 6}, n_vertices=5, fps=30, templates={"anna": np.zeros((5, 3), np.float32)})
    np.save(small_root / "vertices_npy" / "anna_11.npy", np.zeros((6, 15), dtype=np.float32))
    (small_root / "facebench.yaml").write_text((small_root / "facebench.yaml").read_text().replace("[1, 1]", "[1, 11]"))
    clips, data = load_all(small_root, skip_bad=True)
    assert [c.name for c in clips] == ["anna_02", "anna_03", "anna_11"]
    assert len(data.skipped) == 1 and "anna_01.wav" in data.skipped[0]


def test_empty_split_is_an_error(small_root):
    for path in (small_root / "vertices_npy").glob("anna_01*"):
        path.unlink()
    with pytest.raises(DataError, match="clips of split 'train'"):
        load_all(small_root)


def test_preset_vertex_count_is_checked(small_root):
    preset = dataclasses.replace(get_preset(str(small_root)), n_vertices=7)
    with pytest.raises(DataError, match="templates.pkl.*7 vertices"):
        FaceFormerFormat(small_root, preset)
