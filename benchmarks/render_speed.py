"""Render speed: frames per second of the OpenGL (EGL) and software renderers at a frame size, for
the synthetic corpus' mesh and a BIWI-sized one (23,370 vertices), and of writing an MP4 with sound.

    python benchmarks/render_speed.py [--size 512] [--frames 60]
"""

import argparse
import time

import numpy as np

from facebench.data.synth.mesh import build_face
from facebench.render.renderer import GLRenderer, SoftwareRenderer
from facebench.render.video import write_video


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    for vertices in (990, 23370):
        face = build_face(vertices)
        motion = [face.vertices + 0.8 * np.sin(t / 4) ** 2 * face.blendshapes[0] for t in range(args.frames)]
        for renderer in (GLRenderer, SoftwareRenderer):
            try:
                render = renderer(face.faces, face.vertices, args.size)
            except Exception as exc:
                print(f"{renderer.name}: unavailable ({exc})")
                continue
            render.render(motion[0])  # warm-up: shader compilation, first allocations
            frames = args.frames if renderer is GLRenderer else max(args.frames // 6, 5)
            start = time.perf_counter()
            images = [render.render(m) for m in motion[:frames]]
            seconds = time.perf_counter() - start
            print(f"{renderer.name}, {face.n_vertices} vertices, {len(face.faces)} triangles, {args.size}x{args.size}: "
                  f"{frames / seconds:.1f} frames/s")
            if renderer is GLRenderer:
                sound = np.zeros(int(len(images) / 30 * 16000), dtype=np.float32)
                start = time.perf_counter()
                write_video(images, "/tmp/facebench_render_speed.mp4", 30, sound)
                print(f"  MP4 with sound (H.264, AAC) of {len(images)} frames: {len(images) / (time.perf_counter() - start):.1f} frames/s")


if __name__ == "__main__":
    main()
