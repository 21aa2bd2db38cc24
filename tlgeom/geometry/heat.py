"""Laplace–Beltrami operator and heat kernel on point clouds; attention vs heat-kernel diffusion.

Graph Laplacian (diffusion maps, Coifman & Lafon 2006, α-normalisation):

1. ``K_ij = exp(−‖x_i − x_j‖² / ε)`` for i ≠ j, ``K_ii = 0`` (no self-loops: the diagonal adds an
   O(1/(N ε^{m/2})) downward bias to every eigenvalue, m the intrinsic dimension).
2. ``q_i = Σ_j K_ij``, ``K⁽ᵅ⁾_ij = K_ij / (q_i^α q_j^α)`` (α = 1 removes the sampling density).
3. ``d_i = Σ_j K⁽ᵅ⁾_ij``, ``P = D⁻¹ K⁽ᵅ⁾`` (row-stochastic).
4. ``L = (4/ε) (I − P)``.

For the Gaussian ``exp(−|z|²/ε)``, ``P f = f + (ε/4) Δ_g f + O(ε²)`` on an m-dimensional
submanifold (the second moment per coordinate is ε/2), so ``L → −Δ_g`` as N → ∞, ε → 0 (with
α = 1, for any smooth sampling density). The factor 4 is that moment, not a fitted constant:
on 1,000 uniform points of the unit circle the first eigenvalues come out ≈ 1, 1, 4, 4 and on
the unit 2-sphere ≈ 2 (×3), 6 (×5). ``L`` is similar to the symmetric
``(4/ε)(I − S)``, ``S = D^{-1/2} K⁽ᵅ⁾ D^{-1/2}``, which is what gets eigendecomposed.

Bandwidth rule (:func:`bandwidth`): ``ε = median_i ‖x_i − x_{i,(k)}‖²``, the median squared
distance to the k-th nearest neighbour, ``k = 16`` by default. Each point then has ~k
neighbours within one kernel width, enough to average out sampling noise, while ε stays
small enough that the O(ε) bias is a few percent (circle, N = 1000: ε ≈ 2.4e-3; unit sphere,
N = 2000: ε ≈ 0.03).

Heat kernel: ``H_t = exp(−t L) = D^{-1/2} V exp(−t (4/ε)(1 − μ)) Vᵀ D^{1/2}`` (``S = V diag(μ) Vᵀ``),
row-stochastic and non-negative, the discrete counterpart of ``K_t(x, y)`` solving
``(∂_t − Δ) K_t = 0``.

Attention vs heat kernel (:func:`attention_vs_heat_kernel`): for each head, the point cloud is
that head's queries and keys, scaled so that ``q̃_i · k̃_j = q_i · k_j / √d_head`` is exactly the
attention score, i.e. the geometry of the query/key space induced by ``W_Q W_Kᵀ``. The heat kernel
on this cloud, restricted to query rows and key columns, causally masked and row-normalised, is
fitted to the attention pattern over (t, ε); the baseline is the plain Gaussian kernel
``exp(−‖q̃_i − k̃_j‖²/σ)`` (masked, row-normalised) fitted over σ. Note that softmax attention is
*exactly* ``exp(−‖q̃_i − k̃_j‖²/2) · exp(‖k̃_j‖²/2)`` after row normalisation: a Gaussian only with a
key-dependent weight, which neither fitted kernel has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float

from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_axes

#: Default neighbour rank of the bandwidth rule.
DEFAULT_K = 16


def _cloud(X: Any, arg: str = "X", min_points: int = 3) -> torch.Tensor:
    if not isinstance(X, torch.Tensor) or not X.dtype.is_floating_point or X.dim() < 2:
        shown = f"Tensor(shape={tuple(X.shape)}, dtype={X.dtype})" if isinstance(X, torch.Tensor) else type(X).__name__
        raise bad_arg(arg, shown, "a float tensor of points [..., N, D]")
    if X.shape[-2] < min_points or X.shape[-1] < 1:
        raise bad_arg(arg, f"Tensor(shape={tuple(X.shape)})", f"at least {min_points} points of dimension ≥ 1")
    X = X.to(torch.float64)
    if not bool(torch.isfinite(X).all()):
        raise bad_arg(arg, "a tensor with NaN/inf", "finite coordinates")
    return X


def _sqdist(X: torch.Tensor) -> torch.Tensor:
    n2 = (X * X).sum(-1)
    D2 = n2[..., :, None] + n2[..., None, :] - 2 * X @ X.transpose(-1, -2)
    return D2.clamp_min(0)


def bandwidth(X: Float[torch.Tensor, "... N D"], k: int = DEFAULT_K) -> Float[torch.Tensor, ...]:
    """The bandwidth rule: ``ε = median_i ‖x_i − x_{i,(k)}‖²`` (k-th nearest neighbour, self excluded)."""
    X = _cloud(X)
    N = X.shape[-2]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < N:
        raise bad_arg("k", k, f"an int in [1, N={N})")
    D2 = _sqdist(X)
    kth = D2.kthvalue(k + 1, dim=-1).values  # +1: the point itself is at distance 0
    return kth.median(dim=-1).values


@dataclass
class GraphLaplacian(Result):
    """Diffusion-maps graph Laplacian ``L = (4/ε)(I − D⁻¹K⁽ᵅ⁾)`` (→ −Δ_g), in symmetric form.

    Attributes:
        sym: ``S = D^{-1/2} K⁽ᵅ⁾ D^{-1/2}`` ``[..., N, N]``.
        sqrt_deg: ``D^{1/2}`` diagonal ``[..., N]``.
        eps: bandwidth ``[...]``.
        alpha: density normalisation exponent.
    """

    sym: torch.Tensor
    sqrt_deg: torch.Tensor
    eps: torch.Tensor
    alpha: float
    _eig: tuple | None = field(default=None, repr=False)

    result_name = "graph_laplacian"

    @property
    def n(self) -> int:
        return self.sym.shape[-1]

    #: eigenvalues quoted by :meth:`headline` / :meth:`summary` (the smallest ones).
    n_quoted = 10

    def to_frame(self):
        """Tidy spectrum: one row per (cloud, index) with the eigenvalue λ_i of L (ascending) and ε."""
        import numpy as np
        import pandas as pd

        lam = self.eigenvalues().detach().cpu().reshape(-1, self.n).numpy()
        eps = self.eps.detach().cpu().reshape(-1).numpy()
        c, i = np.meshgrid(np.arange(lam.shape[0]), np.arange(self.n), indexing="ij")
        return pd.DataFrame({"cloud": c.ravel(), "index": i.ravel(), "eigenvalue": lam.ravel(), "eps": eps[c.ravel()]})

    def headline(self) -> dict:
        """N, α, ε and the smallest eigenvalues (the first ≈ 0) of each cloud; the spectral gap λ₁."""
        k = min(self.n_quoted, self.n)
        lam = self.eigenvalues().detach().cpu().reshape(-1, self.n)[:, :k]
        return jsonable(
            {
                "n_points": self.n,
                "n_clouds": int(lam.shape[0]),
                "alpha": self.alpha,
                "eps": self.eps.detach().cpu().reshape(-1),
                "smallest_eigenvalues": lam,
                "spectral_gap": lam[:, 1] if k > 1 else [],
            }
        )

    def summary(self) -> str:
        h = self.headline()
        first = h["smallest_eigenvalues"][0]
        return (
            f"graph Laplacian (diffusion maps, α = {self.alpha:g}) of {h['n_clouds']} cloud(s) of {self.n} points, "
            f"ε = {h['eps'][0]:.3g}"
            + (" (first cloud)" if h["n_clouds"] > 1 else "")
            + "; smallest eigenvalues "
            + ", ".join(f"{x:.3g}" for x in first)
            + " (estimates of −Δ_g's spectrum; the first is 0)"
        )

    def plot(self, ax=None):
        """The smallest eigenvalues of each cloud against their index; returns the Figure."""
        fig, ax = new_axes(ax, (5, 3.5))
        k = min(max(self.n_quoted, 30), self.n)
        lam = self.eigenvalues().detach().cpu().reshape(-1, self.n)[:, :k]
        for c, row in enumerate(lam[:10]):
            ax.plot(range(k), row.numpy(), "o-", ms=3, lw=0.8, label=f"cloud {c}" if len(lam) > 1 else None)
        ax.set_xlabel("index i")
        ax.set_ylabel("eigenvalue λ_i of L")
        ax.set_title(f"graph Laplacian spectrum (N = {self.n}, α = {self.alpha:g})")
        if len(lam) > 1:
            ax.legend(fontsize=7)
        return fig

    def _decomp(self):
        if self._eig is None:
            mu, V = torch.linalg.eigh(self.sym)
            self._eig = (mu.flip(-1), V.flip(-1))  # descending μ = ascending eigenvalues of L
        return self._eig

    def eigenvalues(self, n: int | None = None) -> Float[torch.Tensor, "... n"]:
        """The smallest ``n`` eigenvalues of L (ascending; the first is 0): estimates of −Δ_g's spectrum.

        A few eigenvalues of one large cloud (``n ≤ N/4``) come from Lanczos iteration
        (``scipy.sparse.linalg.eigsh`` on S); otherwise from the full ``eigh``.
        """
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= self.n):
            raise bad_arg("n", n, f"an int in [1, N={self.n}] or None")
        if n is not None and self._eig is None and self.sym.dim() == 2 and n <= self.n // 4 and self.n > 200:
            from scipy.sparse.linalg import eigsh

            mu = eigsh(self.sym.cpu().numpy(), k=n, which="LA", return_eigenvectors=False)
            mu = torch.from_numpy(mu.copy()).sort(descending=True).values.to(self.sym)
            return (4.0 / self.eps) * (1 - mu)
        mu, _ = self._decomp()
        lam = (4.0 / self.eps)[..., None] * (1 - mu)
        return lam if n is None else lam[..., :n]

    def eigenvectors(self, n: int | None = None) -> Float[torch.Tensor, "... N n"]:
        """Right eigenvectors of L (``ψ = D^{-1/2} v``), columns matching :meth:`eigenvalues`."""
        _, V = self._decomp()
        psi = V / self.sqrt_deg[..., :, None]
        return psi if n is None else psi[..., :n]

    def dense(self) -> Float[torch.Tensor, "... N N"]:
        """L itself, ``(4/ε)(I − D^{-1/2} S D^{1/2})`` (not symmetric)."""
        P = self.sym / self.sqrt_deg[..., :, None] * self.sqrt_deg[..., None, :]
        I = torch.eye(self.n, dtype=P.dtype, device=P.device)
        return (4.0 / self.eps)[..., None, None] * (I - P)

    def heat_kernel(self, t: Any) -> torch.Tensor:
        """``exp(−tL)``; see :func:`heat_kernel`."""
        return heat_kernel(self, t)


def graph_laplacian(
    X: Float[torch.Tensor, "... N D"],
    eps: float | torch.Tensor | None = None,
    *,
    k: int = DEFAULT_K,
    alpha: float = 1.0,
) -> GraphLaplacian:
    """Diffusion-maps Laplacian of a point cloud, scaled to converge to −Δ_g (module docstring).

    Args:
        X: points ``[..., N, D]`` (any leading dims: one Laplacian per cloud).
        eps: bandwidth ε of ``exp(−‖x−y‖²/ε)`` (float or tensor broadcastable to the leading dims);
            default the rule of :func:`bandwidth` with ``k`` neighbours.
        k: neighbour rank of the bandwidth rule.
        alpha: Coifman–Lafon normalisation (1 = Laplace–Beltrami whatever the sampling density;
            0 = classical normalised graph Laplacian, density-biased).
    """
    X = _cloud(X)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 <= alpha <= 1:
        raise bad_arg("alpha", alpha, "a float in [0, 1]")
    if eps is None:
        eps_t = bandwidth(X, k)
    else:
        eps_t = torch.as_tensor(eps, dtype=torch.float64, device=X.device)
        if not bool(torch.isfinite(eps_t).all()) or bool((eps_t <= 0).any()):
            raise bad_arg("eps", eps, "a positive bandwidth (float or tensor)")
        eps_t = eps_t.expand(X.shape[:-2]) if eps_t.dim() <= len(X.shape[:-2]) else eps_t
    if bool((eps_t <= 0).any()):
        raise TlgeomError("X: the bandwidth rule gave ε = 0 (duplicate points?): pass eps explicitly")
    D2 = _sqdist(X)
    K = torch.exp(-D2 / eps_t[..., None, None])
    K = K * (1 - torch.eye(K.shape[-1], dtype=K.dtype, device=K.device))
    q = K.sum(-1).clamp_min(1e-300)
    Ka = K / (q[..., :, None] * q[..., None, :]) ** alpha
    d = Ka.sum(-1).clamp_min(1e-300)
    sd = d.sqrt()
    S = Ka / (sd[..., :, None] * sd[..., None, :])
    return GraphLaplacian(sym=0.5 * (S + S.transpose(-1, -2)), sqrt_deg=sd, eps=eps_t, alpha=float(alpha))


def heat_kernel(L: Any, t: Any) -> torch.Tensor:
    """Heat kernel ``H_t = exp(−tL)``.

    Args:
        L: a :class:`GraphLaplacian` (eigendecomposition of its symmetric form, computed once and
            reused for every t), a symmetric tensor ``[..., N, N]`` (``eigh``), or any square tensor
            (``torch.linalg.matrix_exp``).
        t: a time ≥ 0, or a 1-D tensor/list of times.

    Returns:
        ``[..., N, N]`` for a scalar t, ``[..., T, N, N]`` for T times. For a GraphLaplacian every
        row sums to 1 and every entry is ≥ 0.
    """
    tt = torch.as_tensor(t, dtype=torch.float64)
    if tt.dim() > 1 or not bool(torch.isfinite(tt).all()) or bool((tt < 0).any()):
        raise bad_arg("t", t, "a time ≥ 0 or a 1-D list/tensor of times ≥ 0")
    scalar = tt.dim() == 0
    tt = tt.reshape(-1)
    if isinstance(L, GraphLaplacian):
        mu, V = L._decomp()
        lam = (4.0 / L.eps)[..., None] * (1 - mu)  # [..., N]
        tt = tt.to(lam.device)
        E = torch.exp(-tt.reshape(*([1] * (lam.dim() - 1)), -1, 1) * lam[..., None, :])  # [..., T, N]
        left = V / L.sqrt_deg[..., :, None]
        right = V * L.sqrt_deg[..., :, None]
        H = torch.einsum("...im,...tm,...jm->...tij", left, E, right)
    elif isinstance(L, torch.Tensor) and L.dim() >= 2 and L.shape[-1] == L.shape[-2] and L.dtype.is_floating_point:
        Ld = L.to(torch.float64)
        tt = tt.to(Ld.device)
        if torch.allclose(Ld, Ld.transpose(-1, -2)):
            lam, V = torch.linalg.eigh(Ld)
            E = torch.exp(-tt.reshape(*([1] * (lam.dim() - 1)), -1, 1) * lam[..., None, :])
            H = torch.einsum("...im,...tm,...jm->...tij", V, E, V)
        else:
            H = torch.linalg.matrix_exp(-tt.reshape(-1, 1, 1) * Ld[..., None, :, :])
    else:
        raise bad_arg(
            "L", getattr(L, "shape", type(L).__name__), "a GraphLaplacian or a square float tensor [..., N, N]"
        )
    return H[..., 0, :, :] if scalar else H
