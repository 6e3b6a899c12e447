"""The built-in synthetic corpus (`DATA=synth`): procedural speakers, speech and facial motion with a
known deterministic part. Importing this registers its dataset presets."""

from facebench.data.presets import DatasetPreset, RegionSpec, SplitSpec, register_preset, register_provider
from facebench.data.synth.generator import (
    SYNTH_PRESETS,
    TEST_SENTENCES,
    TRAIN_SENTENCES,
    VAL_SENTENCES,
    SynthConfig,
    cached_corpus,
    generate,
    synth_dataset_name,
)
from facebench.data.synth.motion import EMOTIONS
from facebench.data.synth.video import (
    VIDEO_FPS,
    VIDEO_PRESETS,
    VideoConfig,
    cached_video_corpus,
    video_dataset_name,
)


def synth_preset(config: SynthConfig) -> DatasetPreset:
    train = tuple(name for name, seen in config.speakers() if seen)
    unseen = tuple(name for name, seen in config.speakers() if not seen)
    return DatasetPreset(
        name=synth_dataset_name(config.preset),
        fps=config.fps,
        train_subjects=train,
        splits={
            "train": SplitSpec(train, TRAIN_SENTENCES, seen=True),
            "val": SplitSpec(train, VAL_SENTENCES, seen=True),
            "test_seen": SplitSpec(train, TEST_SENTENCES, seen=True),
            "test_unseen": SplitSpec(unseen, TEST_SENTENCES, seen=False),
        },
        test_splits=("test_seen", "test_unseen"),
        regions={k: RegionSpec(f"regions/{k}.txt") for k in ("lve", "fdd", "eve")},
        # Metres, like VOCASET, so the same display scale reads naturally.
        display_scale={"lve": 1e-5, "fdd": 1e-7, "fdd_abs": 1e-7, "eve": 1e-5, "mve": 1e-3},
        unit="m",
        period=int(config.fps),
        duration_tolerance=0.05,
        has_phonemes=True,
        emotions=EMOTIONS,
        intensities=("normal", "strong"),
        source=f"generated on first use into the cache (facebench synth --preset {config.preset})",
    )


def synth_video_preset(config: VideoConfig) -> DatasetPreset:
    """The video corpus: the 3D corpus' speakers and splits, rendered at 25 fps (README, "The video modality")."""
    mesh = synth_preset(SYNTH_PRESETS[config.mesh_preset])
    return DatasetPreset(
        name=video_dataset_name(config.preset), fps=VIDEO_FPS, train_subjects=mesh.train_subjects, splits=mesh.splits,
        test_splits=mesh.test_splits, audio_per_frame=2, period=int(VIDEO_FPS), duration_tolerance=0.1,
        emotions=mesh.emotions, intensities=mesh.intensities, layout="video", modality="video", image_size=config.size,
        source=f"generated on first use into the cache (facebench synth --preset {config.preset})",
    )  # fmt: skip


for _config in SYNTH_PRESETS.values():
    register_preset(synth_preset(_config))
    register_provider(synth_dataset_name(_config.preset), lambda preset=_config.preset: cached_corpus(preset))
for _video in VIDEO_PRESETS.values():
    register_preset(synth_video_preset(_video))
    register_provider(video_dataset_name(_video.preset), lambda preset=_video.preset: cached_video_corpus(preset))

__all__ = ["SYNTH_PRESETS", "VIDEO_PRESETS", "SynthConfig", "cached_corpus", "cached_video_corpus", "generate", "synth_preset"]
