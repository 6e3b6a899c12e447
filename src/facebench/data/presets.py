"""Every fact about a dataset in one place: frame rates, vertex count, splits, region files, and
the scale each metric is displayed at. A new dataset in the FaceFormer format needs only a YAML
file with the same fields (`facebench.yaml` in its folder), no code."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from facebench.errors import DataError, FacebenchError
from facebench.yamlio import read_yaml

PRESET_FILE = "facebench.yaml"


@dataclass(frozen=True)
class SplitSpec:
    """Clips of `subjects` whose sentence number lies in [first, last]."""

    subjects: tuple[str, ...]
    sentences: tuple[int, int]
    seen: bool  # True when the subjects are training speakers (conditioned on their own style)
    mixed: bool = False  # both: each clip is scored under its own condition (own style, or every training style)

    def contains(self, subject: str, sentence: int) -> bool:
        return subject in self.subjects and self.sentences[0] <= sentence <= self.sentences[1]


@dataclass(frozen=True)
class RegionSpec:
    """Vertex indices of a face region: a text file of indices, or keys of a pickled dict of arrays."""

    path: str  # relative to the dataset root
    keys: tuple[str, ...] = ()  # for a pickle: the union of these entries

    def describe(self) -> str:
        return f"{self.path}[{'+'.join(self.keys)}]" if self.keys else self.path


@dataclass(frozen=True)
class DatasetPreset:
    name: str
    fps: float  # frame rate the models see
    train_subjects: tuple[str, ...]
    splits: dict[str, SplitSpec]
    test_splits: tuple[str, ...]
    n_vertices: int | None = None  # None: taken from templates.pkl
    regions: dict[str, RegionSpec] = field(default_factory=dict)  # metric region name -> spec
    display_scale: dict[str, float] = field(default_factory=dict)  # metric name -> unit shown
    unit: str = ""  # length unit of the vertices ("m"; "" where the data are normalised, as BIWI's)
    source_fps: float | None = None  # frame rate on disk when it differs (VOCASET: 60)
    audio_per_frame: int = 1  # speech features per mesh frame: 1 interpolated (VOCASET), 2 paired (BIWI)
    period: int = 30  # FaceFormer's periodic positional encoding / bias period
    duration_tolerance: float = 0.5  # seconds audio and vertices may differ before a clip is rejected
    folder: str = ""  # default folder name under FACEBENCH_DATA
    source: str = ""  # where to get it, and the prepare command
    has_phonemes: bool = False
    emotions: tuple[str, ...] = ()  # emotion classes (label i is emotions[i]); () where there are none
    intensities: tuple[str, ...] = ()  # intensity levels (label i is intensities[i])
    layout: str = "faceformer"  # the on-disk layout: faceformer, ravdess, mead3d, video (facebench.data.layouts)
    modality: str = "mesh"  # what a clip's ground truth is: "mesh" (vertices) or "video" (frames and masks)
    image_size: int | None = None  # video: frames are image_size x image_size pixels
    identity_splits: bool = False  # splits by a rule over the subjects on disk (sets without an official split)

    @property
    def subsample(self) -> int:
        """Keep every n-th stored frame (VOCASET: stored at 60 fps, used at 30 with [::2])."""
        if self.source_fps is None or self.source_fps == self.fps:
            return 1
        ratio = self.source_fps / self.fps
        if ratio != int(ratio):
            raise FacebenchError(f"preset {self.name}: source_fps {self.source_fps} is not a multiple of fps {self.fps}")
        return int(ratio)

    @property
    def region_set(self) -> str:
        """A record of which vertex sets the metrics used, stored with every result."""
        return "; ".join(f"{k}={v.describe()}" for k, v in sorted(self.regions.items()))

    def split(self, name: str) -> SplitSpec:
        if name not in self.splits:
            raise FacebenchError(f"split '{name}' of dataset {self.name}: expected one of {sorted(self.splits)}")
        return self.splits[name]

    def is_seen(self, subject: str) -> bool:
        return subject in self.train_subjects


def identity_disjoint_splits(preset: DatasetPreset, subjects: list[str], clips: tuple[int, int]) -> DatasetPreset:
    """Splits for a set without an official one, by a rule over the subjects on disk (sorted): every
    eighth, from the seventh, is validation, every eighth, from the eighth, is test, the rest train
    [ours]; `clips` is the range of clip numbers (all of them)."""
    subjects = sorted(subjects)
    val, test = tuple(subjects[6::8]), tuple(subjects[7::8])
    train = tuple(s for s in subjects if s not in val + test)
    splits = {"train": SplitSpec(train, clips, seen=True), "val": SplitSpec(val, clips, seen=False),
              "test": SplitSpec(test, clips, seen=False)}  # fmt: skip
    return replace(preset, train_subjects=train, splits=splits)



_VOCASET_TRAIN = tuple(
    f"FaceTalk_{s}_TA"
    for s in ["170728_03272", "170904_00128", "170725_00137", "170915_00223",
              "170811_03274", "170913_03279", "170904_03276", "170912_03278"]
)  # fmt: skip
_BIWI_TRAIN = ("F2", "F3", "F4", "M3", "M4", "M5")

VOCASET = DatasetPreset(
    name="vocaset",
    folder="vocaset",
    fps=30,
    source_fps=60,
    n_vertices=5023,
    audio_per_frame=1,
    period=30,
    train_subjects=_VOCASET_TRAIN,
    splits={
        "train": SplitSpec(_VOCASET_TRAIN, (1, 40), seen=True),
        "val": SplitSpec(("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"), (21, 40), seen=False),
        "test": SplitSpec(("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"), (21, 40), seen=False),
    },
    test_splits=("test",),
    # VOCASET has no official region files; the FLAME masks are the common choice (SelfTalk,
    # DiffSpeaker): lips for LVE, forehead + eye region for FDD and EVE.
    regions={
        "lve": RegionSpec("FLAME_masks.pkl", ("lips",)),
        "fdd": RegionSpec("FLAME_masks.pkl", ("forehead", "eye_region")),
        "eve": RegionSpec("FLAME_masks.pkl", ("forehead", "eye_region")),
    },
    display_scale={"lve": 1e-5, "fdd": 1e-7, "fdd_abs": 1e-7, "eve": 1e-5, "mve": 1e-3},
    unit="m",  # FLAME
    source="VOCASET from https://voca.is.tue.mpg.de (registration required); convert the release with "
    "`facebench prepare vocaset --raw DIR --out $FACEBENCH_DATA/vocaset` and put FLAME_masks.pkl "
    "(from the FLAME website) in the same folder",
)

BIWI = DatasetPreset(
    name="biwi",
    folder="biwi",
    fps=25,
    n_vertices=23370,
    audio_per_frame=2,
    period=25,
    train_subjects=_BIWI_TRAIN,
    splits={
        "train": SplitSpec(_BIWI_TRAIN, (1, 32), seen=True),
        "val": SplitSpec(_BIWI_TRAIN, (33, 36), seen=True),
        "test_a": SplitSpec(_BIWI_TRAIN, (37, 40), seen=True),
        "test_b": SplitSpec(("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6"), (37, 40), seen=False),
    },
    test_splits=("test_a", "test_b"),
    regions={"lve": RegionSpec("regions/lve.txt"), "fdd": RegionSpec("regions/fdd.txt")},
    display_scale={"lve": 1e-4, "fdd": 1e-5, "fdd_abs": 1e-5, "mve": 1e-3},
    unit="",  # CodeTalker's preprocessing divides by the square root of the surface area: unitless
    source="BIWI 3D Audiovisual Corpus (B3D(AC)^2, licence from ETH Zurich), preprocessed with "
    "CodeTalker's BIWI pipeline into wav/ (e01-e40 takes), vertices_npy/, templates.pkl and regions/",
)

_FLAME_REGIONS = {
    "lve": RegionSpec("FLAME_masks.pkl", ("lips",)),
    "fdd": RegionSpec("FLAME_masks.pkl", ("forehead", "eye_region")),
    "eve": RegionSpec("FLAME_masks.pkl", ("forehead", "eye_region")),
}
_RAVDESS_ACTORS = lambda first, last: tuple(f"Actor_{i:02d}" for i in range(first, last + 1))  # noqa: E731

RAVDESS_3D = DatasetPreset(
    name="ravdess3d",
    folder="ravdess3d",
    fps=30,
    n_vertices=5023,
    train_subjects=_RAVDESS_ACTORS(1, 20),
    # EmoFace's split: actors 1-20 train, 21-22 val, 23-24 test; both statements in every split.
    splits={
        "train": SplitSpec(_RAVDESS_ACTORS(1, 20), (1, 2), seen=True),
        "val": SplitSpec(_RAVDESS_ACTORS(21, 22), (1, 2), seen=False),
        "test": SplitSpec(_RAVDESS_ACTORS(23, 24), (1, 2), seen=False),
    },
    test_splits=("test",),
    regions=_FLAME_REGIONS,
    display_scale={"lve": 1e-5, "fdd": 1e-7, "fdd_abs": 1e-7, "eve": 1e-5, "mve": 1e-3},
    unit="m",
    emotions=("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    intensities=("normal", "strong"),
    layout="ravdess",
    source="3D-RAVDESS has no public release: rebuild it from RAVDESS (zenodo.org/record/1188976, CC BY-NC-SA) by fitting "
    "FLAME with EMOCA to every frame of the speech videos at 30 fps (Kalman-filtered parameters, global rotation zeroed), "
    "as EmoFace describes; then lay it out as README 'Emotional datasets' shows",
)

MEAD_3D = DatasetPreset(
    name="mead3d",
    folder="mead3d",
    fps=30,
    n_vertices=5023,
    train_subjects=(),  # from the speakers on disk: see facebench.data.layouts.Mead3DFormat
    splits={},
    test_splits=("test",),
    regions=_FLAME_REGIONS,
    display_scale={"lve": 1e-5, "fdd": 1e-7, "fdd_abs": 1e-7, "eve": 1e-5, "mve": 1e-3},
    unit="m",
    emotions=("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised"),
    intensities=("level_1", "level_2", "level_3"),
    layout="mead3d",
    source="MEAD-3D (github.com/haonanhe/MEAD-3D, Speech4Mesh) for the meshes and MEAD (wywu.github.io/projects/MEAD) for "
    "the audio, converted to 16 kHz wav; layout in README 'Emotional datasets'",
)

HDTF = DatasetPreset(
    name="hdtf",
    folder="hdtf",
    fps=25,
    train_subjects=(),  # from the subjects on disk: identity-disjoint splits (HDTF has no official split)
    splits={},
    test_splits=("test",),
    audio_per_frame=2,
    period=25,
    duration_tolerance=0.1,
    layout="video",
    modality="video",
    image_size=512,
    identity_splits=True,
    source="HDTF (github.com/universome/HDTF, CC BY 4.0): download the videos, cut the clips of xx_annotion_time.txt, crop "
    "with xx_crop_wh.txt, resample to 25 fps and 512x512 and extract 16 kHz mono audio; layout and commands in README "
    "'The video modality'. Masks (optional): masks/<clip>.npz in the 12 classes, from a face parser",
)

# MEAD's frontal view: the video facts of HDTF, MEAD's names, labels and crop size.
MEAD_2D = replace(
    HDTF,
    name="mead",
    folder="mead",
    layout="mead_video",
    image_size=256,
    emotions=MEAD_3D.emotions,
    intensities=MEAD_3D.intensities,
    source="MEAD (wywu.github.io/projects/MEAD), the frontal view: resample to 25 fps, crop the face to 256x256, extract "
    "16 kHz mono audio; layout and commands in README 'The video modality'",
)

_BUILTIN: dict[str, DatasetPreset] = {p.name: p for p in (VOCASET, BIWI, RAVDESS_3D, MEAD_3D, HDTF, MEAD_2D)}


def register_preset(preset: DatasetPreset) -> None:
    _BUILTIN[preset.name] = preset


# Datasets that are made on demand rather than read from the user's disk (the synthetic corpus)
# register a function that returns their folder, creating it when needed.
_PROVIDERS: dict[str, Callable[[], Path]] = {}


def register_provider(name: str, provider: Callable[[], Path]) -> None:
    _PROVIDERS[name] = provider


def resolve_root(preset: DatasetPreset, root: str | Path | None = None) -> Path:
    """The dataset folder: an explicit root, a provider's folder (the synthetic corpus, generated
    on first use), or $FACEBENCH_DATA/<folder>."""
    if root is not None:
        return Path(root)
    if preset.name in _PROVIDERS:
        return _PROVIDERS[preset.name]()
    folder = Path(preset.folder or preset.name)
    return folder if folder.is_absolute() else data_root() / folder


def preset_names() -> list[str]:
    return sorted(_BUILTIN)


def data_root() -> Path:
    """Where datasets live: $FACEBENCH_DATA, else ./data."""
    return Path(os.environ.get("FACEBENCH_DATA", "data"))


def get_preset(name: str) -> DatasetPreset:
    """A built-in preset by name, or the preset file of a dataset folder given as a path."""
    if name not in _BUILTIN:
        import facebench.data.synth  # noqa: F401  (registers the synthetic corpora's presets)
    if name in _BUILTIN:
        return _BUILTIN[name]
    path = Path(name)
    if path.is_dir():
        return load_preset_file(path / PRESET_FILE)
    if path.suffix in (".yaml", ".yml"):
        return load_preset_file(path)
    raise FacebenchError(
        f"dataset '{name}': expected a preset name ({', '.join(preset_names())}), a dataset folder "
        f"with a {PRESET_FILE}, or a preset YAML file; found none of these"
    )


def load_preset_file(path: Path) -> DatasetPreset:
    """Preset of a user dataset from YAML. Example in the README ("Your own dataset")."""
    if not path.is_file():
        raise DataError(path, f"a preset file ({PRESET_FILE})", "no such file")
    try:
        raw = read_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(path, "valid YAML", f"a parse error ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(path, "a mapping of preset fields", type(raw).__name__)
    required = {"name", "fps", "train_subjects", "splits", "test_splits"}
    missing = required - raw.keys()
    if missing:
        raise DataError(path, f"fields {sorted(required)}", f"no {sorted(missing)}")
    known = set(DatasetPreset.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise DataError(path, f"only the fields {sorted(known)}", f"unknown {sorted(unknown)}")
    train = tuple(raw["train_subjects"])
    splits = {}
    for split_name, spec in raw["splits"].items():
        try:
            subjects = tuple(spec["subjects"])
            first, last = spec["sentences"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"splits.{split_name} with 'subjects' and 'sentences: [first, last]'", repr(spec)) from exc
        known = set(subjects) & set(train)
        splits[split_name] = SplitSpec(subjects, (int(first), int(last)), seen=known == set(subjects), mixed=bool(known) and known != set(subjects))
    for needed in ("train", "val", *raw["test_splits"]):
        if needed not in splits:
            raise DataError(path, f"a split named '{needed}'", f"splits {sorted(splits)}")
    regions = {
        k: RegionSpec(v) if isinstance(v, str) else RegionSpec(v["path"], tuple(v.get("keys", ())))
        for k, v in (raw.get("regions") or {}).items()
    }
    fields = {k: v for k, v in raw.items() if k not in {"splits", "regions", "train_subjects", "test_splits", "display_scale"}}
    return DatasetPreset(
        **fields,
        train_subjects=train,
        splits=splits,
        test_splits=tuple(raw["test_splits"]),
        regions=regions,
        display_scale={k: float(v) for k, v in (raw.get("display_scale") or {}).items()},
        folder=str(path.parent),
    )
