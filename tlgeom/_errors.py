"""The one exception tlgeom raises for bad input."""

from __future__ import annotations

from typing import Any


class TlgeomError(ValueError):
    """Bad input to a tlgeom function.

    The message names the argument, the value received and what is accepted, e.g.
    ``points='foo': expected one of 'resid', 'sublayer'``.
    """


def bad_arg(name: str, value: Any, accepted: str) -> TlgeomError:
    """Build a :class:`TlgeomError` naming the argument, the value and what is accepted."""
    shown = repr(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return TlgeomError(f"{name}={shown}: expected {accepted}")
