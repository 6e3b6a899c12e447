"""The synthetic talking-face corpus: speakers, sentences, audio and motion, written in the
FaceFormer format with everything needed to know its noise floor.

    facebench synth --preset small --out DIR

Every random draw comes from a generator seeded by (corpus seed, purpose, speaker, sentence), so
the same seed and preset give byte-identical files whatever the order of generation.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from rich.progress import track

from facebench.data.synth.mesh import BLENDSHAPES, build_face, identity_shape
from facebench.data.synth.motion import (
    EMOTION_STYLES,
    EMOTIONS,
    INTENSITY_SCALE,
    Articulation,
    RandomMotion,
    deterministic_weights,
    random_weights,
)
from facebench.data.synth.speech import (
    INVENTORY,
    SAMPLE_RATE,
    VISEME_OF_PHONEME,
    VISEMES,
    Voice,
    make_sentence,
    pitch_track,
    synthesise,
    timeline,
)
from facebench.storage import stored_once

VERSION = "3"  # bump on any change to what the generator writes: the cache is keyed by it
TRAIN_SENTENCES, VAL_SENTENCES, TEST_SENTENCES = (1, 32), (33, 36), (37, 40)
REGION_FILES = ("lve", "fdd", "eve")


@dataclass(frozen=True)
class SynthConfig:
    """Every parameter of a corpus; all of it goes into card.json."""

    preset: str
    n_vertices: int
    train_speakers: int
    unseen_speakers: int
    words: tuple[int, int]  # words per sentence, inclusive range
    fps: float = 30.0
    lead: float = 0.04  # seconds the mouth leads the sound
    emotion_share: float = 0.5  # share of clips with an emotion other than neutral
    noise_level: float = 0.003  # background noise in the audio
    identity_amplitude: float = 0.0015  # metres per deformation mode (7 smooth modes)
    random: RandomMotion = field(default_factory=RandomMotion)

    def speakers(self) -> list[tuple[str, bool]]:
        train = [(f"S{i + 1:02d}", True) for i in range(self.train_speakers)]
        return train + [(f"U{i + 1:02d}", False) for i in range(self.unseen_speakers)]


SYNTH_PRESETS = {
    "tiny": SynthConfig("tiny", n_vertices=300, train_speakers=4, unseen_speakers=2, words=(2, 3)),
    "small": SynthConfig("small", n_vertices=1000, train_speakers=8, unseen_speakers=2, words=(3, 6)),
    "vocaset": SynthConfig("vocaset", n_vertices=5023, train_speakers=8, unseen_speakers=4, words=(5, 9)),
}


@dataclass(frozen=True)
class Speaker:
    name: str
    seen: bool
    template: np.ndarray
    scale: float
    voice: Voice
    articulation: Articulation

    def card(self) -> dict:
        return {"name": self.name, "seen": self.seen, "scale": self.scale, "voice": asdict(self.voice), "articulation": asdict(self.articulation)}


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def make_speaker(config: SynthConfig, face, index: int, name: str, seen: bool, seed: int) -> Speaker:
    rng = _rng(seed, 2, index)
    template, scale = identity_shape(face, rng, config.identity_amplitude)
    voice = Voice(f0=float(rng.uniform(95, 230)), tract=float(rng.uniform(0.85, 1.2)), rate=float(rng.uniform(0.9, 1.12)))
    articulation = Articulation(gains=tuple(float(g) for g in rng.uniform(0.7, 1.3, size=5)), spread=float(rng.uniform(0.8, 1.25)))
    return Speaker(name, seen, template, scale, voice, articulation)


def content_of(sentence: int) -> int:
    """The text a sentence number speaks. Training sentences come in pairs of takes of one text
    (1 and 2, 3 and 4, ...) in two different emotions, as RAVDESS records each statement in every
    emotion: what cross-reconstruction (EmoFace) trains on. Validation and test sentences are
    distinct texts."""
    return (sentence + 1) // 2 if sentence <= TRAIN_SENTENCES[1] else sentence


def sentence_words(config: SynthConfig, sentence: int, seed: int) -> list[list[str]]:
    """The text of a sentence number: the same for every speaker, as in VOCASET and BIWI."""
    rng = _rng(seed, 0, content_of(sentence))
    return make_sentence(rng, int(rng.integers(config.words[0], config.words[1] + 1)))


def take_emotion(config: SynthConfig, speaker_index: int, sentence: int, seed: int) -> tuple[int, int]:
    """(emotion, intensity) of a take: drawn with `emotion_share` non-neutral; the second take of a
    training pair always in another emotion than the first."""
    rng = _rng(seed, 3, speaker_index, sentence)
    paired = sentence <= TRAIN_SENTENCES[1] and sentence % 2 == 0
    if paired:
        first, _ = take_emotion(config, speaker_index, sentence - 1, seed)
        emotion = int(rng.choice([e for e in range(len(EMOTIONS)) if e != first]))
    else:
        emotion = 0 if rng.random() >= config.emotion_share else int(rng.integers(1, len(EMOTIONS)))
    return emotion, 0 if emotion == 0 else int(rng.integers(0, len(INTENSITY_SCALE)))


@dataclass
class Clip:
    name: str
    speaker: str
    sentence: int
    emotion: int
    intensity: int
    text: str
    phoneme_string: str
    audio: np.ndarray
    vertices: np.ndarray  # (T, V, 3)
    deterministic: np.ndarray  # (T, V, 3)
    deterministic_weights: np.ndarray  # (T, K): deterministic = template + weights @ blendshapes
    protocol_weights: np.ndarray  # (C, T, K): the protocol oracle, one per condition (see make_clip)
    phonemes: np.ndarray  # (T,) the phoneme heard at each frame


def emotional_voice(base: Voice, emotion: int, intensity: int) -> Voice:
    """The speaker's voice under an emotion: every cue moved from neutral by the intensity's share."""
    style, neutral, scale = EMOTION_STYLES[EMOTIONS[emotion]], EMOTION_STYLES["neutral"], INTENSITY_SCALE[intensity]
    toward = lambda cue: getattr(neutral, cue) + (getattr(style, cue) - getattr(neutral, cue)) * scale  # noqa: E731
    return Voice(
        f0=base.f0 * toward("pitch"), tract=base.tract, rate=base.rate * toward("tempo"), pitch_range=toward("pitch_range"),
        energy=toward("energy"), brightness=toward("brightness"), breath=toward("breath"), vowel_length=toward("vowel_length"),
        pause=toward("pause"), pause_length=toward("pause_length"), accents=toward("accents"), final_rise=toward("final_rise"),
        tremor=toward("tremor"),
    )  # fmt: skip


def make_clip(config: SynthConfig, face, speaker: Speaker, speaker_index: int, sentence: int, seed: int,
              conditions: list[Articulation] | None = None, shown_emotion: tuple[int, int] | None = None) -> Clip:  # fmt: skip
    """One clip. `conditions`: the articulation styles the protocol conditions this speaker on
    (training speakers' for an unseen one; default its own), for the protocol oracle.
    `shown_emotion`: (emotion, intensity) the motion shows instead of the one spoken, for analyses
    of what knowing the emotion is worth (the audio is unchanged)."""
    rng = _rng(seed, 1, speaker_index, sentence)
    emotion, intensity = take_emotion(config, speaker_index, sentence, seed)
    voice = emotional_voice(speaker.voice, emotion, intensity)
    words = sentence_words(config, sentence, seed)
    segments = timeline(words, voice, rng)
    n_frames = math.ceil(segments[-1].end * config.fps)
    n_samples = round(n_frames / config.fps * SAMPLE_RATE)
    f0 = pitch_track(segments, voice, n_samples, rng)
    audio = synthesise(segments, voice, f0, rng, config.noise_level)
    shown, shown_intensity = shown_emotion or (emotion, intensity)
    weights_with = lambda articulation: deterministic_weights(  # noqa: E731
        segments, f0, n_frames, config.fps, SAMPLE_RATE, articulation, EMOTIONS[shown], shown_intensity, config.lead)
    weights = weights_with(speaker.articulation)
    protocol = np.stack([weights_with(a) for a in conditions]) if conditions else weights[None]
    noise = random_weights(rng, weights, config.fps, config.random)
    basis = face.blendshapes * speaker.scale
    deterministic = speaker.template + np.einsum("tk,kvc->tvc", weights, basis)
    vertices = deterministic + np.einsum("tk,kvc->tvc", noise, basis)
    times = np.arange(n_frames) / config.fps
    ends = np.array([s.end for s in segments])
    phonemes = np.array([segments[min(i, len(segments) - 1)].phoneme for i in np.searchsorted(ends, times, side="right")])
    symbols = [INVENTORY[s.phoneme].symbol for s in segments]
    return Clip(
        name=f"{speaker.name}_s{sentence:02d}",
        speaker=speaker.name,
        sentence=sentence,
        emotion=emotion,
        intensity=intensity,
        text=" ".join("".join(w) for w in words),
        phoneme_string=" ".join(symbols),
        audio=audio,
        vertices=vertices.astype(np.float32),
        deterministic=deterministic.astype(np.float32),
        deterministic_weights=(weights * speaker.scale).astype(np.float32),
        protocol_weights=(protocol * speaker.scale).astype(np.float32),
        phonemes=phonemes.astype(np.int64),
    )


def sentences_of(seen: bool) -> range:
    first = TRAIN_SENTENCES[0] if seen else TEST_SENTENCES[0]
    return range(first, TEST_SENTENCES[1] + 1)


def generate(config: SynthConfig, out: str | Path, seed: int = 0, progress: bool = True) -> Path:
    """Write the corpus into `out` (created; must not hold files already)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: expected an empty or new folder for the corpus, found files")
    for sub in ("wav", "vertices_npy", "deterministic", "protocol_oracle", "phonemes", "regions"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    face = build_face(config.n_vertices)
    speakers = [make_speaker(config, face, i, name, seen, seed) for i, (name, seen) in enumerate(config.speakers())]
    training_styles = [s.articulation for s in speakers if s.seen]
    jobs = [(i, s, n) for i, s in enumerate(speakers) for n in sentences_of(s.seen)]
    rows = []
    for index, speaker, sentence in track(jobs, description=f"synth {config.preset}", disable=not progress):
        clip = make_clip(config, face, speaker, index, sentence, seed, conditions=None if speaker.seen else training_styles)
        # 16-bit PCM like the real sets; float WAVs would carry a timestamped PEAK chunk.
        soundfile.write(out / "wav" / f"{clip.name}.wav", clip.audio, SAMPLE_RATE, subtype="PCM_16")
        np.save(out / "vertices_npy" / f"{clip.name}.npy", clip.vertices.reshape(len(clip.vertices), -1))
        # The deterministic part as blendshape weights: 10 numbers a frame instead of 3V.
        np.save(out / "deterministic" / f"{clip.name}.npy", clip.deterministic_weights)
        # The protocol oracle: the same under each condition the protocol gives (C = 1 for a seen speaker).
        np.save(out / "protocol_oracle" / f"{clip.name}.npy", clip.protocol_weights)
        np.save(out / "phonemes" / f"{clip.name}.npy", clip.phonemes)
        rows.append({
            "name": clip.name, "subject": clip.speaker, "sentence": clip.sentence, "content": content_of(clip.sentence), "emotion": clip.emotion,
            "emotion_name": EMOTIONS[clip.emotion], "intensity": clip.intensity,
            "duration": round(len(clip.audio) / SAMPLE_RATE, 4), "frames": len(clip.vertices),
            "text": clip.text, "phonemes": clip.phoneme_string,
        })  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "metadata.csv", index=False)
    with open(out / "templates.pkl", "wb") as f:
        pickle.dump({s.name: s.template for s in speakers}, f, protocol=4)
    np.save(out / "faces.npy", face.faces)
    np.save(out / "blendshapes.npy", face.blendshapes)
    for name, indices in face.regions.items():
        (out / "regions" / f"{name}.txt").write_text(", ".join(map(str, indices.tolist())))
    card = {
        "generator": "facebench.data.synth",
        "version": VERSION,
        "seed": seed,
        "config": asdict(config),
        "n_vertices": face.n_vertices,
        "blendshapes": list(BLENDSHAPES),
        "emotions": list(EMOTIONS),
        "intensities": ["normal", "strong"],
        "phonemes": [p.symbol for p in INVENTORY],
        "visemes": list(VISEMES),
        "viseme_of_phoneme": VISEME_OF_PHONEME.tolist(),
        "splits": {"train": TRAIN_SENTENCES, "val": VAL_SENTENCES, "test_seen": TEST_SENTENCES, "test_unseen": TEST_SENTENCES},
        "speakers": [s.card() for s in speakers],
    }
    (out / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True))
    return out


def cache_root() -> Path:
    return Path(os.environ.get("FACEBENCH_CACHE", Path.home() / ".cache" / "facebench"))


def cached_corpus(preset: str = "small", seed: int = 0, progress: bool = True) -> Path:
    """The corpus folder in the cache, made once and whole (`storage.stored_once`), with its anchors' scores."""
    from facebench.data.synth.anchors import write_anchors

    def make(scratch: Path) -> None:
        generate(SYNTH_PRESETS[preset], scratch, seed, progress)
        write_anchors(scratch, synth_dataset_name(preset))

    # Generation shows its own progress, so stored_once says nothing.
    return stored_once(cache_root() / "synth" / f"v{VERSION}-{preset}-seed{seed}", f"the {preset} corpus", make, announce=False)


def synth_dataset_name(preset: str) -> str:
    return "synth" if preset == "small" else f"synth-{preset}"
