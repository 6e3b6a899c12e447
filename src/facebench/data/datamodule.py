"""LightningDataModule for any dataset with a preset: train/val loaders and one test loader per
test split, variable-length clips batched with padding and lengths.

The train and validation loaders carry ground truth (training and validation losses need it). The
test and predict loaders are sealed: they yield `SealedBatch`es, the model's inputs and each clip's
index, and nothing else; the metrics callback reads the ground truth with `clip(split, index)`.
"""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from facebench.data.faceformer_format import ClipEntry, FaceFormerFormat
from facebench.data.presets import get_preset
from facebench.data.sequence import Batch, SealedBatch, Sequence, collate
from facebench.errors import DataError


class ClipDataset(Dataset):
    """The clips of one split. Loaded clips are kept in memory (audio is resampled once)."""

    def __init__(self, reader: FaceFormerFormat, entries: list[ClipEntry], cache: bool = True):
        self.reader, self.entries, self.cache = reader, entries, cache
        train = reader.preset.train_subjects
        self.styles = [train.index(e.subject) if e.subject in train else -1 for e in entries]
        self._loaded: dict[int, Sequence] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Sequence:
        if i in self._loaded:
            return self._loaded[i]
        sequence = self.reader.load(self.entries[i], style=self.styles[i])
        if self.cache:
            self._loaded[i] = sequence
        return sequence

    @property
    def frames(self) -> int:
        return sum(e.n_frames for e in self.entries)


class PairedClips(Dataset):
    """Training clips, each with a partner: a take of the same subject and text (`content`) in
    another emotion, drawn afresh at every access from a per-clip generator (reproducible for a
    seed). A clip without such a take is its own partner."""

    def __init__(self, clips: ClipDataset, seed: int = 0):
        self.clips, self.seed = clips, seed
        entries = clips.entries
        labels = [clips.reader.labels(e.name) for e in entries]
        info = [(e.subject, label.get("content"), label.get("emotion")) for e, label in zip(entries, labels)]
        self.candidates = [[j for j, other in enumerate(info) if j != i and other[0] == info[i][0] and other[1] == info[i][1]
                            and other[1] is not None and other[2] != info[i][2]] for i in range(len(entries))]  # fmt: skip
        self.draws = [0] * len(entries)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[Sequence, Sequence]:
        options = self.candidates[i]
        if not options:
            return self.clips[i], self.clips[i]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + i * 7919 + self.draws[i])
        self.draws[i] += 1
        return self.clips[i], self.clips[options[int(torch.randint(len(options), (1,), generator=generator))]]


def paired_collate(items: list[tuple[Sequence, Sequence]]) -> Batch:
    batch = collate([clip for clip, _ in items])
    batch.partner = collate([partner for _, partner in items])
    return batch


class IndexedClips(Dataset):
    """A split's clips with their index, for the sealed loaders."""

    def __init__(self, clips: ClipDataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[int, Sequence]:
        return i, self.clips[i]


def sealed_collate(items: list[tuple[int, Sequence]], audio_per_frame: int, conditions: tuple[str, ...], privileged: tuple[str, ...]) -> SealedBatch:
    """The model's inputs of a few clips, and their indices; the ground truth stays behind."""
    batch = collate([clip for _, clip in items])
    return SealedBatch(batch.inputs(audio_per_frame, conditions, privileged), torch.tensor([i for i, _ in items], dtype=torch.long))


def distributed_eval_sampler(dataset: Dataset):
    """Under DDP, each clip on exactly one process: Lightning's default sampler pads the last
    batches with repeated clips, which would count them twice in the test metrics."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(dataset, shuffle=False)


class FaceDataModule(L.LightningDataModule):
    """Clips of a dataset preset, by split.

    Args:
        dataset: a preset name (`vocaset`, `biwi`, `synth`, ...) or a folder with a facebench.yaml.
        root: the dataset folder, when not under $FACEBENCH_DATA.
        batch_size: clips per training batch; evaluation runs one clip at a time.
        skip_bad: skip clips that fail validation (logged and listed in `skipped`) instead of raising.
        max_train_clips: use only the first n training clips (profiles for quick runs).
        with_deterministic: attach each clip's deterministic part (synthetic corpora; the oracle).
        resampler: how audio at another rate becomes 16 kHz (`facebench.data.audio.RESAMPLERS`);
            `kaiser_best` reproduces the official FaceFormer/CodeTalker loader (librosa 0.8.1).
        predict_splits: the splits `predict` generates (default: the test splits).
    """

    def __init__(
        self,
        dataset: str = "synth",
        root: str | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        skip_bad: bool = False,
        max_train_clips: int | None = None,
        seed: int = 0,
        with_deterministic: bool = False,
        resampler: str = "scipy",
        predict_splits: list[str] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.preset = get_preset(dataset)
        self.resampler, self._predict_splits = resampler, predict_splits
        self.root = root
        self.batch_size, self.num_workers, self.skip_bad = batch_size, num_workers, skip_bad
        self.max_train_clips, self.seed, self.with_deterministic = max_train_clips, seed, with_deterministic
        self._format: FaceFormerFormat | None = None
        self.datasets: dict[str, ClipDataset] = {}

    # -- facts the models need, available after setup() ------------------------------------------

    @property
    def name(self) -> str:
        """The dataset's name (a folder given as the dataset is named by its facebench.yaml)."""
        return self.preset.name

    @property
    def train_subjects(self) -> tuple[str, ...]:
        return self.preset.train_subjects

    @property
    def n_vertices(self) -> int:
        return self.reader.n_vertices

    @property
    def n_styles(self) -> int:
        return len(self.preset.train_subjects)

    @property
    def fps(self) -> float:
        return self.preset.fps

    @property
    def period(self) -> int:
        return self.preset.period

    @property
    def audio_per_frame(self) -> int:
        return self.preset.audio_per_frame

    @property
    def test_split_names(self) -> tuple[str, ...]:
        return self.preset.test_splits

    def conditions(self, subject: str) -> list[int]:
        """Styles to condition on: a training speaker's own, else every training speaker's (DESIGN §3)."""
        if subject in self.preset.train_subjects:
            return [self.preset.train_subjects.index(subject)]
        return list(range(len(self.preset.train_subjects)))

    @property
    def skipped(self) -> list[str]:
        return self.reader.skipped

    def regions(self) -> dict[str, torch.Tensor]:
        return self.reader.regions()

    @property
    def reader(self) -> FaceFormerFormat:
        """The dataset folder's reader, opened (and its templates checked) on first use."""
        if self._format is None:
            from facebench.data.layouts import open_dataset

            self._format = open_dataset(self.preset, self.root, self.skip_bad, self.with_deterministic, self.resampler)
            self.preset = self._format.preset  # a layout may settle the splits from what is on disk (MEAD-3D)
        return self._format

    def split_dataset(self, split: str) -> ClipDataset:
        if split not in self.datasets:
            reader = self.reader
            entries = reader.index(self.preset.split(split))
            if split == "train" and self.max_train_clips is not None:
                entries = entries[: self.max_train_clips]
            if not entries:
                raise DataError(reader.root / "vertices_npy", f"clips of split '{split}' ({self.preset.split(split)})", "none")
            # The oracles' privileged parts (C conditions x T x V x 3 per clip) are not kept in memory.
            self.datasets[split] = ClipDataset(reader, entries, cache=not self.with_deterministic)
        return self.datasets[split]

    # -- Lightning hooks ----------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": list(self.test_split_names)}
        for split in wanted.get(stage, ["train", "val", *self.test_split_names]):
            self.split_dataset(split)

    def clip(self, split: str, index: int) -> Sequence:
        """A clip with its ground truth, for the metrics callback (never for the model)."""
        return self.split_dataset(split)[index]

    def raw_audio(self, split: str, index: int):
        """A clip's audio at 16 kHz as stored, in [-1, 1] and not normalised: what metrics that read
        audio as their official scripts do (LSE's MFCC of 16-bit PCM) are given."""
        from facebench.data.audio import SAMPLE_RATE, load_audio

        return load_audio(self.split_dataset(split).entries[index].wav, SAMPLE_RATE, self.resampler)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        dataset = self.split_dataset(split)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=None if shuffle else distributed_eval_sampler(dataset),
            collate_fn=collate,
            num_workers=self.num_workers,
            generator=generator if shuffle else None,
        )

    def sealed_dataloader(self, split: str, conditions: tuple[str, ...] = (), privileged: tuple[str, ...] = ()) -> DataLoader:
        """One clip at a time, the model's inputs only (`SealedBatch`), in split order."""
        dataset = IndexedClips(self.split_dataset(split))
        return DataLoader(
            dataset,
            batch_size=1,
            sampler=distributed_eval_sampler(dataset),
            collate_fn=partial(sealed_collate, audio_per_frame=self.audio_per_frame, conditions=conditions, privileged=privileged),
            num_workers=self.num_workers,
        )

    def declared_inputs(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The conditions and privileged inputs the attached model declares (none without one)."""
        model = self.trainer.lightning_module if self.trainer is not None else None
        return tuple(getattr(model, "conditions_used", ())), tuple(getattr(model, "privileged_inputs", ()))

    def train_dataloader(self) -> DataLoader:
        model = self.trainer.lightning_module if self.trainer is not None else None
        if getattr(model, "training_pairs", False):
            return DataLoader(PairedClips(self.split_dataset("train"), self.seed), batch_size=self.batch_size, shuffle=True,
                              collate_fn=paired_collate, num_workers=self.num_workers, generator=torch.Generator().manual_seed(self.seed))  # fmt: skip
        return self._loader("train", self.batch_size, shuffle=True)

    @property
    def topology(self):
        """The mesh's faces and a template's vertices, for spiral convolutions (cached beside the dataset)."""
        from facebench.mesh import MeshTopology

        reader = self.reader
        return MeshTopology.read(reader.root, next(iter(reader.templates.values())))

    @property
    def n_emotions(self) -> int:
        return len(self.preset.emotions)

    @property
    def n_levels(self) -> int:
        return len(self.preset.intensities)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", 1, shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self.sealed_dataloader(split, *self.declared_inputs()) for split in self.test_split_names]

    @property
    def predict_split_names(self) -> tuple[str, ...]:
        splits = tuple(self._predict_splits or self.test_split_names)
        for split in splits:
            self.preset.split(split)  # an unknown split: one error naming the known ones
        return splits

    def predict_dataloader(self) -> list[DataLoader]:
        return [self.sealed_dataloader(split, *self.declared_inputs()) for split in self.predict_split_names]
