"""The data contracts every stage shares: one clip (`Sequence`), a padded batch (`Batch`), and the
sealed view a model generates from (`ModelInputs`, `SealedBatch`).

Sealed evaluation (docs/architecture.md, "Sealed evaluation"): at validation and test a model's
`generate` receives `ModelInputs` alone: audio, templates, the style condition, the frame count
derived from the audio by the dataset's rule, and the conditions the model declares. Ground truth
(vertices, their length, phonemes, emotion, text, the synthetic corpus' deterministic part) never
enters it; the test and predict loaders do not even carry it, and the metrics callback reads it
from the datamodule by clip index.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch.nn.utils.rnn import pad_sequence

from facebench.data.audio import frames_from_audio
from facebench.data.segmentation import UNKNOWN

# Padding value of per-frame integer labels (phonemes): the value torch's losses ignore.
IGNORE_INDEX = -100

# What a clip knows that a model must not see when it generates.
GROUND_TRUTH = ("vertices", "frames", "frame_lengths", "phonemes", "emotion", "intensity", "content", "texts", "text",
                "deterministic", "protocol_oracle", "names", "name", "subjects", "subject")  # fmt: skip
# Conditions a model may declare as inputs (the protocol records which it used). `pose`: a driving
# video's masks with the lower face hidden (video only; `Batch.pose_source`).
DECLARABLE_CONDITIONS = ("intensity", "emotion", "pose")
# The rows of a driving video's masks a `pose` condition hides: from this fraction of the height
# down, Wav2Lip's hidden lower half. [ours] the protocol's rule.
POSE_HIDDEN_FROM = 0.5
# How a row's `inputs` column names a declared condition (else by its name).
CONDITION_NAMES = {"pose": "pose: the driving video's masks, lower half hidden"}
# Conditions a benchmark set can only give from the clip's own ground truth (its driving video is
# the clip itself): rows that declare one are marked and not ranked against the others.
GROUND_TRUTH_CONDITIONS = ("pose",)
# Inputs only an anchor may declare: the oracle's privileged view of the synthetic corpus.
PRIVILEGED_INPUTS = ("deterministic", "protocol_oracle", "first_frame", "frames")  # frames: the video calibration anchors


class SealedInputError(AttributeError):
    """A model asked its generation inputs for something the protocol does not give it."""


def rgbl(frames: torch.Tensor) -> torch.Tensor:
    """Stored video frames (..., H, W, 4) uint8, RGB and the class of each pixel (255: unknown), as a
    model sees and generates them: float32, RGB in [0, 1], the class index unchanged."""
    if frames.dtype != torch.uint8:
        return frames
    out = frames.float()
    out[..., :3] /= 255.0
    return out


@dataclass
class Sequence:
    """One clip: `audio` is 16 kHz mono float32, and its ground truth is either a mesh sequence
    (`vertices` (T, V, 3) in dataset units, with the subject's neutral `template` (V, 3)) or video
    (`frames` (T, H, W, 4) uint8: RGB and the 12-class segmentation of each pixel, 255 where it is
    unknown; `template` is then the reference frame the model animates, the clip's first, (H, W, 4))."""

    name: str
    subject: str
    audio: torch.Tensor
    vertices: torch.Tensor | None
    template: torch.Tensor
    fps: float
    style: int = -1  # index of the subject among the training speakers, -1 if unseen
    emotion: int | None = None
    intensity: int | None = None
    content: int | None = None  # which text is spoken: clips of one subject and content are takes of one sentence
    phonemes: torch.Tensor | None = None  # (T,) int64 label per frame
    text: str | None = None
    deterministic: torch.Tensor | None = None  # (T, V, 3) synthetic data only: the predictable part
    protocol_oracle: torch.Tensor | None = None  # (C, T, V, 3) synthetic only: the predictable part per protocol condition
    frames: torch.Tensor | None = None  # (T, H, W, 4) uint8, video clips

    @property
    def target(self) -> torch.Tensor:
        """The ground truth the metrics compare with: vertices, or frames for video."""
        return self.vertices if self.vertices is not None else self.frames


@dataclass
class Batch:
    """Padded stack of sequences. Padding is zeros (labels: IGNORE_INDEX); lengths say what is real."""

    names: list[str]
    subjects: list[str]
    audio: torch.Tensor  # (B, N)
    audio_lengths: torch.Tensor  # (B,)
    vertices: torch.Tensor | None  # (B, T, V, 3); None for video
    frame_lengths: torch.Tensor  # (B,)
    templates: torch.Tensor  # (B, V, 3)
    style: torch.Tensor  # (B,) int64, -1 for unseen speakers
    fps: float
    emotion: torch.Tensor | None = None
    intensity: torch.Tensor | None = None
    content: torch.Tensor | None = None
    phonemes: torch.Tensor | None = None  # (B, T)
    texts: list[str | None] = field(default_factory=list)
    deterministic: torch.Tensor | None = None  # (B, T, V, 3)
    protocol_oracle: torch.Tensor | None = None  # (B, C, T, V, 3)
    partner: Batch | None = None  # training pairs: per clip, a take of the same text in another emotion
    frames: torch.Tensor | None = None  # (B, T, H, W, 4) uint8, video

    def __len__(self) -> int:
        return len(self.names)

    @property
    def target(self) -> torch.Tensor:
        return self.vertices if self.vertices is not None else self.frames

    @property
    def frame_mask(self) -> torch.Tensor:
        """(B, T) bool, True on real frames."""
        return frame_mask(self.frame_lengths, self.target.shape[1])

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
            vertices=None if self.vertices is None else self.vertices[i, :t],
            template=self.templates[i],
            fps=self.fps,
            style=int(self.style[i]),
            emotion=None if self.emotion is None else int(self.emotion[i]),
            intensity=None if self.intensity is None else int(self.intensity[i]),
            content=None if self.content is None else int(self.content[i]),
            phonemes=None if self.phonemes is None else self.phonemes[i, :t],
            text=self.texts[i] if self.texts else None,
            deterministic=None if self.deterministic is None else self.deterministic[i, :t],
            protocol_oracle=None if self.protocol_oracle is None else self.protocol_oracle[i, :, :t],
            frames=None if self.frames is None else self.frames[i, :t],
        )

    def inputs(self, audio_per_frame: int, conditions: tuple[str, ...] = (), privileged: tuple[str, ...] = ()) -> ModelInputs:
        """The sealed view of this batch: what a model may generate from. Each clip's frame count
        comes from its audio by the dataset's rule (`frames_from_audio`), never from the ground
        truth; `conditions` and `privileged` are the extra fields the model declares."""
        n_frames = torch.tensor([frames_from_audio(int(n), self.fps, audio_per_frame) for n in self.audio_lengths.tolist()],
                                dtype=torch.long, device=self.audio_lengths.device)  # fmt: skip
        if set(privileged) & {"deterministic", "protocol_oracle", "frames"}:  # a privileged view includes the ground truth's length
            n_frames = self.frame_lengths
        return ModelInputs(
            audio=self.audio, audio_lengths=self.audio_lengths, n_frames=n_frames, templates=rgbl(self.templates),
            style=self.style, fps=self.fps, conditions=self._declared(conditions, DECLARABLE_CONDITIONS, n_frames),
            privileged=self._declared(privileged, PRIVILEGED_INPUTS, n_frames),
        )  # fmt: skip

    @property
    def first_frame(self) -> torch.Tensor:
        """(B, V, 3) each clip's first ground-truth frame (a privileged input where declared)."""
        return self.target[:, 0]

    def pose_source(self, n_frames: torch.Tensor) -> torch.Tensor:
        """The `pose` condition: each video clip's masks as a driving video gives them, (B, T, H, W)
        uint8 with T = n_frames.max(), the rows from `POSE_HIDDEN_FROM` of the height down unknown
        (255), so the mouth is not in it. It follows the frame count the model generates, never the
        ground truth's length: a clip's last frame is repeated where n_frames is longer, the rest is
        left out where shorter, and frames past n_frames are unknown."""
        classes = without_lower_face(self.frames[..., 3])
        out = torch.full((len(self), int(n_frames.max()), *classes.shape[2:]), UNKNOWN, dtype=torch.uint8, device=classes.device)
        for b, (wanted, have) in enumerate(zip(n_frames.tolist(), self.frame_lengths.tolist())):
            index = torch.arange(wanted, device=classes.device).clamp(max=have - 1)
            out[b, :wanted] = classes[b, index]
        return out

    def _declared(self, names: tuple[str, ...], allowed: tuple[str, ...], n_frames: torch.Tensor) -> dict[str, torch.Tensor]:
        values = {}
        for name in names:
            if name not in allowed:
                raise SealedInputError(f"'{name}' cannot be declared as a generation input; declarable: {', '.join(allowed)}")
            value = self.frames if name == "pose" else getattr(self, name)
            if value is None:
                raise SealedInputError(f"the model declares '{name}' as an input, but this dataset's clips have none")
            values[name] = self.pose_source(n_frames) if name == "pose" else rgbl(value)
        return values

    def with_conditions(self, n_styles: int) -> Batch:
        """Each clip of an unseen speaker (style -1) once per training style, seen clips as they are
        (the condition protocol, as the reference code applies it to validation losses)."""
        if bool((self.style >= 0).all()):
            return self
        clips = []
        for i in range(len(self)):
            clip = self.unbatch(i)
            clips += [clip] if clip.style >= 0 else [replace(clip, style=s) for s in range(n_styles)]
        return collate(clips)

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


def without_lower_face(classes: torch.Tensor) -> torch.Tensor:
    """Class maps (..., H, W) with the rows from `POSE_HIDDEN_FROM` of the height down unknown: the
    `pose` condition's rule, for whoever builds a pose source (`Batch.pose_source`, training)."""
    hidden = classes.clone()
    hidden[..., int(POSE_HIDDEN_FROM * classes.shape[-2]) :, :] = UNKNOWN
    return hidden


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
        vertices=stack_optional([s.vertices for s in sequences]),
        frame_lengths=torch.tensor([len(s.target) for s in sequences], dtype=torch.long),
        templates=torch.stack([s.template for s in sequences]),
        style=torch.tensor([s.style for s in sequences], dtype=torch.long),
        fps=fps.pop(),
        emotion=optional_ints("emotion"),
        intensity=optional_ints("intensity"),
        content=optional_ints("content"),
        phonemes=phonemes,
        texts=[s.text for s in sequences],
        deterministic=stack_optional([s.deterministic for s in sequences]),
        protocol_oracle=pad_conditions([s.protocol_oracle for s in sequences]) if all(s.protocol_oracle is not None for s in sequences) else None,
        frames=stack_optional([s.frames for s in sequences]),
    )


def stack_optional(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Per-frame tensors of the clips, zero-padded to the longest; None unless every clip has one."""
    if any(t is None for t in tensors):
        return None
    return pad_sequence(tensors, batch_first=True)


def pad_conditions(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(C_i, T_i, ...) tensors to (B, max C, max T, ...), zero-padded."""
    shape = (len(tensors), max(t.shape[0] for t in tensors), max(t.shape[1] for t in tensors), *tensors[0].shape[2:])
    out = tensors[0].new_zeros(shape)
    for i, t in enumerate(tensors):
        out[i, : t.shape[0], : t.shape[1]] = t
    return out


@dataclass
class ModelInputs:
    """What a model generates from (sealed evaluation): padded audio and its lengths, each clip's
    frame count derived from the audio (`n_frames`), templates, style indices of training speakers,
    the frame rate, and only the conditions the model declared. Asking for anything else (the
    ground truth's vertices, its length, phonemes, emotion, text) raises `SealedInputError`."""

    audio: torch.Tensor  # (B, N) 16 kHz, normalised per utterance
    audio_lengths: torch.Tensor  # (B,)
    n_frames: torch.Tensor  # (B,) frames to generate, from the audio by the dataset's rule
    templates: torch.Tensor  # (B, V, 3); video: the reference frames (B, H, W, 4), RGB in [0, 1] and each pixel's class
    style: torch.Tensor  # (B,) training-speaker index; -1 until the condition protocol sets one
    fps: float
    conditions: dict[str, torch.Tensor] = field(default_factory=dict)  # declared, e.g. {"intensity": (B,)}
    privileged: dict[str, torch.Tensor] = field(default_factory=dict)  # anchors only: {"deterministic": (B, T, V, 3)}

    def __getattr__(self, name: str):
        # Only reached for attributes a ModelInputs does not have.
        if name in GROUND_TRUTH:
            raise SealedInputError(
                f"'{name}' is not a generation input (sealed evaluation): a model generates from audio, "
                "audio_lengths, n_frames, templates, style and fps, plus the conditions it declares "
                f"(declared here: {sorted(self.__dict__.get('conditions', {})) or 'none'})"
            )
        raise AttributeError(name)

    def __len__(self) -> int:
        return self.audio.shape[0]

    @property
    def max_frames(self) -> int:
        return int(self.n_frames.max())

    @property
    def is_video(self) -> bool:
        """True when the clips are video: the templates are reference frames (B, H, W, 4)."""
        return self.templates.ndim == 4

    def condition(self, name: str) -> torch.Tensor:
        if name not in self.conditions:
            raise SealedInputError(f"condition '{name}' was not declared by the model (declared: {sorted(self.conditions) or 'none'})")
        return self.conditions[name]

    def to(self, device: torch.device | str) -> ModelInputs:
        move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        tensors = {f.name: getattr(self, f.name).to(device) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **tensors, conditions=move(self.conditions), privileged=move(self.privileged))

    def with_styles(self, styles: list[int]) -> ModelInputs:
        """One clip (B = 1) once per style: the condition protocol's generations."""
        if len(self) != 1:
            raise ValueError(f"conditions are expanded one clip at a time, found a batch of {len(self)}")
        n = len(styles)
        rep = lambda x: x.repeat(n, *([1] * (x.ndim - 1)))  # noqa: E731
        tensors = {f.name: rep(getattr(self, f.name)) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}
        tensors["style"] = torch.tensor(styles, dtype=torch.long, device=self.style.device)
        return replace(self, **tensors, conditions={k: rep(v) for k, v in self.conditions.items()},
                       privileged={k: rep(v) for k, v in self.privileged.items()})  # fmt: skip


@dataclass
class SealedBatch:
    """What the test and predict loaders yield: the model's inputs and each clip's index in its
    split (for the metrics callback, which reads the ground truth from the datamodule)."""

    inputs: ModelInputs
    index: torch.Tensor  # (B,)

    def __getattr__(self, name: str):
        if name in GROUND_TRUTH:
            raise SealedInputError(f"'{name}' is ground truth: test and predict batches carry the model's inputs "
                                   "(`batch.inputs`) and clip indices only (sealed evaluation)")  # fmt: skip
        raise AttributeError(name)

    def __len__(self) -> int:
        return len(self.inputs)

    def to(self, device: torch.device | str) -> SealedBatch:
        return SealedBatch(self.inputs.to(device), self.index.to(device))
