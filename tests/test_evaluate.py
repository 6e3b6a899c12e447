"""`facebench evaluate`: scoring a folder of FaceFormer/CodeTalker-named predictions."""

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.datamodule import FaceDataModule
from facebench.data.presets import BIWI, VOCASET
from facebench.metrics.evaluate import evaluate_folder
from tests.test_metrics import ref_lve


def write_predictions(data, split, out, conditions, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    clips = data.split_dataset(split)
    truth = {}
    for i in range(len(clips)):
        clip = clips[i]
        for subject in conditions(clip.subject):
            pred = clip.vertices.numpy() + rng.normal(scale=noise, size=clip.vertices.shape).astype(np.float32)
            suffix = "" if subject is None else f"_condition_{subject}"
            np.save(out / f"{clip.name}{suffix}.npy", pred.reshape(len(pred), -1))
            truth.setdefault(subject, []).append((pred, clip.vertices.numpy()))
    return truth


def test_unseen_subjects_average_over_conditions(vocaset_root, tmp_path):
    data = FaceDataModule("vocaset", root=str(vocaset_root))
    truth = write_predictions(data, "test", tmp_path, lambda s: VOCASET.train_subjects)
    result = evaluate_folder(tmp_path, "vocaset", "test", root=str(vocaset_root))
    lips = data.regions()["lve"].numpy()
    expected = np.mean([ref_lve([p for p, _ in pairs], [g for _, g in pairs], lips) for pairs in truth.values()])
    assert result["lve"] == pytest.approx(expected, rel=1e-5)
    assert result["protocol"] == "mean over 8 training styles" and result["clips"] == 4
    assert result["diversity"] > 0 and result["frames_dropped"] == 0


def test_seen_subjects_use_plain_files(biwi_root, tmp_path):
    data = FaceDataModule("biwi", root=str(biwi_root))
    write_predictions(data, "test_a", tmp_path, lambda s: [None])
    result = evaluate_folder(tmp_path, "biwi", "test_a", root=str(biwi_root))
    assert result["protocol"] == "own style" and "diversity" not in result
    assert 0 < result["lve"] < 1e-2


def test_missing_prediction_is_named(vocaset_root, tmp_path, capsys):
    data = FaceDataModule("vocaset", root=str(vocaset_root))
    write_predictions(data, "test", tmp_path, lambda s: VOCASET.train_subjects[:7])
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--pred", str(tmp_path), "--data", "vocaset", "--split", "test", "--root", str(vocaset_root)])
    assert exit_info.value.code == 2
    out = capsys.readouterr().out
    assert "missing" in out and "_condition_FaceTalk_170912_03278_TA.npy" in out and "Traceback" not in out


def test_cli_prints_display_scale(biwi_root, tmp_path, capsys):
    data = FaceDataModule("biwi", root=str(biwi_root))
    write_predictions(data, "test_b", tmp_path, lambda s: BIWI.train_subjects)
    main(["evaluate", "--pred", str(tmp_path), "--data", "biwi", "--split", "test_b", "--root", str(biwi_root)])
    out = capsys.readouterr().out
    assert "lve" in out and "mean over 6 training" in out and "0.0001" in out


def test_wrong_prediction_shape(biwi_root, tmp_path):
    data = FaceDataModule("biwi", root=str(biwi_root))
    write_predictions(data, "test_a", tmp_path, lambda s: [None])
    np.save(tmp_path / "F2_e37.npy", np.zeros((4, 12), np.float32))
    with pytest.raises(Exception, match=r"F2_e37.npy.*70110.*\(4, 12\)"):
        evaluate_folder(tmp_path, "biwi", "test_a", root=str(biwi_root))


def test_an_empty_or_incomplete_folder_fails_before_any_reader_is_built(synth_tiny, tmp_path, monkeypatch):
    """Metrics never train: the predictions are checked first, in seconds."""
    from facebench.errors import DataError
    from facebench.lipreading import reference

    monkeypatch.setattr(reference, "train_reader", lambda *a, **k: pytest.fail("trained a reader before checking the predictions"))
    monkeypatch.setattr(reference, "reader_folder", lambda data: tmp_path / "no-reader")  # as if none were stored
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="predicted .npy files for the 16 clips of split 'test_seen', found none"):
        evaluate_folder(empty, "synth-tiny", "test_seen", root=str(synth_tiny))
    data = FaceDataModule("synth-tiny", root=str(synth_tiny))
    write_predictions(data, "test_seen", empty, lambda s: [None])
    last = sorted(empty.glob("*.npy"))[-1]
    last.unlink()
    with pytest.raises(DataError, match=f"or {last.name}, found neither"):
        evaluate_folder(empty, "synth-tiny", "test_seen", root=str(synth_tiny))
