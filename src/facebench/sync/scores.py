"""LSE-D and LSE-C as the official SyncNet scripts compute them (`SyncNetInstance.py`, and Wav2Lip's
`SyncNetInstance_calc_scores.py` fork):

- Audio: `python_speech_features.mfcc(samples, 16000)` with its defaults (13 cepstra, 25 ms
  windows, 10 ms steps: 4 MFCC steps per 25 fps frame) on 16-bit PCM values.
- Windows: for every start frame i < min(frames, floor(samples / 640)) - 5, video frames i..i+4 and
  MFCC columns 4i..4i+20.
- Distances: the audio embeddings are zero-padded by `vshift` (15) on each side; each video window
  is compared with the audio windows i-15..i+15 (Euclidean distance), so edge offsets compare with
  zero vectors, as the official `calc_pdist` does.
- Scores: per offset, the mean distance over windows; LSE-D = the smallest, LSE-C = the median
  minus the smallest, the AV offset = 15 - its position. Per clip, then averaged over clips.
"""

from __future__ import annotations

import numpy as np
import torch

VSHIFT = 15
FRAMES_PER_WINDOW = 5
MFCC_STEPS_PER_FRAME = 4  # 10 ms MFCC steps per frame at 25 fps
MFCC_WINDOW = 20


def mfcc(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono samples in [-1, 1] -> (13, steps) MFCC of their 16-bit PCM values, as the
    official scripts compute them from the wav they extract."""
    import python_speech_features

    pcm = np.round(np.clip(np.asarray(audio, dtype=np.float64), -1, 1) * 32767)
    return python_speech_features.mfcc(pcm, 16000).T.astype(np.float32)


def window_count(n_frames: int, n_samples: int) -> int:
    """Scorable start frames: the official `min(len(images), floor(len(audio) / 640)) - 5`."""
    return min(n_frames, n_samples // 640) - FRAMES_PER_WINDOW


def audio_windows(audio: np.ndarray, n_frames: int) -> torch.Tensor:
    """(N, 1, 13, 20) MFCC windows of the N scorable start frames (none where N <= 0)."""
    cepstra = mfcc(audio)
    n = window_count(n_frames, len(audio))
    windows = [cepstra[:, MFCC_STEPS_PER_FRAME * i : MFCC_STEPS_PER_FRAME * i + MFCC_WINDOW] for i in range(max(n, 0))]
    return torch.from_numpy(np.stack(windows)[:, None]) if windows else torch.zeros(0, 1, 13, MFCC_WINDOW)


def frame_windows(frames: torch.Tensor, n: int) -> torch.Tensor:
    """(T, H, W, C) -> (n, 5, H, W, C): frames i..i+4 of each start frame i < n."""
    return torch.stack([frames[i : i + FRAMES_PER_WINDOW] for i in range(n)])


def sync_scores(video: torch.Tensor, audio: torch.Tensor, vshift: int = VSHIFT) -> tuple[float, float, int]:
    """Embeddings of the video windows (N, D) and of the audio windows (N, D) -> (LSE-D, LSE-C, AV offset)."""
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    offsets = 2 * vshift + 1
    distances = torch.stack([torch.nn.functional.pairwise_distance(video[i : i + 1].expand(offsets, -1), padded[i : i + offsets])
                             for i in range(len(video))])  # fmt: skip
    mean = distances.mean(0)
    minimum, position = torch.min(mean, 0)
    return float(minimum), float(torch.median(mean) - minimum), vshift - int(position)
