"""The on-disk layouts of the emotional 3D datasets, read by the same reader as the FaceFormer layout
(`FaceFormerFormat`: its validation, templates, regions and clip loading), with their own clip
discovery, naming and labels. A preset names its layout (`DatasetPreset.layout`).

- `ravdess`: 3D-RAVDESS as EmoFace builds it (FLAME meshes fitted to RAVDESS's speech videos), in
  RAVDESS's own folders and file names.
- `mead3d`: MEAD-3D's per-clip meshes (Speech4Mesh) beside MEAD's audio.
- `video`: talking-face video (facebench.data.video_format).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from facebench.data.faceformer_format import FaceFormerFormat, MeadNames
from facebench.data.presets import DatasetPreset, identity_disjoint_splits, resolve_root
from facebench.data.video_format import MeadVideoFormat, VideoFormat
from facebench.errors import DataError
from facebench.storage import write_atomically


class RavdessFormat(FaceFormerFormat):
    """3D-RAVDESS: `<root>/Actor_XX/<modality>-<channel>-<emotion>-<intensity>-<statement>-<repetition>-<actor>.npy`
    (frames, 5023 x 3) at 30 fps, the `.wav` of the same name beside it, `templates.pkl`
    {Actor_XX: (5023, 3)}, `FLAME_masks.pkl`. RAVDESS's codes: emotion 01-08 (neutral, calm, happy,
    sad, angry, fearful, disgust, surprised), intensity 01 normal / 02 strong, statement 01-02."""

    LAYOUT = """expected layout (3D-RAVDESS):
  <root>/Actor_XX/<modality>-<channel>-<emotion>-<intensity>-<statement>-<repetition>-<actor>.npy   (frames, 5023*3), 30 fps
  <root>/Actor_XX/<same name>.wav
  <root>/templates.pkl                  {Actor_XX: (5023, 3)}
  <root>/FLAME_masks.pkl, <root>/templates/FLAME_sample.ply"""
    NAME_RULE = "a RAVDESS name of seven two-digit fields, e.g. 01-01-03-02-01-01-12.npy"

    def _check_folders(self) -> None:
        if not any(self.root.glob("Actor_*")):
            raise DataError(self.root, "Actor_XX folders", "none", hint=self.hint())

    def clip_files(self) -> list[tuple[str, Path, Path]]:
        return [(npy.stem, npy, npy.with_suffix(".wav")) for npy in sorted(self.root.glob("Actor_*/*.npy"))]

    @staticmethod
    def fields(name: str) -> list[int]:
        parts = name.split("-")
        if len(parts) != 7 or not all(p.isdigit() for p in parts):
            raise ValueError(name)
        return [int(p) for p in parts]

    def parse(self, name: str) -> tuple[str, int]:
        fields = self.fields(name)
        return f"Actor_{fields[6]:02d}", fields[4]  # the statement is the sentence

    def labels(self, name: str) -> dict:
        _, _, emotion, intensity, statement, _, _ = self.fields(name)
        return {"emotion": emotion - 1, "intensity": intensity - 1, "content": statement}


class Mead3DFormat(MeadNames, FaceFormerFormat):
    """MEAD-3D: `<root>/<speaker>/video/front/<emotion>/level_<n>/<id>.npy`, each a pickled dict
    with `verts` (frames, 5023, 3) at 30 fps (or a plain array), and MEAD's audio converted to
    `<root>/<speaker>/audio/<emotion>/level_<n>/<id>.wav`.

    Templates: `templates.pkl` where the user has one (FLAME with each speaker's shape); otherwise
    each speaker's mean neutral frame, computed once and stored as `templates.pkl` [ours].
    Splits: identity-disjoint, by a rule over the speakers on disk (sorted): every eighth, from
    the seventh, is validation, every eighth, from the eighth, is test, the rest train [ours].
    MEAD speaks different sentences per emotion, so clip ids do not name texts: no
    cross-reconstruction pairs (`content` is not set)."""

    LAYOUT = """expected layout (MEAD-3D):
  <root>/<speaker>/video/front/<emotion>/level_<n>/<id>.npy   {'verts': (frames, 5023, 3)}, 30 fps
  <root>/<speaker>/audio/<emotion>/level_<n>/<id>.wav         (MEAD's .m4a converted: ffmpeg -i id.m4a -ar 16000 id.wav)
  <root>/templates.pkl (optional)   <root>/FLAME_masks.pkl   <root>/templates/FLAME_sample.ply"""
    NAME_RULE = "<speaker>/video/front/<emotion>/level_<n>/<id>.npy with an emotion of MEAD's and a numeric id"

    def __init__(self, root, preset: DatasetPreset, *args, **kwargs):
        self.root = Path(root)
        super().__init__(root, self.with_speaker_splits(preset), *args, **kwargs)

    def speakers(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "video").is_dir()) if self.root.is_dir() else []

    def with_speaker_splits(self, preset: DatasetPreset) -> DatasetPreset:
        return identity_disjoint_splits(preset, self.speakers(), (1, 99))

    def _check_folders(self) -> None:
        if not self.speakers():
            raise DataError(self.root, "speaker folders with a video/ folder", "none", hint=self.hint())
        if len(self.preset.splits["test"].subjects) == 0:
            raise DataError(self.root, "at least 8 speakers (every eighth is held out for test)", f"{len(self.speakers())}")

    def clip_files(self) -> list[tuple[str, Path, Path]]:
        files = []
        for npy in sorted(self.root.glob("*/video/front/*/level_*/*.npy")):
            speaker, level, emotion = npy.parents[4].name, npy.parent.name, npy.parents[1].name
            name = f"{speaker}_{emotion}_{level}_{npy.stem}"
            files.append((name, npy, self.root / speaker / "audio" / emotion / level / f"{npy.stem}.wav"))
        return files

    def read_vertices(self, path: Path, header_only: bool = False) -> np.ndarray:
        try:
            raw = np.load(path, allow_pickle=True)
        except Exception as exc:
            raise DataError(path, "a .npy array or a pickled dict with 'verts'", f"an unreadable file ({exc})") from exc
        if raw.dtype == object:
            raw = raw.item()
            if not isinstance(raw, dict) or "verts" not in raw:
                raise DataError(path, "a dict with 'verts' (frames, V, 3)", f"{type(raw).__name__} with keys {list(raw)[:5] if isinstance(raw, dict) else []}")
            raw = np.asarray(raw["verts"])
        return raw.reshape(len(raw), -1)

    def _load_templates(self) -> dict[str, np.ndarray]:
        if (self.root / "templates.pkl").is_file():
            return super()._load_templates()
        templates = {}
        for speaker in self.speakers():
            neutral = sorted((self.root / speaker / "video" / "front" / "neutral").glob("level_*/*.npy"))
            if not neutral:
                raise DataError(self.root / speaker / "video" / "front" / "neutral", "neutral clips to make the speaker's template "
                                "(or a templates.pkl)", "none")  # fmt: skip
            frames = np.concatenate([self.read_vertices(p) for p in neutral])
            templates[speaker] = frames.mean(0).reshape(-1, 3).astype(np.float32)
        write_atomically(self.root / "templates.pkl", lambda f: pickle.dump(templates, f))
        return super()._load_templates()


LAYOUTS: dict[str, type[FaceFormerFormat]] = {"faceformer": FaceFormerFormat, "ravdess": RavdessFormat, "mead3d": Mead3DFormat,
                                             "video": VideoFormat, "mead_video": MeadVideoFormat}  # fmt: skip


def open_dataset(preset: DatasetPreset, root: str | Path | None = None, skip_bad: bool = False, with_deterministic: bool = False,
                 resampler: str = "scipy") -> FaceFormerFormat:  # fmt: skip
    """The reader of a dataset's folder in its preset's layout (its templates checked on opening)."""
    if preset.layout not in LAYOUTS:
        raise DataError(preset.name, f"a layout among {sorted(LAYOUTS)}", f"'{preset.layout}'")
    return LAYOUTS[preset.layout](resolve_root(preset, root), preset, skip_bad, with_deterministic, resampler)


def check_dataset(dataset: str, root: str | Path | None = None) -> None:
    """Every split of a dataset indexed and its clips' headers checked: the errors a run would meet,
    before it starts (without the training stack)."""
    from facebench.data.presets import get_preset

    reader = open_dataset(get_preset(dataset), root)
    for name in reader.preset.splits:
        if not reader.index(reader.preset.split(name)):
            raise DataError(reader.root, f"clips of split '{name}' ({reader.preset.split(name)})", "none")
    reader.regions()
