"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.geometry.heat``, ``tlgeom.experiments.heat``."""

from tlgeom._shim import moved

__getattr__ = moved("heat", ["tlgeom.geometry.heat", "tlgeom.experiments.heat"])
