"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.experiments.eclipse``."""

from tlgeom._shim import moved

__getattr__ = moved("eclipse", ["tlgeom.experiments.eclipse"])
