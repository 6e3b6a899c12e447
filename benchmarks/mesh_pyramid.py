"""Mesh pyramid construction time (quadric decimation, barycentric up-sampling) for the synthetic
face at the corpus' size (990 vertices), FLAME's (5,023) and BIWI's (23,370), and how far
up-sampling the kept vertices lands from the original surface (the template's own positions).

    python benchmarks/mesh_pyramid.py [--factors 4 4]
"""

import argparse
import time

import numpy as np

from facebench.data.synth.mesh import build_face
from facebench.mesh import pyramid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--factors", type=int, nargs="+", default=[4, 4])
    args = parser.parse_args()
    warm = build_face(990)
    pyramid(warm.faces, warm.vertices, (2,))  # imports and first calls, outside the timing
    for n_vertices in (990, 5023, 23370):
        face = build_face(n_vertices)
        start = time.perf_counter()
        levels = pyramid(face.faces, face.vertices, tuple(args.factors))
        seconds = time.perf_counter() - start
        sizes, errors, fine = [face.n_vertices], [], face.vertices
        for level in levels:
            up = (fine[level.kept][level.up_index] * level.up_weight[..., None]).sum(1)
            errors.append(np.linalg.norm(up - fine, axis=1).mean() / np.ptp(fine, axis=0).max())
            fine = fine[level.kept]
            sizes.append(len(fine))
        print(f"{face.n_vertices} vertices, factors {args.factors}: levels {' -> '.join(map(str, sizes))} in {seconds:.2f} s; "
              f"up-sampling error per level (mean distance / face size) {', '.join(f'{e:.2e}' for e in errors)}")


if __name__ == "__main__":
    main()
