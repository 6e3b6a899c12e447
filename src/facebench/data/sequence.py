"""The two data contracts every stage shares: one clip (`Sequence`) and a padded batch (`Batch`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch.nn.utils.rnn import pad_sequence

# Padding value of per-frame integer labels (phonemes): the value torch's losses ignore.
IGNORE_INDEX = -100


@dataclass
class Sequence:
    """One clip. `vertices` is (T, V, 3) in dataset units; `audio` is 16 kHz mono float32."""

    name: str
    subject: str
    audio: torch.Tensor
    vertices: torch.Tensor
    template: torch.Tensor
    fps: float
    style: int = -1  # index of the subject among the training speakers, -1 if unseen
    emotion: int | None = None
    intensity: int | None = None
    phonemes: torch.Tensor | None = None  # (T,) int64 label per frame
    text: str | None = None
    deterministic: torch.Tensor | None = None  # (T, V, 3) synthetic data only: the predictable part


@dataclass
class Batch:
    """Padded stack of sequences. Padding is zeros (labels: IGNORE_INDEX); lengths say what is real."""

    names: list[str]
    subjects: list[str]
    audio: torch.Tensor  # (B, N)
    audio_lengths: torch.Tensor  # (B,)
    vertices: torch.Tensor  # (B, T, V, 3)
    frame_lengths: torch.Tensor  # (B,)
    templates: torch.Tensor  # (B, V, 3)
    style: torch.Tensor  # (B,) int64, -1 for unseen speakers
    fps: float
    emotion: torch.Tensor | None = None
    intensity: torch.Tensor | None = None
    phonemes: torch.Tensor | None = None  # (B, T)
    texts: list[str | None] = field(default_factory=list)
    deterministic: torch.Tensor | None = None  # (B, T, V, 3)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def frame_mask(self) -> torch.Tensor:
        """(B, T) bool, True on real frames."""
        return frame_mask(self.frame_lengths, self.vertices.shape[1])

    def to(self, device: torch.device | str) -> Batch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[key] = value.to(device)
        return replace(self, **moved)

    def unbatch(self, i: int) -> Sequence:
        """Clip i without its padding."""
        t, n = int(self.frame_lengths[i]), int(self.audio_lengths[i])
        return Sequence(
            name=self.names[i],
            subject=self.subjects[i],
            audio=self.audio[i, :n],
            vertices=self.vertices[i, :t],
            template=self.templates[i],
            fps=self.fps,
            style=int(self.style[i]),
            emotion=None if self.emotion is None else int(self.emotion[i]),
            intensity=None if self.intensity is None else int(self.intensity[i]),
            phonemes=None if self.phonemes is None else self.phonemes[i, :t],
            text=self.texts[i] if self.texts else None,
            deterministic=None if self.deterministic is None else self.deterministic[i, :t],
        )

    def repeat(self, n: int) -> Batch:
        """The batch n times over (clip order: all clips, then all clips again...), e.g. one copy per style."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.repeat(n, *([1] * (value.ndim - 1)))
            elif isinstance(value, list):
                value = value * n
            values[f.name] = value
        return replace(self, **values)


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool mask, True where the index is below the clip's length."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def collate(sequences: list[Sequence]) -> Batch:
    """Stack clips of different lengths with zero padding and their lengths."""
    if not sequences:
        raise ValueError("collate: expected at least one sequence, found an empty list")
    fps = {s.fps for s in sequences}
    if len(fps) != 1:
        raise ValueError(f"collate: expected one frame rate per batch, found {sorted(fps)}")

    def optional_ints(attr: str) -> torch.Tensor | None:
        values = [getattr(s, attr) for s in sequences]
        if any(v is None for v in values):
            return None
        return torch.tensor(values, dtype=torch.long)

    phonemes = None
    if all(s.phonemes is not None for s in sequences):
        phonemes = pad_sequence([s.phonemes for s in sequences], batch_first=True, padding_value=IGNORE_INDEX)
    return Batch(
        names=[s.name for s in sequences],
        subjects=[s.subject for s in sequences],
        audio=pad_sequence([s.audio for s in sequences], batch_first=True),
        audio_lengths=torch.tensor([len(s.audio) for s in sequences], dtype=torch.long),
        vertices=pad_sequence([s.vertices for s in sequences], batch_first=True),
        frame_lengths=torch.tensor([len(s.vertices) for s in sequences], dtype=torch.long),
        templates=torch.stack([s.template for s in sequences]),
        style=torch.tensor([s.style for s in sequences], dtype=torch.long),
        fps=fps.pop(),
        emotion=optional_ints("emotion"),
        intensity=optional_ints("intensity"),
        phonemes=phonemes,
        texts=[s.text for s in sequences],
        deterministic=pad_sequence([s.deterministic for s in sequences], batch_first=True)
        if all(s.deterministic is not None for s in sequences)
        else None,
    )
