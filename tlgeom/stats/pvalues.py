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

import math

import torch


def permutation_p(observed: torch.Tensor | float, null: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """One-sided Monte-Carlo p-value with the +1 correction, vectorised.

    ``p = (1 + #{null ≥ observed}) / (1 + n)`` along ``dim`` of ``null`` (``observed`` broadcasts
    against ``null`` with ``dim`` removed); NaN null values are left out of both counts. Under
    the null hypothesis P(p ≤ α) ≤ α, with equality up to ties for continuous statistics.
    """
    null = null.to(torch.float64)
    obs = torch.as_tensor(observed, dtype=torch.float64, device=null.device).unsqueeze(dim)
    ok = ~torch.isnan(null)
    n = ok.sum(dim)
    ge = ((null >= obs) & ok).sum(dim)
    return torch.where(n > 0, (1 + ge) / (1 + n), torch.full_like(n, float("nan"), dtype=torch.float64))


def _stats(obs: float, null: torch.Tensor, ref: float) -> dict[str, float]:
    null = null[~torch.isnan(null)]
    n = null.numel()
    mean = float(null.mean()) if n else float("nan")
    sd = float(null.std()) if n > 1 else float("nan")
    diff = obs - mean
    if sd > 0:
        z = diff / sd
    elif diff == 0 or math.isnan(diff):
        z = float("nan")
    else:
        z = math.copysign(math.inf, diff)
    p = float(permutation_p(obs, null)) if n else float("nan")
    return {"observed": obs, "reference": ref, "null_mean": mean, "null_sd": sd, "excess": obs - ref, "z": z, "p": p}
