"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.experiments.projection``."""

from tlgeom._shim import moved

__getattr__ = moved("projection", ["tlgeom.experiments.projection"])
