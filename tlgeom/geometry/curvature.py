"""Curvature of layer-wise token trajectories: pure tensor functions (angles, length-to-chord, the one
normaliser and :func:`to_space`).

Conventions (used everywhere in tlgeom, never mixed):

* A trajectory is ``x[..., point, d_model]``; its steps are ``Δ_l = x_{l+1} − x_l``.
* The **turning angle** at point l+1 is the angle between consecutive steps,
  ``θ_l = arccos(⟨Δ_l, Δ_{l+1}⟩ / (‖Δ_l‖ ‖Δ_{l+1}‖)) ∈ [0, π]``: 0 = straight on, π = reversal.
* The **interior angle** is ``π − θ_l`` (π = straight on); :func:`interior_angles` gives it.
* Undefined angles (a zero-length step, a padded position) are NaN and every aggregate masks them.

* **Sharp** turns have ``θ ≥ sharp_deg`` and **flat** (nearly straight) ones ``θ ≤ flat_deg``.
  The defaults (110° and 70°: 20° either side of orthogonal) are tlgeom's choice, not the
  paper's (arXiv 2511.03060 does not give its thresholds in any text available to us).
* ``space="normalized"`` measures the same quantities on normalised states (what the next
  layer's LayerNorm/RMSNorm reads, without its per-layer gain), put exactly on the sphere of radius
  √d (:func:`to_space`): ``norm="rms"`` divides each state by its RMS, ``norm="layernorm"`` also
  removes its mean over ``d_model`` (:func:`norm_kind` reads every other spelling).
* Across-token curvature (Hosseini & Fedorenko's "straightening") is the same angle taken
  along the sequence at a fixed layer: :func:`sequence_turning_angles`.

All computations run in float64 whatever the input dtype, and without overflow: norms are taken
of vectors first divided by their largest |entry| (:func:`safe_norm`), so states of size 1e300
give the same angles as states of size 1. Non-finite states (inf, or NaN in a real token) are a
TlgeomError naming where they are; a trajectory that is NaN throughout marks padding (as
:func:`as_states` makes from a Trajectories' mask) and stays NaN in every result.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from jaxtyping import Float

from tlgeom import _args
from tlgeom._errors import TlgeomError, bad_arg

#: Default thresholds (degrees of turning angle): tlgeom's choice, documented, not the paper's.
SHARP_DEG = 110.0
FLAT_DEG = 70.0
SPACES = _args.SPACES
NORMS = ("rms", "layernorm")

#: Relative step norm under which a step counts as zero length (its angles are NaN).
ZERO_STEP_RTOL = 1e-12


def max_abs(x: torch.Tensor, dim: int | tuple[int, ...] = -1) -> torch.Tensor:
    """``max |x|`` over ``dim`` (kept), with 1 where it is 0 or not finite: a safe divisor for scaling."""
    s = x.abs().amax(dim=dim, keepdim=True)
    return torch.where((s > 0) & torch.isfinite(s), s, torch.ones_like(s))


def safe_norm(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """``‖x‖₂`` over ``dim`` without overflow or underflow: ``s · ‖x / s‖`` with ``s = max |x|``.

    ``torch.linalg.vector_norm`` squares the entries as they are (``‖(1e300, 1e300)‖`` is inf and
    ``‖(1e-170,)·1000‖`` is 0); here only the final product can overflow, when the norm itself
    exceeds the float range.
    """
    x = x.to(torch.float64)
    n = torch.linalg.vector_norm(x, dim=dim, keepdim=True)
    if bool(_out_of_range(n).any()):  # rare: rescale (the fast path is exact to rounding elsewhere)
        s = max_abs(x, dim)
        n = torch.linalg.vector_norm(x / s, dim=dim, keepdim=True) * s
    return n if keepdim else n.squeeze(dim)


#: Norms inside [1e-140, 1e140] are exact to rounding when computed from plain squares (no square
#: overflows, and what underflows is < 1e-27 of the total); outside it the vector is rescaled first.
_SAFE_NORM_RANGE = (1e-140, 1e140)


def _out_of_range(n: torch.Tensor) -> torch.Tensor:
    return (n < _SAFE_NORM_RANGE[0]) | (n > _SAFE_NORM_RANGE[1])


def check_finite_states(x: torch.Tensor, arg: str = "x") -> None:
    """TlgeomError naming the first non-finite entry of a real token's states ``[..., point, d_model]``.

    A trajectory that is NaN at every point and coordinate is padding and allowed.
    """
    # fast path: a token's sum over [point, d_model] is finite unless one of its entries is not (or
    # the sum overflows, which the exact check below clears); only suspect tokens are looked at
    suspect = ~torch.isfinite(x.sum(dim=(-2, -1)))
    if not bool(suspect.any()):
        return
    xs = x[suspect]  # [n_suspect, point, d_model]
    padding = torch.isnan(xs).all(-1).all(-1)
    bad = ~torch.isfinite(xs) & ~padding[:, None, None]
    if not bool(bad.any()):
        return
    row = int(bad.flatten(1).any(-1).nonzero()[0])
    inner = tuple(int(i) for i in bad[row].nonzero()[0])
    first = tuple(int(i) for i in suspect.nonzero()[row]) + inner
    raise TlgeomError(
        f"{arg}: {int(bad.sum())} non-finite value(s) in the states of real tokens, the first "
        f"{float(x[first])} at index {first} of shape {tuple(x.shape)} ([..., point, d_model]); expected "
        "finite states (a NaN throughout one trajectory marks padding and is allowed). An inf or NaN here "
        "usually means the forward pass overflowed: run the model in float32"
    )


def as_states(x: Any, arg: str = "x", min_points: int = 2) -> Float[torch.Tensor, "... point d_model"]:
    """A float64 states tensor from a tensor or a :class:`~tlgeom.Trajectories` (padding → NaN).

    Raises:
        TlgeomError: not a float tensor / Trajectories, too few points, or a non-finite value in a
            real token (see :func:`check_finite_states`).
    """
    mask = None
    if hasattr(x, "states") and hasattr(x, "mask"):
        x, mask = x.states, x.mask
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise bad_arg(
            arg,
            type(x).__name__ if not isinstance(x, torch.Tensor) else f"Tensor(dtype={x.dtype})",
            "a float tensor [..., point, d_model] or a Trajectories",
        )
    if x.dim() < 2 or x.shape[-2] < min_points or x.shape[-1] < 1:
        raise bad_arg(
            arg, f"Tensor(shape={tuple(x.shape)})", f"shape [..., point, d_model] with at least {min_points} points"
        )
    x = x.to(torch.float64)
    if mask is not None:
        x = x.masked_fill(~mask.to(x.device)[..., None, None], float("nan"))
    check_finite_states(x, arg)
    return x


def steps(x: Any) -> Float[torch.Tensor, "... step d_model"]:
    """Layer steps ``Δ_l = x_{l+1} − x_l`` in float64."""
    return _steps(as_states(x))


def _steps(x: torch.Tensor) -> torch.Tensor:
    return x[..., 1:, :] - x[..., :-1, :]


def step_norms(x: Any, space: str = "raw", norm: str = "rms", eps: float = 1e-5) -> Float[torch.Tensor, "... step"]:
    """``‖Δ_l‖`` for each layer step, float64 (``space``/``norm``/``eps`` as in :func:`turning_angles`).

    Computed with :func:`safe_norm`, so no square overflows.
    """
    return safe_norm(_steps(_space(x, space, norm, eps)))


def angle_between(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Angle in [0, π] between vectors ``a`` and ``b`` along ``dim``; NaN if either is ~zero.

    Uses ``atan2(‖a×b‖, a·b)`` in its dimension-free form ``atan2(‖ â‖b‖ − b̂‖a‖ ‖, ‖ â‖b‖ + b̂‖a‖ ‖)·2``
    (Kahan), accurate for angles near 0 and π where arccos loses half its digits.
    """
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    na = torch.linalg.vector_norm(a, dim=dim, keepdim=True)
    nb = torch.linalg.vector_norm(b, dim=dim, keepdim=True)
    if bool((_out_of_range(na) | _out_of_range(nb)).any()):
        # the angle is scale-free: divide each vector by its largest |entry| so no square overflows
        sa, sb = max_abs(a, dim), max_abs(b, dim)
        a, b = a / sa, b / sb
        na = torch.linalg.vector_norm(a, dim=dim, keepdim=True)
        nb = torch.linalg.vector_norm(b, dim=dim, keepdim=True)
        m = torch.maximum(sa, sb)
        u, v = a * nb, b * na
        na, nb = na * (sa / m), nb * (sb / m)  # the true norms, both divided by the larger scale
    else:
        u, v = a * nb, b * na
    ang = 2 * torch.atan2(torch.linalg.vector_norm(u - v, dim=dim), torch.linalg.vector_norm(u + v, dim=dim))
    scale = torch.maximum(na, nb).squeeze(dim)
    tiny = (torch.minimum(na, nb).squeeze(dim) <= ZERO_STEP_RTOL * scale) | (scale == 0)
    return ang.masked_fill(tiny, float("nan"))


# ---------------------------------------------------------------------------------------------
# Normalised space


#: every spelling of a norm tlgeom accepts, and the one it means (:func:`norm_kind`)
_NORM_SPELLINGS = {"rms": "rms", "rmsnorm": "rms", "layernorm": "layernorm", "ln": "layernorm"}


def norm_kind(norm: str | None, arg: str = "norm") -> str:
    """The one norm vocabulary: ``"rms"`` or ``"layernorm"`` (:data:`NORMS`), from any spelling tlgeom uses
    (``"RMSNorm"``, ``"LayerNorm"`` as in :mod:`tlgeom.geometry.sphere`, the architecture kinds
    ``"rmsnorm(1+w)"`` / ``"layernorm(1+w)"`` of :mod:`tlgeom.models.arch`: the ``(1+w)`` is the gain's
    convention, not the normalisation)."""
    key = norm.lower().removesuffix("(1+w)") if isinstance(norm, str) else None
    if key not in _NORM_SPELLINGS:
        raise bad_arg(arg, norm, "one of " + ", ".join(repr(n) for n in NORMS) + " (or 'RMSNorm', 'LayerNorm')")
    return _NORM_SPELLINGS[key]


def normalize_states(x: torch.Tensor, norm: str = "rms", eps: float = 1e-5) -> Float[torch.Tensor, "... d_model"]:
    """What a LayerNorm/RMSNorm reads, without its gain and bias (float64): tlgeom's one normaliser.

    ``norm="rms"``: ``x / sqrt(mean_d(x²) + eps)``; ``norm="layernorm"``:
    ``(x − mean_d x) / sqrt(var_d(x) + eps)`` (biased variance, as ``torch.nn.LayerNorm``).
    Either puts every state on (about) the sphere of radius √d_model, matching TransformerLens'
    ``ln*.hook_normalized``. Computed without overflow as ``y · s / hypot(s·rms(y), √eps)`` with
    ``y = x / s``, ``s = max |x|``.
    """
    norm = norm_kind(norm)
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise bad_arg("eps", eps, "a finite float >= 0")
    x = x.to(torch.float64)
    if norm == "layernorm":
        x = x - x.mean(-1, keepdim=True)
    ms = x.pow(2).mean(-1, keepdim=True)
    if not bool(_out_of_range(ms.sqrt()).any()):
        return x * torch.rsqrt(ms + eps)
    s = max_abs(x)  # rare: rescale so no square overflows or underflows
    y = x / s
    rms = y.pow(2).mean(-1, keepdim=True).sqrt()
    return y * (s / torch.hypot(s * rms, torch.tensor(math.sqrt(eps), dtype=torch.float64, device=x.device)))


def to_space(x: torch.Tensor, space: str = "raw", norm: str = "rms", eps: float = 1e-5) -> torch.Tensor:
    """The one meaning of ``space`` (float64), for every path: the curvature tests, the corpus engine,
    the streaming metrics and the landscape.

    ``"raw"``: the states as given. ``"normalized"``: what the next LayerNorm/RMSNorm reads before its gain,
    ``n(x)`` (:func:`normalize_states`), put exactly on the sphere of radius √d: the norm's ``eps`` leaves
    ``‖n(x)‖ = √d · (1 + eps/mean x²)^(-1/2)``, a relative shortfall of about ``eps / (2 mean x²)``, which the
    rescaling removes, so that the observed states and the null models' surrogates share one radius.
    """
    if _args.check_space(space) == "raw":
        return x.to(torch.float64)
    y = normalize_states(x, norm, eps)
    return y * (math.sqrt(y.shape[-1]) / safe_norm(y, keepdim=True))


def _space(x: Any, space: str, norm: str, eps: float, min_points: int = 2) -> torch.Tensor:
    _args.check_space(space)
    return to_space(as_states(x, min_points=min_points), space, norm, eps)


# ---------------------------------------------------------------------------------------------
# Along the layers


def turning_angles(
    x: Any, space: str = "raw", norm: str = "rms", eps: float = 1e-5
) -> Float[torch.Tensor, "... step_pair"]:
    """Turning angle between consecutive layer steps, radians in [0, π].

    ``θ_l = ∠(Δ_l, Δ_{l+1}) = atan2(‖Δ_l × Δ_{l+1}‖, Δ_l·Δ_{l+1})`` with ``Δ_l = x_{l+1} − x_l``,
    so the output has ``point − 2`` entries (entry l is the vertex at point l+1); 0 = straight
    on, π = reversal. NaN where a step has zero length or the token is padding.

    Args:
        x: states ``[..., point, d_model]`` (any leading dims) or a Trajectories.
        space: ``"raw"`` or ``"normalized"`` (states normalised first, see :func:`normalize_states`).
        norm, eps: the normalisation for ``space="normalized"``.
    """
    d = _steps(_space(x, space, norm, eps, min_points=3))
    return angle_between(d[..., :-1, :], d[..., 1:, :])


def interior_angles(
    x: Any, space: str = "raw", norm: str = "rms", eps: float = 1e-5
) -> Float[torch.Tensor, "... step_pair"]:
    """Interior angle ``π − θ_l`` at each inner point (π = straight on)."""
    return math.pi - turning_angles(x, space, norm, eps)


def chord_ratio(length: torch.Tensor, chord: torch.Tensor) -> torch.Tensor:
    """``length / chord``, NaN where the chord is ~zero (``chord ≤ ZERO_STEP_RTOL · length``)."""
    return torch.where(chord > ZERO_STEP_RTOL * length, length / chord, torch.full_like(chord, float("nan")))


def length_to_chord(x: Any, space: str = "raw", norm: str = "rms", eps: float = 1e-5) -> Float[torch.Tensor, ...]:
    """Path length over chord: ``Σ_l ‖Δ_l‖ / ‖x_last − x_0‖`` (≥ 1; NaN for a zero chord)."""
    x = _space(x, space, norm, eps)
    length = safe_norm(_steps(x)).sum(-1)
    return chord_ratio(length, safe_norm(x[..., -1, :] - x[..., 0, :]))


class SharpFlat(NamedTuple):
    """Counts of sharp and flat turns among the defined (non-NaN) angles, and how many were defined."""

    sharp: torch.Tensor
    flat: torch.Tensor
    valid: torch.Tensor


def sharp_flat_counts(
    angles: torch.Tensor,
    sharp_deg: float | torch.Tensor = SHARP_DEG,
    flat_deg: float | torch.Tensor = FLAT_DEG,
    dim: int | tuple[int, ...] | None = None,
) -> SharpFlat:
    """Count sharp (``θ ≥ sharp_deg``) and flat (``θ ≤ flat_deg``) turning angles; NaN never counts.

    Args:
        angles: turning angles in **radians** (any shape; NaN = undefined).
        sharp_deg, flat_deg: thresholds in degrees of turning angle; floats or tensors that
            broadcast against ``angles`` (e.g. one threshold per layer-step, as
            :func:`null_sd_thresholds` gives). Defaults 110° / 70° (tlgeom's choice).
        dim: dims to sum over (default all).

    Returns:
        ``SharpFlat(sharp, flat, valid)`` int64 counts; ``valid`` = number of non-NaN angles.
    """
    if not isinstance(angles, torch.Tensor):
        raise bad_arg("angles", type(angles).__name__, "a tensor of turning angles in radians")
    a = angles.to(torch.float64)
    sharp = torch.as_tensor(sharp_deg, dtype=torch.float64, device=a.device)
    flat = torch.as_tensor(flat_deg, dtype=torch.float64, device=a.device)
    if bool((sharp < flat).any()):
        raise bad_arg("sharp_deg", sharp_deg, f"a threshold >= flat_deg ({flat_deg})")
    deg = torch.rad2deg(a)
    ok = ~torch.isnan(deg)
    dims = tuple(range(a.dim())) if dim is None else dim
    s = ((deg >= sharp) & ok).sum(dims)
    f = ((deg <= flat) & ok).sum(dims)
    return SharpFlat(s, f, ok.sum(dims))


def null_sd_thresholds(
    null_angles: torch.Tensor, k: float = 2.0, dim: int | tuple[int, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Thresholds relative to a null's spread: ``μ ± k·σ`` of the null's turning angles, in degrees.

    ``sharp_deg = μ + kσ``, ``flat_deg = μ − kσ`` with μ, σ the NaN-masked mean and standard
    deviation of ``null_angles`` (radians) over ``dim`` (default all dims).
    """
    if not (isinstance(k, (int, float)) and k >= 0):
        raise bad_arg("k", k, "a number >= 0 (how many null standard deviations)")
    a = torch.rad2deg(null_angles.to(torch.float64))
    dims = tuple(range(a.dim())) if dim is None else dim
    ok = ~torch.isnan(a)
    n = ok.sum(dims).clamp_min(1)
    mu = torch.where(ok, a, 0).sum(dims) / n
    keep = mu.reshape(_keepdim_shape(a.shape, dims))
    var = torch.where(ok, (a - keep) ** 2, 0).sum(dims) / (n - 1).clamp_min(1)
    sd = var.sqrt()
    return mu + k * sd, mu - k * sd


def _keepdim_shape(shape, dims) -> list[int]:
    dims = (dims,) if isinstance(dims, int) else dims
    dims = {d % len(shape) for d in dims}
    return [1 if i in dims else s for i, s in enumerate(shape)]


# ---------------------------------------------------------------------------------------------
# Along the sequence (Hosseini & Fedorenko 2023, "straightening")


def sequence_turning_angles(
    x: Any, space: str = "raw", norm: str = "rms", eps: float = 1e-5
) -> Float[torch.Tensor, "... point pos_pair"]:
    """Across-token turning angles at each layer.

    For states ``x[..., pos, point, d_model]`` (the Trajectories layout), at each point l the
    sequence steps are ``δ_t = x_{t+1,l} − x_{t,l}`` and the angle is ``∠(δ_t, δ_{t+1})``,
    radians in [0, π] → ``[..., point, pos − 2]``. NaN next to padding.
    """
    x = _space(x, space, norm, eps)
    if x.dim() < 3 or x.shape[-3] < 3:
        raise bad_arg("x", f"Tensor(shape={tuple(x.shape)})", "[..., pos, point, d_model] with at least 3 positions")
    x = x.transpose(-3, -2)  # [..., point, pos, d]
    d = x[..., 1:, :] - x[..., :-1, :]
    return angle_between(d[..., :-1, :], d[..., 1:, :])


def sequence_curvature(
    x: Any, space: str = "raw", norm: str = "rms", eps: float = 1e-5
) -> Float[torch.Tensor, "... point"]:
    """Mean across-token turning angle per layer, radians (NaN-masked mean over positions).

    Hosseini & Fedorenko's curvature of a sentence trajectory at layer l; a decrease with depth is
    what they call straightening (see :func:`straightening`).
    """
    return sequence_turning_angles(x, space, norm, eps).nanmean(-1)


def straightening(x: Any, space: str = "raw", norm: str = "rms", eps: float = 1e-5) -> Float[torch.Tensor, "... point"]:
    """``curvature(point 0) − curvature(point l)`` in radians: > 0 where a layer is straighter than the input."""
    c = sequence_curvature(x, space, norm, eps)
    return c[..., :1] - c
