"""Reader of the FaceFormer/CodeTalker layout shared by VOCASET, BIWI and the synthetic corpus:

    <root>/wav/<subject>_<sentence>.wav
    <root>/vertices_npy/<subject>_<sentence>.npy   (frames, V*3), float
    <root>/templates.pkl                           {subject: (V, 3)}, latin1 pickle
    <root>/regions/*.txt or a pickled mask dict    vertex indices for the metrics
    <root>/phonemes/<name>.npy, metadata.csv       optional: per-frame labels; emotion, intensity, content, text

Clips are validated when indexed (cheap checks from file headers) and when loaded (values).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch

from facebench.data.audio import SAMPLE_RATE, load_audio, normalize_audio
from facebench.data.presets import DatasetPreset, RegionSpec, SplitSpec
from facebench.data.sequence import Sequence
from facebench.errors import DataError

log = logging.getLogger(__name__)

LAYOUT = """expected layout:
  <root>/wav/<subject>_<sentence>.wav
  <root>/vertices_npy/<subject>_<sentence>.npy   (frames, V*3)
  <root>/templates.pkl                           {subject: (V, 3)}"""


def parse_name(stem: str) -> tuple[str, int]:
    """`FaceTalk_170809_00138_TA_sentence21` -> (`FaceTalk_170809_00138_TA`, 21), `F2_e01` -> (`F2`, 1).

    The subject is everything before the last underscore and the sentence number is the last two
    characters, as in FaceFormer's data loader.
    """
    subject, _, tail = stem.rpartition("_")
    if not subject or not stem[-2:].isdigit():
        raise ValueError(stem)
    return subject, int(stem[-2:])


@dataclass(frozen=True)
class ClipEntry:
    name: str
    subject: str
    sentence: int
    wav: Path
    vertices: Path
    n_frames: int  # after subsampling


def load_pickle(path: Path) -> object:
    if not path.is_file():
        raise DataError(path, "a pickle file", "no such file", hint=LAYOUT)
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as exc:
        raise DataError(path, "a readable pickle", f"an unreadable file ({exc})") from exc


class FaceFormerFormat:
    """Indexes and loads the clips of one dataset folder according to its preset.

    Other layouts (3D-RAVDESS, MEAD-3D) subclass it and override where the clips are
    (`clip_files`), how a name gives the subject and sentence (`parse`), how vertices are stored
    (`read_vertices`) and where the labels come from (`labels`)."""

    LAYOUT = LAYOUT
    NAME_RULE = "a name <subject>_<sentence>.npy ending in two digits"

    def __init__(self, root: str | Path, preset: DatasetPreset, skip_bad: bool = False, with_deterministic: bool = False,
                 resampler: str = "scipy"):  # fmt: skip
        self.root = Path(root)
        self.preset = preset
        self.resampler = resampler
        self.skip_bad = skip_bad
        self.with_deterministic = with_deterministic
        self.skipped: list[str] = []
        if not self.root.is_dir():
            raise DataError(self.root, f"the {preset.name} dataset folder", "no such folder", hint=self.hint())
        self._check_folders()
        self.templates = self._load_templates()
        self.n_vertices = self._vertex_count()
        self.metadata = self._load_metadata()

    def hint(self) -> str:
        return (f"{self.LAYOUT}\nget it: {self.preset.source}\nfacebench looks in $FACEBENCH_DATA/<dataset> (default ./data); "
                "`--root DIR` points at a folder elsewhere")  # fmt: skip

    def _check_folders(self) -> None:
        for sub in ("wav", "vertices_npy"):
            if not (self.root / sub).is_dir():
                raise DataError(self.root / sub, "a folder", "none", hint=self.hint())

    # -- dataset-wide files -------------------------------------------------------------------

    def _load_templates(self) -> dict[str, np.ndarray]:
        path = self.root / "templates.pkl"
        if not path.is_file():
            raise DataError(path, "a pickle file", "no such file", hint=self.hint())
        raw = load_pickle(path)
        if not isinstance(raw, dict) or not raw:
            raise DataError(path, "a non-empty dict {subject: (V, 3) array}", type(raw).__name__)
        templates = {}
        for subject, template in raw.items():
            array = np.asarray(template, dtype=np.float32)
            if array.ndim != 2 or array.shape[1] != 3:
                array = array.reshape(-1, 3) if array.size % 3 == 0 else array
            if array.ndim != 2 or array.shape[1] != 3:
                raise DataError(path, f"template of '{subject}' of shape (V, 3)", f"shape {np.shape(template)}")
            if not np.isfinite(array).all():
                raise DataError(path, f"finite values in the template of '{subject}'", "NaN or infinite values")
            templates[str(subject)] = array
        return templates

    def _vertex_count(self) -> int:
        counts = {len(t) for t in self.templates.values()}
        if len(counts) != 1:
            raise DataError(self.root / "templates.pkl", "one vertex count for every template", f"counts {sorted(counts)}")
        count = counts.pop()
        if self.preset.n_vertices is not None and count != self.preset.n_vertices:
            raise DataError(self.root / "templates.pkl", f"{self.preset.n_vertices} vertices ({self.preset.name})", f"{count}")
        return count

    def _load_metadata(self) -> pd.DataFrame | None:
        path = self.root / "metadata.csv"
        if not path.is_file():
            return None
        table = pd.read_csv(path, keep_default_na=False)
        if "name" not in table.columns:
            raise DataError(path, "a 'name' column", f"columns {list(table.columns)}")
        return table.set_index("name")

    def regions(self) -> dict[str, torch.Tensor]:
        """Vertex indices of every region the preset names, checked against the vertex count."""
        return {key: self.load_region(spec) for key, spec in self.preset.regions.items()}

    def load_region(self, spec: RegionSpec) -> torch.Tensor:
        path = self.root / spec.path
        if spec.keys:
            masks = load_pickle(path)
            missing = [k for k in spec.keys if k not in masks]
            if missing:
                raise DataError(path, f"keys {list(spec.keys)}", f"no {missing} (keys: {sorted(masks)[:20]})")
            indices = np.concatenate([np.asarray(masks[k]).ravel() for k in spec.keys])
        else:
            if not path.is_file():
                raise DataError(path, "a region index file", "no such file")
            text = path.read_text().replace(",", " ").split()
            try:
                indices = np.array([int(float(x)) for x in text])
            except ValueError as exc:
                raise DataError(path, "integer vertex indices separated by commas or spaces", str(exc)) from exc
        if indices.size == 0:
            raise DataError(path, "at least one vertex index", "none")
        bad = indices[(indices < 0) | (indices >= self.n_vertices)]
        if bad.size:
            raise DataError(path, f"indices in [0, {self.n_vertices})", f"out-of-range indices {bad[:5].tolist()}")
        # Duplicates (FLAME's lip mask has four) change nothing under a max, and a set is what
        # the region means, so they are folded.
        return torch.from_numpy(np.unique(indices)).long()

    # -- clips --------------------------------------------------------------------------------

    # -- where the clips are and what their names say (overridden by other layouts) ------------------

    def clip_files(self) -> list[tuple[str, Path, Path]]:
        """(name, vertices file, audio file) of every clip on disk."""
        return [(npy.stem, npy, self.root / "wav" / f"{npy.stem}.wav") for npy in sorted((self.root / "vertices_npy").glob("*.npy"))]

    def parse(self, name: str) -> tuple[str, int]:
        """(subject, sentence number) from a clip's name; ValueError if it does not follow the layout."""
        return parse_name(name)

    def read_vertices(self, path: Path, header_only: bool = False) -> np.ndarray:
        """The stored frames as (frames, V*3) (memory-mapped where the format allows)."""
        return np.load(path, mmap_mode="r")

    def labels(self, name: str) -> dict:
        """The clip's emotion, intensity, content and text, where the dataset has them (metadata.csv)."""
        extra: dict = {}
        if self.metadata is not None and name in self.metadata.index:
            row = self.metadata.loc[name]
            for key in ("emotion", "intensity", "content"):
                if key in row.index and str(row[key]) != "":
                    extra[key] = int(row[key])
            if "text" in row.index and row["text"] != "":
                extra["text"] = str(row["text"])
        return extra

    # -- clips --------------------------------------------------------------------------------

    def index(self, split: SplitSpec) -> list[ClipEntry]:
        """Every clip of a split, validated from headers; bad clips raise (or are skipped and listed)."""
        entries = []
        for name, vertices, audio in self.clip_files():
            try:
                subject, sentence = self.parse(name)
            except ValueError:
                self._bad(DataError(vertices, self.NAME_RULE, f"'{vertices.name}'"))
                continue
            if not split.contains(subject, sentence):
                continue
            try:
                entries.append(self._entry(name, vertices, audio, subject, sentence))
            except DataError as exc:
                self._bad(exc)
        return entries

    def entry(self, name: str) -> ClipEntry:
        """One clip by name, whatever its split."""
        for clip_name, vertices, audio in self.clip_files():
            if clip_name == name:
                return self._entry(name, vertices, audio, *self.parse(name))
        raise DataError(self.root, f"a clip named '{name}'", "none")

    def _bad(self, error: DataError) -> None:
        if not self.skip_bad:
            raise error
        log.warning("skipping bad clip: %s", error)
        self.skipped.append(str(error))

    def _entry(self, name: str, npy: Path, wav: Path, subject: str, sentence: int) -> ClipEntry:
        if not wav.is_file():
            raise DataError(wav, f"the audio of {npy.name}", "no such file")
        if subject not in self.templates:
            raise DataError(npy, f"a template for subject '{subject}' in templates.pkl", f"subjects {sorted(self.templates)}")
        try:
            vertices = self.read_vertices(npy, header_only=True)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(npy, "a .npy array", f"an unreadable file ({exc})") from exc
        width = 3 * self.n_vertices
        if vertices.ndim != 2 or vertices.shape[1] != width:
            raise DataError(npy, f"shape (frames, {width}) (3 x {self.n_vertices} template vertices)", f"shape {vertices.shape}")
        n_frames = len(range(0, vertices.shape[0], self.preset.subsample))
        if n_frames == 0:
            raise DataError(npy, "at least one frame", "0 frames")
        self.check_duration(npy, wav, n_frames, "vertices")
        return ClipEntry(name, subject, sentence, wav, npy, n_frames)

    def check_duration(self, clip: Path, wav: Path, n_frames: int, what: str) -> None:
        """The clip's audio decodes, is not empty, and lasts as long as its `n_frames` frames (within
        the preset's tolerance)."""
        try:
            info = soundfile.info(str(wav))
        except Exception as exc:
            raise DataError(wav, "a decodable audio file", f"an undecodable file ({exc})") from exc
        if info.frames == 0:
            raise DataError(wav, "audio samples", "an empty file (0 samples)")
        audio_s, clip_s = info.frames / info.samplerate, n_frames / self.preset.fps
        if abs(audio_s - clip_s) > self.preset.duration_tolerance:
            raise DataError(clip, f"audio and {what} of equal duration (within {self.preset.duration_tolerance} s)",
                            f"{clip_s:.2f} s of {what} ({n_frames} frames at {self.preset.fps:g} fps) and {audio_s:.2f} s of audio in {wav.name}")  # fmt: skip

    def load(self, entry: ClipEntry, style: int = -1) -> Sequence:
        """The clip's values: vertices (T, V, 3) float32 and normalised 16 kHz audio."""
        vertices = self.read_vertices(entry.vertices)[:: self.preset.subsample]
        vertices = np.array(vertices, dtype=np.float32).reshape(len(vertices), -1, 3)  # a copy: the file is mmapped
        if not np.isfinite(vertices).all():
            raise DataError(entry.vertices, "finite vertex values", "NaN or infinite values")
        audio = load_audio(entry.wav, SAMPLE_RATE, self.resampler)
        extra = self._extras(entry, len(vertices))
        return Sequence(
            name=entry.name,
            subject=entry.subject,
            audio=torch.from_numpy(np.asarray(normalize_audio(audio), dtype=np.float32)),
            vertices=torch.from_numpy(vertices),
            template=torch.from_numpy(self.templates[entry.subject]),
            fps=self.preset.fps,
            style=style,
            **extra,
        )

    def _predictable(self, entry: ClipEntry, n_frames: int, folder: str) -> torch.Tensor:
        """A synthetic clip's predictable part, template + stored blendshape weights · blendshapes:
        `deterministic/` (T, K) -> (T, V, 3), or `protocol_oracle/` (C, T, K) -> (C, T, V, 3)."""
        path = self.root / folder / f"{entry.name}.npy"
        if not path.is_file() or not (self.root / "blendshapes.npy").is_file():
            raise DataError(path, f"the clip's {folder.replace('_', ' ')} weights (synthetic corpora only)", "no such file")
        weights = np.load(path)[..., :: self.preset.subsample, :]
        if weights.shape[-2] != n_frames:
            raise DataError(path, f"{n_frames} frames", f"{weights.shape[-2]}")
        offsets = np.einsum("...tk,kvc->...tvc", weights, np.load(self.root / "blendshapes.npy"))
        return torch.from_numpy((self.templates[entry.subject] + offsets).astype(np.float32))

    def _extras(self, entry: ClipEntry, n_frames: int) -> dict:
        extra: dict = {}
        labels = self.root / "phonemes" / f"{entry.name}.npy"
        if labels.is_file():
            phonemes = np.load(labels)[:: self.preset.subsample]
            if phonemes.shape != (n_frames,):
                raise DataError(labels, f"one label per frame, shape ({n_frames},)", f"shape {phonemes.shape}")
            extra["phonemes"] = torch.from_numpy(phonemes.astype(np.int64))
        if self.with_deterministic:
            extra["deterministic"] = self._predictable(entry, n_frames, "deterministic")
            extra["protocol_oracle"] = self._predictable(entry, n_frames, "protocol_oracle")
        return extra | self.labels(entry.name)


class MeadNames:
    """MEAD's clip names, `<speaker>_<emotion>_level_<n>_<id>`: the subject and clip number, and the
    emotion and intensity labels (MEAD-3D and MEAD's frontal video)."""

    def _parts(self, name: str) -> tuple[str, str, int, int]:
        speaker, emotion, _, level, clip = name.rsplit("_", 4)
        if emotion not in self.preset.emotions or not level.isdigit() or not clip.isdigit():
            raise ValueError(name)
        return speaker, emotion, int(level), int(clip)

    def parse(self, name: str) -> tuple[str, int]:
        speaker, _, _, clip = self._parts(name)
        return speaker, clip

    def labels(self, name: str) -> dict:
        _, emotion, level, _ = self._parts(name)
        return {"emotion": self.preset.emotions.index(emotion), "intensity": level - 1}
