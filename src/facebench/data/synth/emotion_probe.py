"""Can the synthetic corpus' emotions be heard? Utterance-level audio features that do not depend on
loudness or the speaker's own pitch level, and a leave-one-speaker-out linear classifier over them.
Used by the test that the emotions are audible and by `benchmarks/synth_emotion.py`, which measures
what the protocol oracle's use of the heard emotion is worth (README, "The synthetic corpus")."""

from __future__ import annotations

import numpy as np
import torch


def frame_pitch(audio: np.ndarray, sr: int = 16000, window: float = 0.04, hop: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame f0 by normalised autocorrelation (70-400 Hz; NaN where unvoiced) and the
    autocorrelation peak (periodicity: lower for breathy voice)."""
    n, h = int(window * sr), int(hop * sr)
    lags = np.arange(sr // 400, sr // 70)
    starts = np.arange(0, len(audio) - n - lags[-1], h)
    frames = np.stack([audio[s : s + n] for s in starts])
    frames = frames - frames.mean(1, keepdims=True)
    energy = (frames**2).sum(1) + 1e-9
    ac = np.stack([(frames * np.stack([audio[s + k : s + k + n] for s in starts])).sum(1) for k in lags], 1)
    shifted_energy = np.stack([(np.stack([audio[s + k : s + k + n] for s in starts]) ** 2).sum(1) for k in lags], 1)
    ac = ac / np.sqrt(energy[:, None] * (shifted_energy + 1e-9))
    # The shortest lag whose local peak comes within 90% of the highest: multiples of the period
    # (subharmonics) peak almost as high and would halve the pitch.
    local = (ac[:, 1:-1] > ac[:, :-2]) & (ac[:, 1:-1] >= ac[:, 2:]) & (ac[:, 1:-1] >= 0.9 * ac.max(1, keepdims=True))
    best = np.where(local.any(1), local.argmax(1) + 1, ac.argmax(1))
    peak = ac[np.arange(len(ac)), best]
    pitch = np.where(peak > 0.5, sr / lags[best], np.nan)
    return pitch, peak


def emotion_features(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Utterance-level audio features that do not depend on loudness or the speaker's own pitch
    level: spectral tilt of the voiced frames and its spread, periodicity (breathiness), pitch range,
    contour and final movement relative to the utterance's median, voicing and pause structure."""
    from scipy.signal import stft

    audio = (audio - audio.mean()) / (audio.std() + 1e-9)
    hop = 160  # 10 ms, as the pitch track
    _, _, spec = stft(audio, sr, nperseg=640, noverlap=640 - hop)
    power = np.abs(spec) ** 2 + 1e-10
    freqs = np.linspace(0, sr / 2, power.shape[0])
    pitch, periodicity = frame_pitch(audio, sr)
    n = min(len(pitch), power.shape[1])
    pitch, periodicity, power = pitch[:n], periodicity[:n], power[:, :n]
    voiced = np.isfinite(pitch)
    energy = np.log(power.sum(0))
    active = energy > energy.max() - 6  # frames within ~26 dB of the loudest
    tilt = np.log(power[(freqs > 2000) & (freqs < 6000)].sum(0) / power[(freqs > 100) & (freqs < 1000)].sum(0))
    tilt_voiced = tilt[voiced] if voiced.sum() > 3 else tilt
    log_f0 = np.log(pitch[voiced]) if voiced.sum() > 3 else np.zeros(4)
    centred = log_f0 - np.median(log_f0)
    last = log_f0[-max(3, len(log_f0) // 8) :]
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, active.astype(int), 0])))[::2]  # lengths of active runs
    track = np.log(np.where(voiced, pitch, np.nan))
    wobble = np.nanmean(np.abs(track[2:] - 2 * track[1:-1] + track[:-2])) if voiced.sum() > 4 else 0.0  # pitch curvature
    voiced_runs = np.diff(np.flatnonzero(np.diff(np.r_[0, voiced.astype(int), 0])))[::2]
    return np.array([
        tilt_voiced.mean(), tilt_voiced.std(), np.nanmean(periodicity[voiced]) if voiced.any() else 0.0,
        centred.std(), np.percentile(centred, 95) - np.percentile(centred, 5), last.mean() - np.median(log_f0),
        np.abs(np.diff(log_f0)).mean() if len(log_f0) > 1 else 0.0,
        voiced.mean(), active.mean(), np.log(runs.mean() + 1), np.log(len(runs) / (len(audio) / sr)),
        np.log(voiced_runs.mean() + 1) if len(voiced_runs) else 0.0, wobble,
    ])  # fmt: skip


def fit_predict(features: np.ndarray, labels: np.ndarray, train: np.ndarray, classes: int, epochs: int = 500) -> np.ndarray:
    """Multinomial logistic regression on the `train` rows (classes weighted to balance them),
    predictions for the others."""
    x = torch.tensor(np.array(features), dtype=torch.float32)
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    x = (x - mean) / std
    y = torch.tensor(labels)
    counts = torch.bincount(y[train], minlength=classes).float()
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (classes * counts.clamp(min=1)))
    for _ in range(epochs):
        optimizer.zero_grad()
        (loss_fn(model(x[train]), y[train]) + 1e-3 * model.weight.pow(2).sum()).backward()
        optimizer.step()
    return model(x[~train]).argmax(1).numpy()


def leave_one_speaker_out(features: np.ndarray, labels: np.ndarray, speakers: np.ndarray, classes: int):
    """Every speaker's clips classified by a model trained on the other speakers' clips: accuracy,
    balanced accuracy (mean recall over classes), the confusion matrix (rows: truth) and the
    predictions."""
    predicted = np.empty_like(labels)
    for speaker in np.unique(speakers):
        held_out = speakers == speaker
        predicted[held_out] = fit_predict(features, labels, ~held_out, classes)
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    recall = confusion.diagonal() / confusion.sum(1).clip(min=1)
    return float((predicted == labels).mean()), float(recall.mean()), confusion, predicted
