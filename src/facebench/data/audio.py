"""Audio in: any sample rate and channel count to 16 kHz mono float32, normalised per utterance;
the alignment of 50 Hz speech features to the mesh frame rate; and the number of mesh frames a clip
of audio implies (what a model generates at test time, never the ground truth's length)."""

from __future__ import annotations

from math import ceil, gcd
from pathlib import Path

import numpy as np
import soundfile
import torch
import torch.nn.functional as F
from scipy.signal import resample_poly

from facebench.errors import DataError

SAMPLE_RATE = 16_000
# wav2vec2 / HuBERT produce one feature every 320 samples at 16 kHz.
FEATURE_RATE = 50.0


# How audio at another rate is brought to 16 kHz. The reference code reads wavs with librosa, whose
# resampler changed between versions; the official FaceFormer/CodeTalker code pins librosa 0.8.1.
RESAMPLERS = {
    "scipy": "scipy's polyphase filter (resample_poly): exact for integer rate pairs, no extra package",
    "kaiser_best": "resampy's kaiser_best, what librosa 0.8.1 (pinned by FaceFormer and CodeTalker) uses; needs `resampy`",
    "soxr_hq": "soxr's HQ, what librosa >= 0.10 uses; needs `soxr`",
}


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, resampler: str = "scipy") -> np.ndarray:
    """Read a sound file as mono float32 at `sample_rate` (not normalised)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "an audio file", "no such file")
    try:
        samples, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError: mp3 or m4a, say
        samples, source_rate = decode_with_ffmpeg(path, exc)
    if samples.shape[0] == 0:
        raise DataError(path, "audio samples", "an empty file (0 samples)")
    mono = samples.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DataError(path, "finite audio samples", "NaN or infinite values")
    return resample(mono, source_rate, sample_rate, resampler)


def decode_with_ffmpeg(path: Path, cause: Exception) -> tuple[np.ndarray, int]:
    """What libsndfile cannot read (mp3, m4a, a video's soundtrack), decoded by the ffmpeg that
    `imageio-ffmpeg` ships, at the file's own rate (facebench's resampler does the rest)."""
    import re
    import subprocess

    try:
        import imageio_ffmpeg
    except ImportError:
        raise DataError(path, "a decodable audio file (wav, flac, ogg; mp3 and m4a need imageio-ffmpeg)", f"an undecodable file ({cause})") from cause
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    rate = re.search(r"Audio:.*?(\d+) Hz", probe.stderr)
    if rate is None:
        raise DataError(path, "a file with an audio stream", "none (ffmpeg found no audio)") from cause
    decoded = subprocess.run([exe, "-v", "error", "-i", str(path), "-vn", "-f", "f32le", "-ac", "1", "-"], capture_output=True)
    if decoded.returncode != 0:
        raise DataError(path, "a decodable audio file", f"an undecodable file ({decoded.stderr.decode(errors='replace').strip()[:200]})") from cause
    return np.frombuffer(decoded.stdout, dtype=np.float32)[:, None].copy(), int(rate.group(1))


def resample(samples: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE, resampler: str = "scipy") -> np.ndarray:
    """Resample mono audio with one of `RESAMPLERS`. The librosa-compatible ones give librosa's
    output length, ceil(n * target / source), zero-padding the last sample as librosa's
    `fix_length` does."""
    if resampler not in RESAMPLERS:
        raise DataError("resampler", f"one of {', '.join(RESAMPLERS)}", f"'{resampler}'")
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    if resampler == "scipy":
        g = gcd(int(source_rate), int(target_rate))
        return resample_poly(samples, target_rate // g, source_rate // g).astype(np.float32)
    if resampler == "kaiser_best":
        resampy = _optional_package("resampy", resampler)
        out = resampy.resample(samples, source_rate, target_rate, filter="kaiser_best")
    else:
        soxr = _optional_package("soxr", resampler)
        out = soxr.resample(samples, source_rate, target_rate, quality="HQ")
    length = ceil(len(samples) * target_rate / source_rate)
    out = np.pad(out, (0, max(0, length - len(out))))[:length]
    return out.astype(np.float32)


def _optional_package(name: str, resampler: str):
    try:
        return __import__(name)
    except ImportError as exc:
        raise DataError("resampler", f"the '{name}' package for the '{resampler}' resampler "
                        "(pip install 'facebench[reference-audio]')", "it is not installed") from exc  # fmt: skip


def normalize_audio(samples: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Per-utterance zero mean, unit variance: what Wav2Vec2Processor applies (eps 1e-7 on the variance)."""
    mean = samples.mean()
    var = samples.var() if isinstance(samples, np.ndarray) else samples.var(unbiased=False)
    return (samples - mean) / (var + 1e-7) ** 0.5


def interpolate_features(features: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, N, C) features to (B, n_frames, C) by linear interpolation, corners aligned (FaceFormer, VOCASET)."""
    if features.shape[1] == n_frames:
        return features
    resized = F.interpolate(features.transpose(1, 2), size=n_frames, mode="linear", align_corners=True)
    return resized.transpose(1, 2)


def pair_features(features: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, N, C) to (B, 2*n_frames, C): two audio frames per mesh frame (FaceFormer, BIWI at 25 fps).

    Extra frames at the end are dropped, as in FaceFormer. When the audio is short of 2*n_frames
    (FaceFormer would cut the ground truth instead), the features are stretched by linear
    interpolation so no mesh frame is lost; the datamodule's duration check bounds how far.
    """
    wanted = 2 * n_frames
    if features.shape[1] >= wanted:
        return features[:, :wanted]
    return interpolate_features(features, wanted)


def align_features(features: torch.Tensor, n_frames: int, audio_per_frame: int) -> torch.Tensor:
    """Align 50 Hz features to `n_frames` mesh frames: one per frame (interpolated) or two (paired)."""
    if audio_per_frame == 1:
        return interpolate_features(features, n_frames)
    if audio_per_frame == 2:
        return pair_features(features, n_frames)
    raise ValueError(f"audio_per_frame: expected 1 or 2, found {audio_per_frame}")


def feature_count(n_samples: int) -> int:
    """Number of wav2vec2/HuBERT frames for `n_samples` at 16 kHz (conv stack: kernel 400, stride 320)."""
    return max(0, (n_samples - 400) // 320 + 1)


def frames_from_audio(n_samples: int, fps: float, audio_per_frame: int) -> int:
    """Mesh frames a clip of `n_samples` audio samples (16 kHz) implies, by FaceFormer's `predict`:
    with one speech feature per frame, the 50 Hz features resampled to the mesh rate,
    int(N / 50 * fps) (VOCASET: 30 fps); with two per frame (BIWI, 25 fps), the odd last feature is
    dropped and N // 2 frames are decoded. N is wav2vec2's feature count, whatever encoder a model
    uses, so every model generates the same number of frames for the same audio."""
    n = feature_count(n_samples)
    if audio_per_frame == 1:
        return int(n / FEATURE_RATE * fps)
    if audio_per_frame == 2:
        return n // 2
    raise ValueError(f"audio_per_frame: expected 1 or 2, found {audio_per_frame}")
