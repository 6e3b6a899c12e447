"""Mesh topology: faces, ordered neighbourhoods and spiral sequences for spiral convolutions."""

from facebench.mesh.topology import MeshTopology, cached_spirals, ordered_rings, read_faces, spirals

__all__ = ["MeshTopology", "cached_spirals", "ordered_rings", "read_faces", "spirals"]
