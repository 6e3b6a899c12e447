"""EmoFace as plain torch modules (Lin et al., arXiv 2408.11518; no public code): a content branch
and an emotion branch, each a FaceFormer decoder over its own audio encoder (FaceFormer's network,
reused), fused per vertex and frame by Mesh Attention. Sources of every part: CARD.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facebench.models.components.audio_encoders import AudioEncoder
from facebench.models.components.progress import report_frame
from facebench.models.components.spiral import SpiralConv3D
from facebench.models.faceformer.network import FaceFormerNetwork

FUSIONS = ("mesh_attention", "add")


class MeshAttention(nn.Module):
    """The emotion branch's weight per vertex and frame, in [0, 1] (EmoFace §3.2): both audio streams
    through MLPs to a quarter of their width, concatenated and mapped to `hidden` channels, summed
    with a learned vertex position embedding (broadcast to vertices x frames), then SpiralConv3D
    layers (spiral neighbours x the past frames, causal) and a one-channel sigmoid head. It depends
    on the audio alone, so it is computed once per clip, before decoding."""

    def __init__(self, content_dim: int, emotion_dim: int, n_vertices: int, hidden: int = 16, spiral_length: int = 9,
                 frames: int = 4, layers: int = 2, chunk_frames: int | None = None):  # fmt: skip
        super().__init__()
        if layers < 1:
            raise ValueError(f"attention_layers: expected at least 1 SpiralConv3D layer, found {layers}")
        self.content_mlp = nn.Sequential(nn.Linear(content_dim, max(content_dim // 4, 1)), nn.GELU())
        self.emotion_mlp = nn.Sequential(nn.Linear(emotion_dim, max(emotion_dim // 4, 1)), nn.GELU())
        self.audio_mlp = nn.Sequential(nn.Linear(max(content_dim // 4, 1) + max(emotion_dim // 4, 1), hidden), nn.GELU())
        self.vertex_embedding = nn.Parameter(0.02 * torch.randn(n_vertices, hidden))
        self.convs = nn.ModuleList([SpiralConv3D(hidden, hidden, n_vertices, spiral_length, frames, chunk_frames) for _ in range(layers)])
        self.head = nn.Linear(hidden, 1)

    def set_spirals(self, spirals: torch.Tensor) -> None:
        for conv in self.convs:
            conv.set_spirals(spirals)

    def forward(self, content: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """content (B, T, C_c), emotion (B, T, C_e) per mesh frame -> weights (B, T, V)."""
        audio = self.audio_mlp(torch.cat([self.content_mlp(content), self.emotion_mlp(emotion)], dim=-1))
        # the first layer's input is the broadcast sum audio + vertex embedding, (V, B, T, hidden)
        # (the spiral convolutions' layout), convolved without forming it
        x = F.elu(self.convs[0].of_sum(audio, self.vertex_embedding))
        for conv in self.convs[1:]:
            x = F.elu(conv(x))
        return torch.sigmoid(self.head(x))[..., 0].permute(1, 2, 0)


class EmoFaceNetwork(nn.Module):
    """Audio -> content and emotion features -> two branch decoders -> fused vertex offsets.

    Each branch is a FaceFormer network (its audio encoder, maps, periodic encoding, biased
    decoder), conditioned on the speaking style and the intensity level; both are fed back the
    fused motion. `fusion="add"` sums the branches (the paper's ablation)."""

    def __init__(self, content_encoder: AudioEncoder, emotion_encoder: AudioEncoder, n_vertices: int, n_styles: int, n_levels: int,
                 n_emotions: int, feature_dim: int = 64, period: int = 30, audio_per_frame: int = 1, n_heads: int = 4,
                 n_layers: int = 1, dropout: float = 0.1, fusion: str = "mesh_attention", attention_dim: int = 16,
                 spiral_length: int = 9, attention_frames: int = 4, attention_layers: int = 2, chunk_frames: int | None = None):  # fmt: skip
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion: expected one of {FUSIONS}, found {fusion!r}")
        branch = lambda encoder: FaceFormerNetwork(encoder, n_vertices, n_styles, feature_dim, period, audio_per_frame, n_heads, n_layers, dropout)  # noqa: E731
        self.content, self.emotion = branch(content_encoder), branch(emotion_encoder)
        self.content_level = nn.Linear(n_levels, feature_dim, bias=False)
        self.emotion_level = nn.Linear(n_levels, feature_dim, bias=False)
        self.classifier = nn.Linear(emotion_encoder.output_dim, n_emotions)
        self.audio_per_frame = audio_per_frame
        self.attention = (
            MeshAttention(content_encoder.output_dim, emotion_encoder.output_dim, n_vertices, attention_dim, spiral_length,
                          attention_frames, attention_layers, chunk_frames)  # fmt: skip
            if fusion == "mesh_attention"
            else None
        )

    # -- audio --------------------------------------------------------------------------------------

    def encode(self, audio: torch.Tensor, audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, branch: str) -> torch.Tensor:
        """One branch's encoder output aligned to `frame_lengths` frames, (B, T * audio_per_frame, C)."""
        network = self.content if branch == "content" else self.emotion
        return network.audio_encoder(audio, audio_lengths, frame_lengths, self.audio_per_frame)

    def per_frame(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T * audio_per_frame, C) -> (B, T, C): pairs averaged where there are two per frame."""
        return features.view(features.shape[0], -1, self.audio_per_frame, features.shape[-1]).mean(2)

    def fusion_weights(self, content: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor | None:
        return None if self.attention is None else self.attention(self.per_frame(content), self.per_frame(emotion))

    def classify(self, emotion: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Emotion logits (B, n_emotions) from the emotion features averaged over each clip's frames."""
        per_frame = self.per_frame(emotion)
        mask = (torch.arange(per_frame.shape[1], device=per_frame.device)[None] < frame_lengths[:, None]).to(per_frame.dtype)
        pooled = (per_frame * mask[..., None]).sum(1) / frame_lengths.clamp(min=1)[:, None].to(per_frame.dtype)
        return self.classifier(pooled)

    # -- decoding -----------------------------------------------------------------------------------

    @staticmethod
    def fuse(weights: torch.Tensor | None, emotion: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Offsets (..., T, V*3) of both branches -> fused; `weights` (B, T', V) with T' >= T."""
        if weights is None:
            return emotion + content
        w = weights[:, : emotion.shape[1], :, None]
        shape = emotion.shape
        return (w * emotion.view(*shape[:2], -1, 3) + (1 - w) * content.view(*shape[:2], -1, 3)).reshape(shape)

    def teacher_forced(self, content: torch.Tensor, emotion: torch.Tensor, inputs: torch.Tensor, style: torch.Tensor,
                       level: torch.Tensor, weights: torch.Tensor | None, first: torch.Tensor | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Both branches in parallel from the given input frames (B, T, V*3): (fused, emotion, content)."""
        d_e = self.emotion.teacher_forced(self.emotion.audio_feature_map(emotion), inputs, style, self.emotion_level(level), first)
        d_c = self.content.teacher_forced(self.content.audio_feature_map(content), inputs, style, self.content_level(level), first)
        return self.fuse(weights, d_e, d_c), d_e, d_c

    def autoregressive(self, content: torch.Tensor, emotion: torch.Tensor, n_frames: int, style: torch.Tensor,
                       level: torch.Tensor, weights: torch.Tensor | None, first: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Frame by frame, both branches fed back the fused motion (incremental decoding); the first
        token is the style (FaceFormer's), plus the given first frame's encoding where there is one."""
        branches = [(self.emotion, emotion, self.emotion_level), (self.content, content, self.content_level)]
        starts = [net.style_embedding(style, level_map(level)) for net, _, level_map in branches]
        states = [net.begin(net.audio_feature_map(features), n_frames) for net, features, _ in branches]
        tokens = list(starts) if first is None else [start + net.vertice_map(first)[:, None] for (net, _, _), start in zip(branches, starts)]
        outputs = []
        for t in range(n_frames):
            d_e, d_c = (net.step(token, t, state) for (net, _, _), token, state in zip(branches, tokens, states))
            fused = self.fuse(None if weights is None else weights[:, t : t + 1], d_e, d_c)
            outputs.append(fused)
            tokens = [net.vertice_map(fused) + start for (net, _, _), start in zip(branches, starts)]
            report_frame(t)
        return torch.cat(outputs, dim=1)
