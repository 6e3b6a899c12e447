"""The reference lip reader: one per dataset with per-frame phoneme labels, trained once on the
training split's ground-truth motion, then frozen and stored with the dataset, so that every model's
predicted motion is read by the same judge. It shares nothing with any model under test.

Stored as `<dataset>/lipreader/v<VERSION>/reader.pt` with `card.json` (recipe, inventory, and the
ground truth's own phoneme error rate on every split).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from facebench.console import console
from facebench.data.datamodule import ClipDataset, FaceDataModule
from facebench.data.sequence import Batch, collate, frame_mask
from facebench.environment import cpu_name
from facebench.errors import DataError
from facebench.lipreading.ctc import ctc_loss, greedy_decode, phoneme_error_rate, reference_sequences
from facebench.storage import stored_once
from facebench.weights import judge_training, weights_identity

# Bump when the network or the recipe changes: a stored reader of another version is never used.
VERSION = 2
# Readers shipped with facebench for the synthetic corpora (`shipped_reader`): the same judge on every machine.
SHIPPED = Path(__file__).parent / "shipped"


@dataclass(frozen=True)
class ReaderRecipe:
    """How the reference reader is trained. [ours]: no paper defines a reference lip reader for 3D
    meshes; this one is small enough to train on a CPU in about a minute on the synthetic corpus."""

    region: str = "lve"  # the dataset's lip region (the LVE region); "all" reads every vertex
    hidden: int = 128
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    dropout: float = 0.1
    seed: int = 0
    # torch's CPU threads while training, as the other stored judges' (facebench.weights.judge_training):
    # the weights depend on them, and must not depend on the process that trains the reader first.
    threads: int = 2
    # Augmentation of the ground truth, so that the judge reads what is said rather than how fully it
    # is articulated: models under-articulate and smooth, which alone must not make speech unreadable.
    gain: tuple[float, float] = (0.5, 1.2)  # per-clip factor on the offsets from the template
    smoothing: tuple[int, ...] = (1, 3, 5)  # temporal box filter widths, one drawn per clip
    noise: float = 0.05  # Gaussian noise, in units of the training offsets' standard deviation


class ReferenceLipReader(nn.Module):
    """Vertices (B, T, V, 3) and templates (B, V, 3) -> CTC logits (B, T, n_phonemes + 1), blank 0.

    Offsets from the template on the region, standardised with the training split's statistics,
    then a linear map, two residual temporal convolutions (about 170 ms of context at 30 fps) and a
    bidirectional GRU: a reader may look ahead, as listeners do.
    """

    def __init__(self, region: torch.Tensor, n_phonemes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        n_inputs = 3 * len(region)
        self.register_buffer("region", region.long())
        self.register_buffer("mean", torch.zeros(n_inputs))
        self.register_buffer("std", torch.ones(n_inputs))
        self.n_phonemes = n_phonemes
        self.identity = f"v{VERSION}"  # version and weights hash once stored (see `reader_identity`)
        self.project = nn.Linear(n_inputs, hidden)
        self.convs = nn.ModuleList([nn.Conv1d(hidden, hidden, 5, padding=2) for _ in range(2)])
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.classify = nn.Linear(hidden, n_phonemes + 1)

    def offsets(self, vertices: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
        return (vertices - templates[:, None])[:, :, self.region].flatten(2)

    def fit_normalisation(self, batch: Batch) -> None:
        real = self.offsets(batch.vertices, batch.templates)[batch.frame_mask]
        self.mean.copy_(real.mean(0))
        # A floor for coordinates that never move (a vertex pinned by the mesh).
        self.std.copy_(real.std(0).clamp(min=1e-3 * float(real.std(0).max())))

    def forward(self, vertices: torch.Tensor, templates: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(lengths, vertices.shape[1])[..., None]
        x = F.gelu(self.project((self.offsets(vertices, templates) - self.mean) / self.std)) * mask
        for conv in self.convs:
            x = (x + self.dropout(F.gelu(conv(x.transpose(1, 2)).transpose(1, 2)))) * mask
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.classify(self.dropout(hidden))

    @torch.no_grad()
    def read(self, vertices: torch.Tensor, templates: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Greedy CTC decoding of each clip's phoneme sequence."""
        return greedy_decode(self(vertices, templates, lengths), lengths)


def training_clips(data: FaceDataModule) -> ClipDataset:
    """The whole training split, whatever the run's own limits (max_train_clips): one reader per dataset."""
    reader = data.reader
    clips = ClipDataset(reader, reader.index(data.preset.split("train")))
    if len(clips) == 0:
        raise DataError(
            reader.root / "vertices_npy",
            "clips of the training split to train the reference lip reader",
            "none",
        )
    return clips


def phoneme_inventory(clips: ClipDataset) -> int:
    """Number of phoneme ids: one past the largest training label; every clip must have labels."""
    largest = -1
    for i, entry in enumerate(clips.entries):
        phonemes = clips[i].phonemes
        if phonemes is None:
            raise DataError(
                clips.reader.root / "phonemes" / f"{entry.name}.npy",
                "per-frame phoneme labels for every training clip",
                "no such file",
            )
        largest = max(largest, int(phonemes.max()))
    return largest + 1


def augment(batch: Batch, model: ReferenceLipReader, recipe: ReaderRecipe, generator: torch.Generator) -> torch.Tensor:
    """Vertices with each clip's motion scaled, smoothed in time and noised (recipe's ranges)."""
    offsets = batch.vertices - batch.templates[:, None]
    b, t = offsets.shape[:2]
    low, high = recipe.gain
    gains = low + (high - low) * torch.rand(b, generator=generator)
    widths = torch.tensor(recipe.smoothing)[torch.randint(len(recipe.smoothing), (b,), generator=generator)]
    out = []
    for clip, gain, width in zip(offsets, gains.tolist(), widths.tolist()):
        if width > 1:  # (V*3, T) rows filtered along time; the edges average fewer frames
            flat = clip.reshape(t, -1).T[None]
            clip = F.avg_pool1d(flat, width, 1, width // 2, count_include_pad=False)[0].T.reshape(clip.shape)
        out.append(gain * clip)
    offsets = torch.stack(out)
    scale = torch.zeros(offsets.shape[2], 3)
    scale[model.region] = model.std.view(-1, 3)
    offsets = offsets + recipe.noise * scale * torch.randn(offsets.shape, generator=generator)
    return batch.templates[:, None] + offsets


def split_error_rate(model: ReferenceLipReader, clips: ClipDataset, batch_size: int = 16) -> float:
    """The reader's phoneme error rate on the ground-truth motion of a split."""
    hypotheses, references = [], []
    for start in range(0, len(clips), batch_size):
        batch = collate([clips[i] for i in range(start, min(start + batch_size, len(clips)))])
        hypotheses += model.read(batch.vertices, batch.templates, batch.frame_lengths)
        references += reference_sequences(batch.phonemes, batch.frame_lengths)
    return phoneme_error_rate(hypotheses, references)


def train_reader(
    data: FaceDataModule, recipe: ReaderRecipe = ReaderRecipe(), progress: bool = True
) -> tuple[ReferenceLipReader, dict]:
    """Train on the training split's ground truth (CPU, deterministic), and read the ground truth of every split.

    A plain loop rather than a Lightning Trainer: it runs inside other runs (the first test of a
    dataset) and must leave their random state and threads untouched, which `judge_training` and its
    private generator do.
    """
    clips = training_clips(data)
    regions = data.regions()
    if recipe.region != "all" and recipe.region not in regions:
        raise DataError(
            data.reader.root / "regions",
            f"the '{recipe.region}' region for the reference lip reader",
            f"regions {sorted(regions)}",
        )
    region = torch.arange(data.n_vertices) if recipe.region == "all" else regions[recipe.region]
    start = time.perf_counter()
    with judge_training(recipe.threads, recipe.seed) as generator:
        model = ReferenceLipReader(region, phoneme_inventory(clips), recipe.hidden, recipe.dropout)
        model.fit_normalisation(collate([clips[i] for i in range(len(clips))]))
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.epochs)
        model.train()
        with Progress(*Progress.get_default_columns(), console=console, transient=True, disable=not progress) as bar:
            task = bar.add_task(f"reference lip reader of {data.name} ({len(clips)} clips)", total=recipe.epochs)
            for _ in range(recipe.epochs):
                order = torch.randperm(len(clips), generator=generator).tolist()
                for first in range(0, len(order), recipe.batch_size):
                    batch = collate([clips[i] for i in order[first : first + recipe.batch_size]])
                    vertices = augment(batch, model, recipe, generator)
                    logits = model(vertices, batch.templates, batch.frame_lengths)
                    loss = ctc_loss(logits, batch.frame_lengths, batch.phonemes)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                schedule.step()
                bar.advance(task)
    model.eval().requires_grad_(False)
    ground_truth = {}
    for split in ("train", "val", *data.test_split_names):
        # Only the training split can be limited per run; the others are the datamodule's own.
        ground_truth[split] = split_error_rate(model, clips if split == "train" else data.split_dataset(split))
    card = {
        "version": VERSION, "dataset": data.preset.name, "recipe": asdict(recipe), "n_phonemes": model.n_phonemes,
        "region_vertices": len(region), "train_clips": len(clips), "train_seconds": round(time.perf_counter() - start, 1),
        "ground_truth_per": ground_truth, "torch": torch.__version__,
        "trained_on": {"cpu": cpu_name(), "threads": recipe.threads, "torch": torch.__version__},
    }  # fmt: skip
    return model, json.loads(json.dumps(card))  # as stored: tuples become lists


def reader_folder(data: FaceDataModule) -> Path:
    return data.reader.root / "lipreader" / f"v{VERSION}"


def has_phoneme_labels(data: FaceDataModule) -> bool:
    return (data.reader.root / "phonemes").is_dir()


def dataset_lip_reader(data: FaceDataModule, progress: bool = True) -> ReferenceLipReader | None:
    """The dataset's reference reader where it has phoneme labels (trained on first use, visibly),
    else None. Called where a run may take the time: `bench` before training, `facebench
    lipreader`, `facebench evaluate`; never inside a metric or callback."""
    return reference_reader(data, progress=progress)[0] if has_phoneme_labels(data) else None


def stored_lip_reader(data: FaceDataModule) -> ReferenceLipReader | None:
    """The dataset's reference reader if one is stored; never trains."""
    folder = reader_folder(data)
    return load_reader(folder)[0] if has_phoneme_labels(data) and (folder / "card.json").is_file() else None


def reader_identity(folder: Path) -> str:
    """`v<version>:<first 12 hex digits of the weights' sha256>`: which judge gave a PER value."""
    return weights_identity(f"v{VERSION}", folder / "reader.pt")


def shipped_reader(data: FaceDataModule) -> Path | None:
    """The reader shipped with facebench for this synthetic corpus (same generator version, preset
    and seed), trained once and versioned, so that PER means the same on every machine; None for
    other datasets (their readers are trained where they are used, and their cards say where)."""
    corpus_card = data.reader.root / "card.json"
    if not corpus_card.is_file():
        return None
    corpus = json.loads(corpus_card.read_text())
    if corpus.get("generator") != "facebench.data.synth":
        return None
    folder = SHIPPED / f"{data.name}-corpus{corpus['version']}-seed{corpus['seed']}-reader{VERSION}"
    return folder if (folder / "card.json").is_file() else None


def load_reader(folder: Path) -> tuple[ReferenceLipReader, dict]:
    card = json.loads((folder / "card.json").read_text())
    state = torch.load(folder / "reader.pt", map_location="cpu", weights_only=True)
    recipe = ReaderRecipe(**card["recipe"])
    # Building the layers draws their initial weights: from a forked generator, so that loading the
    # reader leaves the run's random stream exactly where training it would have.
    with torch.random.fork_rng(devices=[]):
        model = ReferenceLipReader(state["region"], card["n_phonemes"], recipe.hidden, recipe.dropout)
    model.load_state_dict(state)
    model.identity = reader_identity(folder)
    return model.eval().requires_grad_(False), card


def reference_reader(
    data: FaceDataModule, retrain: bool = False, progress: bool = True
) -> tuple[ReferenceLipReader, dict]:
    """The dataset's stored reader, stored first if there is none (or trained again if `retrain`):
    copied from the shipped one for a synthetic corpus that has one, else trained here. Stored
    whole or not at all, once however many runs ask at the same time (`storage.stored_once`)."""
    if not has_phoneme_labels(data):
        raise DataError(
            data.reader.root / "phonemes",
            "per-frame phoneme labels (<clip>.npy) to train a reference lip reader",
            "no such folder",
        )
    shipped = None if retrain else shipped_reader(data)

    def store(scratch: Path) -> None:
        if shipped is not None:
            for name in ("reader.pt", "card.json"):
                shutil.copyfile(shipped / name, scratch / name)
            return
        model, card = train_reader(data, progress=progress)
        torch.save(model.state_dict(), scratch / "reader.pt")
        (scratch / "card.json").write_text(json.dumps(card, indent=2))

    folder = stored_once(reader_folder(data), f"the reference lip reader of {data.name}", store, replace=retrain,
                         announce=progress and shipped is None)  # fmt: skip
    return load_reader(folder)
