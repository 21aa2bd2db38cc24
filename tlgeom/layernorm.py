"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.geometry.sphere``, ``tlgeom.models.conventions``, ``tlgeom.experiments.sphere``."""

from tlgeom._shim import moved

__getattr__ = moved("layernorm", ["tlgeom.geometry.sphere", "tlgeom.models.conventions", "tlgeom.experiments.sphere"])
