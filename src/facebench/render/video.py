"""MP4 with sound from RGB frames, through the ffmpeg that `imageio-ffmpeg` ships (no system ffmpeg):
H.264 (yuv420p) at the dataset's frame rate, AAC audio, cut to the shorter stream. Written to a
temporary file and renamed, so a failure never leaves a broken or silent video behind."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile

from facebench.data.audio import SAMPLE_RATE
from facebench.render.renderer import RenderError


def even(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: pad one white row or column where odd."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255) if h % 2 or w % 2 else frame


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float, audio: np.ndarray | None = None, lossless: bool = False) -> Path:
    """Frames (H, W, 3) uint8 and 16 kHz mono audio (or None) -> an MP4 at `path`. `lossless`: H.264
    at constant quality 0 in 4:4:4 (a dataset's frames: decoded as rendered, up to the RGB/YUV
    rounding); otherwise imageio-ffmpeg's default quality in 4:2:0, which every player shows."""
    import imageio_ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise RenderError(f"{path}: expected frames to write, found none")
    first = even(first)
    with tempfile.TemporaryDirectory() as scratch:
        wav = None
        if audio is not None:
            wav = Path(scratch) / "audio.wav"
            soundfile.write(wav, np.asarray(audio, dtype=np.float32), SAMPLE_RATE)
        partial = path.with_name(f".{path.name}.partial.mp4")
        quality = {"quality": 10, "pix_fmt_out": "yuv444p"} if lossless else {}
        writer = imageio_ffmpeg.write_frames(str(partial), (first.shape[1], first.shape[0]), fps=fps, macro_block_size=2, **quality,
                                             audio_path=None if wav is None else str(wav), audio_codec=None if wav is None else "aac",
                                             output_params=["-shortest"] if wav is not None else None, ffmpeg_log_level="error")  # fmt: skip
        try:
            writer.send(None)
            writer.send(np.ascontiguousarray(first))
            for frame in frames:
                writer.send(np.ascontiguousarray(even(frame)))
            writer.close()
        except BaseException as exc:
            writer.close()
            partial.unlink(missing_ok=True)
            if isinstance(exc, Exception):
                raise RenderError(f"{path}: ffmpeg failed while writing the video ({exc})") from exc
            raise
        os.replace(partial, path)
    return path


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """An MP4's frames (T, H, W, 3) uint8 and its frame rate, decoded with the same ffmpeg."""
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3) for frame in reader]
    except (OSError, RuntimeError, StopIteration) as exc:
        raise RenderError(f"{path}: expected a decodable video, found an unreadable file ({exc})") from exc
    if not frames:
        raise RenderError(f"{path}: expected video frames, found none")
    return np.stack(frames), float(meta["fps"])


def video_info(path: str | Path) -> dict:
    """Frames, fps, size, and the audio stream's duration in seconds (0 without one), read back with
    the same ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "audio.wav"
        result = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn", "-ac", "1", str(wav)],
                                capture_output=True)  # fmt: skip
        audio = soundfile.info(str(wav)).duration if result.returncode == 0 and wav.is_file() else 0.0
    return {"frames": frames, "fps": meta["fps"], "size": tuple(meta["size"]), "audio_seconds": audio}
