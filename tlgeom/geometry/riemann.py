"""Riemannian geometry of the learned space: pullback metric, connection, curvature, geodesics.

Conventions (index placement as in Carroll / MTW):

* A *metric function* maps one chart point ``x[n]`` to ``g(x)[n, n]`` (symmetric positive
  definite). Every function here takes a metric function and points ``x[..., n]`` with any
  leading dims; derivatives of ``g`` come from ``torch.func.jacrev`` (reverse mode: on CPU it
  is ~100× cheaper per call than ``jacfwd`` for these small maps), vectorised over the points
  with ``torch.func.vmap``; maps into R^d (charts, embeddings) use ``jacfwd``/JVPs. Everything is float64.
* Christoffel symbols of the Levi-Civita connection, upper index first:
  ``Γ[..., k, i, j] = Γ^k_ij = ½ g^{kl} (∂_i g_jl + ∂_j g_il − ∂_l g_ij)``.
* Riemann tensor ``R[..., ρ, σ, μ, ν] = R^ρ_σμν = ∂_μ Γ^ρ_νσ − ∂_ν Γ^ρ_μσ + Γ^ρ_μλ Γ^λ_νσ − Γ^ρ_νλ Γ^λ_μσ``;
  Ricci ``R_σν = R^ρ_σρν``; scalar curvature ``R = g^{σν} R_σν`` (round sphere of radius r: 2/r²).
* Geodesics solve ``ẍ^k = −Γ^k_ij ẋ^i ẋ^j``; parallel transport of ``w`` along ``c(t)`` solves
  ``ẇ^k = −Γ^k_ij ċ^i w^j``; both with classical RK4.

Model charts (:func:`model_chart`): a token's residual state at trajectory point ``l0`` is moved
in a k-dimensional subspace, ``x_l0 + B u`` (``B`` a ``d_model × k`` orthonormal basis), and
mapped through the model to its state at point ``l1``, the rest of the context fixed. The map is
``R^k → R^d_model``; its pullback metric ``JᵀJ`` is computed from k JVPs (one batched forward
pass with dual numbers), so no ``d_model × d_model`` tensor is ever formed.

Effective metric of an attention head (:func:`head_metric_signature`): the bilinear form
``S = ½ (W_Q W_Kᵀ + W_K W_Qᵀ) / √d_head`` on the attention input (the LN/RMSNorm output), whose
eigen-signature (how many positive / negative directions) says how far the head's score
``x_iᵀ W_Q W_Kᵀ x_j`` is from a (pseudo-)inner product. Computed from the ``2·d_head``-dimensional
factorisation, never as a ``d_model × d_model`` matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch.func import jacfwd, jacrev, vmap

from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_axes

#: Largest chart dimension for the Riemann / Ricci / scalar curvature (n⁴ entries per point).
MAX_CURVATURE_DIM = 16

MetricFn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------
# input checks and batching


def _points(x: Any, arg: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() < 1 or x.shape[-1] < 1:
        shown = f"Tensor(shape={tuple(x.shape)}, dtype={x.dtype})" if isinstance(x, torch.Tensor) else type(x).__name__
        raise bad_arg(arg, shown, "a float tensor of chart points [..., n] with n ≥ 1")
    return x.to(torch.float64)


def _check_fn(fn: Any, arg: str) -> None:
    if not callable(fn):
        raise bad_arg(arg, fn, "a callable mapping one point x[n] (a torch tensor) to a tensor")


def _batched(single: Callable, x: torch.Tensor, *extra: torch.Tensor):
    """Apply ``single`` (one point [n]) to every point of ``x[..., n]`` with vmap."""
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    flat_extra = [e.to(torch.float64).reshape(-1, *e.shape[len(lead) :]) for e in extra]
    out = vmap(single)(flat, *flat_extra)
    if isinstance(out, tuple):
        return tuple(o.reshape(tuple(lead) + tuple(o.shape[1:])) for o in out)
    return out.reshape(tuple(lead) + tuple(out.shape[1:]))


def _check_spd(g: torch.Tensor, x: torch.Tensor, arg: str = "metric_fn") -> None:
    """TlgeomError naming the first point where ``g[..., n, n]`` is not finite or not positive definite.

    A singular or indefinite metric has no inverse ``g^{kl}``: Christoffel symbols and curvature are
    undefined there (a raw Cholesky error otherwise).
    """
    n = g.shape[-1]
    flat_g, flat_x = g.reshape(-1, n, n), x.reshape(-1, x.shape[-1])
    finite = torch.isfinite(flat_g).all(-1).all(-1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise TlgeomError(
            f"{arg}: g(x) has non-finite entries at point {i} (x = {flat_x[i].tolist()}); expected a finite "
            "symmetric positive-definite metric at every point"
        )
    info = torch.linalg.cholesky_ex(flat_g).info
    if bool((info != 0).any()):
        i = int((info != 0).nonzero()[0])
        lam = float(torch.linalg.eigvalsh(0.5 * (flat_g[i] + flat_g[i].T))[0])
        raise TlgeomError(
            f"{arg}: g(x) is not positive definite at point {i} (x = {flat_x[i].tolist()}): smallest eigenvalue "
            f"{lam:.3g}; expected a symmetric positive-definite metric at every point (a degenerate chart, or "
            "a metric that vanishes there, has no inverse g^kl)"
        )


def _metric_at(metric_fn: MetricFn, x: torch.Tensor) -> torch.Tensor:
    """``g`` at every point of ``x[..., n]``, checked finite and positive definite."""
    with torch.no_grad():
        g = _metric_value(metric_fn, x) if x.dim() == 1 else _batched(lambda z: _metric_value(metric_fn, z), x)
    _check_spd(g, x)
    return g


def _metric_value(metric_fn: MetricFn, x: torch.Tensor) -> torch.Tensor:
    g = metric_fn(x)
    if not isinstance(g, torch.Tensor) or g.shape != (x.shape[-1], x.shape[-1]):
        raise bad_arg(
            "metric_fn",
            metric_fn,
            f"a function returning g(x) of shape [n, n] = "
            f"[{x.shape[-1]}, {x.shape[-1]}], got {getattr(g, 'shape', type(g).__name__)}",
        )
    return g.to(torch.float64)


# ---------------------------------------------------------------------------------------------
# metric and connection


def pullback_metric(
    f: Callable[[torch.Tensor], torch.Tensor], x: Float[torch.Tensor, "... n"]
) -> Float[torch.Tensor, "... n n"]:
    """Pullback of the Euclidean metric through ``f``: ``g(x) = J(x)ᵀ J(x)``, ``J = ∂f/∂x``.

    ``g_ij = ⟨∂_i f, ∂_j f⟩``. ``J`` comes from ``torch.func.jacfwd`` (n JVPs, so a map into a
    large space costs n forward passes and never a ``d × d`` matrix), batched over points with vmap.

    Args:
        f: maps one point ``x[n]`` to any tensor (flattened to ``R^d``); must be written with torch
            ops so torch.func can differentiate it (a :class:`LayerChart` qualifies).
        x: points ``[..., n]``.

    Returns:
        ``g`` ``[..., n, n]`` float64.
    """
    _check_fn(f, "f")
    x = _points(x)

    def single(xi):
        J = jacfwd(lambda z: f(z).reshape(-1))(xi).to(torch.float64)  # [d, n]
        return J.transpose(-1, -2) @ J

    return _batched(single, x)


def _christoffel_from(g: torch.Tensor, dg: torch.Tensor) -> torch.Tensor:
    """Γ^k_ij from ``g[n,n]`` and ``dg[a,b,c] = ∂_c g_ab`` (one point)."""
    n = g.shape[-1]
    # T_lij = ∂_i g_jl + ∂_j g_il − ∂_l g_ij
    T = torch.einsum("jli->lij", dg) + torch.einsum("ilj->lij", dg) - torch.einsum("ijl->lij", dg)
    # Cholesky solve (g is positive definite). Not torch.linalg.solve: under vmap(jacfwd(...)) with
    # more than one point, torch 2.13 returns inf/NaN for every point after the first.
    return 0.5 * torch.cholesky_solve(T.reshape(n, n * n), torch.linalg.cholesky(g)).reshape(n, n, n)


def _gamma_single(metric_fn: MetricFn):
    def single(xi):
        dg, g = jacrev(lambda z: (lambda gz: (gz, gz))(_metric_value(metric_fn, z)), has_aux=True)(xi)
        return _christoffel_from(g, dg), g

    return single


def christoffel_symbols(metric_fn: MetricFn, x: Float[torch.Tensor, "... n"]) -> Float[torch.Tensor, "... n n n"]:
    """Christoffel symbols of the Levi-Civita connection, ``Γ[..., k, i, j] = Γ^k_ij``.

    ``Γ^k_ij = ½ g^{kl} (∂_i g_jl + ∂_j g_il − ∂_l g_ij)``, with ``∂g`` from ``torch.func.jacrev``
    of ``metric_fn`` (exact to rounding, no finite differences), vmapped over points, and
    ``g^{kl}`` applied by a batched Cholesky solve. Reverse mode, although g has n² outputs: on
    CPU (torch 2.13) ``jacrev`` costs ~0.4 ms for an 8×8 metric where ``jacfwd`` costs ~40 ms;
    both agree to rounding (tests). Float64.

    Args:
        metric_fn: maps one point ``x[n]`` to ``g(x)[n, n]``.
        x: points ``[..., n]``.

    Raises:
        TlgeomError: ``g`` not finite or not positive definite at some point (named, with its
            smallest eigenvalue).
    """
    _check_fn(metric_fn, "metric_fn")
    x = _points(x)
    dg_and_g = jacrev(lambda z: (lambda gz: (gz, gz))(_metric_value(metric_fn, z)), has_aux=True)
    dg, g = dg_and_g(x) if x.dim() == 1 else _batched(dg_and_g, x)
    _check_spd(g, x)
    n = x.shape[-1]
    T = torch.einsum("...jli->...lij", dg) + torch.einsum("...ilj->...lij", dg) - torch.einsum("...ijl->...lij", dg)
    G = torch.cholesky_solve(T.reshape(*T.shape[:-3], n, n * n), torch.linalg.cholesky(g))
    return 0.5 * G.reshape(*T.shape)


@dataclass
class Curvature(Result):
    """Metric, connection and curvature at a batch of points (all float64).

    Attributes:
        g: metric ``[..., n, n]``.
        christoffel: ``Γ^k_ij`` ``[..., n, n, n]`` (upper index first).
        riemann: ``R^ρ_σμν`` ``[..., n, n, n, n]``.
        ricci: ``R_σν`` ``[..., n, n]``.
        scalar: ``R`` ``[...]``.
    """

    g: torch.Tensor
    christoffel: torch.Tensor
    riemann: torch.Tensor
    ricci: torch.Tensor
    scalar: torch.Tensor

    result_name = "curvature"

    def to_frame(self):
        """One row per point (leading dims flattened): scalar curvature R, det g and tr g."""
        import pandas as pd

        n = self.g.shape[-1]
        g = self.g.detach().cpu().reshape(-1, n, n)
        return pd.DataFrame(
            {
                "point": range(g.shape[0]),
                "scalar": self.scalar.detach().cpu().reshape(-1).numpy(),
                "det_g": torch.linalg.det(g).numpy(),
                "trace_g": g.diagonal(dim1=-2, dim2=-1).sum(-1).numpy(),
            }
        )

    def headline(self) -> dict:
        """Chart dimension, number of points and the scalar curvature's median, min and max."""
        R = self.scalar.detach().cpu().reshape(-1)
        R = R[~torch.isnan(R)]
        nan = float("nan")
        return jsonable(
            {
                "dim": int(self.g.shape[-1]),
                "n_points": int(self.scalar.numel()),
                "scalar_median": float(R.median()) if R.numel() else nan,
                "scalar_min": float(R.min()) if R.numel() else nan,
                "scalar_max": float(R.max()) if R.numel() else nan,
            }
        )

    def summary(self) -> str:
        h = self.headline()
        if h["scalar_median"] is None:
            return f"curvature at {h['n_points']} points of a {h['dim']}-dim chart: no finite scalar curvature"
        return (
            f"curvature at {h['n_points']} point(s) of a {h['dim']}-dim chart: scalar curvature R median "
            f"{h['scalar_median']:.4g} (range {h['scalar_min']:.4g} to {h['scalar_max']:.4g}; flat space: 0, "
            "round sphere of radius r: 2/r²)"
        )

    def plot(self, ax=None):
        """Scalar curvature at each point (index order); returns the Figure."""
        fig, ax = new_axes(ax, (5, 3.5))
        R = self.scalar.detach().cpu().reshape(-1).numpy()
        ax.plot(range(len(R)), R, "o-", ms=3, lw=0.8)
        ax.axhline(0.0, color="grey", lw=0.6, ls="--")
        ax.set_xlabel("point")
        ax.set_ylabel("scalar curvature R")
        ax.set_title(f"scalar curvature ({self.g.shape[-1]}-dim chart)")
        return fig


def _curvature_single(metric_fn: MetricFn):
    gamma = _gamma_single(metric_fn)

    def single(xi):
        dGamma, (Gamma, g) = jacrev(lambda z: (lambda out: (out[0], out))(gamma(z)), has_aux=True)(xi)
        # dGamma[r, a, b, c] = ∂_c Γ^r_ab
        R = (
            torch.einsum("rnsm->rsmn", dGamma)
            - torch.einsum("rmsn->rsmn", dGamma)
            + torch.einsum("rml,lns->rsmn", Gamma, Gamma)
            - torch.einsum("rnl,lms->rsmn", Gamma, Gamma)
        )
        ric = torch.einsum("rsrn->sn", R)
        scal = torch.einsum("sn,sn->", torch.cholesky_inverse(torch.linalg.cholesky(g)), ric)
        return g, Gamma, R, ric, scal

    return single


def curvature(metric_fn: MetricFn, x: Float[torch.Tensor, "... n"]) -> Curvature:
    """Metric, Christoffel symbols, Riemann and Ricci tensors and scalar curvature in one pass.

    ``R^ρ_σμν = ∂_μ Γ^ρ_νσ − ∂_ν Γ^ρ_μσ + Γ^ρ_μλ Γ^λ_νσ − Γ^ρ_νλ Γ^λ_μσ``, ``R_σν = R^ρ_σρν``,
    ``R = g^{σν} R_σν``. ``∂Γ`` is a second ``jacrev`` (so ``g`` is differentiated twice).

    Args:
        metric_fn: maps one point ``x[n]`` to ``g(x)[n, n]``; n ≤ :data:`MAX_CURVATURE_DIM`.
        x: points ``[..., n]``.
    """
    _check_fn(metric_fn, "metric_fn")
    x = _points(x)
    if x.shape[-1] > MAX_CURVATURE_DIM:
        raise bad_arg(
            "x",
            f"Tensor(shape={tuple(x.shape)})",
            f"chart dimension n ≤ {MAX_CURVATURE_DIM} for curvature tensors (n⁴ entries per point)",
        )
    _metric_at(metric_fn, x)  # a singular / NaN metric: a TlgeomError naming the point, not a Cholesky error
    return Curvature(*_batched(_curvature_single(metric_fn), x))


def riemann_tensor(metric_fn: MetricFn, x: Float[torch.Tensor, "... n"]) -> Float[torch.Tensor, "... n n n n"]:
    """Riemann tensor ``R[..., ρ, σ, μ, ν] = R^ρ_σμν`` (see :func:`curvature`)."""
    return curvature(metric_fn, x).riemann


def ricci_tensor(metric_fn: MetricFn, x: Float[torch.Tensor, "... n"]) -> Float[torch.Tensor, "... n n"]:
    """Ricci tensor ``R_σν = R^ρ_σρν`` (see :func:`curvature`)."""
    return curvature(metric_fn, x).ricci


def scalar_curvature(metric_fn: MetricFn, x: Float[torch.Tensor, "... n"]) -> Float[torch.Tensor, ...]:
    """Scalar curvature ``R = g^{σν} R_σν`` (round sphere of radius r: 2/r²; see :func:`curvature`)."""
    return curvature(metric_fn, x).scalar


def pullback_scalar_curvature(
    f: Callable[[torch.Tensor], torch.Tensor], x: Float[torch.Tensor, "... n"]
) -> Float[torch.Tensor, ...]:
    """Scalar curvature of the pullback metric ``g = JᵀJ`` of an immersion ``f``, by the Gauss equation.

    With the second fundamental form ``II_ij = (∂_i ∂_j f)^⊥`` (the part of the Hessian normal to
    the tangent space spanned by J's columns, ``v^⊥ = v − J g⁻¹ Jᵀ v``),
    ``R = g^{ij} g^{kl} (⟨II_ij, II_kl⟩ − ⟨II_ik, II_jl⟩)``. This needs only second derivatives of
    ``f`` (one ``jacfwd`` less than differentiating ``g`` twice) and never a ``d × d`` matrix, so it is
    the cheap route for model charts; it equals :func:`scalar_curvature` of ``pullback_metric(f, ·)``.

    Args:
        f: maps one point ``x[n]`` to ``R^d`` (any output shape, flattened).
        x: points ``[..., n]``, n ≤ :data:`MAX_CURVATURE_DIM`.
    """
    _check_fn(f, "f")
    x = _points(x)
    if x.shape[-1] > MAX_CURVATURE_DIM:
        raise bad_arg("x", f"Tensor(shape={tuple(x.shape)})", f"chart dimension n ≤ {MAX_CURVATURE_DIM}")
    with torch.no_grad():
        _check_spd(pullback_metric(f, x), x, "f")  # a degenerate chart (rank J < n) has no curvature

    def single(xi):
        flat = lambda z: f(z).reshape(-1)
        Hf, J = jacfwd(lambda z: (lambda j: (j, j))(jacfwd(flat)(z)), has_aux=True)(xi)  # [d,n,n], [d,n]
        J, Hf = J.to(torch.float64), Hf.to(torch.float64)
        g = J.T @ J
        Lg = torch.linalg.cholesky(g)
        n = g.shape[-1]
        coef = torch.cholesky_solve(J.T @ Hf.reshape(-1, n * n), Lg)  # [n, n*n]
        N = Hf.reshape(-1, n * n) - J @ coef  # normal parts [d, n*n]
        M = (N.T @ N).reshape(n, n, n, n)  # ⟨II_ij, II_kl⟩
        G = torch.cholesky_inverse(Lg)
        return torch.einsum("ij,kl,ijkl->", G, G, M) - torch.einsum("ij,kl,ikjl->", G, G, M)

    return _batched(single, x)


# ---------------------------------------------------------------------------------------------
# geodesics and parallel transport


@dataclass
class Geodesic(Result):
    """A solution of the geodesic equation sampled at ``t``.

    Attributes:
        t: ``[step]`` parameter values (``n_steps + 1``).
        x: positions ``[..., step, n]``.
        v: velocities ``[..., step, n]``.
    """

    t: torch.Tensor
    x: torch.Tensor
    v: torch.Tensor

    result_name = "geodesic"

    def headline(self) -> dict:
        """Number of curves and steps, the parameter range, and the chart displacement ‖x(t1) − x(0)‖."""
        x = self.x.detach().cpu().reshape(-1, *self.x.shape[-2:])
        disp = (x[:, -1] - x[:, 0]).norm(dim=-1)
        return jsonable(
            {
                "n_curves": int(x.shape[0]),
                "n_steps": int(x.shape[1] - 1),
                "dim": int(x.shape[2]),
                "t0": float(self.t[0]),
                "t1": float(self.t[-1]),
                "displacement_median": float(disp.median()),
                "displacement_max": float(disp.max()),
            }
        )

    def summary(self) -> str:
        h = self.headline()
        return (
            f"{h['n_curves']} geodesic(s) in a {h['dim']}-dim chart, t from {h['t0']:g} to {h['t1']:g} in "
            f"{h['n_steps']} RK4 steps; chart displacement ‖x(t1) − x(0)‖ median {h['displacement_median']:.4g}, "
            f"max {h['displacement_max']:.4g}"
        )

    def speed(self, metric_fn: MetricFn) -> Float[torch.Tensor, "... step"]:
        """``√(g(v, v))`` along the curve (constant for an exact geodesic)."""
        g = _batched(lambda z: _metric_value(metric_fn, z), self.x)
        return torch.einsum("...i,...ij,...j->...", self.v, g, self.v).sqrt()

    def to_frame(self):
        import numpy as np
        import pandas as pd

        x = self.x.reshape(-1, *self.x.shape[-2:]).cpu().numpy()
        B, T, n = x.shape
        b, s = np.meshgrid(np.arange(B), np.arange(T), indexing="ij")
        data = {"curve": b.ravel(), "step": s.ravel(), "t": self.t.cpu().numpy()[s.ravel()]}
        data.update({f"x{i}": x[..., i].ravel() for i in range(n)})
        return pd.DataFrame(data)

    def plot(self, ax=None, dims: tuple[int, int] = (0, 1)):
        """The curves projected on two chart coordinates; returns the Figure."""
        fig, ax = new_axes(ax, (4, 4))
        x = self.x.reshape(-1, *self.x.shape[-2:]).cpu()
        for c in x:
            ax.plot(c[:, dims[0]], c[:, dims[1]], lw=1)
        ax.set_xlabel(f"x{dims[0]}")
        ax.set_ylabel(f"x{dims[1]}")
        ax.set_title("geodesics")
        return fig


def _check_steps(t1: Any, n_steps: Any) -> None:
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise bad_arg("n_steps", n_steps, "a positive int")
    if not isinstance(t1, (int, float)) or isinstance(t1, bool) or not math.isfinite(t1):
        raise bad_arg("t1", t1, "a finite float")


def geodesic(
    metric_fn: MetricFn,
    x0: Float[torch.Tensor, "... n"],
    v0: Float[torch.Tensor, "... n"],
    t1: float = 1.0,
    n_steps: int = 100,
) -> Geodesic:
    """Integrate the geodesic equation ``ẍ^k = −Γ^k_ij ẋ^i ẋ^j`` from ``(x0, v0)`` with RK4.

    All initial conditions (leading dims of ``x0``/``v0``) advance together; each RK4 stage is one
    vectorised Christoffel evaluation. Global error O(h⁴), ``h = t1 / n_steps``.

    Args:
        metric_fn: maps one point ``x[n]`` to ``g(x)[n, n]``.
        x0, v0: start points and velocities ``[..., n]`` (same shape).
        t1: final parameter value.
        n_steps: RK4 steps.
    """
    _check_fn(metric_fn, "metric_fn")
    x = _points(x0, "x0")
    v = _points(v0, "v0")
    if v.shape != x.shape:
        raise bad_arg("v0", f"Tensor(shape={tuple(v.shape)})", f"the shape of x0, {tuple(x.shape)}")
    _check_steps(t1, n_steps)
    h = float(t1) / n_steps
    gamma = vmap(lambda xi: _gamma_single(metric_fn)(xi)[0])
    lead = x.shape[:-1]
    x, v = x.reshape(-1, x.shape[-1]), v.reshape(-1, x.shape[-1])

    def acc(xx, vv):
        return -torch.einsum("bkij,bi,bj->bk", gamma(xx), vv, vv)

    xs, vs = [x], [v]
    for _ in range(n_steps):
        k1x, k1v = v, acc(x, v)
        k2x, k2v = v + 0.5 * h * k1v, acc(x + 0.5 * h * k1x, v + 0.5 * h * k1v)
        k3x, k3v = v + 0.5 * h * k2v, acc(x + 0.5 * h * k2x, v + 0.5 * h * k2v)
        k4x, k4v = v + h * k3v, acc(x + h * k3x, v + h * k3v)
        x = x + h / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        v = v + h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        xs.append(x)
        vs.append(v)
    X = torch.stack(xs, dim=1).reshape(*lead, n_steps + 1, -1)
    V = torch.stack(vs, dim=1).reshape(*lead, n_steps + 1, -1)
    return Geodesic(t=torch.linspace(0, float(t1), n_steps + 1, dtype=torch.float64), x=X, v=V)


def parallel_transport(
    metric_fn: MetricFn,
    curve: Callable[[torch.Tensor], torch.Tensor],
    w0: Float[torch.Tensor, "... n"],
    t1: float = 1.0,
    n_steps: int = 100,
) -> Float[torch.Tensor, "step ... n"]:
    """Parallel-transport vectors ``w0`` along ``c(t)``, ``t ∈ [0, t1]``: ``ẇ^k = −Γ^k_ij ċ^i w^j`` (RK4).

    ``ċ`` comes from ``torch.func.jacfwd`` of ``curve``. The transported vectors keep their
    ``g``-lengths and mutual angles (Levi-Civita connection is metric-compatible).

    Args:
        metric_fn: maps one point ``x[n]`` to ``g(x)[n, n]``.
        curve: maps a 0-d float64 tensor ``t`` to the point ``c(t)[n]``.
        w0: vectors at ``c(0)``, ``[..., n]`` (any number, transported together).
        t1: end of the parameter interval.
        n_steps: RK4 steps.

    Returns:
        ``[n_steps + 1, ..., n]``: the vectors at ``t = 0, h, …, t1``.
    """
    _check_fn(metric_fn, "metric_fn")
    _check_fn(curve, "curve")
    _check_steps(t1, n_steps)
    w = _points(w0, "w0")
    n = w.shape[-1]
    lead = w.shape[:-1]
    w = w.reshape(-1, n)
    gamma = _gamma_single(metric_fn)

    def rhs(t: float, ww):
        tt = torch.tensor(float(t), dtype=torch.float64)
        c = curve(tt).to(torch.float64)
        if c.shape != (n,):
            raise bad_arg("curve", curve, f"a function of t returning a point of shape [{n}], got {tuple(c.shape)}")
        cdot = jacfwd(lambda s: curve(s).to(torch.float64))(tt)
        G = gamma(c)[0]
        return -torch.einsum("kij,i,bj->bk", G, cdot, ww)

    h = float(t1) / n_steps
    out = [w]
    for s in range(n_steps):
        t = s * h
        k1 = rhs(t, w)
        k2 = rhs(t + h / 2, w + h / 2 * k1)
        k3 = rhs(t + h / 2, w + h / 2 * k2)
        k4 = rhs(t + h, w + h * k3)
        w = w + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(w)
    return torch.stack(out).reshape(n_steps + 1, *lead, n)


# ---------------------------------------------------------------------------------------------
# effective metric of attention heads


def head_effective_metric(
    W_Q: Float[torch.Tensor, "... d_model d_head"],
    W_K: Float[torch.Tensor, "... d_model d_head"],
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of ``S = ½ (W_Q W_Kᵀ + W_K W_Qᵀ) · scale`` without forming ``S``.

    ``S = A M Aᵀ`` with ``A = [W_Q  W_K]`` (``d × 2h``) and ``M = ½ [[0, I], [I, 0]]``; with
    ``A = Q R`` (thin QR), ``S = Q (R M Rᵀ) Qᵀ``, so the non-zero spectrum of S is that of the
    ``2h × 2h`` matrix ``R M Rᵀ`` and its eigenvectors are ``Q V``. The other ``d − 2h``
    eigenvalues are 0.

    Args:
        W_Q, W_K: ``[..., d_model, d_head]`` (any leading dims, e.g. ``[layer, head]``).
        scale: multiplies S; default ``1/√d_head`` (the attention-score scale).

    Returns:
        ``(eigenvalues [..., 2h] ascending, eigenvectors [..., d_model, 2h])`` float64.
    """
    for name, W in (("W_Q", W_Q), ("W_K", W_K)):
        if not isinstance(W, torch.Tensor) or W.dim() < 2 or not W.dtype.is_floating_point:
            raise bad_arg(name, getattr(W, "shape", W), "a float tensor [..., d_model, d_head]")
    if W_Q.shape != W_K.shape:
        raise bad_arg("W_K", tuple(W_K.shape), f"the shape of W_Q {tuple(W_Q.shape)} (expand grouped K heads first)")
    h = W_Q.shape[-1]
    scale = 1 / math.sqrt(h) if scale is None else float(scale)
    A = torch.cat([W_Q, W_K], dim=-1).detach().to(torch.float64)
    Q, R = torch.linalg.qr(A)
    I = torch.eye(h, dtype=torch.float64, device=A.device)
    Z = torch.zeros_like(I)
    M = 0.5 * scale * torch.cat([torch.cat([Z, I], -1), torch.cat([I, Z], -1)], -2)
    small = R @ M @ R.transpose(-1, -2)
    lam, V = torch.linalg.eigh(0.5 * (small + small.transpose(-1, -2)))
    return lam, Q @ V
