"""CodeTalker as plain torch modules, following the official code (Doubiiu/CodeTalker `models/`):
same parameters and names, so official checkpoints load as they are.

Stage 1, `VQAutoEncoder`: motion offsets (T, V*3) -> a per-frame feature cut into `face_quan_num`
components of `zquant_dim`, each quantised against one shared codebook -> offsets again. Stage 2,
`CodeTalkerNetwork`: FaceFormer's decoder predicts each frame's feature from audio and the frames
before it; the frozen stage-1 quantiser and decoder turn it into motion.

The auto-encoder is not causal (a convolution of width 5 over time, instance normalisation over
the clip, self-attention over all frames): every clip is encoded and decoded on its own, at its
own length, so padded frames of a batch never enter another frame's features.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from facebench.errors import FacebenchError
from facebench.models.components.audio_encoders import AudioEncoder
from facebench.models.components.periodic import PeriodicPositionalEncoding, alignment_bias, decoder_masks
from facebench.models.components.progress import report_frame
from facebench.models.faceformer.network import (
    IncrementalDecoder,
    check_periodic_table,
    load_official_weights,
)

# -- the auto-encoder's transformer (official `models/lib/base_models.py`) ----------------------


class Attention(nn.Module):
    """Multi-head self-attention over all frames; as the official layer, scores are scaled by the
    model width's inverse square root (not the head width's) and the query/key/value map has no bias."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, dim**-0.5
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.to_qkv(x), "b n (qkv h d) -> qkv b h n d", qkv=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.l1, self.l2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(F.gelu(self.l1(x)))


class PreNorm(nn.Module):
    def __init__(self, fn: nn.Module, dim: int):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim, eps=1e-5), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class Transformer(nn.Module):
    """Pre-norm residual blocks of attention then MLP, with no final norm."""

    def __init__(self, dim: int, layers: int, heads: int, hidden: int):
        super().__init__()
        blocks = []
        for _ in range(layers):
            blocks += [Residual(PreNorm(Attention(dim, heads), dim)), Residual(PreNorm(MLP(dim, hidden), dim))]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LinearEmbedding(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self.net = nn.Linear(size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PositionEncoding(nn.Module):
    """Sinusoidal encoding, then dropout. The official layer indexes its table by the first axis of
    batch-first input, i.e. by clip, not by frame: at its batch size of one, every frame gets the
    encoding of position 0. `frame_positions=False` does exactly that for every clip;
    `frame_positions=True` encodes each frame's position. [ours: the switch]"""

    def __init__(self, dim: int, frame_positions: bool = False, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div_term = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div_term), torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)  # derived: an official checkpoint's copy is checked, not loaded
        self.frame_positions = frame_positions
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frame_positions:
            index = torch.arange(x.shape[1], device=x.device) % len(self.pe)
            return self.dropout(x + self.pe[index])
        return self.dropout(x + self.pe[0])


def conv_block(dim: int, negative_slope: float, instance_norm: bool = True) -> nn.Sequential:
    """Width-5 convolution over time (replicate padding), LeakyReLU, instance norm without affine
    (official `quant_factor: 0`: no temporal down-sampling, one token per frame). The instance norm
    removes each channel's mean over the clip, so what is constant through a clip passes only
    through the nonlinearity before it; `instance_norm=False` leaves it out. [ours: the switch]"""
    norm = nn.InstanceNorm1d(dim, affine=False) if instance_norm else nn.Identity()
    return nn.Sequential(nn.Conv1d(dim, dim, 5, padding=2, padding_mode="replicate"), nn.LeakyReLU(negative_slope), norm)


class VQEncoder(nn.Module):
    def __init__(self, in_dim: int, dim: int, layers: int, heads: int, hidden: int, negative_slope: float, code_dim: int | None,
                 frame_positions: bool, instance_norm: bool):  # fmt: skip
        super().__init__()
        self.vertice_mapping = nn.Sequential(nn.Linear(in_dim, dim), nn.LeakyReLU(negative_slope))
        self.squasher = nn.Sequential(conv_block(dim, negative_slope, instance_norm))
        self.encoder_transformer = Transformer(dim, layers, heads, hidden)
        self.encoder_pos_embedding = PositionEncoding(dim, frame_positions)
        self.encoder_linear_embedding = LinearEmbedding(dim, dim)
        if code_dim is not None:  # BIWI's: back to the code width
            self.encoder_linear_embedding_post = LinearEmbedding(dim, code_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, V*3) -> (B, T, code width)."""
        h = self.squasher(self.vertice_mapping(x).transpose(1, 2)).transpose(1, 2)
        h = self.encoder_transformer(self.encoder_pos_embedding(self.encoder_linear_embedding(h)))
        return self.encoder_linear_embedding_post(h) if hasattr(self, "encoder_linear_embedding_post") else h


class VQDecoder(nn.Module):
    def __init__(self, out_dim: int, dim: int, layers: int, heads: int, hidden: int, negative_slope: float, code_dim: int | None,
                 output_bias: bool, frame_positions: bool, instance_norm: bool):  # fmt: skip
        super().__init__()
        self.expander = nn.ModuleList([conv_block(dim, negative_slope, instance_norm)])
        if code_dim is not None:
            self.decoder_linear_embedding_pre = LinearEmbedding(code_dim, dim)
        self.decoder_transformer = Transformer(dim, layers, heads, hidden)
        self.decoder_pos_embedding = PositionEncoding(dim, frame_positions)
        self.decoder_linear_embedding = LinearEmbedding(dim, dim)
        self.vertice_map_reverse = nn.Linear(dim, out_dim, bias=output_bias)

    def forward(self, z: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(B, T, code width) -> (B, T, V*3); `last_only`: the last frame's, (B, 1, V*3) (the
        output map is per frame, so the others need not be mapped)."""
        if hasattr(self, "decoder_linear_embedding_pre"):
            z = self.decoder_linear_embedding_pre(z)
        h = self.expander[0](z.transpose(1, 2)).transpose(1, 2)
        h = self.decoder_transformer(self.decoder_pos_embedding(self.decoder_linear_embedding(h)))
        return self.vertice_map_reverse(h[:, -1:] if last_only else h)


class VectorQuantizer(nn.Module):
    """Nearest codebook entry per vector, straight-through gradients, and the loss
    beta * |z - sg(e)|^2 + |sg(z) - e|^2 (the official taming-style quantiser)."""

    def __init__(self, n_embed: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.beta = beta
        self.embedding = nn.Embedding(n_embed, dim)
        self.embedding.weight.data.uniform_(-1.0 / n_embed, 1.0 / n_embed)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """z (..., dim) -> (quantised, loss, {indices, perplexity})."""
        flat = z.reshape(-1, z.shape[-1])
        codebook = self.embedding.weight
        distance = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.t()
        indices = distance.argmin(1)
        quantised = self.embedding(indices).view_as(z)
        loss = self.beta * (quantised.detach() - z).pow(2).mean() + (quantised - z.detach()).pow(2).mean()
        usage = F.one_hot(indices, len(codebook)).float().mean(0)
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        return z + (quantised - z).detach(), loss, {"indices": indices.view(z.shape[:-1]), "perplexity": perplexity}


class VQAutoEncoder(nn.Module):
    """Stage 1. Parameter names follow the official model: encoder, decoder, quantize."""

    def __init__(self, n_vertices: int, hidden_size: int = 1024, layers: int = 6, heads: int = 8, intermediate_size: int = 1536,
                 face_quan_num: int = 16, zquant_dim: int = 64, n_embed: int = 256, beta: float = 0.25, negative_slope: float = 0.2,
                 code_projection: bool = False, output_bias: bool = True, frame_positions: bool = False,
                 instance_norm: bool = True):  # fmt: skip
        super().__init__()
        code_width = face_quan_num * zquant_dim
        if not code_projection and code_width != hidden_size:
            raise ValueError(f"face_quan_num x zquant_dim: expected {hidden_size} (hidden_size) without code_projection, found {code_width}")
        code_dim = code_width if code_projection else None
        self.face_quan_num, self.zquant_dim = face_quan_num, zquant_dim
        shape = (hidden_size, layers, heads, intermediate_size, negative_slope, code_dim)
        self.encoder = VQEncoder(3 * n_vertices, *shape, frame_positions, instance_norm)
        self.decoder = VQDecoder(3 * n_vertices, *shape, output_bias, frame_positions, instance_norm)
        self.quantize = VectorQuantizer(n_embed, zquant_dim, beta)

    def components(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, H*C) -> (B, T, H, C): a frame's feature as its face components."""
        return features.view(*features.shape[:2], self.face_quan_num, self.zquant_dim)

    def encode(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """One clip's offsets (1, T, V*3) -> quantised features (1, T, H, C), loss, info."""
        return self.quantize(self.components(self.encoder(offsets)))

    def decode(self, quantised: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(1, T, H, C) -> offsets (1, T, V*3), or the last frame's (1, 1, V*3)."""
        return self.decoder(quantised.flatten(2), last_only)

    def forward(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        quantised, loss, info = self.encode(offsets)
        return self.decode(quantised), loss, info

    def position_checks(self, prefix: str = "") -> dict:
        """The official position tables (5000, 1, d), saved buffers: checked against ours, not loaded."""
        encodings = {"encoder": self.encoder.encoder_pos_embedding, "decoder": self.decoder.decoder_pos_embedding}
        return {f"{prefix}{part}.{part}_pos_embedding.pe": partial(check_position_table, encoding) for part, encoding in encodings.items()}

    def load_official_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Stage-1 weights saved by the official code (`main/train_vq.py`: `model.pth.tar`'s `state_dict`)."""
        load_official_weights(self, state_dict, "CodeTalker stage 1", self.position_checks())


def check_position_table(encoding: PositionEncoding, table: torch.Tensor) -> None:
    ours = encoding.pe
    if table.ndim != 3 or table.shape[1] != 1 or table.shape[2] != ours.shape[1] or not torch.allclose(table[: len(ours), 0].to(ours), ours[: len(table)], atol=1e-5):
        raise FacebenchError(f"official CodeTalker checkpoint: expected a sinusoidal position table of shape (5000, 1, {ours.shape[1]}) "
                             f"(the model's hidden_size), found one of shape {tuple(table.shape)} that differs")  # fmt: skip


class CodeTalkerNetwork(nn.Module):
    """Stage 2 around the stage-1 `autoencoder`: audio (B, N) + style -> offsets (B, T, V*3).

    Parameter names follow the official model: audio_encoder, audio_feature_map, vertice_map, PPE,
    transformer_decoder, feat_map, learnable_style_emb, autoencoder."""

    def __init__(self, audio_encoder: AudioEncoder, autoencoder: VQAutoEncoder, n_vertices: int, n_styles: int, feature_dim: int = 1024,
                 period: int = 30, audio_per_frame: int = 1, n_heads: int = 4, n_layers: int = 6, dropout: float = 0.1):  # fmt: skip
        super().__init__()
        self.audio_encoder, self.autoencoder = audio_encoder, autoencoder
        self.audio_per_frame, self.n_heads, self.period = audio_per_frame, n_heads, period
        code_width = autoencoder.face_quan_num * autoencoder.zquant_dim
        self.audio_feature_map = nn.Linear(audio_encoder.output_dim, feature_dim)
        self.vertice_map = nn.Linear(3 * n_vertices, feature_dim)
        self.PPE = PeriodicPositionalEncoding(feature_dim, period, dropout)
        self.transformer_decoder = IncrementalDecoder(feature_dim, n_heads, n_layers, 2 * feature_dim, dropout)
        self.feat_map = nn.Linear(feature_dim, code_width, bias=False)
        nn.init.constant_(self.feat_map.weight, 0)
        self.learnable_style_emb = nn.Embedding(n_styles, feature_dim)

    def load_official_state_dict(self, stage1: dict[str, torch.Tensor], stage2: dict[str, torch.Tensor] | None = None) -> None:
        """Official weights: stage 1's checkpoint (the auto-encoder) and, if given, stage 2's
        (`main/train_pred.py`, saved without the auto-encoder's keys). As FaceFormer's, the audio
        encoder's keys are renamed and the periodic table `PPE.pe` checked, not loaded."""
        if stage2 is None:
            self.autoencoder.load_official_state_dict(stage1)
            return
        state = {**{f"autoencoder.{k}": v for k, v in stage1.items()}, **stage2}
        checks = {"PPE.pe": lambda table: check_periodic_table(self.PPE, table, "CodeTalker"), **self.autoencoder.position_checks("autoencoder.")}
        load_official_weights(self, state, "CodeTalker", checks)

    def encode_audio(self, audio, audio_lengths, frame_lengths) -> torch.Tensor:
        """(B, T * audio_per_frame, feature_dim)."""
        return self.audio_feature_map(self.audio_encoder(audio, audio_lengths, frame_lengths, self.audio_per_frame))

    def style(self, style: torch.Tensor) -> torch.Tensor:
        return self.learnable_style_emb(style)[:, None]

    def teacher_forced(self, audio_features: torch.Tensor, offsets: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Predicted (unquantised) features (B, T, H, C) from the ground truth's previous frames (B, T, V*3)."""
        previous = torch.cat([torch.zeros_like(offsets[:, :1]), offsets[:, :-1]], dim=1)
        tokens = self.PPE(self.vertice_map(previous) + self.style(style))
        bias, blocked = decoder_masks(self.n_heads, tokens.shape[1], audio_features.shape[1], self.period, self.audio_per_frame, tokens.device)
        return self.autoencoder.components(self.feat_map(self.transformer_decoder(tokens, audio_features, bias, blocked)))

    def decode_prefix(self, features: torch.Tensor) -> torch.Tensor:
        """Offsets of the last frame (B, V*3) of a prefix of predicted features (B, t, H, C), as
        the official `predict` feeds it back: the whole prefix decoded again (the decoder is not
        causal), a one-frame prefix doubled first (instance norm needs two frames)."""
        quantised, _, _ = self.autoencoder.quantize(features)
        if quantised.shape[1] == 1:
            return torch.cat([self.autoencoder.decode(q[None].repeat(1, 2, 1, 1))[:, 0] for q in quantised])
        return torch.cat([self.autoencoder.decode(q[None], last_only=True)[:, 0] for q in quantised])

    def autoregressive(self, audio_features: torch.Tensor, n_frames: int, style: torch.Tensor) -> torch.Tensor:
        """Features (B, T, H, C), frame by frame (incremental decoding: the same frames as the
        official re-decoding of the whole past), each next token the motion decoded so far."""
        style = self.style(style)
        bias, blocked = decoder_masks(self.n_heads, n_frames, audio_features.shape[1], self.period, self.audio_per_frame, audio_features.device)
        memory_bias = alignment_bias(blocked)
        cache = self.transformer_decoder.start(audio_features)
        token, features = style, []
        for t in range(n_frames):
            out = self.transformer_decoder.step(self.PPE(token, start=t), cache, bias[:, t : t + 1, : t + 1], memory_bias[t : t + 1])
            features.append(self.autoencoder.components(self.feat_map(out)))
            if t < n_frames - 1:
                token = self.vertice_map(self.decode_prefix(torch.cat(features, dim=1)))[:, None] + style
            report_frame(t)
        return torch.cat(features, dim=1)
