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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.geometry.curvature import (
    FLAT_DEG,
    NORMS,
    SHARP_DEG,
    SPACES,
    as_states,
    normalize_states,
    null_sd_thresholds,
    sharp_flat_counts,
)
from tlgeom.models.conventions import model_normalization
from tlgeom.models.untrained import untrained_model
from tlgeom.stats.nulls import (
    _KINDS,
    _SEED_OFFSET,
    MODEL_NULLS,
    NULLS,
    THRESHOLDS,
    _angles_ltc,
    _check_d,
    _check_n_sims,
    _simulate,
    participation_ratio,
    seeded,
)
from tlgeom.stats.pvalues import _stats


@dataclass
class NullResult:
    """One null model's comparison. Counts are per layer vertex ``[V]``; sims along dim 0.

    Attributes:
        name, description: the null and what it keeps.
        sharp_deg, flat_deg: ``[V]`` thresholds used (degrees of turning angle).
        observed: ``{"sharp"|"flat"|"sharp+flat": [V]}`` observed counts (under these thresholds).
        null: same keys, ``[n_sims, V]`` counts in each simulation (for ``untrained``: the
            trained arm after a random per-token swap).
        reference: same keys, ``[V]`` what the null "has": the mean of ``null`` (for
            ``untrained``: the untrained model's own count).
        valid: ``[V]`` number of defined observed angles.
        ltc_observed: observed median LTC over tokens; ltc_null ``[n_sims]`` per-simulation
            medians (None when the null cannot test LTC); ltc_reference: their median (for
            ``untrained``: the untrained model's median LTC).
        tests_angles / tests_ltc: False when the null keeps that quantity by construction.
        angles_sample ``[s, N, V]`` and ltc_sample ``[s, N]``: a few simulations kept for plots.
    """

    name: str
    description: str
    sharp_deg: torch.Tensor
    flat_deg: torch.Tensor
    observed: dict[str, torch.Tensor]
    null: dict[str, torch.Tensor]
    reference: dict[str, torch.Tensor]
    valid: torch.Tensor
    ltc_observed: float
    ltc_null: torch.Tensor | None
    ltc_reference: float
    tests_angles: bool = True
    tests_ltc: bool = True
    note: str = ""
    angles_sample: torch.Tensor | None = field(default=None, repr=False)
    ltc_sample: torch.Tensor | None = field(default=None, repr=False)

    @property
    def n_sims(self) -> int:
        return int(self.null["sharp"].shape[0])

    def stats(self, kind: str = "sharp+flat", vertex: int | None = None) -> dict[str, float]:
        """observed, reference, null mean/sd, excess (observed − reference), z, p for one count.

        ``vertex=None`` pools all layer vertices (sum of counts). ``z = (observed − null mean) /
        null sd`` (±inf when the null never varies; NaN if also equal); ``p = (1 + #{null ≥
        observed}) / (1 + n_sims)``, one-sided: does the observed count exceed the null's?
        """
        if kind not in _KINDS:
            raise bad_arg("kind", kind, f"one of {_KINDS}")
        if vertex is None:
            obs, null, ref = self.observed[kind].sum(), self.null[kind].sum(-1), self.reference[kind].sum()
        else:
            obs, null, ref = self.observed[kind][vertex], self.null[kind][:, vertex], self.reference[kind][vertex]
        return _stats(float(obs), null.to(torch.float64), float(ref))

    def ltc_stats(self) -> dict[str, float]:
        """observed and null median LTC, their ratio and the one-sided p (is LTC longer?)."""
        if self.ltc_null is None:
            return {
                "observed": self.ltc_observed,
                "reference": self.ltc_reference,
                "ratio": float("nan"),
                "null_mean": float("nan"),
                "null_sd": float("nan"),
                "excess": float("nan"),
                "z": float("nan"),
                "p": float("nan"),
            }
        s = _stats(self.ltc_observed, self.ltc_null, self.ltc_reference)
        s["ratio"] = self.ltc_observed / self.ltc_reference if self.ltc_reference else float("nan")
        return s


@dataclass
class CurvatureReport:
    """Observed curvature against each null model (see :func:`compare_to_nulls`).

    Attributes:
        results: one :class:`NullResult` per null.
        observed_angles: ``[N, V]`` observed turning angles (radians) of the N tokens compared.
        observed_ltc: ``[N]`` observed LTC.
        vertex_labels: label of each vertex.
        n_sims, seed, alpha, space, thresholds ("degrees" | "null_sd"), k_sd, d_model, d_eff.
    """

    results: list[NullResult]
    observed_angles: torch.Tensor
    observed_ltc: torch.Tensor
    vertex_labels: list[str]
    n_sims: int
    seed: int | None
    alpha: float
    space: str
    thresholds: str
    k_sd: float
    d_model: int
    d_eff: int | None = None
    sharp_deg: float = SHARP_DEG
    flat_deg: float = FLAT_DEG
    label: str = ""

    def __getitem__(self, name: str) -> NullResult:
        for r in self.results:
            if r.name == name:
                return r
        raise bad_arg("name", name, f"one of {[r.name for r in self.results]}")

    def __repr__(self) -> str:
        return (
            f"CurvatureReport({self.observed_angles.shape[0]} tokens × {len(self.vertex_labels)} vertices, "
            f"nulls={[r.name for r in self.results]}, n_sims={self.n_sims}) — .summary() for the verdict"
        )

    def verdicts(self) -> dict[str, dict[str, bool | None]]:
        """Per null: ``{"sharp+flat exceeds": p < alpha, "ltc longer": p < alpha}`` (None = not testable)."""
        out = {}
        for r in self.results:
            out[r.name] = {
                "sharp+flat exceeds": (r.stats("sharp+flat")["p"] < self.alpha) if r.tests_angles else None,
                "ltc longer": (r.ltc_stats()["p"] < self.alpha) if r.tests_ltc else None,
            }
        return out

    def summary(self) -> str:
        """A plain-text verdict, with numbers, for each null."""
        N, V = self.observed_angles.shape
        deg = torch.rad2deg(self.observed_angles)
        ok = ~torch.isnan(deg)
        lines = [
            f"Curvature vs null models{' — ' + self.label if self.label else ''}: {N} token trajectories × {V} "
            f"layer vertices ({self.space} space, d_model {self.d_model}), {self.n_sims} simulations per null, "
            f"seed {self.seed}, α = {self.alpha}",
            f"observed turning angles: median {float(deg[ok].median()):.1f}°, "
            f"5–95% {float(deg[ok].quantile(0.05)):.1f}–{float(deg[ok].quantile(0.95)):.1f}° "
            f"({int(ok.sum())} defined); median LTC {float(self.observed_ltc.nanmedian()):.3f}",
        ]
        if self.thresholds == "degrees":
            lines.append(
                f"thresholds: sharp θ ≥ {self.sharp_deg:g}°, flat θ ≤ {self.flat_deg:g}° (turning angle; "
                "tlgeom's defaults, not the paper's)"
            )
        else:
            lines.append(
                f"thresholds: per null and layer vertex, sharp θ ≥ μ + {self.k_sd:g}σ, flat θ ≤ μ − "
                f"{self.k_sd:g}σ of that null's angles"
            )
        pmin = 1 / (1 + self.n_sims)
        for r in self.results:
            lines.append(f"\n[{r.name}] {r.description}")
            if r.tests_angles:
                s = r.stats("sharp+flat")
                sh, fl = r.stats("sharp"), r.stats("flat")
                per_v = torch.tensor([r.stats("sharp+flat", v)["p"] for v in range(V)])
                verdict = "EXCEEDS the null" if s["p"] < self.alpha else "does NOT exceed the null"
                thr = (
                    ""
                    if self.thresholds == "degrees"
                    else (f" (thresholds {float(r.flat_deg.mean()):.1f}°/{float(r.sharp_deg.mean()):.1f}° on average)")
                )
                spread = "" if r.name == "untrained" else " ± {:.1f}".format(s["null_sd"])
                smallest = " (the smallest possible)" if s["p"] <= pmin * 1.0001 else ""
                lines.append(
                    f"  sharp+flat: observed {s['observed']:.0f} vs null {s['reference']:.1f}{spread}{thr}: "
                    f"excess {s['excess']:+.1f}, z {s['z']:+.1f}, p = {s['p']:.3g}{smallest} → {verdict}"
                )
                lines.append(
                    f"    sharp {sh['observed']:.0f} vs {sh['reference']:.1f} (p = {sh['p']:.3g}); flat "
                    f"{fl['observed']:.0f} vs {fl['reference']:.1f} (p = {fl['p']:.3g}); layer vertices with "
                    f"p < {self.alpha}: {int((per_v < self.alpha).sum())}/{V} "
                    f"(Bonferroni {int((per_v < self.alpha / V).sum())}/{V})"
                )
            else:
                lines.append(f"  sharp/flat counts: n/a — {r.note or 'this null keeps the angles by construction'}")
            if r.tests_ltc:
                t = r.ltc_stats()
                verdict = "LONGER than the null" if t["p"] < self.alpha else "NOT longer than the null"
                lines.append(
                    f"  LTC median: observed {t['observed']:.3f} vs null {t['reference']:.3f}: ratio "
                    f"{t['ratio']:.3f}, p = {t['p']:.3g} → {verdict}"
                )
            else:
                lines.append(f"  LTC: n/a — {r.note or 'this null keeps LTC by construction'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_frame(self):
        """Tidy frame: one row per (null, statistic, vertex) with observed, reference, null mean/sd,
        excess, z, p and the thresholds; vertex "all" pools the layer vertices, and statistic
        "ltc_median" compares median length-to-chord."""
        import pandas as pd

        rows = []
        for r in self.results:
            if r.tests_angles:
                for kind in _KINDS:
                    for v in [None] + list(range(len(self.vertex_labels))):
                        s = r.stats(kind, v)
                        rows.append(
                            {
                                "null": r.name,
                                "statistic": kind,
                                "vertex": "all" if v is None else self.vertex_labels[v],
                                "sharp_deg": float(r.sharp_deg.mean() if v is None else r.sharp_deg[v]),
                                "flat_deg": float(r.flat_deg.mean() if v is None else r.flat_deg[v]),
                                "n_angles": int(r.valid.sum() if v is None else r.valid[v]),
                                **s,
                            }
                        )
            if r.tests_ltc:
                s = r.ltc_stats()
                rows.append(
                    {
                        "null": r.name,
                        "statistic": "ltc_median",
                        "vertex": "all",
                        "n_angles": int(self.observed_ltc.numel()),
                        **s,
                    }
                )
        return pd.DataFrame(rows)

    def plot(self, bins: int = 60):
        """Histograms: turning angles observed vs each null (pooled), and LTC distributions."""
        import matplotlib.pyplot as plt
        import numpy as np

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
        obs = torch.rad2deg(self.observed_angles).flatten().cpu().numpy()
        edges = np.linspace(0, 180, bins + 1)
        a1.hist(obs[~np.isnan(obs)], bins=edges, density=True, color="black", alpha=0.35, label="observed")
        ltc = self.observed_ltc.cpu().numpy()
        samples = [ltc[~np.isnan(ltc)]] + [
            r.ltc_sample.flatten().cpu().numpy() for r in self.results if r.tests_ltc and r.ltc_sample is not None
        ]
        hi = float(np.nanquantile(np.concatenate(samples), 0.995)) if samples else 2.0
        ledges = np.linspace(1.0, max(hi, 1.01), bins + 1)
        a2.hist(samples[0], bins=ledges, density=True, color="black", alpha=0.35, label="observed")
        for r in self.results:
            if r.angles_sample is not None and r.tests_angles:
                x = torch.rad2deg(r.angles_sample).flatten().cpu().numpy()
                a1.hist(x[~np.isnan(x)], bins=edges, density=True, histtype="step", lw=1.3, label=r.name)
            if r.ltc_sample is not None and r.tests_ltc:
                x = r.ltc_sample.flatten().cpu().numpy()
                a2.hist(x[~np.isnan(x)], bins=ledges, density=True, histtype="step", lw=1.3, label=r.name)
        if self.thresholds == "degrees":
            for t in (self.flat_deg, self.sharp_deg):
                a1.axvline(t, color="grey", ls="--", lw=0.8)
        a1.set_xlabel("turning angle (degrees)")
        a1.set_ylabel("density")
        a1.set_title("turning angles: observed vs nulls")
        a1.legend(fontsize=7)
        a2.set_xlabel("length-to-chord")
        a2.set_title("length-to-chord: observed vs nulls")
        a2.legend(fontsize=7)
        fig.tight_layout()
        return fig


# ---------------------------------------------------------------------------------------------
# compare_to_nulls


_DESCRIPTIONS = {
    "gaussian": "norm-matched isotropic Gaussian walk in R^{d} (same step norms, random directions)",
    "shuffle": "step shuffle (each token's own steps in a random layer order)",
    "rotation": "angle-preserving rotation (same step norms and turning angles, random turn planes in R^{d})",
    "dimension": "norm-matched Gaussian walk in R^{d_eff} (participation ratio of the residual cloud: {pr:.2f})",
    "untrained": "untrained model (same architecture re-initialised, seed {seed}; paired swap test)",
}


def _flatten_states(states: Any) -> tuple[torch.Tensor, list[str] | None]:
    labels = None
    if hasattr(states, "states") and hasattr(states, "mask"):
        pl = list(getattr(states, "point_labels", []) or [])
        labels = pl[1:-1] if len(pl) >= 3 else None
    x = as_states(states, "states", min_points=3)
    x = x.reshape(-1, *x.shape[-2:])
    keep = ~torch.isnan(x).all(-1).all(-1)
    return x[keep], labels


def compare_to_nulls(
    states: Any,
    nulls: Sequence[str] = NULLS,
    n_sims: int = 999,
    seed: int | None = 0,
    *,
    thresholds: str = "degrees",
    sharp_deg: float = SHARP_DEG,
    flat_deg: float = FLAT_DEG,
    k_sd: float = 2.0,
    space: str = "raw",
    norm: str = "rms",
    eps: float = 1e-5,
    d_eff: int | None = None,
    alpha: float = 0.05,
    keep_sims: int = 20,
    vertex_labels: Sequence[str] | None = None,
    _untrained: Any = None,
) -> CurvatureReport:
    """Compare observed trajectory curvature with null models; no model needed.

    For each null and each layer vertex j (the turn at point j+1), counts sharp (θ ≥ sharp) and
    flat (θ ≤ flat) turning angles over the N token trajectories, observed and in each of
    ``n_sims`` simulated sets (each token replaced by its own surrogate), and compares the median
    LTC over tokens the same way. p-values are one-sided (observed ≥ null), with the +1
    correction: ``p = (1 + #{sims ≥ observed}) / (1 + n_sims)``, so the smallest is
    ``1 / (1 + n_sims)``. Undefined angles (zero steps, padding) are NaN and counted nowhere;
    a null's angle at a vertex where the observed one is undefined is masked too.

    Args:
        states: ``[..., point, d_model]`` (any leading dims, flattened into N trajectories) or a
            Trajectories (padding dropped). At least 3 points.
        nulls: any of ``"gaussian"``, ``"shuffle"``, ``"rotation"``, ``"dimension"`` (see the
            module docstring).
        n_sims: simulations per null (999 gives p ≥ 0.001).
        seed: int (reproducible; each null gets its own derived stream) or None (global RNG).
        thresholds: ``"degrees"`` (``sharp_deg``/``flat_deg``, defaults 110°/70°, tlgeom's
            choice) or ``"null_sd"`` (per null and vertex, ``μ ± k_sd·σ`` of that null's angles).
        space, norm, eps: ``space="normalized"`` normalises every state first (see
            :func:`tlgeom.curvature.normalize_states`); nulls are then built from the
            normalised steps.
        d_eff: dimension for the ``dimension`` null (default: participation ratio of the cloud
            of observed states, rounded, ≥ 2).
        alpha: level used by :meth:`CurvatureReport.summary` and ``verdicts``.
        keep_sims: simulations kept per null for the plots.
        vertex_labels: names of the V vertices (default from a Trajectories, else ``v1…``).

    Returns:
        A :class:`CurvatureReport`.

    Cost: O(n_sims · N · steps · min(steps, d)) per null (memory chunked to ~64 MiB per step,
    plus the ``[n_sims, N, V]`` null angles of the null being processed).
    """
    if space not in SPACES:
        raise bad_arg("space", space, f"one of {SPACES}")
    if thresholds not in THRESHOLDS:
        raise bad_arg("thresholds", thresholds, f"one of {THRESHOLDS}")
    if isinstance(nulls, str):
        nulls = (nulls,)
    nulls = tuple(nulls)
    if not nulls and _untrained is None:
        raise bad_arg("nulls", nulls, f"a non-empty sequence of {NULLS}")
    for n in nulls:
        if n not in NULLS:
            extra = " ('untrained' needs a model: use tlgeom.curvature_test)" if n == "untrained" else ""
            raise bad_arg("nulls", n, f"names from {NULLS}{extra}")
    n_sims = _check_n_sims(n_sims)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise bad_arg("seed", seed, "an int or None")
    if not (isinstance(alpha, float) and 0 < alpha < 1):
        raise bad_arg("alpha", alpha, "a float in (0, 1)")
    if float(sharp_deg) < float(flat_deg) or not (0 <= float(flat_deg) <= 180 and 0 <= float(sharp_deg) <= 180):
        raise bad_arg("sharp_deg", (sharp_deg, flat_deg), "0 <= flat_deg <= sharp_deg <= 180")
    x, labels = _flatten_states(states)
    if x.shape[0] == 0:
        raise bad_arg("states", "all NaN", "at least one trajectory with defined states")
    if space == "normalized":
        if norm not in NORMS:
            raise bad_arg("norm", norm, f"one of {NORMS}")
        x = normalize_states(x, norm, eps)
    N, P, d = x.shape
    V = P - 2
    vertex_labels = list(vertex_labels) if vertex_labels is not None else (labels or [f"v{j + 1}" for j in range(V)])
    if len(vertex_labels) != V:
        raise bad_arg("vertex_labels", vertex_labels, f"{V} labels (one per vertex)")
    obs_angles, obs_ltc = _angles_ltc(x)
    obs_undefined = torch.isnan(obs_angles)
    pr = None
    if "dimension" in nulls and d_eff is None:
        pr = participation_ratio(x)
        d_eff = max(2, int(round(pr)))
    elif d_eff is not None:
        d_eff = _check_d(d_eff, "d_eff")
    results = []

    def thresholds_for(null_angles):
        if thresholds == "degrees":
            return (
                torch.full((V,), float(sharp_deg), dtype=torch.float64, device=x.device),
                torch.full((V,), float(flat_deg), dtype=torch.float64, device=x.device),
            )
        s, f = null_sd_thresholds(null_angles.reshape(-1, V), k_sd, dim=0)
        return s.clamp(max=180.0), f.clamp(min=0.0)

    def counts(angles, sharp, flat, dim):
        c = sharp_flat_counts(angles, sharp, flat, dim=dim)
        return {"sharp": c.sharp, "flat": c.flat, "sharp+flat": c.sharp + c.flat}, c.valid

    for name in nulls:
        null_angles, null_ltc = _simulate(name, x, n_sims, seed, d_eff)
        null_angles = null_angles.masked_fill(obs_undefined, float("nan"))
        sharp, flat = thresholds_for(null_angles)
        observed, valid = counts(obs_angles, sharp, flat, 0)
        null_counts, _ = counts(null_angles, sharp, flat, 1)
        reference = {k: v.to(torch.float64).mean(0) for k, v in null_counts.items()}
        ltc_null = null_ltc.nanmedian(-1).values if null_ltc is not None else None
        desc = _DESCRIPTIONS[name].format(d=d, d_eff=d_eff, pr=pr if pr is not None else float(d_eff or 0))
        note = {
            "shuffle": "permuting a trajectory's steps leaves its length and chord unchanged, so LTC cannot differ",
            "rotation": "this null keeps every turning angle by construction (it tests LTC given the angles)",
        }.get(name, "")
        results.append(
            NullResult(
                name=name,
                description=desc,
                sharp_deg=sharp,
                flat_deg=flat,
                observed=observed,
                null=null_counts,
                reference=reference,
                valid=valid,
                ltc_observed=float(obs_ltc.nanmedian()),
                ltc_null=ltc_null,
                ltc_reference=float(ltc_null.median()) if ltc_null is not None else float(obs_ltc.nanmedian()),
                tests_angles=name != "rotation",
                tests_ltc=name != "shuffle",
                note=note,
                angles_sample=null_angles[:keep_sims].float(),
                ltc_sample=null_ltc[:keep_sims].float() if null_ltc is not None else None,
            )
        )
    if _untrained is not None:
        results.append(
            _untrained_result(
                x, obs_angles, obs_ltc, _untrained, n_sims, seed, thresholds, thresholds_for, counts, keep_sims
            )
        )
    return CurvatureReport(
        results=results,
        observed_angles=obs_angles,
        observed_ltc=obs_ltc,
        vertex_labels=vertex_labels,
        n_sims=n_sims,
        seed=seed,
        alpha=alpha,
        space=space,
        thresholds=thresholds,
        k_sd=k_sd,
        d_model=d,
        d_eff=d_eff,
        sharp_deg=float(sharp_deg),
        flat_deg=float(flat_deg),
    )


def _indicators(angles: torch.Tensor, sharp: torch.Tensor, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    deg = torch.rad2deg(angles)
    ok = ~torch.isnan(deg)
    s, f = ((deg >= sharp) & ok).long(), ((deg <= flat) & ok).long()
    return {"sharp": s, "flat": f, "sharp+flat": s + f}


def _untrained_result(x, obs_angles, obs_ltc, untrained, n_sims, seed, thresholds, thresholds_for, counts, keep_sims):
    """Paired swap test between the trained (x) and untrained trajectories of the same tokens."""
    u, init_seed = untrained
    if u.shape != x.shape:
        raise TlgeomError(f"untrained states shape {tuple(u.shape)} != observed {tuple(x.shape)}")
    u_angles, u_ltc = _angles_ltc(u)
    u_angles = u_angles.masked_fill(torch.isnan(obs_angles), float("nan"))
    sharp, flat = thresholds_for(u_angles)
    observed, valid = counts(obs_angles, sharp, flat, 0)
    u_counts, _ = counts(u_angles, sharp, flat, 0)
    # per-token indicators [N, V], so a swap is a per-token choice between the two arms
    o_tok, u_tok = _indicators(obs_angles, sharp, flat), _indicators(u_angles, sharp, flat)
    N = x.shape[0]
    gen_seed = None if seed is None else seed * 7919 + 1_000_003 * _SEED_OFFSET["untrained"]
    with seeded(gen_seed, x.device):
        swap = torch.rand(n_sims, N, device=x.device) < 0.5
    null_counts = {k: torch.where(swap[..., None], u_tok[k], o_tok[k]).sum(1) for k in o_tok}
    arm_ltc = torch.where(swap, u_ltc, obs_ltc)
    ltc_null = arm_ltc.nanmedian(-1).values
    return NullResult(
        name="untrained",
        description=_DESCRIPTIONS["untrained"].format(seed=init_seed),
        sharp_deg=sharp,
        flat_deg=flat,
        observed=observed,
        null=null_counts,
        reference={k: v.to(torch.float64) for k, v in u_counts.items()},
        valid=valid,
        ltc_observed=float(obs_ltc.nanmedian()),
        ltc_null=ltc_null,
        ltc_reference=float(u_ltc.nanmedian()),
        angles_sample=u_angles[None].float(),
        ltc_sample=u_ltc[None].float(),
    )


def curvature_test(
    model: Any,
    texts: Any,
    nulls: Sequence[str] = NULLS + MODEL_NULLS,
    n_sims: int = 999,
    seed: int | None = 0,
    *,
    init_seed: int = 0,
    points: str = "resid",
    space: str = "raw",
    skip_first: int = 0,
    **kwargs: Any,
) -> CurvatureReport:
    """Record ``texts``' trajectories on ``model`` and run :func:`compare_to_nulls`, plus the
    untrained-model null (see :func:`untrained_model`, :func:`compare_to_nulls`).

    Args:
        model: a TransformerLens model.
        texts: a string, a list of strings (padding is dropped) or token ids.
        nulls: names from ``NULLS`` and ``"untrained"``.
        n_sims, seed: as in :func:`compare_to_nulls` (the untrained swap test uses ``n_sims`` swaps).
        init_seed: seed of the untrained model's initialisation.
        points: ``"resid"`` or ``"sublayer"``.
        space: ``"raw"`` or ``"normalized"`` (the model's own normalisation, :func:`model_normalization`).
        skip_first: leave out the first ``skip_first`` positions of every text (e.g. 1 for a BOS
            token, whose residual stream on SmolLM2 is ~100× longer than the others').
        **kwargs: passed to :func:`compare_to_nulls` (thresholds, sharp_deg, flat_deg, k_sd, alpha, …).
    """
    from tlgeom.models.trajectory import record_trajectories

    if isinstance(nulls, str):
        nulls = (nulls,)
    nulls = tuple(nulls)
    for n in nulls:
        if n not in NULLS + MODEL_NULLS:
            raise bad_arg("nulls", n, f"names from {NULLS + MODEL_NULLS}")
    if not isinstance(skip_first, int) or isinstance(skip_first, bool) or skip_first < 0:
        raise bad_arg("skip_first", skip_first, "an int >= 0")
    norm_kw = {}
    if space == "normalized":
        nm, eps = model_normalization(model)
        norm_kw = {"norm": nm, "eps": eps}
    traj = record_trajectories(model, texts, points)

    def valid_states(t):
        x = as_states(t, "states")[:, skip_first:]
        if x.shape[1] == 0:
            raise bad_arg("skip_first", skip_first, f"fewer than the {t.states.shape[1]} positions")
        x = x.reshape(-1, *x.shape[-2:])
        return x[~torch.isnan(x).all(-1).all(-1)]

    x = valid_states(traj)
    untrained = None
    if "untrained" in nulls:
        um = untrained_model(model, init_seed)
        try:
            u = valid_states(record_trajectories(um, texts, points))
        finally:
            del um
        if space == "normalized":
            u = normalize_states(u, norm_kw["norm"], norm_kw["eps"])
        untrained = (u, init_seed)
    if space == "normalized":
        x = normalize_states(x, norm_kw["norm"], norm_kw["eps"])
    report = compare_to_nulls(
        x,
        [n for n in nulls if n != "untrained"],
        n_sims,
        seed,
        space="raw",
        vertex_labels=traj.point_labels[1:-1],
        _untrained=untrained,
        **kwargs,
    )
    report.space = space
    name = getattr(model.cfg, "model_name", "") or type(model).__name__
    report.label = f"{name}, {len(traj.str_tokens)} text(s)"
    return report
