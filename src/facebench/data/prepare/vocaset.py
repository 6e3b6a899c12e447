"""VOCASET release -> per-sequence files.

The release holds `data_verts.npy` (all frames, (N, 5023, 3), 60 fps), `raw_audio_fixed.pkl`
({subject: {sentence: {"audio", "sample_rate"}}}), `subj_seq_to_idx.pkl` ({subject: {sentence:
{frame: row in data_verts}}}) and `templates.pkl`. We write `vertices_npy/<subject>_<sentence>.npy`
(frames, 15069) at the stored 60 fps (the preset subsamples to 30 when reading, as FaceFormer does)
and `wav/<subject>_<sentence>.wav` at the release's sample rate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile
from rich.progress import track

from facebench.data.faceformer_format import load_pickle
from facebench.errors import DataError

RAW_FILES = ("data_verts.npy", "raw_audio_fixed.pkl", "subj_seq_to_idx.pkl", "templates.pkl")


def prepare_vocaset(raw: str | Path, out: str | Path, progress: bool = True) -> int:
    """Convert the release in `raw` into `out`; returns the number of sequences written."""
    raw, out = Path(raw), Path(out)
    for name in RAW_FILES:
        if not (raw / name).is_file():
            raise DataError(raw / name, f"a file of the VOCASET release ({', '.join(RAW_FILES)})", "no such file")
    vertices = np.load(raw / "data_verts.npy", mmap_mode="r")
    if vertices.ndim != 3 or vertices.shape[2] != 3:
        raise DataError(raw / "data_verts.npy", "shape (frames, vertices, 3)", f"shape {vertices.shape}")
    audio = load_pickle(raw / "raw_audio_fixed.pkl")
    index = load_pickle(raw / "subj_seq_to_idx.pkl")
    (out / "vertices_npy").mkdir(parents=True, exist_ok=True)
    (out / "wav").mkdir(parents=True, exist_ok=True)

    jobs = [(subject, sentence, frames) for subject, sentences in index.items() for sentence, frames in sentences.items()]
    for subject, sentence, frames in track(jobs, description="VOCASET", disable=not progress):
        name = f"{subject}_{sentence}"
        order = sorted(frames)
        if order != list(range(len(order))):
            raise DataError(raw / "subj_seq_to_idx.pkl", f"frames 0..n-1 for {name}", f"frame numbers {order[:3]}...{order[-3:]}")
        rows = np.array([frames[f] for f in order])
        if rows.max() >= len(vertices):
            raise DataError(raw / "subj_seq_to_idx.pkl", f"rows below {len(vertices)} for {name}", f"row {rows.max()}")
        np.save(out / "vertices_npy" / f"{name}.npy", np.asarray(vertices[rows], dtype=np.float32).reshape(len(rows), -1))
        try:
            clip = audio[subject][sentence]
        except KeyError as exc:
            raise DataError(raw / "raw_audio_fixed.pkl", f"audio for {name}", "no entry") from exc
        soundfile.write(out / "wav" / f"{name}.wav", np.asarray(clip["audio"]), int(clip["sample_rate"]))
    shutil.copyfile(raw / "templates.pkl", out / "templates.pkl")
    return len(jobs)
