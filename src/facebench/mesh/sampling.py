"""Down- and up-sampling between levels of a mesh pyramid (the spatial pyramid of spiral-convolution
encoders, docs/architecture.md, "Mesh topology"), as index arrays so the runtime is plain PyTorch
gathers.

A level keeps a subset of the previous level's vertices: down-sampling is a row selection (D). The
subset and the coarser faces come from quadric-error edge collapses by `fast-simplification` (a
maintained binding of Fast-Quadric-Mesh-Simplification with prebuilt wheels and no other
dependency; its collapse history says which vertex each removed one merged into, so the kept
vertices stay original vertices at their original positions, as COMA's pyramid keeps them).
Up-sampling (U) places each finer vertex on the closest point of the coarser surface: at most three
barycentric weights of one coarse triangle, searched among the triangles around the vertex it
merged into and their neighbours.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebench.errors import DataError
from facebench.storage import write_cache


@dataclass(frozen=True)
class Level:
    """One step down the pyramid: `kept` (V_coarse,) indices into the finer level; `faces`
    (F_coarse, 3) over the coarse vertices; `up_index`, `up_weight` (V_fine, 3): each fine vertex
    as a weighted sum of coarse vertices (weights sum to 1; a kept vertex is itself)."""

    kept: np.ndarray
    faces: np.ndarray
    up_index: np.ndarray
    up_weight: np.ndarray


FIELDS = ("kept", "faces", "up_index", "up_weight")


def survivors(collapses: np.ndarray, n_vertices: int) -> np.ndarray:
    """For each vertex, the vertex it ended up merged into (itself if kept), following the chain of
    collapses (`[i0, i1]`: i1 merged into i0)."""
    parent = np.arange(n_vertices)
    for into, removed in collapses.tolist():
        parent[removed] = into
    root = parent.copy()
    while True:  # path halving until every chain reaches a vertex that was never removed
        nxt = parent[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def decimate(faces: np.ndarray, vertices: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About 1/factor of the vertices, kept by quadric-error collapses: (kept indices, sorted;
    faces over them, degenerate and repeated triangles dropped; for every vertex, the coarse index
    of the kept one it merged into, or of the nearest kept one by distance for a vertex on no face)."""
    import fast_simplification

    if factor < 2:
        raise ValueError(f"factor: expected an integer of at least 2, found {factor}")
    target = max(4, round(len(faces) / factor))  # faces scale with vertices on a closed or open surface
    _, _, collapses = fast_simplification.simplify(
        vertices.astype(np.float64), faces.astype(np.int32), target_count=target, return_collapses=True
    )
    root = survivors(np.asarray(collapses, dtype=np.int64), len(vertices))
    coarse = root[faces]
    # Triangles that collapsed to an edge or a point carry no surface (collinear corners included).
    area = np.linalg.norm(np.cross(vertices[coarse[:, 1]] - vertices[coarse[:, 0]], vertices[coarse[:, 2]] - vertices[coarse[:, 0]]), axis=1)
    coarse = coarse[area > 1e-9 * np.median(area[area > 0])]
    kept = np.unique(coarse)
    # A vertex on no face, or one whose survivor was left on no triangle by later collapses, goes
    # with the nearest kept vertex.
    stray = np.flatnonzero(~np.isin(root, kept))
    if len(stray):
        root[stray] = kept[np.linalg.norm(vertices[stray, None] - vertices[None, kept], axis=2).argmin(1)]
    local = np.full(len(vertices), -1, dtype=np.int64)
    local[kept] = np.arange(len(kept))
    coarse = local[coarse]
    _, first = np.unique(np.sort(coarse, axis=1), axis=0, return_index=True)
    return kept, coarse[np.sort(first)], local[root]


def barycentric_upsampling(fine: np.ndarray, coarse: np.ndarray, coarse_faces: np.ndarray, nearest_coarse: np.ndarray):
    """(index, weight), each (V_fine, 3): every fine vertex's closest point on the coarse surface,
    searched among the triangles touching `nearest_coarse[v]` (the coarse vertex it merged into)
    and the triangles touching those triangles' vertices."""
    import trimesh

    touching: list[list[int]] = [[] for _ in range(len(coarse))]
    for f, triangle in enumerate(coarse_faces.tolist()):
        for v in triangle:
            touching[v].append(f)
    candidates_of = []
    for v in range(len(coarse)):
        ring = set(touching[v])
        ring |= {g for f in touching[v] for u in coarse_faces[f] for g in touching[u]}
        candidates_of.append(np.fromiter(ring, dtype=np.int64) if ring else np.empty(0, dtype=np.int64))
    point, triangle = [], []
    for v, c in enumerate(nearest_coarse.tolist()):
        if len(candidates_of[c]) == 0:
            raise DataError("mesh", "every vertex on a triangle of the decimated mesh", f"coarse vertex {c} on none")
        point.append(np.full(len(candidates_of[c]), v))
        triangle.append(candidates_of[c])
    point, triangle = np.concatenate(point), np.concatenate(triangle)
    corners = coarse[coarse_faces[triangle]]
    closest = trimesh.triangles.closest_point(corners, fine[point])
    distance = np.linalg.norm(closest - fine[point], axis=1)
    order = np.lexsort((distance, point))  # by vertex, nearest first
    best = order[np.r_[0, np.flatnonzero(np.diff(point[order])) + 1]]
    weight = trimesh.triangles.points_to_barycentric(corners[best], closest[best])
    weight = np.clip(weight, 0.0, None)
    weight /= weight.sum(axis=1, keepdims=True)
    return coarse_faces[triangle[best]].astype(np.int64), weight.astype(np.float32)


def pyramid(faces: np.ndarray, vertices: np.ndarray, factors: tuple[int, ...]) -> list[Level]:
    """Levels of successive decimation by `factors` (e.g. (4, 4) as COMA's), finest first."""
    levels = []
    for factor in factors:
        kept, coarse_faces, merged_into = decimate(faces, vertices, factor)
        index, weight = barycentric_upsampling(vertices, vertices[kept], coarse_faces, merged_into)
        index[kept], weight[kept] = np.stack([np.arange(len(kept))] * 3, 1), np.array([1.0, 0.0, 0.0], dtype=np.float32)
        levels.append(Level(kept, coarse_faces, index, weight))
        faces, vertices = coarse_faces, vertices[kept]
    return levels


def cached_pyramid(root: str | Path, faces: np.ndarray, vertices: np.ndarray, factors: tuple[int, ...]) -> list[Level]:
    """`pyramid`, computed once per mesh and stored in `<root>/topology/` (keyed by the faces' and
    vertices' hash and the factors)."""
    digest = hashlib.sha256(np.ascontiguousarray(faces, dtype=np.int64).tobytes() + np.ascontiguousarray(vertices, dtype=np.float32).tobytes())
    path = Path(root) / "topology" / f"pyramid-{digest.hexdigest()[:12]}-{'x'.join(map(str, factors))}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return [Level(*(stored[f"{i}_{field}"] for field in FIELDS)) for i in range(len(factors))]
        except (OSError, EOFError, ValueError, KeyError) as exc:
            raise DataError(path, "a cached mesh pyramid (delete it to compute it again)", f"an unreadable file ({exc})") from exc
    levels = pyramid(faces, vertices, factors)
    arrays = {f"{i}_{field}": getattr(level, field) for i, level in enumerate(levels) for field in FIELDS}
    write_cache(path, lambda f: np.savez(f, **arrays))
    return levels
