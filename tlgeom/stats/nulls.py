"""Null models for layer-wise trajectory curvature, and the statistics that compare to them.

Is a model's trajectory curvature more than dimensionality or chance would give? Each null model
below generates surrogate trajectories that keep some properties of the observed ones and
randomise the rest; :func:`compare_to_nulls` counts sharp and flat turns and measures
length-to-chord (LTC) on the observed and on ``n_sims`` surrogate sets, and reports the excess,
a z-score and a permutation p-value ``p = (1 + #{null ≥ observed}) / (1 + n_sims)``.

The null models (tlgeom's choices: the paper, arXiv 2511.03060, names "dimensionality or
chance" but its null models are not available to us, so none of these is claimed to be its):

=============  =================================================================================
``gaussian``   norm-matched isotropic Gaussian walk: each token keeps its step norms ‖Δ_l‖;
               each step's direction is uniform on the sphere of R^d_model.
``shuffle``    step shuffle: each token's own steps, permuted across layers (one random
               permutation per token and simulation). Length and chord are sums over steps, so
               LTC is unchanged by construction: this null tests angles only.
``rotation``   angle-preserving rotation: keeps every step norm and every turning angle; the
               direction of each turn (the plane it happens in) is uniform. Angles are kept by
               construction: this is the null for LTC given the angles.
``dimension``  the ``gaussian`` walk in R^k, k = the participation ratio
               ``(Σλ)² / Σλ²`` of the covariance of the observed residual cloud (all valid
               states, centred), rounded, at least 2.
``untrained``  (model-based, :func:`curvature_test` only) the same architecture re-initialised
               with a seed, fed the same tokens; compared by a paired swap test: for each
               simulation, each token's trained and untrained trajectories are swapped with
               probability ½.
=============  =================================================================================

Exact and cheap: every null is a distribution over rotation-invariant quantities (norms, angles,
LTC), so surrogate walks are generated in an orthonormal basis of their own span: ``D =
min(steps, d)`` coordinates instead of ``d``. For the Gaussian walk this is the Bartlett
decomposition (the Gram matrix of K Gaussian vectors in R^d equals ``RᵀR`` with ``R`` upper
triangular, ``R_jj ~ χ(d − j)``, ``R_ij ~ N(0, 1)`` above the diagonal), so cost grows with
``sims·tokens·steps²``, not with ``d``; ``method="direct"`` draws the d-dimensional vectors
instead (same distribution, tested). All samplers are vectorised over simulations and tokens,
seeded, and run on the states' device.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float

from tlgeom._errors import bad_arg
from tlgeom.geometry.curvature import (
    angle_between,
    as_states,
    chord_ratio,
    length_to_chord,
    turning_angles,
)

NULLS = ("gaussian", "shuffle", "rotation", "dimension")
MODEL_NULLS = ("untrained",)
THRESHOLDS = ("degrees", "null_sd")
_SEED_OFFSET = {"gaussian": 0, "shuffle": 1, "rotation": 2, "dimension": 3, "untrained": 4}
_KINDS = ("sharp", "flat", "sharp+flat")


# ---------------------------------------------------------------------------------------------
# Seeding and helpers


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | str = "cpu"):
    """Run the block with torch's global RNG seeded (CPU and, if any, that CUDA device), then
    restore the caller's RNG state. ``seed=None``: use (and advance) the current global RNG."""
    if seed is None:
        yield
        return
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise bad_arg("seed", seed, "an int or None")
    device = torch.device(device)
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _chi(df: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """χ(df) samples broadcast to ``shape`` (``sqrt`` of χ² = Gamma(df/2, rate ½))."""
    df = df.to(torch.float64).expand(shape)
    return torch.distributions.Chi2(df).sample().sqrt()


def _check_n_sims(n_sims: Any) -> int:
    if not isinstance(n_sims, int) or isinstance(n_sims, bool) or n_sims < 1:
        raise bad_arg("n_sims", n_sims, "an int >= 1")
    return n_sims


def _check_d(d: Any, arg: str = "d") -> int:
    if not isinstance(d, int) or isinstance(d, bool) or d < 2:
        raise bad_arg(arg, d, "an int >= 2 (the dimension of the space the walk lives in)")
    return d


def _to_states(steps: torch.Tensor) -> torch.Tensor:
    """Steps ``[..., K, D]`` → states ``[..., K+1, D]`` starting at the origin."""
    zero = torch.zeros_like(steps[..., :1, :])
    return torch.cat([zero, steps.cumsum(-2)], dim=-2)


def _norms_arg(step_norms: Any) -> torch.Tensor:
    if not isinstance(step_norms, torch.Tensor) or not step_norms.dtype.is_floating_point or step_norms.dim() < 1:
        raise bad_arg(
            "step_norms",
            step_norms
            if not isinstance(step_norms, torch.Tensor)
            else f"Tensor(shape={tuple(step_norms.shape)}, dtype={step_norms.dtype})",
            "a float tensor [..., step] of step lengths",
        )
    if step_norms.shape[-1] < 2:
        raise bad_arg("step_norms", f"Tensor(shape={tuple(step_norms.shape)})", "at least 2 steps")
    return step_norms.to(torch.float64)


# ---------------------------------------------------------------------------------------------
# Samplers: each returns surrogate states [n_sims, ..., point, D] (first point at the origin)


def random_directions(
    lead: Sequence[int], K: int, d: int, *, method: str = "reduced", device: torch.device | str = "cpu"
) -> Float[torch.Tensor, "... step D"]:
    """K independent uniform unit vectors in R^d per leading index (current global RNG).

    ``method="reduced"``: Bartlett coordinates, ``D = min(K, d)`` (exact for every
    rotation-invariant quantity); ``"direct"``: ``D = d``, normalised N(0, I_d) draws.
    """
    if method == "direct":
        z = torch.randn(*lead, K, d, dtype=torch.float64, device=device)
    elif method == "reduced":
        D = min(K, d)
        z = torch.randn(*lead, K, D, dtype=torch.float64, device=device)
        j = torch.arange(K, device=device)
        i = torch.arange(D, device=device)
        z = z * (i[None, :] < j[:, None])  # N(0,1) strictly above R's diagonal (row j = step j)
        diag = _chi(d - torch.arange(D, device=device, dtype=torch.float64), (*lead, D))
        z[..., torch.arange(D), torch.arange(D)] = diag
    else:
        raise bad_arg("method", method, "'reduced' or 'direct'")
    return z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)


def gaussian_walk(
    step_norms: Float[torch.Tensor, "... step"],
    n_sims: int,
    d: int,
    *,
    seed: int | None = None,
    method: str = "reduced",
) -> Float[torch.Tensor, "sim ... point D"]:
    """Norm-matched isotropic Gaussian walks: step l has length ``step_norms[..., l]`` and a
    direction uniform on the sphere of R^d, independently.

    Args:
        step_norms: ``[..., K]`` observed step lengths (NaN propagates to the walk).
        n_sims: walks per leading index.
        d: the dimension of the space (d_model for the plain null, the participation ratio for
            the dimension-matched one).
        seed: int for a reproducible draw (the caller's RNG state is left untouched).
        method: ``"reduced"`` (``D = min(K, d)`` coordinates, default) or ``"direct"`` (``D = d``).

    Returns:
        States ``[n_sims, ..., K+1, D]`` starting at the origin.
    """
    norms = _norms_arg(step_norms)
    n_sims, d = _check_n_sims(n_sims), _check_d(d)
    with seeded(seed, norms.device):
        u = random_directions((n_sims, *norms.shape[:-1]), norms.shape[-1], d, method=method, device=norms.device)
    return _to_states(u * norms[..., None])


def dimension_matched_walk(
    step_norms: Float[torch.Tensor, "... step"],
    n_sims: int,
    states: Any = None,
    *,
    d_eff: int | None = None,
    seed: int | None = None,
) -> Float[torch.Tensor, "sim ... point D"]:
    """:func:`gaussian_walk` in R^k, k = ``d_eff`` or the participation ratio of ``states``' cloud."""
    if d_eff is None:
        if states is None:
            raise bad_arg("states", None, "the observed states (to measure their participation ratio) or d_eff=")
        d_eff = effective_dimension(states)
    return gaussian_walk(step_norms, n_sims, _check_d(d_eff, "d_eff"), seed=seed)


def participation_ratio(x: Any) -> float:
    """``(Σλ)² / Σλ²`` of the covariance of a point cloud (the rows of ``x[..., d_model]``; NaN rows dropped).

    1 for a cloud on a line, d for an isotropic one. Computed from the smaller Gram matrix.
    """
    if not isinstance(x, torch.Tensor):
        x = as_states(x)
    x = x.to(torch.float64).reshape(-1, x.shape[-1])
    x = x[~torch.isnan(x).any(-1)]
    if x.shape[0] < 2:
        raise bad_arg("x", f"{x.shape[0]} valid rows", "at least 2 points to measure a participation ratio")
    x = x - x.mean(0)
    g = x.T @ x if x.shape[0] > x.shape[1] else x @ x.T  # same non-zero spectrum
    tr, fro2 = torch.trace(g), (g * g).sum()
    return float(tr * tr / fro2) if float(fro2) > 0 else 1.0


def effective_dimension(x: Any) -> int:
    """The participation ratio rounded to an int, at least 2 (a walk in R^1 could only reverse)."""
    return max(2, int(round(participation_ratio(x))))


def _reduced_steps(steps: torch.Tensor) -> torch.Tensor:
    """Steps ``[..., K, d]`` in an orthonormal basis of their span: ``[..., K, min(K, d)]``.

    QR of ``Δᵀ``: ``Δᵀ = QR`` so the rows of ``Rᵀ`` have the same Gram matrix as the steps.
    """
    return torch.linalg.qr(steps.transpose(-1, -2), mode="reduced").R.transpose(-1, -2)


def step_shuffle(
    states: Any, n_sims: int, *, seed: int | None = None, reduced: bool = True
) -> Float[torch.Tensor, "sim ... point D"]:
    """Each trajectory's own steps in a random order (independently per trajectory and simulation).

    Args:
        states: ``[..., point, d_model]`` (or a Trajectories).
        reduced: express the steps in a basis of their span first (``D = min(steps, d)``; every
            norm and angle unchanged) to save memory; False keeps ``D = d_model``.

    Returns:
        States ``[n_sims, ..., point, D]`` starting at the origin. Length and chord (and so LTC)
        equal the observed ones exactly: permuting a sum does not change it.
    """
    x = as_states(states, "states")
    n_sims = _check_n_sims(n_sims)
    d = x[..., 1:, :] - x[..., :-1, :]
    bad = torch.isnan(d).any(-1)
    if reduced:
        d = _reduced_steps(torch.nan_to_num(d, nan=0.0)).masked_fill(bad[..., None], float("nan"))
    with seeded(seed, x.device):
        perm = torch.rand(n_sims, *d.shape[:-1], device=x.device).argsort(-1)
    d = d.expand(n_sims, *d.shape)
    return _to_states(torch.gather(d, -2, perm[..., None].expand(d.shape)))


def angle_preserving_walk(
    step_norms: Float[torch.Tensor, "... step"],
    turning_angles: Float[torch.Tensor, "... step_pair"],
    n_sims: int,
    d: int,
    *,
    seed: int | None = None,
) -> Float[torch.Tensor, "sim ... point D"]:
    """Walks with the given step norms and turning angles, each turn in a uniformly random plane.

    ``u_0`` is uniform; ``u_{l+1} = cos θ_l u_l + sin θ_l v_l`` with ``v_l`` uniform on the unit
    sphere of ``u_l``'s orthogonal complement in R^d. Generated in an orthonormal basis adapted
    to the walk (``D = min(K, d)`` coordinates): given the span of ``u_0…u_l`` (dimension m), a
    fresh N(0, I_d) draw has N(0,1) coordinates on that span and a χ(d − m)-long remainder along
    a new basis vector; nothing later depends on which one. A NaN angle (an undefined turn) is
    replaced by π/2 to keep the walk going; :func:`compare_to_nulls` masks those vertices.

    Returns:
        States ``[n_sims, ..., K+1, D]`` starting at the origin.
    """
    norms = _norms_arg(step_norms)
    if not isinstance(turning_angles, torch.Tensor) or turning_angles.shape != (*norms.shape[:-1], norms.shape[-1] - 1):
        raise bad_arg(
            "turning_angles",
            getattr(turning_angles, "shape", turning_angles),
            f"a tensor of shape {(*norms.shape[:-1], norms.shape[-1] - 1)} (one angle per pair of steps)",
        )
    n_sims, d = _check_n_sims(n_sims), _check_d(d)
    theta = torch.nan_to_num(turning_angles.to(torch.float64), nan=math.pi / 2)
    K = norms.shape[-1]
    D = min(K, d)
    lead = (n_sims, *norms.shape[:-1])
    dev = norms.device
    u = torch.zeros(*lead, K, D, dtype=torch.float64, device=dev)
    u[..., 0, 0] = 1.0
    with seeded(seed, dev):
        for l in range(K - 1):  # a loop over layers, vectorised over simulations and tokens
            m = min(l + 1, D)
            g = torch.zeros(*lead, D, dtype=torch.float64, device=dev)
            g[..., :m] = torch.randn(*lead, m, dtype=torch.float64, device=dev)
            if m < D:
                g[..., m] = _chi(torch.tensor(float(d - m), device=dev), lead)
            ul = u[..., l, :]
            v = g - (g * ul).sum(-1, keepdim=True) * ul
            v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
            t = theta[..., l][..., None]
            u[..., l + 1, :] = torch.cos(t) * ul + torch.sin(t) * v
    return _to_states(u * norms[..., None])


def _angles_ltc(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turning angles [..., V] and LTC [...] of states [..., P, D] (float64)."""
    return turning_angles(x), length_to_chord(x)


def _cos_uniform(m: int | float, shape: Sequence[int], device) -> torch.Tensor:
    """cos of the angle between a uniform unit vector of R^m and a fixed direction.

    Density ∝ (1 − t²)^{(m−3)/2} (``(t+1)/2 ~ Beta((m−1)/2, (m−1)/2)``), drawn as one coordinate
    of a Gaussian vector over its norm, ``t = g / √(g² + χ²_{m−1})`` with ``χ²_{m−1} =
    2·Gamma((m−1)/2)`` (one normal and one gamma draw, faster than torch's Beta); for m = 1 a
    random sign.
    """
    if m <= 1:
        return torch.randint(0, 2, tuple(shape), device=device).to(torch.float64) * 2 - 1
    g = torch.randn(tuple(shape), dtype=torch.float64, device=device)
    half = torch.tensor((m - 1) / 2, dtype=torch.float64, device=device)
    rest = 2 * torch.distributions.Gamma(half, torch.ones_like(half)).sample(tuple(shape))
    return g / torch.sqrt(g * g + rest)


def null_statistics(
    name: str, states: torch.Tensor, n_sims: int, *, d_eff: int | None = None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Turning angles ``[n_sims, N, V]`` and LTC ``[n_sims, N]`` of a null, sampled directly.

    The statistics compare angles and LTC separately (never jointly), so each is sampled from
    its exact marginal under the null without building the walks (current global RNG):

    * ``gaussian`` / ``dimension`` (walk in R^m): consecutive directions are independent and
      uniform, so the turning angles are i.i.d. with ``cos θ = 2B − 1``, ``B ~ Beta((m−1)/2,
      (m−1)/2)``; the chord follows the scalar recursion ``‖S_{l+1}‖² = ‖S_l‖² + n² + 2n‖S_l‖c``
      with ``c`` drawn the same way (the new direction is independent of the running sum).
    * ``rotation``: angles are the observed ones; the chord follows the recursion on
      ``(‖S_l‖², a_l = S_l·u_l)``: ``a' = cos θ·a + sin θ·√(‖S‖² − a²)·c'`` (``c'`` of a uniform
      vector of R^{d−1}), ``‖S‖² += n² + 2n·a'``, ``a = a' + n``.
    * ``shuffle``: angles gathered from the matrix of pairwise step angles under random
      permutations; LTC is unchanged by construction (None).

    Each is O(n_sims · N · steps); :func:`gaussian_walk`, :func:`angle_preserving_walk` and
    :func:`step_shuffle` build the walks themselves (the tests check both agree).

    Args:
        name: one of ``NULLS``.
        states: ``[N, point, d]`` float64 observed trajectories.
        n_sims: number of simulations.
        d_eff: the dimension for ``"dimension"``.
    """
    if name not in NULLS:
        raise bad_arg("name", name, f"one of {NULLS}")
    x = states
    N, P, d = x.shape
    K = P - 1
    dev = x.device
    steps = x[:, 1:] - x[:, :-1]
    norms = torch.linalg.vector_norm(steps, dim=-1)  # [N, K]
    length = norms.sum(-1)
    S = n_sims
    if name == "shuffle":
        red = _reduced_steps(torch.nan_to_num(steps, nan=0.0))
        red = red.masked_fill(torch.isnan(steps).any(-1, keepdim=True), float("nan"))
        pair = angle_between(red[:, :, None, :], red[:, None, :, :]).reshape(1, N, K * K)  # [1, N, K·K]
        perm = torch.rand(S, N, K, device=dev).argsort(-1)
        idx = perm[..., :-1] * K + perm[..., 1:]
        return torch.gather(pair.expand(S, N, K * K), -1, idx), None
    if name in ("gaussian", "dimension"):
        m = d if name == "gaussian" else _check_d(d_eff, "d_eff")
        angles = torch.arccos(_cos_uniform(m, (S, N, K - 1), dev).clamp(-1, 1))
        # layer-major, contiguous copies: the loop below reads one layer at a time
        c = _cos_uniform(m, (S, N, K - 1), dev).permute(2, 0, 1).contiguous()
        nt = norms.t().contiguous()
        r2 = nt[0].pow(2).expand(S, N).contiguous()
        for l in range(1, K):  # a loop over layers, vectorised over simulations and tokens
            n = nt[l]
            r2 = (r2 + n * n + 2 * n * r2.sqrt() * c[l - 1]).clamp_min_(0)
        return angles, _ltc(length, r2)
    # rotation
    theta = angle_between(steps[:, :-1], steps[:, 1:])
    theta = torch.nan_to_num(theta, nan=math.pi / 2)
    c = _cos_uniform(d - 1, (S, N, K - 1), dev).permute(2, 0, 1).contiguous()
    nt, ct, st = norms.t().contiguous(), torch.cos(theta).t().contiguous(), torch.sin(theta).t().contiguous()
    r2 = nt[0].pow(2).expand(S, N).contiguous()
    a = nt[0].expand(S, N)
    for l in range(1, K):
        n = nt[l]
        b = (r2 - a * a).clamp_min_(0).sqrt_()
        a1 = ct[l - 1] * a + st[l - 1] * b * c[l - 1]
        r2 = (r2 + n * n + 2 * n * a1).clamp_min_(0)
        a = a1 + n
    return theta.expand(S, N, K - 1), _ltc(length, r2)


def _ltc(length: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    return chord_ratio(length, r2.sqrt())


def _simulate(
    name: str, x: torch.Tensor, n_sims: int, seed: int | None, d_eff: int | None, chunk_elems: int = 2**23
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """:func:`null_statistics` in chunks of simulations, from one seeded stream per null."""
    N, P, _ = x.shape
    chunk = max(1, min(n_sims, chunk_elems // max(1, N * P)))
    angles, ltcs = [], []
    gen_seed = None if seed is None else seed * 7919 + 1_000_003 * _SEED_OFFSET[name]
    with seeded(gen_seed, x.device):
        for start in range(0, n_sims, chunk):
            a, l = null_statistics(name, x, min(chunk, n_sims - start), d_eff=d_eff)
            angles.append(a)
            ltcs.append(l)
    return torch.cat(angles), (torch.cat(ltcs) if ltcs[0] is not None else None)
