"""Mesh topology shared by the spiral-convolution models (EmoFace, GLDiTalker): the dataset's faces,
each vertex's neighbours in fan order, and spiral sequences in SpiralNet++ order with dilation,
computed once per mesh and cached beside the dataset as index arrays, so that the runtime is
plain PyTorch gathers.

Meshes are read with trimesh (`process=False`, which keeps the vertex order). No maintained
pure-Python half-edge library fits (openmesh ships a source package that needs a C++ toolchain),
so the one-rings are ordered here by walking each vertex's fan of triangles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebench.errors import DataError
from facebench.storage import write_cache

MESH_FILES = ("faces.npy", "templates/FLAME_sample.ply", "templates/BIWI.ply", "template.ply", "template.obj")


def read_faces(root: str | Path, n_vertices: int) -> np.ndarray:
    """(F, 3) triangles of a dataset's mesh: `faces.npy` (the synthetic corpus), or a template mesh
    as FaceFormer's and CodeTalker's layouts keep one (`templates/FLAME_sample.ply`,
    `templates/BIWI.ply`), or `template.ply` / `template.obj`."""
    root = Path(root)
    for name in MESH_FILES:
        path = root / name
        if not path.is_file():
            continue
        if path.suffix == ".npy":
            faces = np.load(path)
        else:
            import trimesh

            try:
                mesh = trimesh.load(path, process=False, force="mesh")
            except Exception as exc:
                raise DataError(path, "a readable triangle mesh", f"an unreadable file ({exc})") from exc
            if len(mesh.vertices) != n_vertices:
                raise DataError(path, f"a mesh of {n_vertices} vertices (the templates')", f"{len(mesh.vertices)} vertices")
            faces = np.asarray(mesh.faces)
        return check_faces(path, np.asarray(faces), n_vertices)
    raise DataError(root, f"the mesh's faces in one of {', '.join(MESH_FILES)}", "none of them")


def check_faces(path: Path, faces: np.ndarray, n_vertices: int) -> np.ndarray:
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.size == 0:
        raise DataError(path, "triangles of shape (F, 3)", f"shape {faces.shape}")
    if faces.min() < 0 or faces.max() >= n_vertices:
        raise DataError(path, f"vertex indices in [0, {n_vertices})", f"indices from {faces.min()} to {faces.max()}")
    return faces.astype(np.int64)


def ordered_rings(faces: np.ndarray, n_vertices: int) -> list[list[int]]:
    """Each vertex's neighbours in the order its triangles go around it (the fan), starting at a
    boundary edge where there is one; neighbours a non-manifold fan leaves out follow, sorted."""
    following: list[dict[int, int]] = [{} for _ in range(n_vertices)]
    for a, b, c in faces.tolist():
        for v, x, y in ((a, b, c), (b, c, a), (c, a, b)):
            following[v].setdefault(x, y)
    rings = []
    for v in range(n_vertices):
        step = following[v]
        if not step:
            rings.append([])
            continue
        targets = set(step.values())
        starts = [x for x in step if x not in targets]  # a boundary: nothing leads to it
        current = min(starts) if starts else min(step)
        ring, seen = [], set()
        while current not in seen:
            ring.append(current)
            seen.add(current)
            if current not in step:
                break
            current = step[current]
        rest = sorted((set(step) | targets) - seen)
        rings.append(ring + rest)
    return rings


def nearest_outside(vertices: np.ndarray, v: int, members: set[int], count: int) -> list[int]:
    """The `count` vertices nearest to vertex `v` that are not in `members`, by Euclidean distance,
    ties by index (the order of a stable argsort). Only the nearest `count + len(members)` are
    sorted, every vertex tied with the farthest of them included, so the result is the same."""
    distance = np.linalg.norm(vertices - vertices[v], axis=1)
    k = min(count + len(members), len(distance))
    threshold = np.partition(distance, k - 1)[k - 1]
    candidates = np.flatnonzero(distance <= threshold)
    ordered = candidates[np.lexsort((candidates, distance[candidates]))]
    return [int(u) for u in ordered if int(u) not in members][:count]


def spirals(faces: np.ndarray, vertices: np.ndarray, length: int, dilation: int = 1) -> np.ndarray:
    """(V, length) spiral sequences: each vertex, then its rings outward, each ring walked in fan
    order (SpiralNet++), truncated to length x dilation and every dilation-th kept. A vertex with
    too few reachable neighbours (a small or open mesh) is filled with its nearest vertices by
    Euclidean distance, as SpiralNet++ does."""
    n_vertices = len(vertices)
    rings = ordered_rings(faces, n_vertices)
    wanted = length * dilation
    out = np.empty((n_vertices, length), dtype=np.int64)
    for v in range(n_vertices):
        spiral, members, frontier = [v], {v}, [v]
        while len(spiral) < wanted and frontier:
            ring = []
            for u in frontier:
                for w in rings[u]:
                    if w not in members:
                        members.add(w)
                        ring.append(w)
            spiral += ring
            frontier = ring
        if len(spiral) < wanted:
            spiral += nearest_outside(vertices, v, members, wanted - len(spiral))
        out[v] = spiral[:wanted][::dilation]
    return out


def cached_spirals(root: str | Path, faces: np.ndarray, vertices: np.ndarray, length: int, dilation: int = 1) -> np.ndarray:
    """`spirals`, computed once per mesh and stored in `<root>/topology/` (keyed by the faces' hash,
    length and dilation); written to a temporary file and renamed, so a stored file is whole."""
    digest = hashlib.sha256(np.ascontiguousarray(faces, dtype=np.int64).tobytes()).hexdigest()[:12]
    path = Path(root) / "topology" / f"spirals-{digest}-L{length}-d{dilation}.npy"
    if path.is_file():
        return np.load(path)
    result = spirals(faces, vertices, length, dilation)
    write_cache(path, lambda f: np.save(f, result))
    return result


@dataclass(frozen=True)
class MeshTopology:
    """A dataset's mesh: its faces, a template's vertices (for the nearest-vertex fill), and the
    folder its spirals are cached in."""

    faces: np.ndarray
    vertices: np.ndarray
    cache_root: Path

    @classmethod
    def read(cls, root: str | Path, template: np.ndarray) -> MeshTopology:
        return cls(read_faces(root, len(template)), np.asarray(template), Path(root))

    def spirals(self, length: int, dilation: int = 1) -> np.ndarray:
        return cached_spirals(self.cache_root, self.faces, self.vertices, length, dilation)

    def pyramid(self, factors: tuple[int, ...]) -> list:
        """Down- and up-sampling levels (facebench.mesh.sampling), cached like the spirals."""
        from facebench.mesh.sampling import cached_pyramid  # sampling imports this module

        return cached_pyramid(self.cache_root, self.faces, self.vertices, tuple(factors))

    def coarser(self, level) -> MeshTopology:
        """The decimated mesh of a pyramid `level` (its spirals cached beside this one's)."""
        return MeshTopology(level.faces, self.vertices[level.kept], self.cache_root)
