"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.models.trajectory``."""

from tlgeom._shim import moved

__getattr__ = moved("trajectory", ["tlgeom.models.trajectory"])
