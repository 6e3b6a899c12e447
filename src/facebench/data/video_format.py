"""Reader of the video layout: talking-face video (preprocessed HDTF, MEAD's frontal view, the
synthetic video corpus) with the same validation, splits and errors as the mesh readers
(docs/architecture.md, "The video modality"):

    <root>/video/<subject>_<clip>.mp4   face crops, image_size x image_size, at the preset's fps (25)
    <root>/wav/<subject>_<clip>.wav     the clip's audio, any rate (resampled to 16 kHz)
    <root>/masks/<subject>_<clip>.npz   optional: 'masks' (frames, H, W) uint8, the 12 classes
                                        (facebench.data.segmentation; made by a face parser for real video)
    <root>/metadata.csv                 optional: emotion, intensity, content, text per clip

A clip's ground truth is `frames` (T, H, W, 4): RGB and each pixel's class (255 where a clip has no
masks). Its reference, what a model animates, is its first frame (`template`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facebench.data.audio import SAMPLE_RATE, load_audio, normalize_audio
from facebench.data.faceformer_format import ClipEntry, FaceFormerFormat, MeadNames
from facebench.data.presets import DatasetPreset, identity_disjoint_splits
from facebench.data.segmentation import UNKNOWN
from facebench.data.sequence import Sequence
from facebench.errors import DataError


def video_header(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frames, fps, (width, height)) of a video from its container, without decoding it: PyAV reads
    the header in-process (about 2 ms a clip, against 90 ms for an ffmpeg process). Frames: the
    container's count, else the duration times the frame rate."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate)
            frames = stream.frames or round(float(stream.duration * stream.time_base if stream.duration else container.duration / av.time_base) * fps)
            return int(frames), fps, (stream.codec_context.width, stream.codec_context.height)
    except (av.error.FFmpegError, IndexError, TypeError, ZeroDivisionError) as exc:
        raise DataError(path, "a decodable video", f"an unreadable file ({exc})") from exc


class VideoFormat(FaceFormerFormat):
    """Indexes and loads the clips of a video dataset folder (layout `video`)."""

    LAYOUT = """expected layout (video):
  <root>/video/<subject>_<clip>.mp4   square face crops at the preset's size and frame rate
  <root>/wav/<subject>_<clip>.wav
  <root>/masks/<subject>_<clip>.npz   optional: 'masks' (frames, H, W) uint8 in the 12 classes"""
    NAME_RULE = "a name <subject>_<clip>.mp4 ending in two digits"

    def __init__(self, root, preset: DatasetPreset, *args, **kwargs):
        self.root, self.preset = Path(root), preset  # a layout's name rule may read the preset
        if preset.identity_splits:
            preset = identity_disjoint_splits(preset, self.subjects(), (0, 999))
        super().__init__(root, preset, *args, **kwargs)

    def subjects(self) -> list[str]:
        """The subjects on disk, from the clips' names."""
        names = set()
        for path in sorted((self.root / "video").glob("*.mp4")):
            try:
                names.add(self.parse(path.stem)[0])
            except ValueError:
                continue
        return sorted(names)

    def _check_folders(self) -> None:
        for sub in ("video", "wav"):
            if not (self.root / sub).is_dir():
                raise DataError(self.root / sub, "a folder", "none", hint=self.hint())
        if self.preset.identity_splits and not self.preset.splits["test"].subjects:
            raise DataError(self.root / "video", "clips of at least 8 subjects (every eighth is held out for test)", f"{len(self.subjects())}")

    def _load_templates(self) -> dict[str, np.ndarray]:
        return {}  # a video clip's reference is its own first frame

    def _vertex_count(self) -> int:
        return 0

    def regions(self) -> dict[str, torch.Tensor]:
        return {}

    def clip_files(self) -> list[tuple[str, Path, Path]]:
        return [(mp4.stem, mp4, self.root / "wav" / f"{mp4.stem}.wav") for mp4 in sorted((self.root / "video").glob("*.mp4"))]

    def _entry(self, name: str, video: Path, wav: Path, subject: str, sentence: int) -> ClipEntry:
        if not wav.is_file():
            raise DataError(wav, f"the audio of {video.name}", "no such file")
        n_frames, fps, size = video_header(video)
        if abs(fps - self.preset.fps) > 1e-3:
            raise DataError(video, f"{self.preset.fps:g} fps ({self.preset.name}; resample with `ffmpeg -i IN -r {self.preset.fps:g} OUT`)", f"{fps:g} fps")
        expected = self.preset.image_size
        if expected is not None and size != (expected, expected):
            raise DataError(video, f"{expected} x {expected} frames ({self.preset.name}; resize with `ffmpeg -i IN -vf scale={expected}:{expected} OUT`)",
                            f"{size[0]} x {size[1]}")  # fmt: skip
        if n_frames == 0:
            raise DataError(video, "at least one frame", "0 frames")
        self.check_duration(video, wav, n_frames, "video")
        return ClipEntry(name, subject, sentence, wav, video, n_frames)

    def read_frames(self, video: Path, masks: Path | None) -> np.ndarray:
        """(T, H, W, 4) uint8: a video's frames and, from `masks` where given, each pixel's class."""
        from facebench.render.renderer import RenderError
        from facebench.render.video import read_video

        try:
            rgb, _ = read_video(video)
        except RenderError as exc:
            raise DataError(video, "a decodable video", str(exc)) from exc
        labels = np.full(rgb.shape[:3], UNKNOWN, dtype=np.uint8)
        if masks is not None and masks.is_file():
            try:
                labels = np.load(masks)["masks"]
            except Exception as exc:
                raise DataError(masks, "an .npz with 'masks' (frames, H, W) uint8", f"an unreadable file ({exc})") from exc
            if labels.shape != rgb.shape[:3]:
                raise DataError(masks, f"masks of shape {rgb.shape[:3]} (the video's frames)", f"shape {labels.shape}")
            if labels.dtype != np.uint8 or labels.max(initial=0) >= 12:
                raise DataError(masks, "uint8 classes in [0, 12)", f"{labels.dtype} with maximum {labels.max(initial=0)}")
        return np.concatenate([rgb, labels[..., None]], axis=-1)

    def load(self, entry: ClipEntry, style: int = -1) -> Sequence:
        frames = self.read_frames(entry.vertices, self.root / "masks" / f"{entry.name}.npz")
        audio = load_audio(entry.wav, SAMPLE_RATE, self.resampler)
        extra = self.labels(entry.name)
        if self.with_deterministic:
            extra["deterministic"] = self._predictable(entry, len(frames), "deterministic")
        frames = torch.from_numpy(frames)
        return Sequence(name=entry.name, subject=entry.subject, audio=torch.from_numpy(np.asarray(normalize_audio(audio), dtype=np.float32)),
                        vertices=None, template=frames[0], fps=self.preset.fps, style=style, frames=frames, **extra)  # fmt: skip

    def _predictable(self, entry: ClipEntry, n_frames: int, folder: str) -> torch.Tensor:
        """A synthetic clip's deterministic part rendered with its head pose: `deterministic/video/`
        and `deterministic/masks/` (the oracle's frames)."""
        video = self.root / folder / "video" / f"{entry.name}.mp4"
        if not video.is_file():
            raise DataError(video, "the clip's deterministic frames (synthetic corpora only)", "no such file")
        frames = self.read_frames(video, self.root / folder / "masks" / f"{entry.name}.npz")
        if len(frames) != n_frames:
            raise DataError(video, f"{n_frames} frames", f"{len(frames)}")
        return torch.from_numpy(frames)


class MeadVideoFormat(MeadNames, VideoFormat):
    """MEAD's frontal view in the video layout, one clip per take named
    `<speaker>_<emotion>_level_<n>_<id>` (e.g. `M003_angry_level_1_001.mp4`), with the emotion and
    intensity labels its name gives."""

    NAME_RULE = "a name <speaker>_<emotion>_level_<n>_<id>.mp4 with an emotion of MEAD's and a numeric id"
