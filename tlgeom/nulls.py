"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.stats.nulls``, ``tlgeom.stats.pvalues``, ``tlgeom.experiments.curvature``, ``tlgeom.models.untrained``."""

from tlgeom._shim import moved

__getattr__ = moved(
    "nulls", ["tlgeom.stats.nulls", "tlgeom.stats.pvalues", "tlgeom.experiments.curvature", "tlgeom.models.untrained"]
)
