"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.models.streaming``."""

from tlgeom._shim import moved

__getattr__ = moved("streaming", ["tlgeom.models.streaming"])
