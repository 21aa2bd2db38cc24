"""Curvature of layer-wise token trajectories: pure tensor functions.

Conventions (used everywhere in tlgeom, never mixed):

* A trajectory is ``x[..., point, d_model]``; its steps are ``Δ_l = x_{l+1} − x_l``.
* The **turning angle** at point l+1 is the angle between consecutive steps,
  ``θ_l = arccos(⟨Δ_l, Δ_{l+1}⟩ / (‖Δ_l‖ ‖Δ_{l+1}‖)) ∈ [0, π]``: 0 = straight on, π = reversal.
* The **interior angle** is ``π − θ_l`` (π = straight on); :func:`interior_angles` gives it.
* Undefined angles (a zero-length step, a padded position) are NaN and every aggregate masks them.

All computations run in float64 whatever the input dtype.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from jaxtyping import Float

from ._errors import TlgeomError, bad_arg

#: Relative step norm under which a step counts as zero length (its angles are NaN).
ZERO_STEP_RTOL = 1e-12


def as_states(x: Any, arg: str = "x", min_points: int = 2) -> Float[torch.Tensor, "... point d_model"]:
    """A float64 states tensor from a tensor or a :class:`~tlgeom.Trajectories` (padding → NaN)."""
    mask = None
    if hasattr(x, "states") and hasattr(x, "mask"):
        x, mask = x.states, x.mask
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise bad_arg(arg, type(x).__name__ if not isinstance(x, torch.Tensor) else f"Tensor(dtype={x.dtype})",
                      "a float tensor [..., point, d_model] or a Trajectories")
    if x.dim() < 2 or x.shape[-2] < min_points or x.shape[-1] < 1:
        raise bad_arg(arg, f"Tensor(shape={tuple(x.shape)})",
                      f"shape [..., point, d_model] with at least {min_points} points")
    x = x.to(torch.float64)
    if mask is not None:
        x = x.masked_fill(~mask.to(x.device)[..., None, None], float("nan"))
    return x


def steps(x: Any) -> Float[torch.Tensor, "... step d_model"]:
    """Layer steps ``Δ_l = x_{l+1} − x_l`` in float64."""
    x = as_states(x)
    return x[..., 1:, :] - x[..., :-1, :]


def step_norms(x: Any) -> Float[torch.Tensor, "... step"]:
    """``‖Δ_l‖`` for each layer step, float64."""
    return torch.linalg.vector_norm(steps(x), dim=-1)


def angle_between(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Angle in [0, π] between vectors ``a`` and ``b`` along ``dim``; NaN if either is ~zero.

    Uses ``atan2(‖a×b‖, a·b)`` in its dimension-free form ``atan2(‖ â‖b‖ − b̂‖a‖ ‖, ‖ â‖b‖ + b̂‖a‖ ‖)·2``
    (Kahan), accurate for angles near 0 and π where arccos loses half its digits.
    """
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    na = torch.linalg.vector_norm(a, dim=dim, keepdim=True)
    nb = torch.linalg.vector_norm(b, dim=dim, keepdim=True)
    u, v = a * nb, b * na
    ang = 2 * torch.atan2(torch.linalg.vector_norm(u - v, dim=dim), torch.linalg.vector_norm(u + v, dim=dim))
    scale = torch.maximum(na, nb).squeeze(dim)
    tiny = (torch.minimum(na, nb).squeeze(dim) <= ZERO_STEP_RTOL * scale) | (scale == 0)
    return ang.masked_fill(tiny, float("nan"))


def turning_angles(x: Any) -> Float[torch.Tensor, "... step_pair"]:
    """Turning angle between consecutive layer steps, radians in [0, π].

    ``θ_l = ∠(Δ_l, Δ_{l+1})``, so the output has ``point − 2`` entries; 0 = straight on.

    Args:
        x: states ``[..., point, d_model]`` (any leading dims) or a Trajectories.
    """
    d = steps(as_states(x, min_points=3))
    return angle_between(d[..., :-1, :], d[..., 1:, :])


def interior_angles(x: Any) -> Float[torch.Tensor, "... step_pair"]:
    """Interior angle ``π − θ_l`` at each inner point (π = straight on)."""
    return math.pi - turning_angles(x)


def length_to_chord(x: Any) -> Float[torch.Tensor, "..."]:
    """Path length over chord: ``Σ_l ‖Δ_l‖ / ‖x_last − x_0‖`` (≥ 1; NaN for a zero chord)."""
    x = as_states(x)
    length = step_norms(x).sum(-1)
    chord = torch.linalg.vector_norm(x[..., -1, :] - x[..., 0, :], dim=-1)
    return torch.where(chord > ZERO_STEP_RTOL * length, length / chord, torch.full_like(length, float("nan")))
