"""GLDiTalker as plain torch modules: a facebench reconstruction from the paper (no public code
exists); every choice and its source is in CARD.md.

Stage 1, `GraphQuantisedAutoEncoder`: each frame's offsets go through a spatial pyramid of spiral
convolutions (`PyramidSpiralEncoder`), the frames through a temporal transformer, and each frame's
feature is cut into `face_quan_num` components quantised against one shared codebook; CodeTalker's
decoder maps the quantised latents back to offsets. Stage 2, `LatentDenoiser`: a transformer that
denoises a clip's latents conditioned on audio, speaker style and the diffusion step, predicting
the clean latents (x0).

Tensors over the mesh are vertex-first, (V, N, C), as the spiral convolutions take them
(facebench.models.components.spiral).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from facebench.models.codetalker.network import PositionEncoding, Transformer, VectorQuantizer, VQDecoder
from facebench.models.components.audio_encoders import AudioEncoder
from facebench.models.components.spiral import SpiralConv, downsample


class PyramidSpiralEncoder(nn.Module):
    """Each frame's offsets (V, N, 3) -> one feature per frame (N, dim).

    One spiral-convolution block (SpiralConv, ELU) per pyramid level, the features down-sampled to
    the next level after each. Every level's features are fused: each level's averaged over its
    vertices, and the coarsest level's kept whole (where each vertex is a region of the face),
    all concatenated and mapped linearly to `dim`.

    With no levels (`level_sizes` the mesh's alone, no `channels`), each frame's offsets are
    mapped linearly to `dim`, as CodeTalker's encoder does (the `no_graph` ablation).

    Args:
        level_sizes: vertices per level, the mesh's first: (V_0, V_1, ..., V_L).
        channels: output channels of each level's block (L values).
        length: spiral length.
    """

    def __init__(self, level_sizes: list[int], channels: list[int], length: int, dim: int, in_channels: int = 3):
        super().__init__()
        if len(channels) != len(level_sizes) - 1:
            raise ValueError(f"channels: expected one per pyramid level ({len(level_sizes) - 1}), found {len(channels)}")
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(SpiralConv(widths[i], widths[i + 1], level_sizes[i], length) for i in range(len(channels)))
        for i, size in enumerate(level_sizes[1:]):
            self.register_buffer(f"kept_{i}", torch.arange(size))  # filled from the mesh pyramid (set_topology)
        self.fuse = nn.Linear(sum(channels) + level_sizes[-1] * widths[-1], dim)  # no levels: the offsets mapped linearly

    def kept(self, level: int) -> torch.Tensor:
        return getattr(self, f"kept_{level}")

    def set_topology(self, spirals: list[torch.Tensor], kept: list[torch.Tensor]) -> None:
        """Each level's spirals and the vertices each down-sampling keeps."""
        for conv, level_spirals in zip(self.convs, spirals, strict=True):
            conv.set_spirals(level_spirals)
        for i, level_kept in enumerate(kept):
            if level_kept.shape != self.kept(i).shape:
                raise ValueError(f"pyramid level {i + 1}: expected {len(self.kept(i))} kept vertices, found {len(level_kept)}")
            self.kept(i).copy_(level_kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for i, conv in enumerate(self.convs):
            x = F.elu(conv(x))
            pooled.append(x.mean(0))
            x = downsample(x, self.kept(i))
        return self.fuse(torch.cat([*pooled, rearrange(x, "v n c -> n (v c)")], dim=-1))


class GraphQuantisedAutoEncoder(nn.Module):
    """Stage 1: one clip's offsets (1, T, V*3) -> quantised latents (1, T, H, C) -> offsets.

    Args:
        level_sizes, channels, spiral_length: the spatial encoder (PyramidSpiralEncoder).
        hidden_size, layers, heads, intermediate_size: the temporal transformers of the encoder and
            the decoder (CodeTalker's blocks).
        face_quan_num, zquant_dim, n_embed, beta: the factorised codebook (CodeTalker's).
        instance_norm: the instance norm after the decoder's convolution (CodeTalker's; it removes
            what is constant through a clip).
    """

    def __init__(self, level_sizes: list[int], channels: list[int], spiral_length: int = 9, hidden_size: int = 1024, layers: int = 6,
                 heads: int = 8, intermediate_size: int = 1536, face_quan_num: int = 16, zquant_dim: int = 64, n_embed: int = 256,
                 beta: float = 0.25, instance_norm: bool = False):  # fmt: skip
        super().__init__()
        self.n_vertices, self.face_quan_num, self.zquant_dim = level_sizes[0], face_quan_num, zquant_dim
        code_width = face_quan_num * zquant_dim
        self.spatial = PyramidSpiralEncoder(level_sizes, channels, spiral_length, hidden_size)
        self.position = PositionEncoding(hidden_size, frame_positions=True)
        self.temporal = Transformer(hidden_size, layers, heads, intermediate_size)
        self.to_code = nn.Linear(hidden_size, code_width)
        self.quantize = VectorQuantizer(n_embed, zquant_dim, beta)
        self.decoder = VQDecoder(3 * self.n_vertices, hidden_size, layers, heads, intermediate_size, 0.2, code_width,
                                 output_bias=True, frame_positions=True, instance_norm=instance_norm)  # fmt: skip

    def components(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, H*C) -> (B, T, H, C)."""
        return features.view(*features.shape[:2], self.face_quan_num, self.zquant_dim)

    def encode_continuous(self, offsets: torch.Tensor) -> torch.Tensor:
        """(1, T, V*3) -> latents before quantisation (1, T, H, C)."""
        frames = rearrange(offsets, "b t (v c) -> v (b t) c", c=3)
        features = rearrange(self.spatial(frames), "(b t) d -> b t d", b=offsets.shape[0])
        return self.components(self.to_code(self.temporal(self.position(features))))

    def encode(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(1, T, V*3) -> quantised latents (1, T, H, C), quantisation loss, {indices, perplexity}."""
        return self.quantize(self.encode_continuous(offsets))

    def decode(self, quantised: torch.Tensor) -> torch.Tensor:
        """(1, T, H, C) -> offsets (1, T, V*3)."""
        return self.decoder(quantised.flatten(2))

    def forward(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        quantised, loss, info = self.encode(offsets)
        return self.decode(quantised), loss, info


class LatentDenoiser(nn.Module):
    """Stage 2's denoiser: noisy latents (B, T, D), the diffusion step (B,), audio aligned to the
    frames (B, T * audio_per_frame, A) and the speaker style (B,) -> the clean latents (B, T, D).

    Each frame's token is the sum of its noisy latent, its audio features, the style's embedding
    and the step's embedding (diffusers' sinusoidal `Timesteps` and `TimestepEmbedding`), with the
    frame's position; a pre-norm transformer encoder attends over the clip's frames (padding
    masked)."""

    def __init__(self, latent_dim: int, audio_dim: int, audio_per_frame: int, n_styles: int, dim: int = 512, layers: int = 6,
                 heads: int = 8, dropout: float = 0.1):  # fmt: skip
        super().__init__()
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps

        self.audio_per_frame = audio_per_frame
        self.latent_in = nn.Linear(latent_dim, dim)
        self.audio_in = nn.Linear(audio_dim * audio_per_frame, dim)
        self.style = nn.Embedding(n_styles, dim)
        self.step_features = Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.step_embedding = TimestepEmbedding(dim, dim)
        self.position = PositionEncoding(dim, frame_positions=True, dropout=dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(dim, latent_dim)

    def forward(self, noisy: torch.Tensor, step: torch.Tensor, audio: torch.Tensor, style: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        audio = rearrange(audio, "b (t k) a -> b t (k a)", k=self.audio_per_frame)
        step = self.step_embedding(self.step_features(step).to(noisy.dtype))
        tokens = self.latent_in(noisy) + self.audio_in(audio) + (self.style(style) + step)[:, None]
        return self.out(self.body(self.position(tokens), src_key_padding_mask=padding))


class GLDiTalkerNetwork(nn.Module):
    """The stage-1 auto-encoder, the audio encoder and the stage-2 denoiser."""

    def __init__(self, autoencoder: GraphQuantisedAutoEncoder, audio_encoder: AudioEncoder, denoiser: LatentDenoiser):
        super().__init__()
        self.autoencoder, self.audio_encoder, self.denoiser = autoencoder, audio_encoder, denoiser
