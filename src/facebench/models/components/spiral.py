"""Spiral convolutions over a mesh (SpiralNet++): a vertex's output is one linear map of the features
of its spiral sequence (facebench.mesh.topology); `SpiralConv3D` (EmoFace) also takes those
vertices in the past frames. The index buffers are filled from the dataset's topology
(`set_spirals`) and saved with the model; the runtime is plain PyTorch.

Between the levels of a mesh pyramid (facebench.mesh.sampling), `downsample` keeps a subset of
the vertices and `upsample` gives each finer vertex a weighted sum of three coarser ones: both are
gathers over the same vertex-first layout.

Tensors are vertex-first, (V, ..., C), and the map is computed in one of two orders. By default one
spiral position at a time: a linear map of the gathered features, W · [x_s1, ..., x_sL], is the sum
over positions l of W_l · x_sl, and W_l · x_sl is row s_l of the projection x · W_l. So each
position costs one matmul and a gather of whole contiguous rows (the fast direction for
index_select and its backward), and only one position's projection is held at a time. Where the
output is at least twice as wide as the input (a mesh's 3 coordinates into 16 or 32 channels:
`gathers_input`), the L input rows are gathered first and mapped in one matmul: 3.3 to 3.6 times
faster at GLDiTalker's `full` first level, and a `quick` stage-1 training step 187 -> 118 ms
(`python benchmarks/spiral_speed.py` times both orders at every level; the millisecond-sized
`quick` levels vary from run to run). The two orders give the same map; their sums are
rounded in another order.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class SpiralConv(nn.Module):
    """(V, ..., C_in) -> (V, ..., C_out) over spirals of `length` vertices."""

    def __init__(self, in_channels: int, out_channels: int, n_vertices: int, length: int):
        super().__init__()
        self.length = length
        self.register_buffer("spirals", torch.arange(n_vertices)[:, None].repeat(1, length))
        bound = 1 / math.sqrt(in_channels * length)  # nn.Linear's initialisation for the gathered width
        self.weight = nn.Parameter(torch.empty(length, in_channels, out_channels).uniform_(-bound, bound))  # W_l per position
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        # Gathering first reads and writes L * C_in numbers per vertex, projecting first L * C_out
        # (and as many again in the backward pass), in L small matmuls and sums instead of one.
        # Measured at every level of GLDiTalker's pyramids (benchmarks/spiral_speed.py): gathering
        # wins clearly where the output is at least twice as wide as the input (3.3-3.6 times at
        # the full first level), projecting where the widths are equal.
        self.gathers_input = 2 * in_channels <= out_channels

    def set_spirals(self, spirals: torch.Tensor) -> None:
        if spirals.shape != self.spirals.shape:
            raise ValueError(f"spirals: expected shape {tuple(self.spirals.shape)}, found {tuple(spirals.shape)}")
        self.spirals.copy_(spirals)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gathers_input:
            return self.gather(x) @ self.weight.flatten(0, 1) + self.bias
        return self.project(x, self.weight) + self.bias

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """(V, ..., C_in) -> (V, ..., L * C_in): each vertex's spiral of input rows, position-major
        (the order of the weight's rows, flattened)."""
        gathered = x.index_select(0, self.spirals.flatten()).view(len(self.spirals), self.length, *x.shape[1:])
        return gathered.movedim(1, -2).flatten(-2)

    def project(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(V, ..., C_in) through per-position weights (L, C_in, C_out), without the bias."""
        out = None
        for position in range(self.length):
            term = (x @ weight[position]).index_select(0, self.spirals[:, position])
            out = term if out is None else out + term
        return out


class SpiralConv3D(SpiralConv):
    """(V, B, T, C_in) -> (V, B, T, C_out): each vertex's spiral in the current and the past
    `frames - 1` frames (causal; zeros before the first frame), one linear map over all of them.
    Each frame's features are stacked with its past ones (current first), then convolved.

    Memory grows as V·B·T·C_out: `chunk_frames` processes that many frames at a time (each chunk
    with its `frames - 1` frames of history), recomputing in the backward pass (activation
    checkpointing) when gradients are needed."""

    def __init__(self, in_channels: int, out_channels: int, n_vertices: int, length: int, frames: int = 4, chunk_frames: int | None = None):
        super().__init__(in_channels * frames, out_channels, n_vertices, length)
        self.frames, self.chunk_frames = frames, chunk_frames

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        """(V, B, T + frames - 1, C_in) with its history -> (V, B, T, C_out)."""
        return SpiralConv.forward(self, with_past(x, self.frames))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = causal_pad(x, self.frames)
        total = x.shape[2]
        step = self.chunk_frames or total
        outputs = []
        for start in range(0, total, step):
            chunk = padded[:, :, start : start + min(step, total - start) + self.frames - 1]
            if self.chunk_frames and torch.is_grad_enabled() and chunk.requires_grad:
                outputs.append(checkpoint(self._convolve, chunk, use_reentrant=False))
            else:
                outputs.append(self._convolve(chunk))
        return torch.cat(outputs, dim=2)

    def of_sum(self, per_frame: torch.Tensor, per_vertex: torch.Tensor) -> torch.Tensor:
        """`forward` of x[v, b, t] = per_frame[b, t] + per_vertex[v], without forming x:
        per_frame (B, T, C_in), per_vertex (V, C_in) -> (V, B, T, C_out).

        The map is linear, so it splits: the frame term is a causal convolution in time of each
        frame's features with the spiral positions' weights summed, (B, T, C_out), and the vertex
        term a spatial spiral convolution of the vertex features, (V, C_out) per number of past
        frames that exist (the causal zeros hold no vertex features either). Only the output is
        V·B·T sized, where `forward` gathers and projects its input L times at that size: Mesh
        Attention's first layer, most of an EmoFace training step on the CPU profiles."""
        frames = self.frames
        c_in = per_frame.shape[-1]
        weight = self.weight.view(self.length, frames, c_in, -1)  # W_l split by past frame k (current first)
        frame_term = with_past(causal_pad(per_frame, frames), frames) @ weight.sum(0).flatten(0, 1)  # (B, T, C_out)
        t = per_frame.shape[1]
        by_frame = torch.stack([self.project(per_vertex, weight[:, k]) for k in range(frames)])  # (δ, V, C_out)
        # the vertex term at frame t sums the past frames k <= t: all of them from frame δ - 1 on
        seen = by_frame.cumsum(0)[torch.arange(t, device=per_vertex.device).clamp(max=frames - 1)]  # (T, V, C_out)
        return frame_term[None] + seen.transpose(0, 1)[:, None] + self.bias


def causal_pad(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(..., T, C) -> (..., frames - 1 + T, C): zeros before the first frame. (Concatenated, not
    `F.pad`: both pad with the same zeros, but EmoFace's `ci` run under the drift check's portable
    kernels came out differently with `F.pad`.)"""
    return torch.cat([x.new_zeros(*x.shape[:-2], frames - 1, x.shape[-1]), x], dim=-2)


def with_past(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(..., T + frames - 1, C), T frames after `frames - 1` of history -> (..., T, frames * C):
    each frame's features stacked with its past ones, current first."""
    t = x.shape[-2] - (frames - 1)
    return torch.cat([x.narrow(-2, frames - 1 - k, t) for k in range(frames)], dim=-1)


def downsample(x: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """(V_fine, ...) -> (V_coarse, ...): the kept vertices' rows (a level's `kept`)."""
    return x.index_select(0, kept)


def upsample(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(V_coarse, ...) -> (V_fine, ...): each fine vertex as its three coarse vertices' rows,
    weighted (a level's `up_index`, `up_weight`, each (V_fine, 3))."""
    weight = weight.to(x.dtype).reshape(*weight.shape, *([1] * (x.dim() - 1)))
    return sum(x.index_select(0, index[:, k]) * weight[:, k] for k in range(index.shape[1]))
