"""Is trajectory curvature more than chance? Text-level tests of turning angles and length-to-chord
against null models (:mod:`tlgeom.stats.nulls`).

**The text is the unit of inference.** Tokens of one text share their context and are strongly
dependent, so token counts are never treated as independent samples. For every text t, null and
statistic:

1. the statistic ``s_t`` is computed over all tokens and layer vertices of the text (below);
2. the null is simulated ``B = n_sims`` times *for the whole text at once* (the default nulls are
   joint: one random rotation/permutation per text shared by its tokens), giving ``s_t^(b)``;
3. the text-level statistic is ``T = mean_t (s_t − m_t)``, ``m_t`` the mean of the text's
   simulations. Treating simulation b as the observation in every text at once (leave-one-out
   means) gives ``T^(b)``; since ``T^(j) = (B+1)/B · (mean_t s_t^(j) − grand mean)``, the
   Monte-Carlo p-value ``p = (1 + #{b : T^(b) ≥ T}) / (1 + B)`` (``|T|`` for two-sided) is exact
   whenever the observed text is exchangeable with its simulations under the null.
4. effect = ``mean_t (s_t − m_t)`` with a 95 % percentile-bootstrap CI over texts; z = mean over
   texts of ``(s_t − m_t) / sd_t``.

The **untrained** null is paired: the same texts through the re-initialised architecture give
``u_t``; ``d_t = s_t − u_t`` is tested across texts by random sign flips (exact enumeration for
≤ 16 texts, :func:`tlgeom.stats.pvalues.sign_flip_test`), effect = mean ``d_t`` with a bootstrap
CI, z = Cohen's ``d_z = mean(d)/sd(d)``.

Statistics (per text, over its defined angles / tokens):

=================  =================================================================================
``sharp_flat``     fraction of turning angles beyond the null's own per-vertex thresholds (default
                   ``thresholds="quantile"``: its lower/upper ``tail`` = 2.5 % quantiles, so ≈ 5 % under
                   the null; ``"null_sd"``: μ ± k·σ of the null's angles; ``"degrees"``: fixed
                   ``flat_deg``/``sharp_deg``). One-sided: more sharp+flat turns than the null.
``mean_angle``     mean turning angle (degrees). Two-sided.
``mean_abs_dev``   mean ``|θ − 90°|`` (degrees): distance from orthogonal turns. One-sided (greater).
``log_ltc``        mean over tokens of ``log LTC`` (LTC = length / chord): geometric-mean LTC on the
                   log scale, robust to a few huge ratios. One-sided (greater: longer paths).
=================  =================================================================================

Thresholds are per layer vertex, computed from the pooled angles of the observation *and* the
simulations of all texts (a symmetric function of the exchangeable configurations, so the test
stays exact; the observation weighs ``1/(B+1)``). A null that keeps a quantity by construction
does not test it (``shuffle`` keeps LTC). With fixed ``degrees`` thresholds a null may have
(almost) no mass beyond them (in d = 576 a random walk turns by 90° ± 2.4°): that row is reported
as uninformative and not counted as evidence.

**Multiple comparisons**: every report tests a family (nulls × statistics); ``p_adjusted`` uses
Holm (default) or Benjamini–Hochberg (``correction="bh"``), and ``reject`` is decided on it.

**Space**: ``space="normalized"`` normalises every state (what the next LayerNorm/RMSNorm reads)
and puts it exactly on the sphere of radius √d (removing the ≤ 1e-5 relative shrinkage of the
norm's ε), and only nulls that live on that sphere are allowed (``sphere_rotation``,
``sphere_walk``, ``untrained``): a null in R^d would make any walk on the sphere look curved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tlgeom._args import (
    check_alpha,
    check_choice,
    check_correction,
    check_init_seeds,
    check_int,
    check_points,
    check_seed,
    check_space,
)
from tlgeom._args import generator as make_generator
from tlgeom._errors import bad_arg
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.geometry.curvature import (
    FLAT_DEG,
    SHARP_DEG,
    length_to_chord,
    norm_kind,
    to_space,
    turning_angles,
)
from tlgeom.models._compat import takes_device
from tlgeom.models.conventions import model_normalization
from tlgeom.models.load import model_label
from tlgeom.models.untrained import untrained_model
from tlgeom.stats.nulls import (
    DEFAULT_NULLS,
    STATISTICS,
    Null,
    NullDraw,
    check_d,
    check_n_sims,
    get_null,
    participation_ratio,
    stream_seed,
)
from tlgeom.stats.pvalues import (
    add_note,
    adjust_pvalues,
    against_initialisations,
    attainable,
    bootstrap_ci,
    exchangeable_pvalue,
    min_pvalue_mc,
    min_pvalue_sign_flip,
    sign_flip_test,
    tests_table,
)

THRESHOLDS = ("quantile", "null_sd", "degrees")
ALTERNATIVES = {"sharp_flat": "greater", "mean_angle": "two-sided", "mean_abs_dev": "greater", "log_ltc": "greater"}
#: A null with less than this fraction of its angles beyond fixed-degree thresholds is uninformative.
MIN_TAIL_MASS = 1e-3
#: the columns the curvature table is built with (its tests() puts tlgeom._result.TEST_COLUMNS first)
TABLE_COLUMNS = [
    "null",
    "statistic",
    "space",
    "alternative",
    "observed",
    "null_mean",
    "effect",
    "ci_low",
    "ci_high",
    "z",
    "p",
    "p_adjusted",
    "n_texts",
    "informative",
    "reject",
    "note",
]

__all__ = [
    "compare_to_nulls",
    "curvature_test",
    "CurvatureReport",
    "NullResult",
    "untrained_model",
    "verdict_line",
    "THRESHOLDS",
]


@dataclass
class NullResult:
    """One null's part of a report.

    Attributes:
        name, description: the null and what it keeps.
        joint: one draw shared by the tokens of a text (dependence-preserving) or per token.
        statistics: the statistics it tested.
        flat_deg, sharp_deg: ``[V]`` thresholds of ``sharp_flat`` (degrees).
        tail_mass: fraction of the null's angles beyond them (≈ 2·tail for ``quantile``).
        angles_sample ``[s, pos, V]`` and ltc_sample ``[s, pos]``: a few simulations of the
            first text, kept for the plot (the untrained model's own values for ``untrained``).
        note: why a statistic is not tested, if any.
    """

    name: str
    description: str
    joint: bool
    statistics: tuple[str, ...]
    flat_deg: torch.Tensor
    sharp_deg: torch.Tensor
    tail_mass: float
    angles_sample: torch.Tensor | None = field(default=None, repr=False)
    ltc_sample: torch.Tensor | None = field(default=None, repr=False)
    note: str = ""


@dataclass
class CurvatureReport(Result):
    """Observed curvature against null models, text by text (see :func:`compare_to_nulls`).

    :meth:`tests` is the results table (one row per null × statistic); :meth:`to_frame` the tidy
    per-text table behind it (one row per null × statistic × text: observed ``s_t``, the mean and
    sd of its simulations, effect and z).
    """

    table: Any
    per_text: Any
    results: list[NullResult]
    observed_angles: list[torch.Tensor]
    observed_ltc: list[torch.Tensor]
    vertex_labels: list[str]
    n_sims: int
    seed: int | None
    alpha: float
    correction: str
    space: str
    thresholds: str
    d_model: int
    tail: float = 0.025
    k_sd: float = 2.0
    sharp_deg: float = SHARP_DEG
    flat_deg: float = FLAT_DEG
    d_eff: int | None = None
    label: str = ""
    init_seeds: list[int] | None = None  # the untrained references' initialisations (curvature_test)
    result_name: str = "curvature_test"

    @property
    def n_texts(self) -> int:
        return len(self.observed_angles)

    def __getitem__(self, name: str) -> NullResult:
        for r in self.results:
            if r.name == name:
                return r
        raise bad_arg("name", name, f"one of {[r.name for r in self.results]}")

    def __repr__(self) -> str:
        return (
            f"CurvatureReport({self.n_texts} text(s), {sum(a.shape[0] for a in self.observed_angles)} tokens × "
            f"{len(self.vertex_labels)} vertices, nulls={[r.name for r in self.results]}, n_sims={self.n_sims}) "
            "— .tests() for the table, .summary() for the verdict"
        )

    def tests(self):
        """The results table: one row per (null, statistic) with observed, null_mean, effect, its
        95 % bootstrap CI over texts, z, p, p_adjusted (``correction``), n_texts, informative (False:
        the row cannot reject at any data, its note says why), reject (``p_adjusted ≤ alpha``; never for
        an uninformative row) and against (a one-sided claim's opposite side is significant)."""
        return tests_table(self.table, "text")

    def verdicts(self) -> dict[str, dict[str, bool | None]]:
        """Per null: ``{statistic: reject}`` (None where the row is uninformative)."""
        out: dict[str, dict[str, bool | None]] = {}
        for row in self.table.itertuples():
            out.setdefault(row.null, {})[row.statistic] = bool(row.reject) if row.informative else None
        return out

    def verdict_line(self) -> str:
        """One line: which (null, statistic) tests reject after the correction (:func:`verdict_line`)."""
        return verdict_line(self)

    def summary(self) -> str:
        """A plain-text verdict written from :meth:`tests`."""
        t = self.table
        n_tok = sum(a.shape[0] for a in self.observed_angles)
        deg = torch.rad2deg(torch.cat([a.flatten() for a in self.observed_angles]))
        deg = deg[~torch.isnan(deg)]
        ltc = torch.cat(self.observed_ltc)
        thr = {
            "quantile": f"beyond each null's own {100 * self.tail:g} % / {100 * (1 - self.tail):g} % angle quantiles "
            "per layer vertex",
            "null_sd": f"beyond μ ± {self.k_sd:g}σ of each null's angles per layer vertex",
            "degrees": f"θ ≥ {self.sharp_deg:g}° or θ ≤ {self.flat_deg:g}° (fixed; tlgeom's choice, not the paper's)",
        }[self.thresholds]
        lines = [
            f"Curvature vs null models{' — ' + self.label if self.label else ''}: {self.n_texts} text(s), "
            f"{n_tok} tokens × {len(self.vertex_labels)} layer vertices ({self.space} space, d_model {self.d_model}), "
            f"{self.n_sims} simulations per text and null, seed {self.seed}, α = {self.alpha}, "
            f"{self.correction} correction over {int(t.informative.sum())} tests",
            (
                f"observed turning angles: median {float(deg.median()):.1f}°, 5–95% {float(deg.quantile(0.05)):.1f}–"
                f"{float(deg.quantile(0.95)):.1f}°; median LTC {float(ltc.nanmedian()):.3f}"
                if deg.numel()
                else "observed turning angles: none defined (every step has zero length)"
            ),
            f"sharp+flat = fraction of turns {thr}. The text is the unit: each statistic is computed per text "
            "and compared with that text's own simulations.",
        ]
        if self.n_texts == 1:
            m = max(1, int(t.informative.sum()))
            need = math.ceil(math.log2(m / self.alpha))
            lines.append(
                "CAUTION: one text. Inference is within this single text (its tokens are dependent, so they are not "
                "independent evidence): the simulated nulls only say whether this text differs from them, and the "
                f"paired untrained comparison cannot reach p < 0.5. A claim about texts in general needs many texts: "
                f"at least {need} for a sign-flip test to reach α/{m} = {self.alpha / m:.3g}, and 20 or more for a "
                "useful confidence interval."
            )
        floor = t.note.astype(str).str.startswith("cannot reject at any data")  # decided once, by decide()
        if floor.any():
            lines.append(
                f"CAUTION: {int(floor.sum())} of the {len(t)} tests cannot reject at any data (too few simulations "
                "or texts for the correction): they are not counted, and each note says what would reach α."
            )
        for r in self.results:
            lines.append(f"\n[{r.name}] {r.description}")
            rows = t[t.null == r.name]
            for row in rows.itertuples():
                if r.name == "untrained":
                    zpart = "" if not np.isfinite(row.z) else f", d_z {row.z:+.2f}"
                    ref = f"untrained {row.null_mean:.4g} (paired, {row.n_texts} text(s))"
                else:
                    zpart = f", z {row.z:+.1f}" if np.isfinite(row.z) else ""
                    ref = f"null {row.null_mean:.4g}"
                ci = (
                    f" [95% CI {row.ci_low:+.3g}, {row.ci_high:+.3g}]"
                    if np.isfinite(row.ci_low)
                    else " [no CI: one text]"
                )
                if not row.informative:
                    verdict = f"CANNOT DECIDE — {row.note}"
                elif row.reject:
                    verdict = "REJECT the null"
                elif row.against:
                    side = "below" if row.alternative == "greater" else "above"
                    verdict = f"EVIDENCE AGAINST the claim: significantly {side} the null (the opposite side)"
                else:
                    verdict = "consistent with the null"
                adjusted = f", adjusted {row.p_adjusted:.3g}" if row.informative else ""
                lines.append(
                    f"  {row.statistic}: observed {row.observed:.4g} vs {ref}: effect {row.effect:+.3g}{ci}{zpart}, "
                    f"p = {row.p:.3g} ({row.alternative}){adjusted} → {verdict}"
                )
            if r.note:
                lines.append(f"  not tested: {r.note}")
        return "\n".join(lines)

    def to_frame(self):
        """Tidy per-text table: one row per (null, statistic, text) with ``observed`` (s_t),
        ``null_mean`` and ``null_sd`` (of that text's simulations; the untrained value for
        ``untrained``), ``effect`` and ``z``. The tests table is :meth:`tests`."""
        return self.per_text.copy()

    def headline(self) -> dict[str, Any]:
        """JSON-ready: the tests table as records, n_texts, space, alpha, correction, n_sims, seed."""
        return jsonable(
            {
                "n_texts": self.n_texts,
                "space": self.space,
                "alpha": self.alpha,
                "correction": self.correction,
                "n_sims": self.n_sims,
                "seed": self.seed,
                "init_seeds": self.init_seeds,
                "thresholds": self.thresholds,
                "any_reject": bool(self.table.reject.any()),
                "verdicts": self.verdicts(),
                "tests": self.table.to_dict(orient="records"),
            }
        )

    def plot(self, ax: Any = None, bins: int = 60):
        """Turning angles observed vs each null (pooled; on ``ax`` if given), and without ``ax`` one panel
        per kind of standardized effect, one quantity per axis: z (the per-text effect in units of the
        text's own null spread) for the simulated nulls, Cohen's d_z for the paired (untrained) null.
        Returns the figure."""
        import matplotlib.pyplot as plt

        t = self.table
        paired = t.null.isin([r.name for r in self.results if r.name == "untrained"]).to_numpy()
        kinds = [(k, m) for k, m in (("z", ~paired), ("d_z", paired)) if m.any()]
        if ax is None:
            fig, axes = plt.subplots(1, 1 + len(kinds), figsize=(6 + 4 * len(kinds), 4))
            a1, panels = axes[0], list(axes[1:])
        else:
            fig, a1 = new_axes(ax)
            panels = []
        obs = torch.rad2deg(torch.cat([a.flatten() for a in self.observed_angles])).cpu().numpy()
        obs = obs[~np.isnan(obs)]
        samples = [obs]
        for r in self.results:
            if r.angles_sample is not None:
                x = torch.rad2deg(r.angles_sample.double()).flatten().cpu().numpy()
                samples.append(x[~np.isnan(x)])
        allv = np.concatenate(samples)
        lo, hi = np.quantile(allv, [0.001, 0.999]) if allv.size else (0, 180)
        edges = np.linspace(max(0.0, lo - 1), min(180.0, hi + 1), bins + 1)
        a1.hist(obs, bins=edges, density=True, color="black", alpha=0.35, label="observed")
        for r, x in zip([r for r in self.results if r.angles_sample is not None], samples[1:]):
            a1.hist(x, bins=edges, density=True, histtype="step", lw=1.3, label=r.name)
        a1.set_xlabel("turning angle (degrees)")
        a1.set_ylabel("density")
        a1.set_title("turning angles: observed vs nulls")
        a1.legend(fontsize=7)
        labels = {
            "z": "z: per-text effect / the text's null s.d., mean over texts",
            "d_z": "d_z: mean paired difference / its s.d. (untrained)",
        }
        for a2, (kind, mask) in zip(panels, kinds):
            rows = t[mask]
            y = np.arange(len(rows))
            colors = ["tab:red" if r else "tab:grey" for r in rows.reject]
            a2.scatter(np.nan_to_num(rows.z.to_numpy(dtype=float)), y, c=colors)
            a2.axvline(0, color="black", lw=0.8)
            a2.set_yticks(y)
            a2.set_yticklabels([f"{n} · {s}" for n, s in zip(rows.null, rows.statistic)], fontsize=7)
            a2.set_xlabel(labels[kind])
            a2.set_title(f"text-level tests (red: rejected after {self.correction})", fontsize=9)
        if panels:
            fig.tight_layout()
        return fig


# ---------------------------------------------------------------------------------------------
# Inputs: texts


def _texts(states: Any) -> tuple[list[torch.Tensor], list[str] | None]:
    """A list of per-text float64 states ``[pos, point, d]`` (padding and all-NaN tokens dropped)."""
    labels = None
    if hasattr(states, "states") and hasattr(states, "mask"):
        pl = list(getattr(states, "point_labels", []) or [])
        labels = pl[1:-1] if len(pl) >= 3 else None
        x, mask = states.states, states.mask
        raw = [x[b][mask[b].to(x.device)] for b in range(x.shape[0])]
    elif isinstance(states, torch.Tensor):
        if states.dim() == 4:
            raw = list(states)
        elif states.dim() == 3:
            raw = [states]
        else:
            raise bad_arg(
                "states",
                f"Tensor(shape={tuple(states.shape)})",
                "[pos, point, d] (one text), [text, pos, point, d], a list of per-text tensors or a Trajectories",
            )
    elif isinstance(states, (list, tuple)) and len(states) > 0:
        raw = list(states)
    else:
        raise bad_arg("states", type(states).__name__, "a list of per-text [pos, point, d] tensors or a Trajectories")
    out = []
    for i, x in enumerate(raw):
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() != 3:
            shown = f"Tensor(shape={tuple(x.shape)})" if isinstance(x, torch.Tensor) else type(x).__name__
            raise bad_arg(f"states[{i}]", shown, "a float tensor [pos, point, d] (one text)")
        x = x.to(torch.float64)
        x = x[~torch.isnan(x).all(-1).all(-1)]  # padding
        if x.shape[1] < 3:
            raise bad_arg(f"states[{i}]", f"Tensor(shape={tuple(x.shape)})", "at least 3 points per trajectory")
        out.append(x)
    if not out or any(x.shape[1:] != out[0].shape[1:] for x in out):
        raise bad_arg("states", [tuple(x.shape) for x in out], "texts with the same number of points and d")
    if all(x.shape[0] == 0 for x in out):
        raise bad_arg("states", "no valid token", "at least one token with defined states")
    return [x for x in out if x.shape[0] > 0], labels


def _several_references(given: Any) -> bool:
    """``paired[name]`` holds several references (one per initialisation: a list of per-text lists or of
    Trajectories), not one reference's texts."""
    return isinstance(given, (list, tuple)) and len(given) > 0 and not isinstance(given[0], torch.Tensor)


def _check_finite(x: torch.Tensor, i: int, what: str = "states") -> None:
    """A TlgeomError naming text ``i``'s first token/point whose state, norm or step norm is not finite."""
    norms = torch.linalg.vector_norm(x, dim=-1)  # [pos, point]
    steps = torch.linalg.vector_norm(x[:, 1:] - x[:, :-1], dim=-1)
    bad = ~torch.isfinite(x).all(-1) | ~torch.isfinite(norms)
    bad[:, 1:] |= ~torch.isfinite(steps)
    if bad.any():
        tok, pt = (int(v) for v in bad.nonzero()[0])
        vals = x[tok, pt][~torch.isfinite(x[tok, pt])]
        val = float(vals[0]) if vals.numel() else "an overflowing norm (inf)"
        raise bad_arg(f"{what} of text {i}, token {tok}, point {pt}", val, "finite states")


def _prepare(texts: list[torch.Tensor], space: str, norm: str, eps: float, what: str = "states") -> list[torch.Tensor]:
    out = []
    for i, x in enumerate(texts):
        _check_finite(x, i, what)
        if space == "normalized":
            x = to_space(x, space, norm, eps)
            _check_finite(x, i, what)
        out.append(x)
    return out


# ---------------------------------------------------------------------------------------------
# Statistics


def text_statistics(
    angles: torch.Tensor, ltc: torch.Tensor | None, flat_deg: torch.Tensor, sharp_deg: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-text statistics of configurations: angles ``[..., pos, V]`` (radians), ltc ``[..., pos]``.

    ``sharp_flat`` = fraction of defined angles with ``θ ≥ sharp_deg[v]`` or ``θ ≤ flat_deg[v]``;
    ``mean_angle`` = mean θ (degrees); ``mean_abs_dev`` = mean ``|θ − 90°|``; ``log_ltc`` = mean
    over tokens of ``log LTC``. NaN angles/LTC are left out.
    """
    deg = torch.rad2deg(angles)
    ok = ~torch.isnan(deg)
    n = ok.sum((-2, -1)).to(torch.float64)
    beyond = ((deg >= sharp_deg) | (deg <= flat_deg)) & ok
    out = {
        "sharp_flat": beyond.sum((-2, -1)) / n,
        "mean_angle": torch.where(ok, deg, 0).sum((-2, -1)) / n,
        "mean_abs_dev": torch.where(ok, (deg - 90).abs(), 0).sum((-2, -1)) / n,
    }
    if ltc is not None:
        out["log_ltc"] = torch.log(ltc).nanmean(-1)
    return out


def _thresholds(pooled: torch.Tensor, mode: str, tail: float, k_sd: float, sharp: float, flat: float):
    """Per-vertex (flat, sharp) thresholds in degrees from pooled angles ``[M, V]`` (radians), on
    the angles' device."""
    V = pooled.shape[-1]
    dev = pooled.device
    if mode == "degrees":
        f64 = torch.float64
        return torch.full((V,), flat, dtype=f64, device=dev), torch.full((V,), sharp, dtype=f64, device=dev)
    deg = torch.rad2deg(pooled.to(torch.float64))
    if mode == "quantile":
        q = torch.nanquantile(deg, torch.tensor([tail, 1 - tail], dtype=torch.float64, device=dev), dim=0)
        return q[0], q[1]
    ok = ~torch.isnan(deg)
    n = ok.sum(0)
    mu = torch.where(ok, deg, 0).sum(0) / n
    sd = (torch.where(ok, deg - mu, 0).square().sum(0) / (n - 1)).sqrt()
    return mu - k_sd * sd, mu + k_sd * sd


def _pooled_sample(angle_sets: list[torch.Tensor], limit: int = 2_000_000) -> torch.Tensor:
    """Rows ``[M, V]`` of all configurations' angles (a deterministic stride subsample above ``limit``)."""
    rows = torch.cat([a.reshape(-1, a.shape[-1]) for a in angle_sets])
    if rows.shape[0] * rows.shape[1] > limit:
        stride = math.ceil(rows.shape[0] * rows.shape[1] / limit)
        rows = rows[::stride]
    return rows


def _length_groups(lengths: list[int], ragged: bool) -> list[list[int]]:
    """Indices of texts simulated together: equal lengths, or (a ragged null) sorted lengths within
    25 % + 4 tokens of the group's shortest, zero-padded to its longest."""
    if not ragged:
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(n, []).append(i)
        return list(groups.values())
    out: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if out and lengths[i] <= 1.25 * lengths[out[-1][0]] + 4:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _simulate_null(null: Null, texts, n_sims, seed, options, progress) -> list[NullDraw]:
    """One draw per text from the null's own seeded stream; texts of equal length (of similar length,
    zero-padded, for a ragged null) are simulated together in one vectorised call, independently: each
    has its own rotations/permutations. Each group is drawn in chunks of simulations (up to 10, fixed
    by ``n_sims`` alone, so the draws do not depend on ``progress``); with ``progress`` a bar counts
    simulations × texts, with an ETA, and moves during a long group."""
    gen = make_generator(stream_seed(seed, null.name), texts[0].device)
    lengths = [x.shape[0] for x in texts]
    parts: list[list[NullDraw]] = [[] for _ in texts]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_sims * len(texts), desc=f"null {null.name}", unit="sim", leave=False)
    try:
        for idx in _length_groups(lengths, null.ragged):
            n = max(lengths[i] for i in idx)
            x = torch.stack([torch.nn.functional.pad(texts[i], (0, 0, 0, 0, 0, n - lengths[i])) for i in idx])
            extra = dict(options)
            if null.ragged and len({lengths[i] for i in idx}) > 1:
                extra["valid"] = (
                    torch.arange(n, device=x.device) < torch.tensor([lengths[i] for i in idx], device=x.device)[:, None]
                )
            step = n_sims if n_sims <= 100 else -(-n_sims // 10)
            for start in range(0, n_sims, step):
                S = min(step, n_sims - start)
                dr = null.simulate(x, S, gen, **extra)
                for j, i in enumerate(idx):
                    k = lengths[i]
                    parts[i].append(NullDraw(dr.angles[:, j, :k], dr.ltc[:, j, :k] if dr.ltc is not None else None))
                if bar is not None:
                    bar.update(S * len(idx))
    finally:
        if bar is not None:
            bar.close()
    return [
        NullDraw(
            torch.cat([p.angles for p in ps]) if len(ps) > 1 else ps[0].angles,
            None if ps[0].ltc is None else torch.cat([p.ltc for p in ps if p.ltc is not None]),
        )
        for ps in parts
    ]


# ---------------------------------------------------------------------------------------------
# compare_to_nulls


def _check_nulls(nulls: Any, space: str, default: Sequence[str]) -> tuple[Null, ...]:
    if nulls is None:
        nulls = default
    if isinstance(nulls, str):
        nulls = (nulls,)
    if not isinstance(nulls, (list, tuple)) or not nulls:
        raise bad_arg("nulls", nulls, "a non-empty sequence of null names")
    out = []
    for n in nulls:
        null = get_null(n)
        if space not in null.spaces:
            ok = [k for k in DEFAULT_NULLS[space]] + ["untrained"]
            raise bad_arg(
                "nulls",
                n,
                f"a null that lives in space={space!r} ({null.name!r} lives in {null.spaces}; e.g. {ok}): "
                "comparing states on the sphere with walks in R^d would make any sphere walk look curved",
            )
        if null in out:
            raise bad_arg("nulls", nulls, "distinct names")
        out.append(null)
    return tuple(out)


def compare_to_nulls(
    states: Any,
    nulls: Sequence[str] | None = None,
    n_sims: int = 999,
    seed: int | None = 0,
    *,
    space: str = "raw",
    statistics: Sequence[str] = STATISTICS,
    thresholds: str = "quantile",
    tail: float = 0.025,
    k_sd: float = 2.0,
    sharp_deg: float = SHARP_DEG,
    flat_deg: float = FLAT_DEG,
    alpha: float = 0.05,
    correction: str = "holm",
    norm: str = "rms",
    eps: float = 1e-5,
    d_eff: int | None = None,
    paired: Mapping[str, Any] | None = None,
    n_boot: int = 9999,
    keep_sims: int = 20,
    vertex_labels: Sequence[str] | None = None,
    progress: bool = False,
) -> CurvatureReport:
    """Test observed trajectory curvature against null models, with the text as the unit.

    Args:
        states: the texts: a list of per-text tensors ``[pos, point, d_model]`` (ragged ``pos``),
            a Trajectories (each batch row a text; padding dropped), one tensor ``[pos, point, d]``
            (one text) or ``[text, pos, point, d]``. Tokens whose states are all NaN are padding;
            any other non-finite value is an error naming the text, token and point.
        nulls: registry names (:mod:`tlgeom.stats.nulls`); default the joint nulls of the space
            (``raw``: rotation, shuffle; ``normalized``: sphere_rotation). ``"untrained"`` needs
            ``paired={"untrained": states}`` (:func:`curvature_test` records them).
        n_sims: simulations per text and null (the smallest p is ``1/(1 + n_sims)``).
        seed: int in [0, 2**63) or None; each null gets its own derived stream.
        space: ``"raw"`` or ``"normalized"`` (states normalised with ``norm``/``eps`` and put on
            the sphere of radius √d; only sphere nulls allowed).
        statistics: any of ``sharp_flat``, ``mean_angle``, ``mean_abs_dev``, ``log_ltc``.
        thresholds: ``"quantile"`` (default; ``tail``), ``"null_sd"`` (μ ± ``k_sd``σ) or
            ``"degrees"`` (``flat_deg``/``sharp_deg``), for ``sharp_flat``.
        alpha, correction: level and multiple-comparison correction (``"holm"``, ``"bh"``, ``"none"``).
        d_eff: dimension of ``dimension_token`` (default the participation ratio, rounded, ≥ 2).
        paired: states of paired model-based nulls, same texts and shapes as ``states``.
        n_boot: bootstrap resamples for the CIs (0: no CIs, for calibration loops).
        keep_sims: simulations of the first text kept for the plot.
        vertex_labels: names of the V layer vertices.
        progress: a tqdm bar per null.

    Returns:
        A :class:`CurvatureReport`; ``.tests()`` is the table.
    """
    settings = check_settings(
        nulls, n_sims, seed, space=space, statistics=statistics, thresholds=thresholds, tail=tail, k_sd=k_sd,
        sharp_deg=sharp_deg, flat_deg=flat_deg, alpha=alpha, correction=correction, norm=norm, eps=eps, d_eff=d_eff,
        n_boot=n_boot, keep_sims=keep_sims, progress=progress,
    )  # fmt: skip
    return _compare(states, settings, paired, vertex_labels)


@dataclass(frozen=True)
class CurvatureSettings:
    """The arguments of a curvature test, checked and normalised once (:func:`check_settings`); the inner
    steps trust them."""

    nulls: tuple[Null, ...]
    n_sims: int
    seed: int | None
    space: str
    statistics: tuple[str, ...]
    thresholds: str
    tail: float
    k_sd: float
    sharp_deg: float
    flat_deg: float
    alpha: float
    correction: str
    norm: str
    eps: float
    d_eff: int | None
    n_boot: int
    keep_sims: int
    progress: bool


def check_settings(
    nulls: Any = None,
    n_sims: int = 999,
    seed: int | None = 0,
    *,
    space: str = "raw",
    statistics: Any = STATISTICS,
    thresholds: Any = "quantile",
    tail: Any = 0.025,
    k_sd: Any = 2.0,
    sharp_deg: Any = SHARP_DEG,
    flat_deg: Any = FLAT_DEG,
    alpha: float = 0.05,
    correction: str = "holm",
    norm: str | None = "rms",
    eps: float = 1e-5,
    d_eff: Any = None,
    n_boot: int = 9999,
    keep_sims: Any = 20,
    progress: bool = False,
    untrained: bool = False,
) -> CurvatureSettings:
    """Every argument of :func:`compare_to_nulls` (and :func:`curvature_test`) checked, once, at the public
    entry: a TlgeomError naming the first bad one. ``nulls=None`` means the joint nulls of ``space``, and the
    paired untrained-model null with ``untrained=True`` (:func:`curvature_test`)."""
    space = check_space(space)
    seed = check_seed(seed)
    alpha = check_alpha(alpha)
    correction = check_correction(correction)
    thresholds = check_choice("thresholds", thresholds, THRESHOLDS)
    n_sims = check_n_sims(n_sims)
    null_objs = _check_nulls(nulls, space, DEFAULT_NULLS[space] + (("untrained",) if untrained else ()))
    if isinstance(statistics, str):
        statistics = (statistics,)
    for stat in statistics:
        check_choice("statistics", stat, STATISTICS)
    if not (isinstance(tail, float) and 0 < tail < 0.5):
        raise bad_arg("tail", tail, "a float in (0, 0.5)")
    if not (isinstance(k_sd, (int, float)) and k_sd > 0):
        raise bad_arg("k_sd", k_sd, "a number > 0")
    if not (0 <= float(flat_deg) <= float(sharp_deg) <= 180):
        raise bad_arg("sharp_deg", (sharp_deg, flat_deg), "0 <= flat_deg <= sharp_deg <= 180")
    norm = norm_kind(norm)
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise bad_arg("eps", eps, "a finite float >= 0")
    if not (isinstance(n_boot, int) and n_boot >= 0):
        raise bad_arg("n_boot", n_boot, "an int >= 0")
    if d_eff is not None:
        d_eff = check_d(d_eff, "d_eff")
    return CurvatureSettings(
        nulls=null_objs, n_sims=n_sims, seed=seed, space=space, statistics=tuple(statistics), thresholds=thresholds,
        tail=tail, k_sd=float(k_sd), sharp_deg=float(sharp_deg), flat_deg=float(flat_deg), alpha=alpha,
        correction=correction, norm=norm, eps=float(eps), d_eff=d_eff, n_boot=n_boot,
        keep_sims=check_int("keep_sims", keep_sims, 0), progress=bool(progress),
    )  # fmt: skip


def _compare(
    states: Any, settings: CurvatureSettings, paired: Mapping[str, Any] | None, vertex_labels: Sequence[str] | None
) -> CurvatureReport:
    """The test itself, on checked settings (:func:`check_settings`)."""
    import pandas as pd

    s_ = settings
    null_objs, n_sims, seed, space, statistics = s_.nulls, s_.n_sims, s_.seed, s_.space, s_.statistics
    thresholds, tail, k_sd, sharp_deg, flat_deg = s_.thresholds, s_.tail, s_.k_sd, s_.sharp_deg, s_.flat_deg
    alpha, correction, norm, eps, d_eff = s_.alpha, s_.correction, s_.norm, s_.eps, s_.d_eff
    n_boot, keep_sims, progress = s_.n_boot, s_.keep_sims, s_.progress
    paired = dict(paired or {})
    for n in null_objs:
        if n.paired and n.name not in paired:
            raise bad_arg(
                "nulls",
                n.name,
                f"a simulated null, or pass paired={{{n.name!r}: states}} ({n.name!r} needs a model: use "
                "tlgeom.curvature_test)",
            )

    raw_texts, labels = _texts(states)
    texts = _prepare(raw_texts, space, norm, eps)
    T = len(texts)
    P, d = texts[0].shape[1:]
    V = P - 2
    vertex_labels = list(vertex_labels) if vertex_labels is not None else (labels or [f"v{j + 1}" for j in range(V)])
    if len(vertex_labels) != V:
        raise bad_arg("vertex_labels", vertex_labels, f"{V} labels (one per vertex)")
    obs_angles = [turning_angles(x) for x in texts]
    obs_ltc = [length_to_chord(x) for x in texts]
    if all(bool(torch.isnan(a).all()) for a in obs_angles):
        raise bad_arg(
            "states",
            "no defined turning angle",
            "trajectories that move: every step of every text has zero length (all-zero or constant states)",
        )
    if any(n.name == "dimension_token" for n in null_objs):
        d_eff = d_eff if d_eff is not None else max(2, round(participation_ratio(torch.cat(texts))))
    options = {"d_eff": d_eff, "center": space == "normalized" and norm == "layernorm"}

    rows, per_text, results = [], [], []
    for null in null_objs:
        stats_here = tuple(s for s in statistics if s in null.tests)
        if null.paired:
            given = paired[null.name]
            inits = list(given) if _several_references(given) else [given]
            refs = []
            for k, r in enumerate(inits):
                where = f"paired[{null.name!r}]" + (f"[{k}]" if len(inits) > 1 else "")
                ref = _prepare(_texts(r)[0], space, norm, eps, what=where)
                if [x.shape for x in ref] != [x.shape for x in texts]:
                    raise bad_arg(where, [tuple(x.shape) for x in ref], "the same texts and shapes as states")
                refs.append(ref)
            ref_angles_k = [
                [turning_angles(x).masked_fill(torch.isnan(a), float("nan")) for x, a in zip(ref, obs_angles)]
                for ref in refs
            ]
            ref_ltc_k = [[length_to_chord(x) for x in ref] for ref in refs]
            ref_angles, ref_ltc = ref_angles_k[0], ref_ltc_k[0]
            every_ref = [a for angles in ref_angles_k for a in angles]
            # thresholds from the pool of the observed and every reference: a swap of a text's observed and
            # reference states leaves the pool, so each sign-flip test stays exact
            flat, sharp = _thresholds(
                _pooled_sample(obs_angles + every_ref), thresholds, tail, k_sd, sharp_deg, flat_deg
            )
            tail_mass = _tail_mass(every_ref, flat, sharp)
            s_obs = [text_statistics(a, l, flat, sharp) for a, l in zip(obs_angles, obs_ltc)]
            s_refs = [
                [text_statistics(a, l, flat, sharp) for a, l in zip(angles, ltcs)]
                for angles, ltcs in zip(ref_angles_k, ref_ltc_k)
            ]
            K = len(refs)
            for st in stats_here:
                o = torch.stack([s[st] for s in s_obs]).cpu().numpy()
                us = np.stack([torch.stack([s[st] for s in s_ref]).cpu().numpy() for s_ref in s_refs])  # [K, T]
                u = us.mean(0)
                dlts = o[None] - us
                dlt = o - u
                alt = ALTERNATIVES[st]
                ok = np.isfinite(dlts).all(0)
                flip_seed = stream_seed(seed, null.name) if seed is not None else None
                # against K initialisations: p is the largest per-initialisation p (intersection-union test:
                # a rejection says the effect holds against every one of them, not against one draw)
                each = dlts[:, ok].mean(1) if ok.any() else np.full(len(dlts), np.nan)
                against = against_initialisations(each, [sign_flip_test(d[ok], alt, seed=flip_seed) for d in dlts])
                p = against["p"]
                sd_dlt = float(np.std(dlt[ok], ddof=1)) if ok.sum() > 1 else float("nan")
                row = table_row(null, st, space, alt, o[ok], u[ok], dlt[ok], p, n_boot, seed)
                row["z"] = float(np.mean(dlt[ok]) / sd_dlt) if sd_dlt > 0 else float("nan")
                row["p_min"] = min_pvalue_sign_flip(int(ok.sum()), alt)
                row["p_min_why"] = f"a sign-flip test over {int(ok.sum())} texts"
                if alt in OPPOSITE:
                    row["p_opposite"] = max(sign_flip_test(d[ok], OPPOSITE[alt], seed=flip_seed) for d in dlts)
                _informative(row, st, thresholds, tail_mass)
                if K > 1:
                    note = against.pop("note")
                    row.update({k: v for k, v in against.items() if k != "p"})
                    add_note(row, note)
                rows.append(row)
                for t in range(T):
                    per_text.append(_text_row(null.name, st, t, o[t], u[t], float("nan")))
            results.append(
                NullResult(
                    null.name,
                    null.description,
                    null.joint,
                    stats_here,
                    flat,
                    sharp,
                    tail_mass,
                    angles_sample=ref_angles[0][None].float(),
                    ltc_sample=ref_ltc[0][None].float(),
                )
            )
            continue
        draws = _simulate_null(null, texts, n_sims, seed, options, progress)
        sim_angles = [dr.angles.masked_fill(torch.isnan(a), float("nan")) for dr, a in zip(draws, obs_angles)]
        configs_a = [torch.cat([a[None], s]) for a, s in zip(obs_angles, sim_angles)]  # [B+1, pos, V]
        configs_l = [
            torch.cat([l[None], dr.ltc]) if dr.ltc is not None else None for l, dr in zip(obs_ltc, draws)
        ]  # [B+1, pos]
        flat, sharp = _thresholds(_pooled_sample(configs_a), thresholds, tail, k_sd, sharp_deg, flat_deg)
        tail_mass = _tail_mass(sim_angles, flat, sharp)
        s_all = [text_statistics(a, l, flat, sharp) for a, l in zip(configs_a, configs_l)]
        for st in stats_here:
            s = torch.stack([x[st] for x in s_all])  # [T, B+1]
            alt = ALTERNATIVES[st]
            ok = ~torch.isnan(s).any(-1)
            s = s[ok]
            m, sd = s[:, 1:].mean(-1), s[:, 1:].std(-1)
            eff = s[:, 0] - m
            p = float(exchangeable_pvalue(s.mean(0), alt))
            row = table_row(
                null, st, space, alt, s[:, 0].cpu().numpy(), m.cpu().numpy(), eff.cpu().numpy(), p, n_boot, seed
            )
            row["p_min"] = min_pvalue_mc(n_sims)
            row["p_min_why"] = f"{n_sims} simulations"
            if alt in OPPOSITE:
                row["p_opposite"] = float(exchangeable_pvalue(s.mean(0), OPPOSITE[alt]))
            z = torch.where(sd > 0, eff / sd.where(sd > 0, torch.ones_like(sd)), torch.full_like(sd, float("nan")))
            row["z"] = float(z[~torch.isnan(z)].mean()) if (~torch.isnan(z)).any() else float("nan")
            _informative(row, st, thresholds, tail_mass)
            rows.append(row)
            for t, idx in enumerate(ok.nonzero().flatten().tolist()):
                per_text.append(_text_row(null.name, st, idx, float(s[t, 0]), float(m[t]), float(sd[t])))
        note = ""
        if "log_ltc" not in null.tests:
            note = "LTC (this null keeps length and chord by construction)"
        elif not (set(ANGLE_STATS) & null.tests):
            note = "angle statistics (this null keeps every turning angle by construction)"
        results.append(
            NullResult(
                null.name,
                null.description,
                null.joint,
                stats_here,
                flat,
                sharp,
                tail_mass,
                angles_sample=sim_angles[0][:keep_sims].float(),
                ltc_sample=draws[0].ltc[:keep_sims].float() if draws[0].ltc is not None else None,
                note=note,
            )
        )
    table = decide(rows, alpha, correction)
    return CurvatureReport(
        table=table,
        per_text=pd.DataFrame(per_text),
        results=results,
        observed_angles=obs_angles,
        observed_ltc=obs_ltc,
        vertex_labels=vertex_labels,
        n_sims=n_sims,
        seed=seed,
        alpha=alpha,
        correction=correction,
        space=space,
        thresholds=thresholds,
        d_model=d,
        tail=tail,
        k_sd=float(k_sd),
        sharp_deg=float(sharp_deg),
        flat_deg=float(flat_deg),
        d_eff=d_eff,
    )


#: The other side of a one-sided alternative: a significant effect there is evidence against the claim.
OPPOSITE = {"greater": "less", "less": "greater"}


def decide(rows: list[dict[str, Any]], alpha: float, correction: str):
    """The tests table from its rows: which rows can reject at all, the adjusted p-values and the
    decisions, and the evidence against a one-sided claim.

    * A row with ``p_min`` (its smallest attainable p: ``1/(1 + n_sims)``, or ``1/2^n`` for a sign-flip
      test over ``n`` texts) whose best adjusted p over the family (:func:`~tlgeom.stats.pvalues.attainable`)
      is above ``alpha`` cannot reject whatever the data: ``informative=False``, with a note naming that
      smallest attainable adjusted p and what would make it reachable. Not rejecting is then no evidence.
    * ``p_adjusted`` and ``reject`` over the informative rows (``correction``).
    * ``against``: a one-sided test whose opposite side (``p_opposite``, adjusted the same way) is
      significant: the effect is significantly in the direction opposite to the claim, which is
      evidence against it, not "the untested side"."""
    import pandas as pd

    columns = TABLE_COLUMNS + ["p_min", "p_min_why", "p_opposite"]
    columns += list(dict.fromkeys(k for r in rows for k in r if k not in columns))  # a row's own extras
    table = pd.DataFrame(rows, columns=columns)
    informative = table.informative.to_numpy(dtype=bool)
    p_min = np.where(informative, table.p_min.to_numpy(dtype=float), np.nan)
    can, best = attainable(p_min, alpha, correction)
    m = int(np.isfinite(p_min).sum())
    for i in np.flatnonzero(informative & np.isfinite(p_min) & ~can):
        why = table.p_min_why.iloc[i]
        if "simulations" in str(why):
            need = (
                f"at least {math.ceil(m / alpha) - 1 if correction == 'holm' else math.ceil(1 / alpha) - 1} simulations"
            )
        else:
            extra = 1 if table.alternative.iloc[i] == "two-sided" else 0
            need = f"at least {math.ceil(math.log2((m if correction == 'holm' else 1) / alpha)) + extra} texts"
        table.loc[table.index[i], "informative"] = False
        floor = (
            f"cannot reject at any data: the smallest attainable p is {p_min[i]:.3g} ({why}), at best "
            f"{best[i]:.3g} after {correction} over {m} tests > α = {alpha}; it needs {need}"
        )
        before = table.note.iloc[i]
        table.loc[table.index[i], "note"] = f"{floor}; {before}" if isinstance(before, str) and before else floor
    informative = table.informative.to_numpy(dtype=bool)
    p_test = np.where(informative, table.p.to_numpy(dtype=float), np.nan)
    table["p_adjusted"] = adjust_pvalues(p_test, correction)
    table["reject"] = (table.p_adjusted <= alpha).fillna(False).astype(bool) & table.informative.astype(bool)
    p_opp = np.where(informative, table.p_opposite.to_numpy(dtype=float), np.nan)
    table["against"] = (adjust_pvalues(p_opp, correction) <= alpha) & informative
    return table.drop(columns=["p_min", "p_min_why", "p_opposite"])


ANGLE_STATS = ("sharp_flat", "mean_angle", "mean_abs_dev")


def _tail_mass(angle_sets: list[torch.Tensor], flat: torch.Tensor, sharp: torch.Tensor) -> float:
    deg = [torch.rad2deg(a) for a in angle_sets]
    n = sum(int((~torch.isnan(x)).sum()) for x in deg)
    beyond = sum(int(((x >= sharp) | (x <= flat)).sum()) for x in deg)
    return beyond / n if n else float("nan")


def table_row(null, st, space, alt, obs, ref, eff, p, n_boot, seed) -> dict[str, Any]:
    """One row of the curvature table: a null × statistic, its effect over units with a bootstrap CI
    (shared by the in-memory test and the corpus engine's test from rows)."""
    lo, hi = (
        bootstrap_ci(eff, n_resamples=n_boot, seed=stream_seed(seed, null.name + st) if seed is not None else None)
        if n_boot > 0
        else (float("nan"), float("nan"))
    )
    return {
        "null": null.name,
        "statistic": st,
        "space": space,
        "alternative": alt,
        "observed": float(np.mean(obs)) if len(obs) else float("nan"),
        "null_mean": float(np.mean(ref)) if len(ref) else float("nan"),
        "effect": float(np.mean(eff)) if len(eff) else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "z": float("nan"),
        "p": p,
        "p_adjusted": float("nan"),
        "n_texts": int(len(eff)),
        "informative": True,
        "reject": False,
        "note": "",
    }


def _informative(row: dict, st: str, thresholds: str, tail_mass: float) -> None:
    if st == "sharp_flat" and thresholds == "degrees" and not tail_mass >= MIN_TAIL_MASS:
        row["informative"] = False
        row["note"] = (
            f"this null cannot produce such turns ({100 * tail_mass:.3g} % of its angles lie beyond the fixed "
            "thresholds): the comparison is uninformative (use thresholds='quantile')"
        )


def _text_row(null: str, st: str, t: int, obs: float, ref: float, sd: float) -> dict[str, Any]:
    eff = obs - ref
    return {
        "null": null,
        "statistic": st,
        "text": t,
        "observed": obs,
        "null_mean": ref,
        "null_sd": sd,
        "effect": eff,
        "z": eff / sd if sd > 0 else float("nan"),
    }


# ---------------------------------------------------------------------------------------------
# curvature_test


@takes_device
def curvature_test(
    model: Any,
    inputs: Any,
    *,
    nulls: Sequence[str] | None = None,
    n_sims: int = 999,
    seed: int | None = 0,
    space: str = "raw",
    points: str = "resid",
    alpha: float = 0.05,
    correction: str = "holm",
    progress: bool = False,
    init_seed: int = 0,
    init_seeds: int | Sequence[int] | None = None,
    skip_first: int = 0,
    **kwargs: Any,
) -> CurvatureReport:
    """Record the texts' trajectories on ``model`` and test them against null models, each text a
    unit (see :func:`compare_to_nulls`), plus the paired untrained-model null.

    Args:
        model: a TransformerLens model.
        inputs: a string (one text), a list of strings (each a text; padding dropped) or token ids.
        nulls: registry names; default the joint nulls of ``space`` and ``"untrained"``.
        n_sims, seed, alpha, correction, progress: as in :func:`compare_to_nulls`.
        space: ``"raw"`` or ``"normalized"`` (the model's own normalisation, :func:`model_normalization`).
        points: ``"resid"`` or ``"sublayer"``.
        init_seed: seed of the untrained model's initialisation.
        init_seeds: several initialisations for the untrained null: a count ``k`` (seeds ``init_seed``,
            ``init_seed + 1``, …) or the seeds. Its rows then test against every one: the effect is the mean
            over them, p the largest of their sign-flip p-values (an intersection-union test: a rejection
            says the effect holds against each initialisation, not one draw), with the per-initialisation
            effects' range (``init_effect_min`` / ``init_effect_max``). Default: ``init_seed`` alone.
        skip_first: leave out the first ``skip_first`` positions of every text (e.g. 1 for BOS).
        **kwargs: passed to :func:`compare_to_nulls` (statistics, thresholds, tail, …).
    """
    from tlgeom.models.trajectory import record_trajectories

    points = check_points(points)
    check_seed(init_seed, "init_seed", allow_none=False)
    seeds = check_init_seeds(init_seeds, first=init_seed)
    if not isinstance(skip_first, int) or isinstance(skip_first, bool) or skip_first < 0:
        raise bad_arg("skip_first", skip_first, "an int >= 0")
    norm_kw: dict[str, Any] = {}
    if space == "normalized":
        nm, eps = model_normalization(model)
        norm_kw = {"norm": nm, "eps": eps}
    settings = check_settings(
        nulls, n_sims, seed, space=space, alpha=alpha, correction=correction, progress=progress,
        untrained=True, **norm_kw, **kwargs,
    )  # fmt: skip
    if isinstance(inputs, str):
        inputs = [inputs]
    traj = record_trajectories(model, inputs, points)

    def per_text(t) -> list[torch.Tensor]:
        texts, _ = _texts(t)
        for b, x in enumerate(texts):
            if x.shape[0] <= skip_first:
                raise bad_arg("skip_first", skip_first, f"fewer than the {x.shape[0]} tokens of text {b}")
        return [x[skip_first:] for x in texts]

    texts = per_text(traj)
    paired = {}
    if any(n.name == "untrained" for n in settings.nulls):
        references = []
        for s in seeds:
            um = untrained_model(model, s)
            try:
                references.append(per_text(record_trajectories(um, inputs, points)))
            finally:
                del um
        paired["untrained"] = references if len(references) > 1 else references[0]
    report = _compare(texts, settings, paired, traj.point_labels[1:-1])
    name = model_label(model)
    report.label = name
    report.init_seeds = seeds if any(n.name == "untrained" for n in settings.nulls) else None
    return report


def verdict_line(report: Any) -> str:
    """One line from ``report.tests()``: which (null, statistic) tests reject after the correction, which
    could not reject at any data, and which are significant on the claim's opposite side."""
    t = report.tests()
    tested = t[t.informative]
    rej = tested[tested.reject]
    m = len(tested)
    names = lambda rows: ", ".join(f"{r.null}·{r.statistic}" for r in rows.itertuples())
    line = (
        f"curvature verdict (α = {report.alpha}, {report.correction} over {m} tests, {report.n_texts} text(s)): "
        f"rejected {len(rej)}/{m}" + (f" ({names(rej)})" if len(rej) else "") + "."
    )
    if len(t) > m:
        line += (
            f" {len(t) - m} comparison(s) could not reject at any data (simulations, texts or thresholds too few:"
            " see their notes) and are not counted as evidence either way."
        )
    against = t[t["against"].astype(bool)] if "against" in t.columns else t.iloc[:0]
    if len(against):
        line += f" Evidence against the claim (significant on the opposite side): {names(against)}."
    if report.n_texts == 1:
        line += " Caution: one text, so inference is within that text only."
    return line
