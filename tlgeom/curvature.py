"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.geometry.curvature``, ``tlgeom.models.conventions``, ``tlgeom.models.streaming``, ``tlgeom.experiments.landscape``."""

from tlgeom._shim import moved

__getattr__ = moved(
    "curvature",
    [
        "tlgeom.geometry.curvature",
        "tlgeom.models.conventions",
        "tlgeom.models.streaming",
        "tlgeom.experiments.landscape",
    ],
)
