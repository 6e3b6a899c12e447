"""Mesh topology: faces, ordered neighbourhoods and spiral sequences for spiral convolutions, and the
down- and up-sampling levels of a mesh pyramid."""

from facebench.mesh.sampling import Level, cached_pyramid, decimate, pyramid
from facebench.mesh.topology import MeshTopology, cached_spirals, ordered_rings, read_faces, spirals

__all__ = ["Level", "MeshTopology", "cached_pyramid", "cached_spirals", "decimate", "ordered_rings", "pyramid", "read_faces", "spirals"]
