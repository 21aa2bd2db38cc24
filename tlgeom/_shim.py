"""Old flat module paths (tlgeom 0.1), kept importable for one release with a DeprecationWarning."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

#: The release that removes the old paths.
REMOVED_IN = "0.3"


def moved(old: str, new: Sequence[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``tlgeom.<old>`` that finds each name in the ``new`` modules.

    Every access warns once per call site (``DeprecationWarning`` naming the new path).
    """

    def __getattr__(name: str) -> Any:
        for path in new:
            mod = importlib.import_module(path)
            if name in vars(mod):
                warnings.warn(
                    f"tlgeom.{old}.{name} has moved to {path}.{name}; the old path is removed in tlgeom {REMOVED_IN}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return vars(mod)[name]
        raise AttributeError(f"module 'tlgeom.{old}' has no attribute {name!r} (it moved to one of {list(new)})")

    return __getattr__
