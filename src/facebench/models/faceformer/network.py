"""FaceFormer as a plain torch module, following the official code (EvelynFan/FaceFormer
`faceformer.py`): same parameters and names, same outputs for the same weights and inputs.

Additions users need, none of which changes the outputs: batches of clips with different lengths
(the causal bias and the alignment mask already keep each real frame away from padding; the loss is
masked), clips of any length (no 600-frame cap), and incremental decoding, in which each new frame
attends cached keys and values instead of re-running the decoder over the whole past.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facebench.errors import FacebenchError
from facebench.models.components.audio_encoders import AudioEncoder
from facebench.models.components.periodic import (
    PeriodicPositionalEncoding,
    alignment_bias,
    decoder_masks,
)
from facebench.models.components.progress import report_frame

# transformers 4.6.1 (pinned by the official code) saved weight norm's factors under these names.
LEGACY_WEIGHT_NORM = {".weight_g": ".parametrizations.weight.original0", ".weight_v": ".parametrizations.weight.original1"}


class IncrementalDecoder(nn.TransformerDecoder):
    """FaceFormer's decoder, an `nn.TransformerDecoder` of post-norm `nn.TransformerDecoderLayer`s
    (so official weights load as they are), with a `step` that decodes one new frame from cached
    keys and values."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int = 1, feedforward: int | None = None, dropout: float = 0.1):
        layer = nn.TransformerDecoderLayer(d_model, n_heads, feedforward or 2 * d_model, dropout=dropout, batch_first=True)
        super().__init__(layer, num_layers=n_layers)
        self.n_heads = n_heads

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """All frames at once. tgt_mask: (heads, T, T) float, memory_mask: (T, S) bool."""
        # The (heads, T, T) bias is per head; nn.MultiheadAttention wants (batch * heads, T, T).
        return super().forward(tgt, memory, tgt_mask=tgt_mask.repeat(tgt.shape[0], 1, 1), memory_mask=memory_mask)

    # -- incremental decoding --------------------------------------------------------------------

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

    def _attend(self, attn: nn.MultiheadAttention, q, k, v, mask: torch.Tensor) -> torch.Tensor:
        p = attn.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return attn.out_proj(out.transpose(1, 2).flatten(2))

    def start(self, memory: torch.Tensor) -> list[dict]:
        """A cache per layer: the memory's keys and values (computed once), empty self-attention
        ones, and the projections' weights split once per decoding. (Slicing them at every frame
        gave every frame its own slice in the backward pass, each a zero-filled copy of the whole
        weight: most of a training step's small operations. The values are the same.)"""
        cache = []
        for layer in self.layers:
            d = layer.self_attn.embed_dim
            cross_w, cross_b = layer.multihead_attn.in_proj_weight.split(d), layer.multihead_attn.in_proj_bias.split(d)
            cache.append({
                "memory_k": self._heads(F.linear(memory, cross_w[1], cross_b[1])), "memory_v": self._heads(F.linear(memory, cross_w[2], cross_b[2])),
                "k": None, "v": None, "query": (cross_w[0], cross_b[0]),
                "self": tuple(zip(layer.self_attn.in_proj_weight.split(d), layer.self_attn.in_proj_bias.split(d))),
            })  # fmt: skip
        return cache

    def step(self, x: torch.Tensor, cache: list[dict], self_bias: torch.Tensor, memory_bias: torch.Tensor) -> torch.Tensor:
        """Decode one frame. x: (B, 1, d); self_bias: (heads, 1, t+1) row of the bias mask;
        memory_bias: (1, S) row of the alignment mask as an additive bias (`alignment_bias`)."""
        for layer, c in zip(self.layers, cache):
            q, k, v = (self._heads(F.linear(x, w, b)) for w, b in c["self"])
            c["k"] = k if c["k"] is None else torch.cat([c["k"], k], dim=2)
            c["v"] = v if c["v"] is None else torch.cat([c["v"], v], dim=2)
            x = layer.norm1(x + layer.dropout1(self._attend(layer.self_attn, q, c["k"], c["v"], self_bias[None].to(x.dtype))))
            q = self._heads(F.linear(x, *c["query"]))
            x = layer.norm2(x + layer.dropout2(self._attend(layer.multihead_attn, q, c["memory_k"], c["memory_v"], memory_bias.to(x.dtype))))
            x = layer.norm3(x + layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))))
        return x


class FaceFormerNetwork(nn.Module):
    """Audio (B, N) + template + style -> vertex offsets (B, T, V*3).

    Parameter names follow the official model: audio_feature_map, vertice_map, vertice_map_r,
    obj_vector, PPE, transformer_decoder.
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        n_vertices: int,
        n_styles: int,
        feature_dim: int = 64,
        period: int = 30,
        audio_per_frame: int = 1,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.audio_encoder = audio_encoder
        self.audio_per_frame, self.n_heads, self.period = audio_per_frame, n_heads, period
        vertice_dim = 3 * n_vertices
        self.audio_feature_map = nn.Linear(audio_encoder.output_dim, feature_dim)
        self.vertice_map = nn.Linear(vertice_dim, feature_dim)
        self.PPE = PeriodicPositionalEncoding(feature_dim, period, dropout)
        self.transformer_decoder = IncrementalDecoder(feature_dim, n_heads, n_layers, 2 * feature_dim, dropout)
        self.vertice_map_r = nn.Linear(feature_dim, vertice_dim)
        nn.init.constant_(self.vertice_map_r.weight, 0)
        nn.init.constant_(self.vertice_map_r.bias, 0)
        self.obj_vector = nn.Linear(n_styles, feature_dim, bias=False)

    def load_official_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Weights saved by the official code (EvelynFan/FaceFormer `main.py`, `model.state_dict()`),
        through `load_official_weights`; its periodic encoding table `PPE.pe` is a saved buffer
        (ours is derived: checked against it, not loaded)."""
        load_official_weights(self, state_dict, "FaceFormer", {"PPE.pe": lambda table: check_periodic_table(self.PPE, table, "FaceFormer")})

    def encode_audio(self, audio, audio_lengths, frame_lengths) -> torch.Tensor:
        """(B, T * audio_per_frame, feature_dim)."""
        return self.audio_feature_map(self.audio_encoder(audio, audio_lengths, frame_lengths, self.audio_per_frame))

    def masks(self, n_frames: int, n_audio: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        return decoder_masks(self.n_heads, n_frames, n_audio, self.period, self.audio_per_frame, device)

    def style_embedding(self, one_hot: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, d): the style token, plus an extra condition embedding (B, d) where a model adds one."""
        style = self.obj_vector(one_hot)[:, None]
        return style if condition is None else style + condition[:, None]

    def teacher_forced(self, audio_features: torch.Tensor, offsets: torch.Tensor, one_hot: torch.Tensor,
                       condition: torch.Tensor | None = None, first: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """All frames in parallel from the given previous offsets (B, T, V*3): the ground truth's in
        teacher forcing, or any other sequence of inputs. The first frame's input is a zero offset,
        or `first` (B, V*3) where a model conditions on a given first frame."""
        style = self.style_embedding(one_hot, condition)
        start = torch.zeros_like(offsets[:, :1]) if first is None else first[:, None]
        previous = torch.cat([start, offsets[:, :-1]], dim=1)
        tokens = self.PPE(self.vertice_map(previous) + style)
        bias, blocked = self.masks(tokens.shape[1], audio_features.shape[1], tokens.device)
        return self.vertice_map_r(self.transformer_decoder(tokens, audio_features, bias, blocked))

    def begin(self, audio_features: torch.Tensor, n_frames: int) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
        """State of an incremental decoding of n_frames: the memory's cached keys and values, the
        causal bias and the alignment mask as a bias (made once, not at every frame)."""
        bias, blocked = self.masks(n_frames, audio_features.shape[1], audio_features.device)
        return self.transformer_decoder.start(audio_features), bias, alignment_bias(blocked)

    def step(self, token: torch.Tensor, t: int, state: tuple[list[dict], torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Frame t's offsets (B, 1, V*3) from its input token (B, 1, d), incrementally."""
        cache, bias, memory_bias = state
        out = self.transformer_decoder.step(self.PPE(token, start=t), cache, bias[:, t : t + 1, : t + 1], memory_bias[t : t + 1])
        return self.vertice_map_r(out)

    def autoregressive(
        self, audio_features: torch.Tensor, n_frames: int, one_hot: torch.Tensor, incremental: bool = True, detach_feedback: bool = False,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Frame by frame from the style token, each next token the encoding of the last output.

        `incremental=False` re-runs the decoder over the whole past at every frame, as the official
        code does; `True` gives the same frames from cached keys and values. `detach_feedback` stops
        gradients through the fed-back frames, so training does not backpropagate through the unroll.
        """
        style = self.style_embedding(one_hot, condition)
        if not incremental:
            bias, blocked = self.masks(n_frames, audio_features.shape[1], audio_features.device)
            tokens = style
            for t in range(n_frames):
                out = self.transformer_decoder(self.PPE(tokens), audio_features, bias[:, : t + 1, : t + 1], blocked[: t + 1])
                offsets = self.vertice_map_r(out)
                tokens = torch.cat([tokens, self.vertice_map(offsets[:, -1:]) + style], dim=1)
            return offsets
        state = self.begin(audio_features, n_frames)
        token, outputs = style, []
        for t in range(n_frames):
            offset = self.step(token, t, state)
            outputs.append(offset)
            token = self.vertice_map(offset.detach() if detach_feedback else offset) + style
            report_frame(t)
        return torch.cat(outputs, dim=1)


def official_key(key: str, own: dict) -> str:
    """An official checkpoint's key in our naming: the official audio encoder is a Wav2Vec2Model
    subclass stored at `audio_encoder.*` (ours wraps it at `audio_encoder.model.*`), saved with
    transformers 4.6.1, whose weight-normed positional convolution stores `weight_g` / `weight_v`
    (today `parametrizations.weight.original0` / `original1`)."""
    if key.startswith("audio_encoder."):
        key = "audio_encoder.model." + key[len("audio_encoder.") :]
    for legacy, current in LEGACY_WEIGHT_NORM.items():
        if key.endswith(legacy) and key not in own:
            key = key[: -len(legacy)] + current
    return key


def load_official_weights(module: nn.Module, state_dict: dict[str, torch.Tensor], model: str, derived: dict | None = None) -> None:
    """An official checkpoint into `module`, renamed by `official_key`. Keys in `derived` are
    buffers ours computes: each is passed to its check instead of being loaded. Any other
    difference (a missing, unexpected or differently shaped key) is an error naming the keys."""
    derived = derived or {}
    own = module.state_dict()
    renamed = {}
    for key, value in state_dict.items():
        if key in derived:
            derived[key](value)
            continue
        renamed[official_key(key, own)] = value
    # transformers builds masked_spec_embed only when SpecAugment masking is configured; 4.6.1 always did.
    if "audio_encoder.model.masked_spec_embed" not in own:
        renamed.pop("audio_encoder.model.masked_spec_embed", None)
    missing, unexpected = sorted(set(own) - set(renamed)), sorted(set(renamed) - set(own))
    if missing or unexpected:
        raise FacebenchError(f"official {model} checkpoint: expected the official keys of this configuration, "
                             f"found missing {missing[:5]} and unexpected {unexpected[:5]}")  # fmt: skip
    wrong = [k for k, v in renamed.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise FacebenchError(f"official {model} checkpoint: expected shapes {[tuple(own[k].shape) for k in wrong[:3]]} "
                             f"for {wrong[:3]}, found {[tuple(renamed[k].shape) for k in wrong[:3]]}")  # fmt: skip
    module.load_state_dict(renamed, strict=True)


def check_periodic_table(encoding: PeriodicPositionalEncoding, table: torch.Tensor, model: str) -> None:
    """The official table is (1, max_len, d), sinusoids of the period tiled; ours is one period."""
    ours = encoding.pe
    if table.ndim != 3 or table.shape[2] != ours.shape[1] or table.shape[1] < len(ours) or not torch.allclose(table[0, : len(ours)].to(ours), ours, atol=1e-6):
        raise FacebenchError(f"official {model} checkpoint: expected PPE.pe tiling a period of {encoding.period} frames at "
                             f"d={ours.shape[1]} (the dataset's period and feature_dim), found a table of shape {tuple(table.shape)} that differs")  # fmt: skip
