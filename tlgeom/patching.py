"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.experiments.patching``."""

from tlgeom._shim import moved

__getattr__ = moved("patching", ["tlgeom.experiments.patching"])
