"""Audio in: any sample rate and channel count to 16 kHz mono float32, normalised per utterance;
and the alignment of 50 Hz speech features to the mesh frame rate."""

from __future__ import annotations

from math import gcd
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


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a sound file as mono float32 at `sample_rate` (not normalised)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "an audio file", "no such file")
    try:
        samples, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError
        raise DataError(path, "a decodable audio file (wav, flac, ogg)", f"an undecodable file ({exc})") from exc
    if samples.shape[0] == 0:
        raise DataError(path, "audio samples", "an empty file (0 samples)")
    mono = samples.mean(axis=1)
    if not np.isfinite(mono).all():
        raise DataError(path, "finite audio samples", "NaN or infinite values")
    return resample(mono, source_rate, sample_rate)


def resample(samples: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy), exact for any pair of integer rates."""
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    g = gcd(int(source_rate), int(target_rate))
    return resample_poly(samples, target_rate // g, source_rate // g).astype(np.float32)


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
