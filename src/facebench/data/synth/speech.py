"""Speech for the synthetic corpus: a phoneme inventory with the visemes each implies, sentences
built from it, and a source-filter (formant) synthesiser in numpy/scipy: glottal pulses for voiced
sounds, shaped noise for fricatives, closures and bursts for plosives, formants scaled by the
speaker's vocal tract, an intonation contour, and a little background noise.

Emotion is heard through cues that survive loudness normalisation and do not depend on the
speaker's own pitch or tract: voice quality (spectral tilt of the glottal source, breathiness),
the pitch range, accent rate and final contour relative to the speaker's own level, vowel
lengthening and the pause structure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Phoneme:
    symbol: str
    kind: str  # silence, vowel, nasal, fricative, plosive, approximant
    viseme: str  # the mouth shape class
    formants: tuple[float, ...] = ()  # Hz, for voiced resonances
    voiced: bool = True
    noise_band: tuple[float, float] | None = None  # Hz, frication or burst band
    mouth: tuple[float, ...] = (0, 0, 0, 0, 0)  # targets of jaw_open, lip_round, lip_spread, lip_press, lip_to_teeth
    dominance: float = 1.0  # coarticulation: how strongly the phoneme holds its mouth shape
    duration: float = 0.09  # seconds at speaking rate 1


INVENTORY: tuple[Phoneme, ...] = (
    Phoneme("sil", "silence", "rest", voiced=False, mouth=(0.05, 0, 0, 0, 0), dominance=0.5, duration=0.16),
    Phoneme("a", "vowel", "open", (750, 1250, 2600), mouth=(1.0, 0, 0.1, 0, 0), duration=0.12),
    Phoneme("e", "vowel", "spread", (480, 1900, 2600), mouth=(0.45, 0, 0.6, 0, 0), duration=0.11),
    Phoneme("i", "vowel", "spread", (300, 2300, 3000), mouth=(0.15, 0, 1.0, 0, 0), duration=0.1),
    Phoneme("o", "vowel", "round", (500, 900, 2500), mouth=(0.55, 0.8, 0, 0, 0), duration=0.12),
    Phoneme("u", "vowel", "round", (320, 800, 2300), mouth=(0.2, 1.0, 0, 0, 0), duration=0.11),
    Phoneme("p", "plosive", "bilabial", voiced=False, noise_band=(400, 1500), mouth=(0, 0, 0, 1.0, 0), dominance=4.0, duration=0.09),
    Phoneme("b", "plosive", "bilabial", (250,), noise_band=(400, 1500), mouth=(0, 0, 0, 1.0, 0), dominance=4.0, duration=0.08),
    Phoneme("m", "nasal", "bilabial", (250, 1100), mouth=(0, 0, 0, 1.0, 0), dominance=4.0, duration=0.09),
    Phoneme("f", "fricative", "labiodental", voiced=False, noise_band=(1200, 7000), mouth=(0.1, 0, 0, 0, 1.0), dominance=3.0, duration=0.1),
    Phoneme("v", "fricative", "labiodental", (250,), noise_band=(1200, 7000), mouth=(0.1, 0, 0, 0, 1.0), dominance=3.0, duration=0.08),
    Phoneme("s", "fricative", "dental", voiced=False, noise_band=(4000, 7500), mouth=(0.12, 0, 0.4, 0, 0), dominance=1.5, duration=0.1),
    Phoneme("z", "fricative", "dental", (250,), noise_band=(4000, 7500), mouth=(0.12, 0, 0.4, 0, 0), dominance=1.5, duration=0.08),
    Phoneme("sh", "fricative", "round", voiced=False, noise_band=(1800, 4200), mouth=(0.15, 0.6, 0, 0, 0), dominance=1.5, duration=0.11),
    Phoneme("t", "plosive", "dental", voiced=False, noise_band=(3000, 6500), mouth=(0.2, 0, 0.2, 0, 0), dominance=0.7, duration=0.08),
    Phoneme("d", "plosive", "dental", (250,), noise_band=(3000, 6500), mouth=(0.2, 0, 0.2, 0, 0), dominance=0.7, duration=0.07),
    Phoneme("k", "plosive", "velar", voiced=False, noise_band=(1500, 3200), mouth=(0.3, 0, 0, 0, 0), dominance=0.5, duration=0.08),
    Phoneme("g", "plosive", "velar", (250,), noise_band=(1500, 3200), mouth=(0.3, 0, 0, 0, 0), dominance=0.5, duration=0.07),
    Phoneme("n", "nasal", "dental", (250, 1700), mouth=(0.15, 0, 0.1, 0, 0), dominance=0.7, duration=0.08),
    Phoneme("l", "approximant", "dental", (350, 1200, 2700), mouth=(0.3, 0, 0.1, 0, 0), dominance=0.6, duration=0.08),
)
PHONEMES = {p.symbol: i for i, p in enumerate(INVENTORY)}
VISEMES = ("rest", "open", "spread", "round", "bilabial", "labiodental", "dental", "velar")
VISEME_OF_PHONEME = np.array([VISEMES.index(p.viseme) for p in INVENTORY])
_VOWELS = [p.symbol for p in INVENTORY if p.kind == "vowel"]
_CONSONANTS = [p.symbol for p in INVENTORY if p.kind not in ("vowel", "silence")]


def make_sentence(rng: np.random.Generator, n_words: int) -> list[list[str]]:
    """Words of CV / CVC syllables."""
    words = []
    for _ in range(n_words):
        word = []
        for _ in range(int(rng.integers(1, 3))):
            word += [str(rng.choice(_CONSONANTS)), str(rng.choice(_VOWELS))]
            if rng.random() < 0.3:
                word.append(str(rng.choice(_CONSONANTS)))
        words.append(word)
    return words


@dataclass(frozen=True)
class Voice:
    f0: float  # Hz
    tract: float  # formant scale: >1 a shorter vocal tract, higher formants
    rate: float  # speaking rate: >1 faster
    pitch_range: float = 1.0
    energy: float = 1.0
    brightness: float = 0.0  # glottal spectral tilt: >0 tense (flatter), <0 lax (steeper)
    breath: float = 0.0  # aspiration noise mixed into voiced sound, relative to the voicing
    vowel_length: float = 1.0  # vowel duration factor
    pause: float = 0.25  # probability of a pause between words
    pause_length: float = 1.0  # pause duration factor
    accents: float = 0.35  # probability of a pitch accent on a vowel
    final_rise: float = 0.0  # pitch change over the last half second, relative to f0 (>0 rising)
    tremor: float = 0.0  # depth of a 5.5 Hz pitch modulation (a laughing voice)

    @property
    def source_pole(self) -> float:
        """Pole of the one-pole low-pass that shapes the glottal pulses: the spectral tilt."""
        return 0.9 - (0.18 if self.brightness >= 0 else 0.07) * self.brightness


@dataclass(frozen=True)
class Segment:
    phoneme: int
    start: float  # seconds
    end: float

    @property
    def center(self) -> float:
        return 0.5 * (self.start + self.end)


def timeline(words: list[list[str]], voice: Voice, rng: np.random.Generator, lead_in: float = 0.15) -> list[Segment]:
    """Phoneme segments with durations from the inventory, the speaking rate and a little jitter."""
    symbols = ["sil"]
    for i, word in enumerate(words):
        symbols += word
        if i < len(words) - 1 and rng.random() < voice.pause:
            symbols.append("sil")  # a pause between words
    symbols.append("sil")
    segments, t = [], 0.0
    for k, symbol in enumerate(symbols):
        phoneme = INVENTORY[PHONEMES[symbol]]
        duration = phoneme.duration / voice.rate * float(rng.uniform(0.85, 1.2))
        if phoneme.kind == "vowel":
            duration *= voice.vowel_length
        elif phoneme.kind == "silence":
            duration *= voice.pause_length
        if k == 0:
            duration = lead_in
        segments.append(Segment(PHONEMES[symbol], t, t + duration))
        t += duration
    return segments


def pitch_track(segments: list[Segment], voice: Voice, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """f0 per sample: a declining sentence contour with accents on some vowels and the voice's
    final rise or fall over the last half second of speech."""
    t = np.arange(n_samples) / SAMPLE_RATE
    total = n_samples / SAMPLE_RATE
    contour = 1 + 0.12 * voice.pitch_range * (1 - 2 * t / total)
    for segment in segments:
        if INVENTORY[segment.phoneme].kind == "vowel" and rng.random() < voice.accents:
            contour += 0.18 * voice.pitch_range * np.exp(-(((t - segment.center) / 0.08) ** 2))
    speech_end = segments[-1].start if INVENTORY[segments[-1].phoneme].kind == "silence" else total
    contour += voice.final_rise * np.clip((t - (speech_end - 0.5)) / 0.5, 0, 1) ** 2
    contour *= 1 + voice.tremor * np.sin(2 * np.pi * 5.5 * t)
    return voice.f0 * np.clip(contour, 0.5, None)


def _resonate(x: np.ndarray, frequency: float, bandwidth: float) -> np.ndarray:
    """A second-order formant resonator with unit gain at DC (Klatt)."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    b1, b2 = 2 * r * np.cos(2 * np.pi * frequency / SAMPLE_RATE), -(r**2)
    return lfilter([1 - b1 - b2], [1, -b1, -b2], x)


def _band_noise(rng: np.random.Generator, n: int, band: tuple[float, float]) -> np.ndarray:
    high = min(band[1], SAMPLE_RATE / 2 * 0.95)
    sos = butter(4, [band[0], high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, rng.normal(size=n))


def _ramp(n: int, fade: int) -> np.ndarray:
    envelope = np.ones(n)
    fade = min(fade, n // 2)
    if fade:
        envelope[:fade] = np.linspace(0, 1, fade)
        envelope[-fade:] = np.linspace(1, 0, fade)
    return envelope


def synthesise(segments: list[Segment], voice: Voice, f0: np.ndarray, rng: np.random.Generator, noise_level: float = 0.003) -> np.ndarray:
    """The waveform of a phoneme timeline with pitch `f0` per sample, float32 in about [-1, 1]."""
    n_samples = len(f0)
    phase = np.cumsum(f0 / SAMPLE_RATE)
    # Glottal source: a pulse each period (the flow derivative), softened by a one-pole low-pass.
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = lfilter([1.0], [1, -voice.source_pole], pulses)
    source -= lfilter([1.0], [1, -0.995], source) * 0.005  # remove the slow drift of the low-pass
    source /= np.abs(source).max() + 1e-9
    # Aspiration: noise through the same resonances, gated by the glottal cycle's open phase.
    aspiration = voice.breath * rng.normal(size=n_samples) * (0.5 + 0.5 * np.cos(2 * np.pi * phase)) * 0.5
    out = np.zeros(n_samples)
    fade = int(0.012 * SAMPLE_RATE)
    for segment in segments:
        phoneme = INVENTORY[segment.phoneme]
        a, b = int(segment.start * SAMPLE_RATE), min(int(segment.end * SAMPLE_RATE), n_samples)
        if b <= a or phoneme.kind == "silence":
            continue
        n = b - a
        piece = np.zeros(n)
        if phoneme.kind in ("vowel", "approximant", "nasal") or (phoneme.voiced and phoneme.formants):
            voiced = source[a:b] + aspiration[a:b]
            gain = {"vowel": 1.0, "approximant": 0.7, "nasal": 0.45}.get(phoneme.kind, 0.25)
            for k, formant in enumerate(phoneme.formants):
                bandwidth = 60 + 40 * k
                piece += gain * _resonate(voiced, formant * voice.tract, bandwidth) / (k + 1)
        if phoneme.kind == "fricative":
            piece += (0.25 if phoneme.symbol in ("f", "v") else 0.6) * _band_noise(rng, n, phoneme.noise_band)
        if phoneme.kind == "plosive":
            closure = int(0.6 * n)
            piece[:closure] *= 0.15  # voice bar only during the closure
            burst = _band_noise(rng, n - closure, phoneme.noise_band) * np.exp(-np.arange(n - closure) / (0.012 * SAMPLE_RATE))
            piece[closure:] += 1.2 * burst
        out[a:b] += piece * _ramp(n, fade)
    peak = np.abs(out).max()
    if peak > 0:
        out = out / peak * 0.3 * voice.energy  # loudness is the voice's, not the phonemes'
    out += rng.normal(scale=noise_level, size=n_samples)
    return out.astype(np.float32)
