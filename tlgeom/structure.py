"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.experiments.structure``."""

from tlgeom._shim import moved

__getattr__ = moved("structure", ["tlgeom.experiments.structure"])
