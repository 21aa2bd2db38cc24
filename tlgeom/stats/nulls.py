"""Null models for layer-wise trajectory curvature: a registry of named nulls and their samplers.

Is a model's trajectory curvature more than chance would give? Each null below generates
surrogate trajectories **for one text at a time** (all its tokens ``[pos, point, d]`` together)
that keep some properties of the observed ones and randomise the rest, and returns the turning
angles ``[n_sims, pos, vertex]`` and length-to-chord ``[n_sims, pos]`` of the surrogates
(:meth:`Null.simulate`). :func:`tlgeom.experiments.curvature.compare_to_nulls` turns those into
per-text statistics and a test across texts.

Tokens of one text share their context, so they are strongly dependent: the default nulls are
**joint** (one random draw per text, applied to all of its tokens), so the surrogates keep that
dependence. The per-token nulls of tlgeom 0.1 are still available by name (``*_token``) but
treat tokens as independent and are not calibrated for dependent tokens (see
``tests/calibration``).

=====================  ==========  ===================================================================
name                   space       what it keeps / randomises
=====================  ==========  ===================================================================
``rotation``           raw         joint: an independent Haar-random rotation ``R_l`` per layer step,
                                   applied to the step vectors of every token of the text. Keeps every
                                   step norm and the geometry among the tokens within each layer step
                                   (the Gram matrix of ``Δ_l``); directions become random across layers.
``shuffle``            raw         joint: one random permutation of the layer steps per text, the same
                                   for all its tokens. Keeps LTC by construction (angles only).
``sphere_rotation``    normalized  joint, on the sphere ``S(√d)``: log-map steps ``v_l = log_{x_l}
                                   x_{l+1}`` rotated by one Haar ``R_l`` per layer (shared by the tokens),
                                   projected on the tangent space of the surrogate point, rescaled to the
                                   observed geodesic length, and walked with the exp map.
``sphere_walk``        normalized  per token: a walk on ``S(√d)`` with the observed geodesic step
                                   lengths and uniformly random tangent directions.
``gaussian_token``     raw         per token: norm-matched isotropic Gaussian walk (random directions).
``shuffle_token``      raw         per token: each token's steps in its own random layer order.
``turn_plane_token``   raw         per token: same step norms and turning angles, random turn planes
                                   (angles kept by construction: LTC only).
``dimension_token``    raw         per token: ``gaussian_token`` in R^k, k = participation ratio.
``untrained``          both        model-based, paired: the same texts through the same architecture
                                   re-initialised (:func:`tlgeom.experiments.curvature.curvature_test`).
=====================  ==========  ===================================================================

Exact and cheap: every statistic is rotation-invariant, so walks are generated in reduced bases:
per-token walks in an orthonormal basis of their own span (the Bartlett decomposition: ``D =
min(steps, d)`` coordinates), the joint rotation through the SVD of each layer's step matrix
``Δ_l = U S Vᵀ``: ``Δ_l R_l = U S (Vᵀ R_l)`` where ``Vᵀ R_l`` is a uniform Stiefel frame. The angles
need only ``W_lᵀW_{l+1}`` of successive frames (the top ``r × r`` block of a Haar matrix, drawn from
``O(r²)`` numbers with Bartlett's Wishart factor: :func:`fresh_frame`), and the chord only its own Gram
matrix, carried from step to step: the ``rotation`` sampler costs ``O(N³)`` per layer step and
simulation whatever d (:func:`_rotation`). Cost per text, null and simulation, for N tokens and L
layer steps: ``rotation`` ≈ L·(8N³ multiply-adds + 2.5N² Gaussian draws) when d ≥ 4N (else L·2dN²);
``shuffle`` ≈ N·L (its pairwise angles are computed once); ``sphere_rotation`` ≈ L·2dN²
(:func:`_sphere_rotation` says why no reduced form pays); linear in texts and simulations. All samplers are vectorised over
simulations and tokens and draw only from the ``torch.Generator`` they are given (χ and Gamma
draws through a numpy Generator seeded from it); never the global RNG.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from jaxtyping import Float

from tlgeom._args import check_seed
from tlgeom._args import generator as make_generator
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.geometry.curvature import (
    ZERO_STEP_RTOL,
    angle_between,
    as_states,
    chord_ratio,
    length_to_chord,
    turning_angles,
)

#: The statistics a null can be asked to test (see :mod:`tlgeom.experiments.curvature`).
ANGLE_STATISTICS = ("sharp_flat", "mean_angle", "mean_abs_dev")
STATISTICS = (*ANGLE_STATISTICS, "log_ltc")
_ALL = frozenset(STATISTICS)
_ANGLES = frozenset(ANGLE_STATISTICS)
_LTC = frozenset({"log_ltc"})


class NullDraw(NamedTuple):
    """Turning angles ``[n_sims, pos, vertex]`` (radians) and LTC ``[n_sims, pos]`` (None when the
    null keeps LTC by construction) of one text's surrogates."""

    angles: torch.Tensor
    ltc: torch.Tensor | None


@dataclass(frozen=True)
class Null:
    """A named null model.

    Attributes:
        name: registry key.
        description: one line, what it keeps and what it randomises.
        tests: the statistics it can test (a null that keeps a quantity by construction cannot).
        spaces: the spaces it lives in (``"raw"``: R^d; ``"normalized"``: the sphere S(√d)).
        joint: True if one draw is shared by all tokens of a text (dependence-preserving).
        paired: True for model-based nulls (a paired reference, e.g. the untrained model): no
            sampler; :func:`~tlgeom.experiments.curvature.compare_to_nulls` takes its states.
        sampler: ``(states [pos, point, d], n_sims, generator, **options) -> NullDraw``.
        ragged: the sampler takes texts of different lengths in one batch, zero-padded, with
            ``valid=`` (a bool mask ``[text, pos]``), and gives every real token the law it has alone
            (padded tokens: NaN); texts are then batched across lengths.
    """

    name: str
    description: str
    tests: frozenset[str]
    spaces: tuple[str, ...]
    joint: bool
    paired: bool = False
    sampler: Callable[..., NullDraw] | None = None
    ragged: bool = False

    def simulate(self, states: Any, n_sims: int, generator: torch.Generator | None = None, **options: Any) -> NullDraw:
        """Surrogates of one text: angles ``[n_sims, pos, V]`` and LTC ``[n_sims, pos]``.

        Args:
            states: ``[pos, point, d]`` float states of the tokens of one text (in the null's space),
                or ``[text, pos, point, d]``: texts of equal length, simulated independently in one
                vectorised call (angles ``[n_sims, text, pos, V]``).
            n_sims: number of surrogate texts.
            generator: a ``torch.Generator`` on the states' device (default: a fresh seeded-by-OS one).
            options: null-specific (``d_eff`` for ``dimension_token``, ``center`` for the sphere nulls).
        """
        if self.sampler is None:
            raise TlgeomError(
                f"null {self.name!r} is model-based: it needs the paired states of a model "
                "(tlgeom.curvature_test computes them)"
            )
        x = as_states(states, "states", min_points=3)
        if x.dim() not in (3, 4):
            raise bad_arg(
                "states", f"Tensor(shape={tuple(x.shape)})", "one text [pos, point, d] or texts [text, pos, point, d]"
            )
        n_sims = check_n_sims(n_sims)
        gen = generator if generator is not None else make_generator(None, x.device)
        return self.sampler(x, n_sims, gen, **options)


_REGISTRY: dict[str, Null] = {}


def register(null: Null) -> Null:
    """Add a null to the registry (its name must be new)."""
    if null.name in _REGISTRY:
        raise bad_arg("null", null.name, "a name not yet registered")
    _REGISTRY[null.name] = null
    return null


def null_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


_RENAMED = {
    "gaussian": "gaussian_token (per token) or rotation (joint)",
    "dimension": "dimension_token",
}


def get_null(name: Any) -> Null:
    """The registered null called ``name``; a TlgeomError listing the names otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        hint = f" ({name!r} is now {_RENAMED[name]})" if isinstance(name, str) and name in _RENAMED else ""
        raise bad_arg("nulls", name, "one of " + ", ".join(repr(n) for n in _REGISTRY) + hint)
    return _REGISTRY[name]


#: Default nulls per space (joint, dependence-preserving); curvature_test adds "untrained".
DEFAULT_NULLS = {"raw": ("rotation", "shuffle"), "normalized": ("sphere_rotation",)}


# ---------------------------------------------------------------------------------------------
# Checks and random primitives (all from a torch.Generator)


def check_n_sims(n_sims: int) -> int:
    """``n_sims`` if it is an int >= 1 (simulations per null), else a TlgeomError."""
    if not isinstance(n_sims, int) or isinstance(n_sims, bool) or n_sims < 1:
        raise bad_arg("n_sims", n_sims, "an int >= 1")
    return n_sims


def check_d(d: Any, arg: str = "d") -> int:
    """``d`` if it is an int >= 2 (the dimension a walk lives in), else a TlgeomError naming ``arg``."""
    if not isinstance(d, int) or isinstance(d, bool) or d < 2:
        raise bad_arg(arg, d, "an int >= 2 (the dimension of the space the walk lives in)")
    return d


def stream_seed(seed: int | None, name: str) -> int | None:
    """A seed for null ``name``'s own stream, derived from ``seed`` (numpy ``SeedSequence``), so
    each null's draws do not depend on which other nulls run."""
    seed = check_seed(seed)
    if seed is None:
        return None
    state = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) % (2**63)


def _gen(seed: int | None, generator: torch.Generator | None, device: Any) -> torch.Generator:
    return generator if generator is not None else make_generator(check_seed(seed), device)


def _np_rng(gen: torch.Generator) -> np.random.Generator:
    """A numpy Generator seeded from ``gen`` (for the χ² / Gamma draws torch cannot seed)."""
    s = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device).item())
    return np.random.default_rng(s)


def _chi(df: torch.Tensor | float, shape: Sequence[int], gen: torch.Generator, device: Any) -> torch.Tensor:
    """χ(df) samples of ``shape`` (df broadcasts)."""
    df_np = np.broadcast_to(np.asarray(torch.as_tensor(df, dtype=torch.float64).cpu().numpy()), tuple(shape))
    return torch.from_numpy(np.sqrt(_np_rng(gen).chisquare(df_np))).to(device)


def _randn(shape: Sequence[int], gen: torch.Generator, device: Any) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64, device=device)


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


def haar_frames(
    lead: Sequence[int],
    d: int,
    r: int,
    gen: torch.Generator,
    device: str | torch.device | None = "cpu",
    center: bool = False,
) -> Float[torch.Tensor, "... d r"]:
    """Uniform random orthonormal frames ``[..., d, r]`` (r ≤ d): QR of a Gaussian matrix with the
    signs of ``diag R`` folded in (Haar on the Stiefel manifold). ``center=True``: frames of the
    hyperplane ``⊥ 1`` (columns of the Gaussian centred first; r ≤ d − 1)."""
    g = _randn((*lead, d, r), gen, device)
    if center:
        g = g - g.mean(-2, keepdim=True)
    q, rr = torch.linalg.qr(g, mode="reduced")
    return q * torch.sign(torch.diagonal(rr, dim1=-2, dim2=-1)).unsqueeze(-2)


def apply_haar_frames(
    A: torch.Tensor, n_sims: int, d: int, gen: torch.Generator, center: bool = False
) -> Float[torch.Tensor, "sim *batch pos d"]:
    """``A Wᵀ`` for ``n_sims`` independent uniform random frames ``W [d, r]`` per leading index
    (``A [..., pos, r]``), i.e. ``Δ R`` for Haar ``R`` when ``A = U S`` of ``Δ = U S Vᵀ``.

    ``W = G R⁻¹`` with ``G`` Gaussian ``[d, r]`` and ``R`` the Cholesky factor of ``GᵀG`` is the Q
    of the QR decomposition with positive diagonal (Haar), so ``A Wᵀ = A L⁻¹ Gᵀ`` with ``L = Rᵀ``: a Gram matrix, an r×r Cholesky and triangular solve, one product (no d×r QR).
    Falls back to :func:`haar_frames` (QR) when ``r > d/2`` (a Wishart with few degrees of freedom
    is ill-conditioned).
    """
    r = A.shape[-1]
    lead = (n_sims, *A.shape[:-2])
    if 2 * r > d:
        W = haar_frames(lead, d, r, gen, A.device, center=center)
        return A @ W.transpose(-1, -2)
    g = _randn((*lead, d, r), gen, A.device)
    if center:
        g = g - g.mean(-2, keepdim=True)
    L = torch.linalg.cholesky(g.transpose(-1, -2) @ g)  # [S, ..., r, r], GᵀG = L Lᵀ, R = Lᵀ
    B = torch.linalg.solve_triangular(  # L⁻ᵀ Aᵀ, so that Bᵀ Gᵀ = A L⁻¹ Gᵀ = A (G R⁻¹)ᵀ
        L.transpose(-1, -2), A.transpose(-1, -2).expand(*lead, r, A.shape[-2]), upper=True
    )
    return B.transpose(-1, -2) @ g.transpose(-1, -2)


def fast_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between ``a`` and ``b`` along the last dim from their dot product and norms,
    ``2·atan2(√(‖a‖‖b‖ − a·b), √(‖a‖‖b‖ + a·b))`` (three reductions; accurate to ~1e-8 rad near 0
    and π, where :func:`~tlgeom.geometry.curvature.angle_between` is exact): for the null samplers,
    whose angles are far from 0 and π. NaN for a zero-length vector."""
    na = torch.linalg.vector_norm(a, dim=-1)
    nb = torch.linalg.vector_norm(b, dim=-1)
    dot = (a * b).sum(-1)
    nn = na * nb
    ang = 2 * torch.atan2((nn - dot).clamp_min(0).sqrt(), (nn + dot).clamp_min(0).sqrt())
    scale = torch.maximum(na, nb)
    return ang.masked_fill((torch.minimum(na, nb) <= ZERO_STEP_RTOL * scale) | (scale == 0), float("nan"))


def _chunk(n_sims: int, per_sim: int, budget: int = 2**22) -> int:
    return max(1, min(n_sims, budget // max(1, per_sim)))


# ---------------------------------------------------------------------------------------------
# Per-token walks (tlgeom 0.1), generator-driven


def random_directions(
    lead: Sequence[int],
    K: int,
    d: int,
    *,
    method: str = "reduced",
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Float[torch.Tensor, "... step D"]:
    """K independent uniform unit vectors in R^d per leading index.

    ``method="reduced"``: Bartlett coordinates, ``D = min(K, d)`` (exact for every
    rotation-invariant quantity); ``"direct"``: ``D = d``, normalised N(0, I_d) draws.
    """
    gen = _gen(None, generator, device)
    if method == "direct":
        z = _randn((*lead, K, d), gen, device)
    elif method == "reduced":
        D = min(K, d)
        z = _randn((*lead, K, D), gen, device)
        j = torch.arange(K, device=device)
        i = torch.arange(D, device=device)
        z = z * (i[None, :] < j[:, None])  # N(0,1) strictly above R's diagonal (row j = step j)
        diag = _chi(d - torch.arange(D, dtype=torch.float64), (*lead, D), gen, device)
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
    generator: torch.Generator | None = None,
    method: str = "reduced",
) -> Float[torch.Tensor, "sim ... point D"]:
    """Norm-matched isotropic Gaussian walks: step l has length ``step_norms[..., l]`` and a
    direction uniform on the sphere of R^d, independently.

    Args:
        step_norms: ``[..., K]`` observed step lengths.
        n_sims: walks per leading index.
        d: the dimension of the space.
        seed / generator: the randomness (a seed builds a fresh ``torch.Generator``).
        method: ``"reduced"`` (``D = min(K, d)`` coordinates, default) or ``"direct"`` (``D = d``).

    Returns:
        States ``[n_sims, ..., K+1, D]`` starting at the origin.
    """
    norms = _norms_arg(step_norms)
    n_sims, d = check_n_sims(n_sims), check_d(d)
    gen = _gen(seed, generator, norms.device)
    u = random_directions(
        (n_sims, *norms.shape[:-1]), norms.shape[-1], d, method=method, device=norms.device, generator=gen
    )
    return _to_states(u * norms[..., None])


def dimension_matched_walk(
    step_norms: Float[torch.Tensor, "... step"],
    n_sims: int,
    states: Any = None,
    *,
    d_eff: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Float[torch.Tensor, "sim ... point D"]:
    """:func:`gaussian_walk` in R^k, k = ``d_eff`` or the participation ratio of ``states``' cloud."""
    if d_eff is None:
        if states is None:
            raise bad_arg("states", None, "the observed states (to measure their participation ratio) or d_eff=")
        d_eff = effective_dimension(states)
    return gaussian_walk(step_norms, n_sims, check_d(d_eff, "d_eff"), seed=seed, generator=generator)


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
    """Steps ``[..., K, d]`` in an orthonormal basis of their span: ``[..., K, min(K, d)]``."""
    return torch.linalg.qr(steps.transpose(-1, -2), mode="reduced").R.transpose(-1, -2)


def step_shuffle(
    states: Any,
    n_sims: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    reduced: bool = True,
    joint: bool = False,
) -> Float[torch.Tensor, "sim ... point D"]:
    """Trajectories' own steps in a random layer order.

    Args:
        states: ``[..., pos, point, d_model]`` (or a Trajectories).
        joint: one permutation per simulation shared by every trajectory (the ``shuffle`` null
            for one text's tokens); False: independent per trajectory (``shuffle_token``).
        reduced: express the steps in a basis of their span first (``D = min(steps, d)``; every
            norm and angle unchanged) to save memory; False keeps ``D = d_model``.

    Returns:
        States ``[n_sims, ..., point, D]`` starting at the origin. Length and chord (and so LTC)
        equal the observed ones exactly: permuting a sum does not change it.
    """
    x = as_states(states, "states")
    n_sims = check_n_sims(n_sims)
    d = x[..., 1:, :] - x[..., :-1, :]
    bad = torch.isnan(d).any(-1)
    if reduced:
        d = _reduced_steps(torch.nan_to_num(d, nan=0.0)).masked_fill(bad[..., None], float("nan"))
    gen = _gen(seed, generator, x.device)
    K = d.shape[-2]
    if joint:
        perm = torch.rand(n_sims, K, generator=gen, device=x.device).argsort(-1)
        perm = perm.reshape(n_sims, *([1] * (d.dim() - 2)), K).expand(n_sims, *d.shape[:-1])
    else:
        perm = torch.rand(n_sims, *d.shape[:-1], generator=gen, device=x.device).argsort(-1)
    d = d.expand(n_sims, *d.shape)
    return _to_states(torch.gather(d, -2, perm[..., None].expand(d.shape)))


def angle_preserving_walk(
    step_norms: Float[torch.Tensor, "... step"],
    turning_angles: Float[torch.Tensor, "... step_pair"],
    n_sims: int,
    d: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Float[torch.Tensor, "sim ... point D"]:
    """Walks with the given step norms and turning angles, each turn in a uniformly random plane.

    ``u_0`` is uniform; ``u_{l+1} = cos θ_l u_l + sin θ_l v_l`` with ``v_l`` uniform on the unit
    sphere of ``u_l``'s orthogonal complement in R^d, generated in ``D = min(K, d)`` coordinates
    (a fresh N(0, I_d) draw has N(0,1) coordinates on the span so far and a χ(d − m)-long
    remainder along a new axis). A NaN angle is replaced by π/2.

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
    n_sims, d = check_n_sims(n_sims), check_d(d)
    theta = torch.nan_to_num(turning_angles.to(torch.float64), nan=math.pi / 2)
    K = norms.shape[-1]
    D = min(K, d)
    lead = (n_sims, *norms.shape[:-1])
    dev = norms.device
    gen = _gen(seed, generator, dev)
    u = torch.zeros(*lead, K, D, dtype=torch.float64, device=dev)
    u[..., 0, 0] = 1.0
    for l in range(K - 1):  # a loop over layers, vectorised over simulations and tokens
        ul = u[..., l, :]
        v = _fresh_gaussian(lead, min(l + 1, D), D, d, gen, dev)
        v = v - (v * ul).sum(-1, keepdim=True) * ul
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        t = theta[..., l][..., None]
        u[..., l + 1, :] = torch.cos(t) * ul + torch.sin(t) * v
    return _to_states(u * norms[..., None])


def _fresh_gaussian(lead: Sequence[int], m: int, D: int, d: int, gen: torch.Generator, dev: Any) -> torch.Tensor:
    """A N(0, I_d) vector in reduced coordinates, given that everything so far spans the first
    ``m`` of ``D`` axes: N(0,1) on those, χ(d − m) along axis m (if m < D), 0 beyond."""
    g = torch.zeros(*lead, D, dtype=torch.float64, device=dev)
    g[..., :m] = _randn((*lead, m), gen, dev)
    if m < D:
        g[..., m] = _chi(float(d - m), lead, gen, dev)
    return g


def _cos_uniform(m: int | float, shape: Sequence[int], gen: torch.Generator, device: Any) -> torch.Tensor:
    """cos of the angle between a uniform unit vector of R^m and a fixed direction.

    ``(t+1)/2 ~ Beta((m−1)/2, (m−1)/2)``, drawn as ``t = g / √(g² + χ²_{m−1})``; m = 1: a sign.
    """
    if m <= 1:
        return torch.randint(0, 2, tuple(shape), generator=gen, device=device).to(torch.float64) * 2 - 1
    g = _randn(shape, gen, device)
    rest = torch.from_numpy(_np_rng(gen).chisquare(m - 1, size=tuple(shape))).to(device)
    return g / torch.sqrt(g * g + rest)


def null_statistics(
    name: str,
    states: torch.Tensor,
    n_sims: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    d_eff: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Turning angles ``[n_sims, N, V]`` and LTC ``[n_sims, N]`` of a per-token null, sampled from
    their exact marginals without building the walks.

    * ``gaussian_token`` / ``dimension_token`` (walk in R^m): the turning angles are i.i.d. with
      ``cos θ = 2B − 1``, ``B ~ Beta((m−1)/2, (m−1)/2)``; the chord follows the scalar recursion
      ``‖S_{l+1}‖² = ‖S_l‖² + n² + 2n‖S_l‖c`` with ``c`` drawn the same way.
    * ``turn_plane_token``: angles are the observed ones; the chord follows the recursion on
      ``(‖S_l‖², a_l = S_l·u_l)``: ``a' = cos θ·a + sin θ·√(‖S‖² − a²)·c'`` (``c'`` of a uniform
      vector of R^{d−1}), ``‖S‖² += n² + 2n·a'``, ``a = a' + n``.
    * ``shuffle_token``: angles gathered from the matrix of pairwise step angles under random
      permutations; LTC is unchanged by construction (None).

    :func:`gaussian_walk`, :func:`angle_preserving_walk` and :func:`step_shuffle` build the walks
    themselves (the tests check both agree).
    """
    names = ("gaussian_token", "shuffle_token", "turn_plane_token", "dimension_token")
    if name not in names:
        raise bad_arg("name", name, f"one of {names}")
    x = as_states(states, "states", min_points=3)
    N, P, d = x.shape
    K = P - 1
    dev = x.device
    gen = _gen(seed, generator, dev)
    S = check_n_sims(n_sims)
    steps = x[:, 1:] - x[:, :-1]
    norms = torch.linalg.vector_norm(steps, dim=-1)  # [N, K]
    length = norms.sum(-1)
    if name == "shuffle_token":
        red = _reduced_steps(torch.nan_to_num(steps, nan=0.0))
        red = red.masked_fill(torch.isnan(steps).any(-1, keepdim=True), float("nan"))
        pair = angle_between(red[:, :, None, :], red[:, None, :, :]).reshape(1, N, K * K)
        perm = torch.rand(S, N, K, generator=gen, device=dev).argsort(-1)
        idx = perm[..., :-1] * K + perm[..., 1:]
        return torch.gather(pair.expand(S, N, K * K), -1, idx), None
    if name in ("gaussian_token", "dimension_token"):
        m = d if name == "gaussian_token" else check_d(d_eff, "d_eff")
        angles = torch.arccos(_cos_uniform(m, (S, N, K - 1), gen, dev).clamp(-1, 1))
        c = _cos_uniform(m, (S, N, K - 1), gen, dev).permute(2, 0, 1).contiguous()
        nt = norms.t().contiguous()
        r2 = nt[0].pow(2).expand(S, N).contiguous()
        for l in range(1, K):  # a loop over layers, vectorised over simulations and tokens
            n = nt[l]
            r2 = (r2 + n * n + 2 * n * r2.sqrt() * c[l - 1]).clamp_min_(0)
        return angles, chord_ratio(length, r2.sqrt())
    theta = angle_between(steps[:, :-1], steps[:, 1:])
    theta = torch.nan_to_num(theta, nan=math.pi / 2)
    c = _cos_uniform(d - 1, (S, N, K - 1), gen, dev).permute(2, 0, 1).contiguous()
    nt, ct, st = norms.t().contiguous(), torch.cos(theta).t().contiguous(), torch.sin(theta).t().contiguous()
    r2 = nt[0].pow(2).expand(S, N).contiguous()
    a = nt[0].expand(S, N)
    for l in range(1, K):
        n = nt[l]
        b = (r2 - a * a).clamp_min_(0).sqrt_()
        a1 = ct[l - 1] * a + st[l - 1] * b * c[l - 1]
        r2 = (r2 + n * n + 2 * n * a1).clamp_min_(0)
        a = a1 + n
    return theta.expand(S, N, K - 1), chord_ratio(length, r2.sqrt())


# ---------------------------------------------------------------------------------------------
# Joint nulls (one draw per text)


def _layer_factors(steps: torch.Tensor) -> list[torch.Tensor]:
    """``A_l = U S`` of each layer's step matrix ``Δ_l [..., pos, d] = U S Vᵀ`` (steps
    ``[..., pos, K, d]``), so that ``Δ_l R = A_l (Vᵀ R)`` and ``Vᵀ R`` is a uniform frame when ``R`` is
    Haar. ``r = min(pos, d)`` columns (zero singular values give zero columns: harmless)."""
    out = []
    for l in range(steps.shape[-2]):
        u, sv, _ = torch.linalg.svd(steps[..., l, :], full_matrices=False)
        out.append(u * sv.unsqueeze(-2))
    return out


def joint_rotation_steps(
    states: Any, n_sims: int, generator: torch.Generator, *, center: bool = False
) -> Float[torch.Tensor, "sim pos step d"]:
    """The ``rotation`` null's surrogate steps ``Δ_l R_l`` for one text ``[pos, point, d]``
    (one Haar ``R_l`` per layer step and simulation, shared by the tokens). For tests and plots:
    the sampler computes the statistics without storing them."""
    x = as_states(states, "states", min_points=3)
    steps = x[..., 1:, :] - x[..., :-1, :]
    return torch.stack(
        [apply_haar_frames(A, n_sims, x.shape[-1], generator, center) for A in _layer_factors(steps)], -2
    )


def _rotation_ambient(x: torch.Tensor, n_sims: int, gen: torch.Generator) -> NullDraw:
    """The ``rotation`` null built in R^d (``Δ_l R_l`` as ``A_l W_lᵀ`` with a ``d × r`` frame per step):
    the plain form, used when ``d < 2r`` (too few dimensions for the reduced chain) and as a reference."""
    d = x.shape[-1]
    steps = x[..., 1:, :] - x[..., :-1, :]
    factors = _layer_factors(steps)
    length = torch.linalg.vector_norm(steps, dim=-1).sum(-1)  # rotations keep every step norm
    angles, ltcs = [], []
    chunk = _chunk(n_sims, x[..., 0, :].numel() * 3)
    for start in range(0, n_sims, chunk):
        S = min(chunk, n_sims - start)
        prev, chord, a = None, None, []
        for A in factors:
            y = apply_haar_frames(A, S, d, gen)  # [S, ..., N, d]
            if prev is not None:
                a.append(fast_angle(prev, y))
            chord = y if chord is None else chord + y
            prev = y
        angles.append(torch.stack(a, -1))
        ltcs.append(chord_ratio(length, torch.linalg.vector_norm(chord, dim=-1)))
    return NullDraw(torch.cat(angles), torch.cat(ltcs))


def _wishart_rows(lead: Sequence[int], n: int, r: int, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Rows ``B`` with ``BᵀB`` distributed as ``GᵀG`` for an ``n × r`` standard Gaussian ``G``
    (Wishart(n, I_r)): Bartlett's upper-triangular factor (``χ(n − j)`` on the diagonal, N(0, 1) above:
    ``r(r+1)/2`` numbers) when ``n ≥ r``, else ``G`` itself (``n × r``, possibly empty)."""
    if n < r:
        return torch.randn((*lead, n, r), generator=gen, dtype=like.dtype, device=like.device)
    iu = torch.triu_indices(r, r, 1, device=like.device)
    b = torch.zeros((*lead, r, r), dtype=like.dtype, device=like.device)
    b[..., iu[0], iu[1]] = torch.randn((*lead, iu.shape[1]), generator=gen, dtype=like.dtype, device=like.device)
    diag = _chi(float(n) - torch.arange(r, dtype=torch.float64), (*lead, r), gen, like.device)
    b.diagonal(dim1=-2, dim2=-1).copy_(diag)
    return b


def fresh_frame(
    lead: Sequence[int], sizes: Sequence[int], r: int, d: int, gen: torch.Generator, like: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A uniform random ``d × r`` frame ``W`` (Haar on the Stiefel manifold), drawn in coordinates.

    ``sizes`` ``m_1, m_2, …`` are the blocks of an orthonormal basis already in use (``Σm_i ≤ d``),
    ``lead`` the batch shape, ``like`` gives dtype and device: the frame's coordinates on them are
    ``G_i R⁻¹`` and its remaining part, in the ``d − Σm_i`` other dimensions, enters only through
    ``R``, where ``RᵀR = Σ G_iᵀG_i + BᵀB`` and ``BᵀB`` is Wishart(``d − Σm_i``, I_r) (Bartlett): this is
    ``W = G R⁻¹`` with ``G`` a ``d × r`` Gaussian matrix, the Q of its QR decomposition with a positive
    diagonal, without drawing the ``d × r`` Gaussian. Returns the blocks ``[..., m_i, r]`` and ``R``'s
    lower Cholesky factor ``Rᵀ`` (the coordinates on the new dimensions are never needed)."""
    m = sum(sizes)
    g = torch.randn((*lead, m, r), generator=gen, dtype=like.dtype, device=like.device)  # one draw, one solve
    rest = _wishart_rows(lead, d - m, r, gen, like)
    low = torch.linalg.cholesky(g.mT @ g + rest.mT @ rest)
    w = torch.linalg.solve_triangular(low.mT, g, upper=True, left=False)
    return list(torch.split(w, list(sizes), dim=-2)), low


def psd_factor(g: torch.Tensor) -> torch.Tensor:
    """A factor ``F`` with ``F Fᵀ = g`` for symmetric positive semi-definite ``g [..., n, n]``:
    Cholesky where it succeeds, else (singular or round-off indefinite) the eigen-decomposition with
    negative eigenvalues clipped to 0."""
    low, info = torch.linalg.cholesky_ex(g)
    bad = info != 0
    if bool(bad.any()):
        w, v = torch.linalg.eigh(g[bad])
        low = low.clone()
        low[bad] = v * w.clamp_min(0).sqrt().unsqueeze(-2)
    return low


def _rotation(
    x: torch.Tensor, n_sims: int, gen: torch.Generator, *, method: str = "auto", valid: Any = None, **_: Any
) -> NullDraw:
    """x ``[..., N, P, d]`` → angles ``[S, ..., N, V]``, LTC ``[S, ..., N]``, drawn in ``O(N³)`` per
    layer step and simulation, independently of d (the exact reduced chain; see the module docstring).

    The surrogate steps are ``y_l = A_l W_lᵀ`` (``Δ_l = U S Vᵀ``, ``A_l = U S``, ``W_l`` independent
    uniform ``d × r`` frames). The statistics need only inner products:

    * angles: ``y_l[i]·y_{l+1}[i] = A_l[i] (W_lᵀW_{l+1}) A_{l+1}[i]ᵀ`` and ``‖y_l[i]‖ = ‖Δ_l[i]‖``;
    * the chord ``C_l = Σ_{j≤l} y_j``: written as ``C_l = K_l W_lᵀ + L_l E_lᵀ`` with ``E_l`` an orthonormal
      basis of the part of its rows orthogonal to ``W_l`` (``N`` dimensions), the next frame
      ``W_{l+1}`` has coordinates ``(M, N₂)`` on ``(W_l, E_l)`` (:func:`fresh_frame`, in ``O(r³)``); then
      ``C_l W_{l+1} = K_l M + L_l N₂ =: J``, ``K_{l+1} = J + A_{l+1}`` and ``L_{l+1}`` is any factor of
      ``C_lC_lᵀ − JJᵀ = K_lK_lᵀ + L_lL_lᵀ − JJᵀ`` (the chord's Gram is all the future depends on).

    Angles and LTC come from the same surrogates (the joint law is kept). Cost per layer step and
    simulation: about ``8N³`` multiply-adds and ``2.5N²`` Gaussian draws, against ``2dN²`` and ``dN``
    for the ambient form :func:`_rotation_ambient` (measured: 9.6× faster at N = 16, 2.8× at N = 48,
    equal at N = 128, d = 576). ``method="auto"`` takes the reduced chain when ``d ≥ 4N`` (it needs
    ``d ≥ r + N``, ``r = min(N, d)``), else the ambient form; ``"reduced"`` / ``"ambient"`` force one
    (both are exact: ``tests/unit/test_nulls.py`` compares them with QR of a ``d × d`` Gaussian).

    ``valid`` (``[..., N]`` bool): texts of different lengths zero-padded to one ``N``. A padded token has
    zero steps, so it adds nothing to the frames (the first ``r`` columns of a Haar frame are a Haar
    frame); in the chord chain its rows are kept at zero in ``K`` and at a unit vector of their own in
    ``L`` (an identity block, uncoupled from the real tokens in the Cholesky factor), so every real
    token's law is the one it has alone (tested). Its angles and LTC are NaN."""
    d = x.shape[-1]
    N = x.shape[-3]
    if method not in ("auto", "reduced", "ambient"):
        raise bad_arg("method", method, "'auto', 'reduced' or 'ambient'")
    if method == "ambient" or (method == "auto" and d < 4 * N) or d < 2 * min(N, d):
        if method == "reduced":
            raise bad_arg(
                "method", method, f"'auto' or 'ambient' (the reduced chain needs d >= 2·pos, here d = {d}, pos = {N})"
            )
        return _rotation_ambient(x, n_sims, gen)
    steps = x[..., 1:, :] - x[..., :-1, :]
    factors = _layer_factors(steps)
    r = factors[0].shape[-1]
    norms = torch.linalg.vector_norm(steps, dim=-1)  # [..., N, K]
    length = norms.sum(-1)
    nn_ = norms[..., :-1] * norms[..., 1:]  # [..., N, V]
    undefined = (
        torch.minimum(norms[..., :-1], norms[..., 1:])
        <= ZERO_STEP_RTOL * torch.maximum(norms[..., :-1], norms[..., 1:])
    ) | (nn_ == 0)
    lead = x.shape[:-3]
    real = torch.ones((*lead, N), dtype=torch.bool, device=x.device) if valid is None else valid.to(x.device)
    keep = real.to(x.dtype).unsqueeze(-1)  # [..., N, 1]
    per_sim = max(1, math.prod(lead)) * (4 * r * r + 3 * N * r + 3 * N * N)
    angles, ltcs = [], []
    chunk = _chunk(n_sims, per_sim)
    for start in range(0, n_sims, chunk):
        S = min(chunk, n_sims - start)
        K = factors[0].expand(S, *factors[0].shape)
        L = torch.diag_embed(1 - keep[..., 0]).expand(S, *lead, N, N)  # padded tokens: an identity block
        dots = []
        for l in range(len(factors) - 1):
            (M, N2), _low = fresh_frame((S, *lead), (r, N), r, d, gen, x)
            dots.append(((factors[l] @ M) * factors[l + 1]).sum(-1))
            J = (K @ M + L @ N2) * keep
            L = psd_factor(K @ K.mT + L @ L.mT - J @ J.mT)
            K = J + factors[l + 1]
        dot = torch.stack(dots, -1)
        ang = 2 * torch.atan2((nn_ - dot).clamp_min(0).sqrt(), (nn_ + dot).clamp_min(0).sqrt())
        angles.append(ang.masked_fill(undefined | ~real.unsqueeze(-1), float("nan")))
        chord = (K.square().sum(-1) + (L * keep).square().sum(-1)).sqrt()
        ltcs.append(chord_ratio(length, chord).masked_fill(~real, float("nan")))
    return NullDraw(torch.cat(angles), torch.cat(ltcs))


def _shuffle(x: torch.Tensor, n_sims: int, gen: torch.Generator, **_: Any) -> NullDraw:
    """One layer permutation per text and simulation, shared by the text's tokens."""
    K = x.shape[-2] - 1
    N = x.shape[-3]
    steps = x[..., 1:, :] - x[..., :-1, :]
    red = _reduced_steps(torch.nan_to_num(steps, nan=0.0))  # [..., N, K, min(K, d)]: same norms and angles
    pair = angle_between(red[..., :, None, :], red[..., None, :, :]).flatten(-2)  # [..., N, K·K]
    lead = x.shape[:-3]
    perm = torch.rand(n_sims, *lead, K, generator=gen, device=x.device).argsort(-1)  # one per text
    idx = (perm[..., :-1] * K + perm[..., 1:]).unsqueeze(-2).expand(n_sims, *lead, N, K - 1)
    return NullDraw(torch.gather(pair.expand(n_sims, *pair.shape), -1, idx), None)


def _per_token(name: str) -> Callable[..., NullDraw]:
    def sampler(x: torch.Tensor, n_sims: int, gen: torch.Generator, *, d_eff: int | None = None, **_: Any):
        lead, (P, d) = x.shape[:-2], x.shape[-2:]
        flat = x.reshape(-1, P, d)
        out_a: list[torch.Tensor] = []
        out_l: list[torch.Tensor] = []  # stays empty for a null that keeps LTC (None for every chunk)
        chunk = _chunk(n_sims, flat.shape[0] * P * 4)
        for start in range(0, n_sims, chunk):
            a, l = null_statistics(name, flat, min(chunk, n_sims - start), generator=gen, d_eff=d_eff)
            out_a.append(a.reshape(a.shape[0], *lead, P - 2))
            if l is not None:
                out_l.append(l.reshape(l.shape[0], *lead))
        return NullDraw(torch.cat(out_a), torch.cat(out_l) if out_l else None)

    return sampler


# ---------------------------------------------------------------------------------------------
# Nulls on the sphere S(ρ), ρ = √d (space="normalized")


def sphere_log(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Log map of the sphere through the origin with radius ``‖x‖``: the tangent vector at ``x``
    pointing to ``y`` with length the geodesic distance ``ρ·∠(x, y)``."""
    rho = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    xh = x / rho
    yh = y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)
    u = yh - (xh * yh).sum(-1, keepdim=True) * xh
    nu = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    theta = angle_between(xh, yh).nan_to_num(0.0).unsqueeze(-1)
    return torch.where(nu > 0, rho * theta * u / nu.clamp_min(1e-300), torch.zeros_like(u))


def sphere_exp(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exp map: ``ρ (cos(‖v‖/ρ) x̂ + sin(‖v‖/ρ) v̂)``, ρ = ‖x‖ (v tangent at x), renormalised to ρ."""
    rho = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    nv = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    t = nv / rho
    y = torch.cos(t) * x + torch.sin(t) * rho * v / nv.clamp_min(1e-300)
    return y * (rho / torch.linalg.vector_norm(y, dim=-1, keepdim=True))


def tangent(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``w`` projected onto the tangent space of the sphere at ``y`` (the component orthogonal to ``y``)."""
    yh = y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)
    return w - (w * yh).sum(-1, keepdim=True) * yh


def sphere_rotation_walk(
    states: Any, n_sims: int, generator: torch.Generator, *, center: bool = False
) -> Float[torch.Tensor, "sim pos point d"]:
    """The ``sphere_rotation`` null's surrogate states for one text ``[pos, point, d]`` on the
    sphere of the observed radius: ``y_0 = x_0``, ``y_{l+1} = exp_{y_l}(ĝ_l)`` where ``g_l`` is the
    tangent projection at ``y_l`` of ``log_{x_l}(x_{l+1}) R_l`` (one Haar ``R_l`` per layer, shared
    by the tokens) rescaled to the observed geodesic length. ``center=True`` rotates within the
    hyperplane ``⊥ 1`` (LayerNorm states). Every state has exactly the observed radius."""
    x = as_states(states, "states", min_points=3)
    return torch.stack(list(_sphere_rotation_iter(x, n_sims, generator, center)), -2)


def _sphere_rotation_prep(x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """What every draw of :func:`_sphere_rotation_iter` shares: the geodesic step lengths and the
    factors of the log-map steps (one SVD per layer: computed once per call, not per chunk)."""
    v = sphere_log(x[..., :-1, :], x[..., 1:, :])  # [..., N, K, d]
    return torch.linalg.vector_norm(v, dim=-1), _layer_factors(v)  # geodesic lengths [..., N, K]


def _sphere_rotation_iter(x: torch.Tensor, S: int, gen: torch.Generator, center: bool, prep=None):
    d = x.shape[-1]
    vn, factors = _sphere_rotation_prep(x) if prep is None else prep
    y = x[..., 0, :].expand(S, *x[..., 0, :].shape)
    yield y
    for l, A in enumerate(factors):
        g = tangent(y, apply_haar_frames(A, S, d, gen, center))
        gn = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
        g = torch.where(gn > 0, g * (vn[..., l, None] / gn.clamp_min(1e-300)), torch.zeros_like(g))
        y = sphere_exp(y, g)
        yield y


def _walk_statistics(states_iter: Iterator[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles and LTC of walks given as an iterator over points ``[S, ..., N, D]``."""
    prev_y: torch.Tensor | None = None
    prev_step: torch.Tensor | None = None
    first: torch.Tensor | None = None
    length: torch.Tensor | None = None
    angles = []
    for y in states_iter:
        if prev_y is None:
            first = y
        else:
            step = y - prev_y
            n = torch.linalg.vector_norm(step, dim=-1)
            length = n if length is None else length + n
            if prev_step is not None:
                angles.append(fast_angle(prev_step, step))
            prev_step = step
        prev_y = y
    assert prev_y is not None and first is not None and length is not None, "a walk has at least two points"
    chord = torch.linalg.vector_norm(prev_y - first, dim=-1)
    return torch.stack(angles, -1), chord_ratio(length, chord)


def _sphere_rotation(x: torch.Tensor, n_sims: int, gen: torch.Generator, *, center: bool = False, **_: Any):
    """The ``sphere_rotation`` sampler, in R^d: per layer step and simulation a ``d × r`` Haar frame
    (:func:`apply_haar_frames`, ``dN`` Gaussian draws and about ``2dN²`` multiply-adds for N tokens).

    Why not a reduced chain like :func:`_rotation`'s: the walk's next point depends on the tangent
    projection at the *surrogate* point and on the exp map, so each step needs the inner products of the
    fresh frame with the current points, the previous points (for the turning angle) and the first
    points (for the chord): a basis of ``3N + r`` dimensions, re-factored every step (a ``3N × 3N``
    Gram and its Cholesky factor, about ``20N³`` multiply-adds). At the sizes tlgeom runs (N ≈ 48
    tokens, d = 576) that is no cheaper than ``2dN²``; it would pay only for N < d/10, so the ambient
    form is kept (exact by construction, tested against the plain reference in ``tests/unit``)."""
    chunk = _chunk(n_sims, x[..., 0, :].numel() * 4)
    prep = _sphere_rotation_prep(x)
    draws = [
        _walk_statistics(_sphere_rotation_iter(x, min(chunk, n_sims - s), gen, center, prep))
        for s in range(0, n_sims, chunk)
    ]
    return NullDraw(torch.cat([a for a, _ in draws]), torch.cat([l for _, l in draws]))


def sphere_walk(
    geodesic_steps: Float[torch.Tensor, "... step"],
    n_sims: int,
    d: int,
    rho: float,
    generator: torch.Generator,
) -> Float[torch.Tensor, "sim ... point D"]:
    """Walks on the sphere of radius ``rho`` in R^d with the given geodesic step lengths and
    uniformly random tangent directions, independently per leading index, in ``D = min(K+1, d)``
    reduced coordinates (start ``ρ e_0``; each fresh direction from :func:`_fresh_gaussian`).
    Every state has norm ``rho``."""
    L = _norms_arg(geodesic_steps)
    n_sims, d = check_n_sims(n_sims), check_d(d)
    K = L.shape[-1]
    D = min(K + 1, d)
    lead = (n_sims, *L.shape[:-1])
    dev = L.device
    y = torch.zeros(*lead, D, dtype=torch.float64, device=dev)
    y[..., 0] = rho
    out = [y]
    for l in range(K):
        g = tangent(y, _fresh_gaussian(lead, min(l + 1, D), D, d, generator, dev))
        g = g * (L[..., l, None] / torch.linalg.vector_norm(g, dim=-1, keepdim=True))
        y = sphere_exp(y, g)
        out.append(y)
    return torch.stack(out, -2)


def _sphere_walk(x: torch.Tensor, n_sims: int, gen: torch.Generator, *, center: bool = False, **_: Any):
    d = x.shape[-1]
    rho = float(torch.linalg.vector_norm(x.reshape(-1, d)[0]))
    geo = torch.linalg.vector_norm(sphere_log(x[..., :-1, :], x[..., 1:, :]), dim=-1)  # [..., N, K]
    w = sphere_walk(geo, n_sims, d - 1 if center else d, rho, gen)
    return NullDraw(turning_angles(w), length_to_chord(w))


# ---------------------------------------------------------------------------------------------
# The registry

register(
    Null(
        "rotation",
        "joint rotation: one Haar-random rotation per layer step, shared by every token of the text "
        "(keeps step norms and the within-layer geometry; random directions across layers)",
        _ALL,
        ("raw",),
        True,
        sampler=_rotation,
        ragged=True,
    )
)
register(
    Null(
        "shuffle",
        "joint shuffle: one random layer order of the steps per text, the same for all its tokens "
        "(keeps LTC by construction: angles only)",
        _ANGLES,
        ("raw",),
        True,
        sampler=_shuffle,
        ragged=True,
    )
)
register(
    Null(
        "sphere_rotation",
        "joint rotation on the sphere S(√d): log-map steps rotated by one Haar rotation per layer "
        "(shared by the tokens), same geodesic step lengths, walked with the exp map",
        _ALL,
        ("normalized",),
        True,
        sampler=_sphere_rotation,
    )
)
register(
    Null(
        "sphere_walk",
        "per-token walk on the sphere S(√d) with the observed geodesic step lengths and random "
        "tangent directions (tokens independent)",
        _ALL,
        ("normalized",),
        False,
        sampler=_sphere_walk,
    )
)
register(
    Null(
        "gaussian_token",
        "per-token norm-matched isotropic Gaussian walk in R^d (tokens independent)",
        _ALL,
        ("raw",),
        False,
        sampler=_per_token("gaussian_token"),
    )
)
register(
    Null(
        "shuffle_token",
        "per-token step shuffle (each token's own random layer order; keeps LTC: angles only)",
        _ANGLES,
        ("raw",),
        False,
        sampler=_per_token("shuffle_token"),
    )
)
register(
    Null(
        "turn_plane_token",
        "per-token random turn planes with the observed step norms and turning angles (LTC only)",
        _LTC,
        ("raw",),
        False,
        sampler=_per_token("turn_plane_token"),
    )
)
register(
    Null(
        "dimension_token",
        "per-token norm-matched Gaussian walk in R^k, k = participation ratio of the residual cloud",
        _ALL,
        ("raw",),
        False,
        sampler=_per_token("dimension_token"),
    )
)
register(
    Null(
        "untrained",
        "untrained model: the same texts through the same architecture re-initialised (paired per text)",
        _ALL,
        ("raw", "normalized"),
        True,
        paired=True,
    )
)
