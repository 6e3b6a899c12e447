"""Speech encoders shared by every model: pretrained wav2vec2 / HuBERT through transformers (or the
same architectures at a small size with random weights), and a fast log-mel front end for CPU runs.

Every encoder maps a padded batch of 16 kHz audio to features aligned to the mesh frames:
(B, T * audio_per_frame, output_dim). Clips are encoded one at a time, so padding never changes a
clip's features (wav2vec2-base uses group norm over time, which padding would shift).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from facebench.data.audio import SAMPLE_RATE, align_features
from facebench.errors import FacebenchError

PRETRAINED_NAMES = {"wav2vec2": "facebook/wav2vec2-base-960h", "hubert": "facebook/hubert-base-ls960"}


class AudioEncoder(nn.Module):
    """Base: subclasses implement `encode_clip` (1, N) -> (1, F, C) at about 50 Hz, or override
    `encode_aligned` to align at another depth."""

    output_dim: int

    def encode_clip(self, audio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_aligned(self, audio: torch.Tensor, n_frames: int, audio_per_frame: int) -> torch.Tensor:
        """(1, N) audio -> (1, n_frames * audio_per_frame, C)."""
        return align_features(self.encode_clip(audio), n_frames, audio_per_frame)

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, audio_per_frame: int = 1
    ) -> torch.Tensor:
        aligned = []
        for clip, n_samples, n_frames in zip(audio, audio_lengths.tolist(), frame_lengths.tolist()):
            aligned.append(self.encode_aligned(clip[None, :n_samples], n_frames, audio_per_frame)[0])
        return pad_sequence(aligned, batch_first=True)


class PretrainedSpeechEncoder(AudioEncoder):
    """wav2vec2 or HuBERT from transformers, with the convolutional feature extractor frozen (FaceFormer).

    Args:
        kind: "wav2vec2" or "hubert".
        checkpoint: a local folder or a hub name found in the HF cache; default the base model of `kind`.
        config: instead of a checkpoint, build the architecture from these config fields with random
            weights (tests and the synthetic corpus).
        trainable: False freezes the whole encoder, not only the feature extractor.
    """

    def __init__(self, kind: str = "wav2vec2", checkpoint: str | None = None, config: dict | None = None, trainable: bool = True):
        super().__init__()
        from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

        classes = {"wav2vec2": (Wav2Vec2Model, Wav2Vec2Config), "hubert": (HubertModel, HubertConfig)}
        if kind not in classes:
            raise FacebenchError(f"audio encoder kind: expected one of {sorted(classes)}, found '{kind}'")
        model_class, config_class = classes[kind]
        if config is not None:
            self.model = model_class(config_class(**config))
        else:
            self.model = load_pretrained(model_class, checkpoint or PRETRAINED_NAMES[kind])
        self.model.feature_extractor._freeze_parameters()  # as FaceFormer: the CNN stays frozen
        if not trainable:
            self.model.requires_grad_(False)
        self.output_dim = self.model.config.hidden_size

    def encode_clip(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio).last_hidden_state

    # Longer inputs (minutes: `facebench animate`) go through the transformer in windows of this many
    # aligned frames with `WINDOW_CONTEXT` frames of context on each side; the benchmarks' clips are
    # far shorter and are encoded whole. [ours]
    WINDOW, WINDOW_CONTEXT = 1200, 150

    def encode_aligned(self, audio: torch.Tensor, n_frames: int, audio_per_frame: int) -> torch.Tensor:
        """As FaceFormer: the CNN features are aligned to the mesh frames before the projection and
        the transformer layers, so the transformer runs at the mesh rate (x audio_per_frame)."""
        model = self.model
        features = align_features(model.feature_extractor(audio).transpose(1, 2), n_frames, audio_per_frame)
        projected = model.feature_projection(features)
        hidden = projected[0] if isinstance(projected, tuple) else projected  # wav2vec2 returns a pair
        hidden = model._mask_hidden_states(hidden)  # SpecAugment masking in train mode, as upstream
        if hidden.shape[1] <= self.WINDOW + 2 * self.WINDOW_CONTEXT:
            return model.encoder(hidden)[0]
        pieces = []
        for start in range(0, hidden.shape[1], self.WINDOW):
            low, high = max(start - self.WINDOW_CONTEXT, 0), min(start + self.WINDOW + self.WINDOW_CONTEXT, hidden.shape[1])
            encoded = model.encoder(hidden[:, low:high])[0]
            pieces.append(encoded[:, start - low : start - low + min(self.WINDOW, hidden.shape[1] - start)])
        return torch.cat(pieces, dim=1)


def load_pretrained(model_class, name_or_path: str):
    """`from_pretrained` from a local folder or the HF cache, with a clear message when offline."""
    local = Path(name_or_path).expanduser()
    try:
        if local.exists():
            return model_class.from_pretrained(str(local))
        return model_class.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise FacebenchError(
            f"audio encoder checkpoint '{name_or_path}': expected a local folder with config.json and weights, "
            f"or the model in the Hugging Face cache; found neither ({type(exc).__name__}). This machine has "
            "no access to the hub at run time: on a machine with internet run "
            f"`hf download {name_or_path}` and copy the cache (HF_HOME), or save the model with "
            "`save_pretrained(DIR)` and pass DIR as the checkpoint; or use the `logmel` encoder."
        ) from exc


class LogMelSpectrogram(nn.Module):
    """Log-mel spectrogram at 50 Hz (25 ms window, 20 ms hop), each band normalised over the clip so
    loudness does not matter: (1, N) audio -> (1, n_mels, F). No learned parameters."""

    def __init__(self, n_mels: int = 40):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        self.n_fft, self.hop, self.n_mels = 400, SAMPLE_RATE // 50, n_mels
        bank = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=50.0,
            max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney",
        )  # fmt: skip
        self.register_buffer("mel_bank", torch.as_tensor(bank, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, self.n_fft, self.hop, window=self.window, return_complex=True).abs() ** 2
        mel = torch.log(torch.einsum("fm,bft->bmt", self.mel_bank, spec) + 1e-6)
        return (mel - mel.mean(dim=-1, keepdim=True)) / (mel.std(dim=-1, keepdim=True) + 1e-5)


class LogMelEncoder(AudioEncoder):
    """A log-mel spectrogram (`LogMelSpectrogram`) and a small 1-D convolutional stack.

    The convolutions are dilated (1, 2, 4, ...) so a few layers see about a second of speech:
    FaceFormer's decoder attends only the audio frame aligned with each mesh frame, so all the
    context of coarticulation has to come from the encoder, as wav2vec2's transformer gives it.
    A final LayerNorm gives the features wav2vec2's output statistics (O(1) per dimension); without
    it, a post-norm decoder that adds them to its token embeddings barely hears them for hundreds
    of steps (measured: FaceFormer stayed at half the template's error for 12 epochs of `small`).
    """

    def __init__(self, output_dim: int = 64, n_mels: int = 40, layers: int = 4, kernel_size: int = 5):
        super().__init__()
        self.spectrogram = LogMelSpectrogram(n_mels)
        blocks, width = [], n_mels
        for i in range(layers):
            dilation = 2**i
            blocks += [nn.Conv1d(width, output_dim, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation), nn.GELU()]
            width = output_dim
        self.convs = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(output_dim)
        self.output_dim = output_dim

    def encode_clip(self, audio: torch.Tensor) -> torch.Tensor:
        return self.norm(self.convs(self.spectrogram(audio)).transpose(1, 2))


def build_audio_encoder(name: str = "logmel", **kwargs) -> AudioEncoder:
    """By name: `logmel`, `wav2vec2`, `hubert` (kwargs go to the class)."""
    if name == "logmel":
        return LogMelEncoder(**kwargs)
    if name in PRETRAINED_NAMES:
        return PretrainedSpeechEncoder(kind=name, **kwargs)
    raise FacebenchError(f"audio encoder: expected logmel, wav2vec2 or hubert, found '{name}'")
