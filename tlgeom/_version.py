"""The one version source of tlgeom (pyproject.toml reads it; ``tlgeom.__version__`` re-exports it)."""

__version__ = "0.2.0.dev0"
