"""Deprecated path (tlgeom 0.1): its contents moved to ``tlgeom.geometry.riemann``, ``tlgeom.experiments.riemann``."""

from tlgeom._shim import moved

__getattr__ = moved("riemann", ["tlgeom.geometry.riemann", "tlgeom.experiments.riemann"])
