"""Headless rendering of a mesh sequence to RGB frames: an OpenGL context without a display
(moderngl with EGL: Mesa's llvmpipe on CPU-only machines, the driver's on GPUs), or, where no GL
context can be had, a pure-software fallback (matplotlib's Agg: painter's order, flat shading).
`make_renderer` picks the first that works and says which in one line.

The camera is fixed and framed from the template: an orthographic view down the -z axis (the
faces of FLAME, BIWI after CodeTalker's preprocessing, and the synthetic corpus look along +z),
centred on the template's bounding box with a margin. Shading is Lambertian with a headlight;
per-vertex colours (a heat map) or per-face colours (the synthetic video corpus' textures) replace
the skin colour where given. `render_labels` draws each face's integer label, unshaded and without
antialiasing, into a label image: the region each pixel was rendered from (exact segmentation masks).
"""

from __future__ import annotations

import numpy as np

from facebench.errors import FacebenchError

SKIN = (0.80, 0.72, 0.65)
BACKGROUND = (1.0, 1.0, 1.0)
LIGHT = np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])  # a key light from the upper left, towards the face
AMBIENT = 0.2


class RenderError(FacebenchError):
    """Rendering failed: no frame or video is written."""


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: the area-weighted sum of the incident faces' normals."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


class Camera:
    """Orthographic, looking down -z, framing the template's x-y extent with a margin."""

    def __init__(self, template: np.ndarray, size: int, margin: float = 0.08):
        low, high = template.min(0), template.max(0)
        self.center = (low + high) / 2
        self.half = max(high[0] - low[0], high[1] - low[1]) / 2 * (1 + margin)
        self.depth = (low[2] - (high[2] - low[2]), high[2] + (high[2] - low[2]))
        self.size = size

    def to_clip(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) in dataset units -> normalised device coordinates (x, y right/up, z into the screen)."""
        xy = (vertices[:, :2] - self.center[:2]) / self.half
        near, far = self.depth
        z = 1 - 2 * (vertices[:, 2] - near) / (far - near)  # nearer the camera (larger z) -> smaller depth
        return np.concatenate([xy, z[:, None]], axis=1).astype(np.float32)


class GLRenderer:
    """moderngl on an EGL context: a depth-tested, Lambert-shaded mesh per frame."""

    name = "OpenGL (EGL)"

    VERTEX = """
        #version 330
        in vec3 position; in vec3 normal; in vec3 color;
        uniform vec3 light_direction; uniform float ambient;
        out vec3 v_color;
        void main() {
            float light = ambient + (1.0 - ambient) * max(dot(normalize(normal), light_direction), 0.0);
            v_color = color * light;
            gl_Position = vec4(position, 1.0);
        }"""
    FRAGMENT = """
        #version 330
        in vec3 v_color; out vec4 f_color;
        void main() { f_color = vec4(v_color, 1.0); }"""

    def __init__(self, faces: np.ndarray, template: np.ndarray, size: int = 512):
        import moderngl

        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as exc:
            raise RenderError(f"OpenGL: expected an EGL context (Mesa or a GPU driver), found none ({exc})") from exc
        self.faces, self.camera, self.size = faces.astype(np.int32), Camera(template, size), size
        self.program = self.ctx.program(vertex_shader=self.VERTEX, fragment_shader=self.FRAGMENT)
        self.program["light_direction"].value = tuple(LIGHT)
        self.program["ambient"].value = AMBIENT
        self.fbo = self.ctx.simple_framebuffer((size, size), components=3)
        self.fbo.use()
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.index = self.ctx.buffer(self.faces.tobytes())

    def render(self, vertices: np.ndarray, colors: np.ndarray | None = None, face_colors: np.ndarray | None = None,
               ambient: float = AMBIENT) -> np.ndarray:  # fmt: skip
        """(V, 3) -> (size, size, 3) uint8. `colors`: (V, 3) per vertex; `face_colors`: (F, 3) per face."""
        normals = vertex_normals(vertices, self.faces)
        if face_colors is None:
            colors = np.broadcast_to(np.asarray(SKIN if colors is None else colors, np.float32), vertices.shape)
            data, index = np.concatenate([self.camera.to_clip(vertices), normals, colors], axis=1), self.index
        else:  # one colour per face: every corner of a face carries it, so nothing is interpolated across faces
            corners = self.faces.ravel()
            data = np.concatenate([self.camera.to_clip(vertices)[corners], normals[corners], np.repeat(face_colors, 3, axis=0)], axis=1)
            index = None
        with self.ctx:  # this renderer's context current: several renderers may live in one process
            self.fbo.use()
            self.program["ambient"].value = ambient
            buffer = self.ctx.buffer(np.ascontiguousarray(data, dtype=np.float32).tobytes())
            array = self.ctx.vertex_array(self.program, [(buffer, "3f 3f 3f", "position", "normal", "color")], index)
            self.fbo.clear(*BACKGROUND, depth=1.0)
            array.render()
            frame = np.frombuffer(self.fbo.read(components=3), dtype=np.uint8).reshape(self.size, self.size, 3)[::-1]
            array.release()
            buffer.release()
        return frame.copy()

    def render_labels(self, vertices: np.ndarray, face_labels: np.ndarray) -> np.ndarray:
        """(V, 3) and (F,) labels in [0, 255) -> (size, size) uint8: each pixel's face label, 255 where no face is."""
        return render_labels(self, vertices, face_labels)


class SoftwareRenderer:
    """matplotlib (Agg): triangles back to front, back faces culled, flat Lambert shading. No GL,
    deterministic; intersecting triangles can be misordered (no per-pixel depth)."""

    name = "software (matplotlib)"

    def __init__(self, faces: np.ndarray, template: np.ndarray, size: int = 512):
        import matplotlib

        matplotlib.use("Agg")
        self.faces, self.camera, self.size = faces, Camera(template, size), size

    def render(self, vertices: np.ndarray, colors: np.ndarray | None = None, face_colors: np.ndarray | None = None,
               ambient: float = AMBIENT) -> np.ndarray:  # fmt: skip
        import matplotlib.pyplot as plt
        from matplotlib.collections import PolyCollection

        clip = self.camera.to_clip(vertices)
        triangles = clip[self.faces]  # (F, 3, 3)
        a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
        facing = np.cross(b[:, :2] - a[:, :2], c[:, :2] - a[:, :2]) > 0  # counter-clockwise on screen
        world = vertices[self.faces]
        normals = np.cross(world[:, 1] - world[:, 0], world[:, 2] - world[:, 0])
        light = ambient + (1 - ambient) * np.clip(normals @ LIGHT / (np.linalg.norm(normals, axis=1) + 1e-12), 0, None)
        if face_colors is None:
            base = np.broadcast_to(np.asarray(SKIN if colors is None else colors, np.float32), vertices.shape)[self.faces].mean(1)
        else:
            base = np.asarray(face_colors, np.float32)
        order = np.argsort(-triangles[:, :, 2].mean(1))  # far (large depth) first
        order = order[facing[order]]
        fig = plt.figure(figsize=(1, 1), dpi=self.size)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.axis("off")
        fig.patch.set_facecolor(BACKGROUND)
        ax.add_collection(PolyCollection(triangles[order, :, :2], facecolors=np.clip(base[order] * light[order, None], 0, 1),
                                         edgecolors="none", antialiased=False))  # fmt: skip
        fig.canvas.draw()
        frame = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
        plt.close(fig)
        return frame

    def render_labels(self, vertices: np.ndarray, face_labels: np.ndarray) -> np.ndarray:
        """(V, 3) and (F,) labels in [0, 255) -> (size, size) uint8: each pixel's face label, 255 where no face is."""
        return render_labels(self, vertices, face_labels)


def render_labels(renderer, vertices: np.ndarray, face_labels: np.ndarray) -> np.ndarray:
    """A renderer's label pass: labels as unshaded red levels (exact in 8 bits), on the white
    background whose red level, 255, no label may take."""
    labels = np.asarray(face_labels)
    if labels.shape != (len(renderer.faces),) or labels.min() < 0 or labels.max() >= 255:
        raise RenderError(f"face labels: expected ({len(renderer.faces)},) integers in [0, 255), found shape {labels.shape}")
    colors = np.zeros((len(labels), 3), np.float32)
    colors[:, 0] = labels / 255.0
    return renderer.render(vertices, face_colors=colors, ambient=1.0)[:, :, 0].copy()


def make_renderer(faces: np.ndarray, template: np.ndarray, size: int = 512, backend: str = "auto", say=print):
    """The GL renderer, or the software one where no GL context can be had (said in one line)."""
    if backend not in ("auto", "gl", "software"):
        raise RenderError(f"renderer: expected auto, gl or software, found '{backend}'")
    if backend in ("auto", "gl"):
        try:
            return GLRenderer(faces, template, size)
        except (RenderError, ImportError) as exc:
            if backend == "gl":
                raise RenderError(str(exc)) from exc
            say(f"rendering in software: no OpenGL context ({str(exc).splitlines()[0]})")
    return SoftwareRenderer(faces, template, size)
