"""Facial motion for the synthetic corpus, as blendshape weights per frame.

The deterministic part is what a perfect model could infer from the audio: mouth shapes from the
phonemes (viseme targets blended by dominance functions, so neighbours coarticulate), leading the
sound by `lead` seconds; brow movement following pitch accents; blinks at the pauses; and the
emotion's expression (the emotion is heard: see speech.py).
The random part is what no model can know: smooth Gaussian jitter of lips, brows and eyelids and
a Gaussian per-utterance gain on articulation. It is zero-mean and symmetric (jointly Gaussian
given the deterministic part), so the deterministic part minimises every error metric that is
convex and symmetric in the error (LVE, EVE, MVE) in expectation: no constant offset or added
noise beats it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facebench.data.synth.mesh import BLENDSHAPES, MOUTH_SHAPES
from facebench.data.synth.speech import INVENTORY, Segment

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")


@dataclass(frozen=True)
class Articulation:
    """A speaker's articulation style."""

    gains: tuple[float, ...]  # per mouth shape
    spread: float  # coarticulation width factor


@dataclass(frozen=True)
class EmotionStyle:
    """An emotion at full intensity: in the face, and in the voice (as differences from neutral
    speech, scaled by the intensity; see `speech.Voice` for each voice cue)."""

    expression: dict[str, float]  # blendshape offsets
    articulation: float  # mouth amplitude factor
    brow_activity: float  # how much the brows follow pitch accents
    pitch: float  # f0 factor
    pitch_range: float
    tempo: float
    energy: float
    brightness: float = 0.0
    breath: float = 0.0
    vowel_length: float = 1.0
    pause: float = 0.25
    pause_length: float = 1.0
    accents: float = 0.35
    final_rise: float = 0.0
    tremor: float = 0.0


EMOTION_STYLES = {
    "neutral": EmotionStyle({}, 1.0, 0.3, 1.0, 1.0, 1.0, 1.0),
    "happy": EmotionStyle({"smile": 0.8, "brow_raise": 0.2}, 1.1, 0.6, 1.15, 1.8, 1.2, 1.15,
                          brightness=0.5, breath=0.0, vowel_length=0.9, pause=0.05, accents=0.9, final_rise=0.3, tremor=0.07),
    "sad": EmotionStyle({"frown": 0.7, "brow_raise": 0.25, "jaw_open": -0.05}, 0.75, 0.2, 0.88, 0.3, 0.75, 0.7,
                        brightness=-1.0, breath=0.8, vowel_length=1.4, pause=0.9, pause_length=2.0, accents=0.05, final_rise=-0.15),
    "angry": EmotionStyle({"brow_lower": 0.9, "lip_press": 0.15}, 1.2, 0.8, 1.1, 1.4, 1.15, 1.4,
                          brightness=1.5, vowel_length=0.8, pause=0.1, accents=0.95, final_rise=-0.3),
    "surprised": EmotionStyle({"brow_raise": 1.0, "jaw_open": 0.15}, 1.15, 1.0, 1.25, 2.6, 0.85, 1.2,
                              brightness=-0.2, breath=0.5, vowel_length=1.6, pause=0.4, accents=0.4, final_rise=0.8),
}  # fmt: skip
INTENSITY_SCALE = (0.7, 1.0)  # normal, strong


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    return np.arange(n_frames) / fps


def mouth_weights(segments: list[Segment], times: np.ndarray, articulation: Articulation, lead: float) -> np.ndarray:
    """(T, 5) mouth-shape weights: dominance-weighted blend of viseme targets, `lead` s ahead of the sound."""
    targets = np.array([INVENTORY[s.phoneme].mouth for s in segments])  # (S, 5)
    centers = np.array([s.center for s in segments])
    widths = np.array([0.5 * (s.end - s.start) * articulation.spread + 0.015 for s in segments])
    dominance = np.array([INVENTORY[s.phoneme].dominance for s in segments])
    at = times[:, None] + lead  # the mouth shows now what is heard `lead` seconds later
    kernel = dominance * np.exp(-(((at - centers) / widths) ** 2)) + 1e-9
    blended = kernel @ targets / kernel.sum(1, keepdims=True)
    return blended * np.asarray(articulation.gains)


def brow_weights(segments: list[Segment], f0: np.ndarray, times: np.ndarray, sample_rate: int, activity: float, lead: float) -> np.ndarray:
    """(T,) brow raise following pitch above the clip's mean on voiced sound, `lead` ahead."""
    voiced = np.zeros(len(f0), dtype=bool)
    for s in segments:
        if INVENTORY[s.phoneme].kind in ("vowel", "nasal", "approximant"):
            voiced[int(s.start * sample_rate) : int(s.end * sample_rate)] = True
    if not voiced.any():
        return np.zeros(len(times))
    mean = f0[voiced].mean()
    prominence = np.where(voiced, np.clip(f0 / mean - 1, 0, None), 0.0)
    idx = np.clip(((times + lead) * sample_rate).astype(int), 0, len(f0) - 1)
    window = int(0.05 * sample_rate)
    smoothed = np.convolve(prominence, np.ones(window) / window, mode="same")
    return activity * 2.0 * smoothed[idx]


def deterministic_weights(
    segments: list[Segment], f0: np.ndarray, n_frames: int, fps: float, sample_rate: int,
    articulation: Articulation, emotion: str, intensity: int, lead: float,
) -> np.ndarray:  # fmt: skip
    """(T, K) weights of all blendshapes for the part of the motion the audio determines."""
    style = EMOTION_STYLES[emotion]
    scale = INTENSITY_SCALE[intensity]
    times = frame_times(n_frames, fps)
    weights = np.zeros((n_frames, len(BLENDSHAPES)))
    amplitude = 1 + (style.articulation - 1) * scale
    weights[:, : len(MOUTH_SHAPES)] = mouth_weights(segments, times, articulation, lead) * amplitude
    weights[:, BLENDSHAPES.index("brow_raise")] += brow_weights(segments, f0, times, sample_rate, style.brow_activity * (0.5 + scale), lead)
    onset = np.clip(times / 0.3, 0, 1)  # expressions build up over the first 0.3 s
    for name, value in style.expression.items():
        weights[:, BLENDSHAPES.index(name)] += value * scale * onset
    weights[:, BLENDSHAPES.index("blink")] += blink_weights(segments, times, lead)
    return weights


def blink_weights(segments: list[Segment], times: np.ndarray, lead: float) -> np.ndarray:
    """(T,) a blink at the middle of every pause after speech begins (people blink at phrase
    boundaries), `lead` ahead like the rest of the face: timed by what is heard."""
    weights = np.zeros(len(times))
    for segment in segments[1:]:
        if INVENTORY[segment.phoneme].kind == "silence":
            weights += np.exp(-(((times + lead - segment.center) / 0.06) ** 2))
    return np.minimum(weights, 1.0)


def _smooth_noise(rng: np.random.Generator, n: int, fps: float, scale: float, width: float = 0.12) -> np.ndarray:
    sigma = max(width * fps, 1.0)
    kernel = np.exp(-0.5 * (np.arange(-3 * sigma, 3 * sigma + 1) / sigma) ** 2)
    kernel /= np.sqrt((kernel**2).sum())
    return scale * np.convolve(rng.normal(size=n + len(kernel)), kernel, mode="same")[len(kernel) // 2 : len(kernel) // 2 + n]


def random_weights(rng: np.random.Generator, deterministic: np.ndarray, fps: float, params: RandomMotion) -> np.ndarray:
    """(T, K) weights of the unpredictable part: zero-mean Gaussian (see the module docstring)."""
    n = len(deterministic)
    weights = np.zeros_like(deterministic)
    mouth = slice(0, len(MOUTH_SHAPES))
    gain = rng.normal(0, params.utterance_gain)
    weights[:, mouth] += gain * deterministic[:, mouth]
    for k in range(len(MOUTH_SHAPES)):
        weights[:, k] += _smooth_noise(rng, n, fps, params.lip_jitter)
    weights[:, BLENDSHAPES.index("brow_raise")] += _smooth_noise(rng, n, fps, params.brow_jitter, width=0.25)
    weights[:, BLENDSHAPES.index("blink")] += _smooth_noise(rng, n, fps, params.eyelid_jitter, width=0.2)
    return weights


@dataclass(frozen=True)
class RandomMotion:
    lip_jitter: float = 0.04  # blendshape weight units
    brow_jitter: float = 0.08
    eyelid_jitter: float = 0.05
    utterance_gain: float = 0.06  # std of the per-utterance articulation gain
