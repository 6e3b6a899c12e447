"""Metrics that match the field's reference code: mesh errors, diversity, and their per-dataset sets."""

from facebench.metrics.collection import ConditionedMetrics, mesh_metrics
from facebench.metrics.mesh import (
    AbsoluteFaceDynamicsDeviation,
    Diversity,
    EyeVertexError,
    FaceDynamicsDeviation,
    FramesDropped,
    LipVertexError,
    MeanVertexError,
    MeshMetrics,
    MetricInputError,
    SampleDiversity,
    mesh_error_sums,
)

__all__ = [
    "AbsoluteFaceDynamicsDeviation",
    "ConditionedMetrics",
    "Diversity",
    "EyeVertexError",
    "FaceDynamicsDeviation",
    "FramesDropped",
    "LipVertexError",
    "MeanVertexError",
    "MeshMetrics",
    "MetricInputError",
    "SampleDiversity",
    "mesh_error_sums",
    "mesh_metrics",
]
