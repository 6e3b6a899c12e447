"""Audio loading, normalisation, frame-rate alignment, and the speech encoders through their real
loading path (tiny checkpoints saved with save_pretrained)."""

import numpy as np
import pytest
import soundfile
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from facebench.data.audio import align_features, load_audio, normalize_audio
from facebench.errors import FacebenchError
from facebench.models.components.audio_encoders import (
    LogMelEncoder,
    PretrainedSpeechEncoder,
    build_audio_encoder,
)


def test_any_rate_and_channels_become_16k_mono(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", stereo, 44100)
    audio = load_audio(tmp_path / "a.wav")
    assert audio.dtype == np.float32 and audio.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) - 440) <= 1  # the tone survives resampling at 1 Hz resolution


def test_normalisation_matches_wav2vec2_processor():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=5000).astype(np.float32)
    expected = Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm([x], attention_mask=None)[0]
    np.testing.assert_allclose(normalize_audio(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(normalize_audio(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_frames", [29, 30, 31, 61])
def test_interpolation_to_30fps_keeps_the_ends(n_frames):
    features = torch.linspace(0, 1, 50)[None, :, None].repeat(1, 1, 2)
    aligned = align_features(features, n_frames, audio_per_frame=1)
    assert aligned.shape == (1, n_frames, 2)
    assert aligned[0, 0, 0] == 0 and torch.isclose(aligned[0, -1, 0], torch.tensor(1.0))


@pytest.mark.parametrize("n_features,n_frames", [(50, 25), (51, 25), (49, 25), (101, 50)])
def test_biwi_pairs_two_audio_frames_per_mesh_frame(n_features, n_frames):
    features = torch.arange(n_features, dtype=torch.float32)[None, :, None]
    aligned = align_features(features, n_frames, audio_per_frame=2)
    assert aligned.shape == (1, 2 * n_frames, 1)
    if n_features >= 2 * n_frames:  # FaceFormer: drop the extra frames at the end
        assert torch.equal(aligned, features[:, : 2 * n_frames])


def _save_tiny(model_class, config_class, config, path):
    model_class(config_class(**config)).save_pretrained(path)
    return path


@pytest.mark.parametrize("kind,classes", [("wav2vec2", (Wav2Vec2Model, Wav2Vec2Config)), ("hubert", (HubertModel, HubertConfig))])
def test_pretrained_encoders_load_from_a_local_checkpoint(tmp_path, tiny_encoder_config, kind, classes):
    path = _save_tiny(*classes, tiny_encoder_config, tmp_path / kind)
    encoder = PretrainedSpeechEncoder(kind, checkpoint=str(path))
    reference = classes[0].from_pretrained(path)
    # The weights are the saved ones, and the convolutional feature extractor is frozen.
    assert torch.equal(encoder.model.encoder.layers[0].attention.k_proj.weight, reference.encoder.layers[0].attention.k_proj.weight)
    assert not any(p.requires_grad for p in encoder.model.feature_extractor.parameters())
    assert all(p.requires_grad for p in encoder.model.encoder.parameters())
    encoder.eval()
    # 30 fps (one feature per frame) and 25 fps (two per frame), odd lengths included.
    audio = torch.randn(3, 16000 * 2)
    audio_lengths = torch.tensor([32000, 16000 * 37 // 30, 16000 * 21 // 25])
    out30 = encoder(audio, audio_lengths, torch.tensor([60, 37, 25]), audio_per_frame=1)
    assert out30.shape == (3, 60, 16)
    out25 = encoder(audio, audio_lengths, torch.tensor([50, 31, 21]), audio_per_frame=2)
    assert out25.shape == (3, 100, 16)
    # A padded clip's features equal the clip encoded alone.
    alone = encoder(audio[1:2, : audio_lengths[1]], audio_lengths[1:2], torch.tensor([37]))
    torch.testing.assert_close(out30[1, :37], alone[0])


def test_missing_checkpoint_says_how_to_provide_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(FacebenchError, match=r"`hf download facebook/wav2vec2-base-960h`.*save_pretrained"):
        PretrainedSpeechEncoder("wav2vec2")


def test_random_weights_from_a_small_config(tiny_encoder_config):
    encoder = build_audio_encoder("hubert", config=tiny_encoder_config)
    assert encoder.output_dim == 16
    assert encoder(torch.randn(1, 8000), torch.tensor([8000]), torch.tensor([15])).shape == (1, 15, 16)


@pytest.mark.parametrize("fps,per_frame", [(30, 1), (25, 2)])
def test_logmel_encoder_frame_counts(fps, per_frame):
    encoder = LogMelEncoder(output_dim=8)
    for n_frames in (1, 7, 30, 45):
        n_samples = n_frames * 16000 // fps
        out = encoder(torch.randn(1, n_samples), torch.tensor([n_samples]), torch.tensor([n_frames]), per_frame)
        assert out.shape == (1, n_frames * per_frame, 8)


def test_unknown_encoder_name():
    with pytest.raises(FacebenchError, match="logmel, wav2vec2 or hubert"):
        build_audio_encoder("whisper")


def speech_like(rate: int, seconds: float = 1.0) -> np.ndarray:
    """A voiced sound: 120 Hz pulses through a 700 Hz resonance, with a slow envelope."""
    t = np.arange(int(rate * seconds)) / rate
    source = (np.sin(2 * np.pi * 120 * t) > 0.95).astype(np.float64)
    signal = np.convolve(source, np.exp(-t[:400] * 300) * np.sin(2 * np.pi * 700 * t[:400]))[: len(t)]
    return (signal * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_reference_resamplers_follow_librosa(tmp_path):
    """`kaiser_best` is resampy's filter (what librosa 0.8.1, pinned by FaceFormer and CodeTalker,
    calls) at librosa's output length; `soxr_hq` is soxr's HQ (librosa >= 0.10). They differ from
    scipy's polyphase filter by well under a percent of the signal, but they do differ."""
    resampy = pytest.importorskip("resampy")
    soxr = pytest.importorskip("soxr")
    samples = speech_like(44100)
    soundfile.write(tmp_path / "a.wav", samples, 44100, subtype="FLOAT")
    ours = {name: load_audio(tmp_path / "a.wav", resampler=name) for name in ("scipy", "kaiser_best", "soxr_hq")}
    assert {len(v) for v in ours.values()} == {int(np.ceil(len(samples) * 16000 / 44100))}
    np.testing.assert_allclose(ours["kaiser_best"][:16000], resampy.resample(samples, 44100, 16000, filter="kaiser_best")[:16000], atol=1e-6)
    np.testing.assert_allclose(ours["soxr_hq"], soxr.resample(samples, 44100, 16000, quality="HQ")[: len(ours["soxr_hq"])], atol=1e-6)
    for name in ("kaiser_best", "soxr_hq"):
        relative = np.linalg.norm(ours[name] - ours["scipy"]) / np.linalg.norm(ours["scipy"])
        assert 1e-5 < relative < 1e-2, (name, relative)


def test_unknown_or_missing_resampler_is_named(tmp_path, monkeypatch):
    soundfile.write(tmp_path / "a.wav", speech_like(22050), 22050)
    with pytest.raises(FacebenchError, match="resampler: expected one of scipy, kaiser_best, soxr_hq, found 'best'"):
        load_audio(tmp_path / "a.wav", resampler="best")
    monkeypatch.setitem(__import__("sys").modules, "resampy", None)  # as if not installed
    with pytest.raises(FacebenchError, match="the 'resampy' package .* not installed"):
        load_audio(tmp_path / "a.wav", resampler="kaiser_best")
