"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.experiments.circuits``."""

from tlgeom._shim import moved

__getattr__ = moved("circuits", ["tlgeom.experiments.circuits"])
