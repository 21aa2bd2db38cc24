"""The one exception tlgeom raises for bad input."""

from __future__ import annotations

from typing import Any


class TlgeomError(ValueError):
    """Bad input to a tlgeom function.

    The message names the argument, the value received and what is accepted, e.g.
    ``points='foo': expected one of 'resid', 'sublayer'``.
    """


class PrecisionWarning(UserWarning):
    """The model's forward pass runs below float32 (bfloat16 / float16).

    tlgeom computes geometry in float64, but the residual states it reads are only as exact as
    the forward pass that made them: on a bf16 model turning angles can differ from the float32
    model's by tens of degrees. Load the model with ``dtype="float32"`` for numbers to cite.
    """


def bad_arg(name: str, value: Any, accepted: str) -> TlgeomError:
    """Build a :class:`TlgeomError` naming the argument, the value and what is accepted."""
    shown = repr(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return TlgeomError(f"{name}={shown}: expected {accepted}")
