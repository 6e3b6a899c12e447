"""A procedural face surface: a (u, v) grid over the front of an ellipsoid head, shaped with a nose,
eye sockets, brow ridge, lips and chin, split along the mouth line so the lips can part. Regions and
blendshapes are smooth functions of (u, v), so every vertex count gives the same face.

Units are metres, like FLAME/VOCASET: the face is about 15 cm wide and the jaw opens about 1.2 cm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOUTH_V = -0.35  # the mouth line in face coordinates (v from chin -1 to forehead +1)
MOUTH_HALF_WIDTH = 0.26
BLENDSHAPES = (
    "jaw_open", "lip_round", "lip_spread", "lip_press", "lip_to_teeth",
    "smile", "frown", "brow_raise", "brow_lower", "blink",
)  # fmt: skip
MOUTH_SHAPES = BLENDSHAPES[:5]  # driven by speech (visemes)


@dataclass
class FaceMesh:
    vertices: np.ndarray  # (V, 3) rest shape, metres
    faces: np.ndarray  # (F, 3) triangles
    uv: np.ndarray  # (V, 2) face coordinates
    lower: np.ndarray  # (V,) bool: below the mouth slit (moves with the jaw)
    regions: dict[str, np.ndarray]  # name -> vertex indices
    blendshapes: np.ndarray  # (K, V, 3) displacement per unit weight, metres

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)


def _grid_shape(n_vertices: int) -> tuple[int, int]:
    """Columns and rows (before the mouth row is doubled) for about n_vertices vertices."""
    rows = max(8, int(round(np.sqrt(n_vertices / 1.15))))
    cols = max(8, int(round(n_vertices / (rows + 1))))
    return cols, rows


def _surface(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    az, el = u * 1.15, v * 0.95
    x = 0.075 * np.sin(az) * np.cos(el)
    y = 0.105 * np.sin(el)
    z = 0.09 * np.cos(az) * np.cos(el)
    bump = lambda cu, cv, su, sv: np.exp(-(((u - cu) / su) ** 2) - ((v - cv) / sv) ** 2)  # noqa: E731
    z = z + 0.024 * bump(0, 0.02, 0.12, 0.28)  # nose
    z = z - 0.009 * (bump(0.36, 0.3, 0.14, 0.1) + bump(-0.36, 0.3, 0.14, 0.1))  # eye sockets
    z = z + 0.005 * np.exp(-(((v - 0.45) / 0.07) ** 2)) * np.exp(-((u / 0.6) ** 4))  # brow ridge
    z = z + 0.006 * bump(0, MOUTH_V, 0.28, 0.12)  # lips
    z = z + 0.008 * bump(0, -0.78, 0.25, 0.15)  # chin
    return np.stack([x, y, z], axis=-1)


def _regions(u: np.ndarray, v: np.ndarray, lower: np.ndarray) -> dict[str, np.ndarray]:
    au = np.abs(u)
    lips = (au < MOUTH_HALF_WIDTH + 0.05) & (v > MOUTH_V - 0.14) & (v < MOUTH_V + 0.14)
    eyes = ((au - 0.36) / 0.16) ** 2 + ((v - 0.3) / 0.11) ** 2 < 1
    masks = {
        "upper_lip": lips & ~lower,
        "lower_lip": lips & lower,
        "jaw": lower & ~lips,
        "eyes": eyes,
        "eyelids": eyes & (v >= 0.3),
        "brows": (v > 0.41) & (v < 0.56) & (au > 0.1) & (au < 0.65),
        "forehead": v >= 0.56,
        "nose": (au < 0.16) & (v > -0.2) & (v < 0.3) & ~eyes,
    }
    taken = np.zeros_like(u, dtype=bool)
    for mask in masks.values():
        taken |= mask
    masks["cheeks"] = ~taken & (v > MOUTH_V - 0.14) & (v < 0.41)
    masks["lips"] = masks["upper_lip"] | masks["lower_lip"]
    # The metric regions, written like the real sets' index files.
    masks["lve"] = masks["lips"]
    masks["fdd"] = (v > 0.15) & ~masks["lips"]  # upper face
    masks["eve"] = masks["eyes"] | masks["brows"] | masks["forehead"]
    return {name: np.flatnonzero(mask) for name, mask in masks.items()}


def _blendshapes(u: np.ndarray, v: np.ndarray, lower: np.ndarray) -> np.ndarray:
    au, sign = np.abs(u), np.sign(u)
    g = lambda du, dv: np.exp(-(du**2) - dv**2)  # noqa: E731
    lips = g(u / 0.3, (v - MOUTH_V) / 0.14)
    lower_f, upper_f = lower.astype(float), (~lower).astype(float)
    corners = g((au - MOUTH_HALF_WIDTH) / 0.12, (v - MOUTH_V) / 0.15)
    brows = g((au - 0.36) / 0.3, (v - 0.49) / 0.12)
    forehead = np.clip((v - 0.35) / 0.4, 0, 1) * np.exp(-((u / 0.8) ** 4))
    eyelid = g((au - 0.36) / 0.13, (v - 0.34) / 0.07)
    jaw_reach = lower_f * np.exp(-((u / 0.75) ** 2)) * np.clip((MOUTH_V + 0.05 - v) / 0.1, 0, 1) ** 0.5
    zero = np.zeros_like(u)

    def field(dx=zero, dy=zero, dz=zero):
        return np.stack([dx, dy, dz], axis=-1)

    shapes = {
        "jaw_open": field(dy=-0.012 * jaw_reach - 0.003 * lips * lower_f, dz=-0.004 * jaw_reach),
        "lip_round": field(dx=-0.012 * u * lips, dz=0.006 * lips),
        "lip_spread": field(dx=0.01 * u * lips / 0.3, dz=-0.0015 * lips),
        "lip_press": field(dy=-0.0025 * lips * upper_f + 0.004 * lips * lower_f, dz=-0.001 * lips),
        "lip_to_teeth": field(dy=0.003 * lips * lower_f, dz=-0.005 * lips * lower_f),
        "smile": field(dx=0.004 * sign * corners, dy=0.006 * corners + 0.003 * g((au - 0.42) / 0.15, (v + 0.08) / 0.15)),
        "frown": field(dx=0.001 * sign * corners, dy=-0.005 * corners),
        "brow_raise": field(dy=0.005 * brows + 0.002 * forehead),
        "brow_lower": field(dx=-0.002 * sign * brows, dy=-0.004 * brows, dz=0.001 * brows),
        "blink": field(dy=-0.007 * eyelid, dz=0.0015 * eyelid),
    }
    return np.stack([shapes[name] for name in BLENDSHAPES]).astype(np.float32)


def build_face(n_vertices: int) -> FaceMesh:
    """The base face at about `n_vertices` vertices (exact count depends on the grid)."""
    cols, rows = _grid_shape(n_vertices)
    us = np.linspace(-1, 1, cols)
    vs = np.linspace(-1, 1, rows)
    mouth_row = int(np.argmin(np.abs(vs - MOUTH_V)))
    vs[mouth_row] = MOUTH_V
    # Row list bottom to top, with the mouth row twice: its lower copy belongs to the lower lip.
    row_v = np.concatenate([vs[: mouth_row + 1], vs[mouth_row:]])
    row_lower = np.arange(len(row_v)) <= mouth_row
    u = np.tile(us, len(row_v))
    v = np.repeat(row_v, cols)
    lower = np.repeat(row_lower, cols)
    faces = []
    for r in range(len(row_v) - 1):
        for c in range(cols - 1):
            if r == mouth_row and abs(0.5 * (us[c] + us[c + 1])) < MOUTH_HALF_WIDTH:
                continue  # the mouth slit: no triangles join the lips
            a, b = r * cols + c, r * cols + c + 1
            d, e = a + cols, b + cols
            faces += [(a, b, e), (a, e, d)]
    return FaceMesh(
        vertices=_surface(u, v).astype(np.float32),
        faces=np.asarray(faces, dtype=np.int64),
        uv=np.stack([u, v], axis=-1).astype(np.float32),
        lower=lower,
        regions=_regions(u, v, lower),
        blendshapes=_blendshapes(u, v, lower),
    )


def identity_shape(face: FaceMesh, rng: np.random.Generator, amplitude: float = 0.0015) -> tuple[np.ndarray, float]:
    """A speaker's template: the base face with a smooth random deformation and a global scale."""
    u, v = face.uv[:, 0], face.uv[:, 1]
    # Curved modes only: linear terms in u and v would shear the whole face rather than reshape it.
    basis = np.stack([u * u, v * v, u * v, np.cos(np.pi * u), np.cos(np.pi * v), u * v * v, u * u * v], axis=-1)
    coefficients = rng.normal(scale=amplitude, size=(basis.shape[1], 3))
    scale = float(rng.uniform(0.92, 1.08))
    return (face.vertices * scale + basis @ coefficients).astype(np.float32), scale
