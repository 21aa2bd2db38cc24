"""The one statistics toolbox of tlgeom: Monte-Carlo p-values, the sign-flip test, the bootstrap,
Spearman correlation, multiple-comparison corrections and effect sizes.

Every other module calls these; none re-implements them. Randomness only through ``seed`` (a
numpy ``Generator`` is built from it), never the global RNG.

* :func:`mc_pvalue` — ``p = (1 + #{null ≥ observed}) / (1 + n)`` (one-sided, ties count against
  the observation) or its two-sided form on ``|· − centre|``. Exact under exchangeability of the
  observation with the ``n`` null draws: ``P(p ≤ α) ≤ α``.
* :func:`exchangeable_pvalue` — the same for ``B + 1`` exchangeable configurations (index 0 the
  observed one), as used for the text-level curvature tests.
* :func:`sign_flip_test` — paired one-sample test of ``mean(d)`` by random sign flips
  (``scipy.stats.permutation_test``; exact enumeration of all ``2^n`` patterns for ``n ≤ 20``).
* :func:`bootstrap_ci` — percentile bootstrap CI of a mean over units (``scipy.stats.bootstrap``).
* :func:`spearman`, :func:`row_spearman` — Spearman's ρ (``scipy.stats.rankdata``).
* :func:`adjust_pvalues` — Holm / Benjamini–Hochberg (``statsmodels``) / none.
* :func:`cohens_d` — standardized mean difference with the pooled SD.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tlgeom._args import check_correction, check_seed
from tlgeom._errors import bad_arg
from tlgeom._result import TEST_COLUMNS

ALTERNATIVES = ("greater", "less", "two-sided")


def _check_alternative(alternative: Any) -> str:
    if alternative not in ALTERNATIVES:
        raise bad_arg("alternative", alternative, f"one of {ALTERNATIVES}")
    return alternative


def mc_pvalue(
    observed: torch.Tensor | float, null: torch.Tensor, dim: int = 0, alternative: str = "greater"
) -> torch.Tensor:
    """Monte-Carlo p-value with the +1 correction, vectorised.

    ``p = (1 + #{null ≥ observed}) / (1 + n)`` along ``dim`` of ``null`` (``"greater"``; ``"less"``
    flips the inequality; ``"two-sided"`` compares ``|x − c|`` with ``c`` the mean of the null and
    the observation together). ``observed`` broadcasts against ``null`` with ``dim`` removed; NaN
    null values are left out of both counts. Under exchangeability ``P(p ≤ α) ≤ α``.
    """
    _check_alternative(alternative)
    null = null.to(torch.float64)
    obs = torch.as_tensor(observed, dtype=torch.float64, device=null.device).unsqueeze(dim)
    ok = ~torch.isnan(null)
    n = ok.sum(dim)
    if alternative == "two-sided":
        centre = (torch.where(ok, null, 0).sum(dim, keepdim=True) + obs) / (n.unsqueeze(dim) + 1)
        null, obs = (null - centre).abs(), (obs - centre).abs()
    elif alternative == "less":
        null, obs = -null, -obs
    tol = 1e-12 * obs.abs().clamp_min(1.0)
    ge = ((null >= obs - tol) & ok).sum(dim)
    p = (1 + ge).to(torch.float64) / (1 + n).to(torch.float64)
    return torch.where(n > 0, p, torch.full_like(p, float("nan")))


#: Backward-compatible name of :func:`mc_pvalue` (one-sided, "greater").
permutation_p = mc_pvalue


def exchangeable_pvalue(configs: torch.Tensor, alternative: str = "greater") -> torch.Tensor:
    """p-value of configuration 0 among ``B + 1`` exchangeable configurations ``configs[..., B+1]``.

    ``p = (1 + #{b ≥ 1 : a_b ≥ a_0}) / (1 + B)`` (``"greater"``), with ``|a_b − ā|`` for
    ``"two-sided"`` (ā = mean of all B + 1). Exact when the configurations are exchangeable under
    the null hypothesis. NaN configurations are left out.
    """
    return mc_pvalue(configs[..., 0], configs[..., 1:], dim=-1, alternative=alternative)


def sign_flip_test(d: Any, alternative: str = "greater", *, n_resamples: int = 99_999, seed: int | None = 0) -> float:
    """One-sample (paired) permutation test of ``mean(d)`` under random sign flips.

    Under the null hypothesis each ``d_i`` is symmetric about 0 (e.g. the difference of a paired
    trained/untrained statistic, with the two labels exchangeable). Exact enumeration of all
    ``2^n`` patterns when ``2^n ≤ n_resamples`` (``p = #{s : mean(s·d) ≥ mean(d)} / 2^n``, the
    identity included), else ``n_resamples`` seeded patterns with ``p = (1 + #) / (1 + n)``.
    ``scipy.stats.permutation_test`` does the work. NaN entries are dropped; no data → NaN.
    """
    from scipy.stats import permutation_test

    _check_alternative(alternative)
    seed = check_seed(seed)
    x = np.asarray(d, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    if x.size == 1:  # scipy needs two observations; the exact law of one sign flip is {d, −d}, each ½
        stat, flipped = x[0], -x[0]
        if alternative == "greater":
            return float(np.mean([stat >= stat, flipped >= stat]))
        if alternative == "less":
            return float(np.mean([stat <= stat, flipped <= stat]))
        return float(np.mean([abs(stat) >= abs(stat), abs(flipped) >= abs(stat)]))
    res = permutation_test(
        (x,),
        lambda a, axis=-1: np.mean(a, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def bootstrap_ci(
    values: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int | None = 0,
    axis: int | None = None,
) -> tuple[Any, Any]:
    """Percentile bootstrap CI of the mean over units (resampling the units with replacement).

    ``scipy.stats.bootstrap(method="percentile")`` with a seeded numpy Generator.

    ``axis=None`` (default): the units are every finite value; fewer than 2 give ``(nan, nan)``, all
    equal ``(v, v)``; returns two floats. ``axis=k``: the units lie along axis ``k`` and every other
    position gets its own CI (arrays of the remaining shape; NaN everywhere with fewer than 2 units).
    """
    from scipy.stats import bootstrap

    rng = np.random.default_rng(check_seed(seed))
    if axis is not None:
        x = np.asarray(values, dtype=np.float64)
        if x.shape[axis] < 2:
            nan = np.full(np.delete(x.shape, axis), np.nan)
            return nan, nan.copy()
        res = bootstrap(
            (x,), np.mean, axis=axis, confidence_level=confidence, n_resamples=n_resamples, method="percentile", rng=rng
        )
        return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        rng=rng,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def min_pvalue_mc(n_sims: int) -> float:
    """The smallest Monte-Carlo p-value ``(1 + 0) / (1 + n_sims)`` (:func:`mc_pvalue`), any alternative."""
    return 1.0 / (1 + int(n_sims))


def min_pvalue_sign_flip(n: int, alternative: str = "greater", n_resamples: int = 99_999) -> float:
    """The smallest p-value :func:`sign_flip_test` can return with ``n`` finite differences: exact
    enumeration (``2^n ≤ n_resamples``) gives ``1/2^n`` one-sided and ``2/2^n`` two-sided; random
    flips give ``1/(1 + n_resamples)`` (two-sided: twice that); no data: NaN."""
    _check_alternative(alternative)
    if n <= 0:
        return float("nan")
    base = 2.0**-n if 2**n <= n_resamples else 1.0 / (1 + n_resamples)
    return min(1.0, base * (2 if alternative == "two-sided" else 1))


def attainable(p_min: Any, alpha: float, correction: str = "holm") -> tuple[np.ndarray, np.ndarray]:
    """Which tests of a family can reject at some data, and the smallest adjusted p each can reach.

    ``p_min``: each test's smallest attainable p-value (its design: simulations, texts). The family's
    ``m`` tests (finite ``p_min``) are corrected together; the best a test can reach is ``m · p_min``
    after Holm (``min(1, ·)``), ``p_min`` after Benjamini–Hochberg (every test at its minimum) or none.
    A test whose best is above ``alpha`` cannot reject whatever the data: it is *uninformative*, and
    its not rejecting is no evidence for the null.

    Returns:
        ``(informative, best_adjusted)``, two arrays like ``p_min``.
    """
    correction = check_correction(correction)
    q = np.asarray(p_min, dtype=np.float64).ravel()
    m = int(np.isfinite(q).sum())
    best = np.minimum(1.0, q * m) if correction == "holm" else q.copy()
    return np.isfinite(best) & (best <= alpha), best


def adjust_pvalues(p: Any, correction: str = "holm") -> np.ndarray:
    """Adjusted p-values across a family: ``"holm"`` (family-wise error, default), ``"bh"``
    (Benjamini–Hochberg false discovery rate) or ``"none"``.

    BH is ``statsmodels``' ``multipletests(method="fdr_bh")``. Holm's step-down adjustment
    ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))`` is written out here: it is the same number as
    ``multipletests(method="holm")`` (tested), which calls ``gc.collect()`` on every call (≈ 0.5 s
    in a process holding a model; the calibration runs it thousands of times). NaN p-values
    (tests not run or uninformative) stay NaN and are not counted in the family.
    """
    from statsmodels.stats.multitest import multipletests

    correction = check_correction(correction)
    p = np.asarray(p, dtype=np.float64).ravel()
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    q = p[ok]
    if correction == "none":
        out[ok] = q
    elif correction == "holm":
        order = np.argsort(q, kind="stable")
        m = q.size
        adj = np.minimum(1.0, np.maximum.accumulate(q[order] * (m - np.arange(m))))
        res = np.empty_like(q)
        res[order] = adj
        out[ok] = res
    else:
        out[ok] = multipletests(q, method="fdr_bh")[1]
    return out


def spearman(x: Any, y: Any) -> float:
    """Spearman's ρ of two vectors (``scipy.stats.spearmanr``; NaN pairs dropped; < 3 pairs → NaN)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def spearman_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman ρ of ``y [n]`` against each row of ``x [..., n]`` (vectorised; mid-ranks for ties).

    Pearson correlation of ``rankdata`` ranks; a constant row gives NaN.
    """
    from scipy.stats import rankdata

    rx = torch.from_numpy(np.asarray(rankdata(x.detach().cpu().numpy(), axis=-1), dtype=np.float64))
    ry = torch.from_numpy(np.asarray(rankdata(y.detach().cpu().numpy()), dtype=np.float64))
    rx = rx - rx.mean(-1, keepdim=True)
    ry = ry - ry.mean()
    den = rx.norm(dim=-1) * ry.norm()
    return torch.where(den > 0, (rx @ ry) / den, torch.full_like(den, float("nan")))


def row_spearman(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor, min_keys: int = 3) -> torch.Tensor:
    """Mean over rows (with ≥ ``min_keys`` valid entries) of Spearman's ρ between a and b along the
    last dim, entries outside ``valid`` ignored (ranks by ``rankdata(nan_policy="omit")``)."""
    from scipy.stats import rankdata

    def ranks(x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().numpy().astype(float).copy()
        arr[~valid.cpu().numpy()] = np.nan
        return torch.from_numpy(np.asarray(rankdata(arr, axis=-1, nan_policy="omit"), dtype=float))

    ra, rb = ranks(a), ranks(b)
    v = valid.cpu()
    n = v.sum(-1, keepdim=True).clamp_min(1)
    ra = torch.where(v, ra - torch.nansum(ra, -1, keepdim=True) / n, torch.zeros_like(ra))
    rb = torch.where(v, rb - torch.nansum(rb, -1, keepdim=True) / n, torch.zeros_like(rb))
    den = (ra.pow(2).sum(-1) * rb.pow(2).sum(-1)).sqrt()
    rho = (ra * rb).sum(-1) / den
    ok = (v.sum(-1) >= min_keys) & (den > 0)
    return torch.where(ok, rho, torch.nan).nanmean(-1)


def cohens_d(a: Any, b: Any) -> float:
    """``(mean a − mean b) / s_p`` with ``s_p² = ((n_a−1)s_a² + (n_b−1)s_b²) / (n_a + n_b − 2)``."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        return float("nan")
    sp = math.sqrt(((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / (x.size + y.size - 2))
    return float((x.mean() - y.mean()) / sp) if sp > 0 else float("nan")


def standardized_effect(observed: torch.Tensor, null: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``z = (observed − mean(null)) / sd(null)`` along ``dim`` (NaN-masked; ±inf when the null never
    varies and the observation differs from it; NaN when it equals it)."""
    null = null.to(torch.float64)
    ok = ~torch.isnan(null)
    n = ok.sum(dim)
    mean = torch.where(ok, null, 0).sum(dim) / n.clamp_min(1)
    var = torch.where(ok, (null - mean.unsqueeze(dim)) ** 2, 0).sum(dim) / (n - 1).clamp_min(1)
    sd = var.sqrt()
    diff = torch.as_tensor(observed, dtype=torch.float64) - mean
    inf = torch.where(diff == 0, torch.full_like(diff, float("nan")), torch.sign(diff) * math.inf)
    return torch.where(sd > 0, diff / sd.where(sd > 0, torch.ones_like(sd)), inf)


def tests_table(rows: Any, unit: str, *, alpha: float | None = None, correction: str | None = None) -> Any:
    """The one ``tests()`` table: ``rows`` (dicts or a DataFrame, one per test) with :data:`TEST_COLUMNS`
    first, then ``n`` (the number of units behind each row; ``n_texts``, its older name, is kept until 0.3)
    and ``inference_unit`` (``"text"``, ``"pair"``, ``"edit"``, ``"layer"``, ``"head"``, ``"document"``,
    ``"window"``; ``unit`` unless a row names its own),
    then the rest in their order.

    With ``correction`` (and ``alpha``): ``p_adjusted`` is :func:`adjust_pvalues` over
    the rows with a finite ``p`` (the family; NaN rows are tests not run) and ``reject`` is ``p_adjusted <=
    alpha``. Without: the rows' own ``p_adjusted`` and ``reject`` are kept (adjusted already, e.g. max-T).

    Raises:
        ValueError: a row lacks one of :data:`TEST_COLUMNS` (named).
    """
    import pandas as pd

    t = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if correction is not None:
        if alpha is None:
            raise bad_arg("alpha", alpha, "the level of the tests, with correction=")
        t["p_adjusted"] = adjust_pvalues(t["p"].to_numpy(dtype=float), correction) if len(t) else []
        t["reject"] = np.nan_to_num(t["p_adjusted"].to_numpy(dtype=float), nan=np.inf) <= alpha
    missing = [c for c in TEST_COLUMNS if c not in t.columns]
    if missing:
        raise ValueError(f"a tests() table needs the columns {list(TEST_COLUMNS)}; these rows lack {missing}")
    t["n"] = t["n_texts"]
    t["inference_unit"] = t["inference_unit"].fillna(unit) if "inference_unit" in t.columns else unit
    first = [*TEST_COLUMNS, "n", "inference_unit"]
    return t[first + [c for c in t.columns if c not in first]]


def against_initialisations(each: Any, p_each: Any, what: str = "sign-flip") -> dict[str, Any]:
    """An untrained-reference test against several initialisations, as one row's fields: ``p`` is the largest
    per-initialisation p (an intersection-union test: a rejection holds against every initialisation, not
    against one draw), ``n_inits``, ``init_effect_min`` / ``init_effect_max`` (the range of the per-initialisation
    effects ``each``) and a ``note`` saying so. With one initialisation: its ``p`` and ``n_inits`` = 1 only."""
    each = np.asarray(each, dtype=np.float64).reshape(-1)
    p_each = np.asarray(p_each, dtype=np.float64).reshape(-1)
    if each.size != p_each.size or each.size < 1:
        raise bad_arg("p_each", p_each.shape, f"one p per initialisation ({each.size})")
    k = int(each.size)
    out: dict[str, Any] = {"p": float(np.max(p_each)), "n_inits": k}
    if k > 1:
        out.update(init_effect_min=float(each.min()), init_effect_max=float(each.max()))
        out["note"] = (
            f"against {k} initialisations: effect = mean over them (each from {each.min():.3g} to "
            f"{each.max():.3g}); p = the largest of their {what} p-values (holds against every one)"
        )
    return out


def paired_text_row(
    null: str,
    statistic: str,
    space: str,
    observed: Any,
    references: Any,
    alternative: str = "greater",
    *,
    n_resamples: int = 9999,
    seed: int | None = 0,
    note: str = "",
) -> dict[str, Any]:
    """One ``tests()`` row of a paired test with the text as the unit: ``observed [T]`` against ``references
    [K, T]`` (K references per text: 1, or one per untrained initialisation). The effect is the mean over texts
    of ``observed − mean over references``, with a percentile bootstrap CI over texts; ``p`` is the sign-flip
    test of each reference's differences, the largest over the K (:func:`against_initialisations`); ``p_min``
    (the smallest attainable p, for :func:`decide_family`); texts with a non-finite difference are left out."""
    obs = np.asarray(observed, dtype=np.float64).reshape(-1)
    refs = np.asarray(references, dtype=np.float64).reshape(-1, obs.size)
    diffs = obs[None] - refs  # [K, T]
    ok = np.isfinite(diffs).all(0)
    d = diffs.mean(0)[ok]
    lo, hi = bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
    each = diffs[:, ok].mean(1) if ok.any() else np.full(len(diffs), np.nan)
    against = against_initialisations(
        each, [sign_flip_test(x[ok], alternative, n_resamples=n_resamples, seed=seed) for x in diffs]
    )
    row: dict[str, Any] = {
        "null": null,
        "statistic": statistic,
        "space": space,
        "observed": float(np.nanmean(obs)),
        "null_mean": float(np.nanmean(refs)),
        "effect": float(d.mean()) if d.size else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "p": against.pop("p"),
        "n_texts": int(ok.sum()),
        "p_min": min_pvalue_sign_flip(int(ok.sum()), alternative, n_resamples),
        "note": note,
    }
    if len(refs) > 1:
        add_note(row, against.pop("note"))
        row.update(against)
    return row


def add_note(row: dict[str, Any], note: str) -> None:
    """Append ``note`` to ``row["note"]`` ("; "-separated)."""
    if note:
        row["note"] = f"{row['note']}; {note}" if row.get("note") else note


def decide_family(table: Any, alpha: float, correction: str = "holm") -> Any:
    """A family's decisions, from its rows' ``p`` and ``p_min`` (each test's smallest attainable p): which
    tests can reject at all (:func:`attainable`; ``informative``), ``p_adjusted`` over the informative ones
    (:func:`adjust_pvalues`), ``reject`` at ``alpha``, and a ``note`` on each test that cannot reject at any
    data naming the best adjusted p it could reach. ``p_min`` is consumed; returns the table."""
    informative, best = attainable(table.pop("p_min").to_numpy(dtype=float), alpha, correction)
    table["informative"] = informative
    table["p_adjusted"] = adjust_pvalues(np.where(informative, table["p"].to_numpy(dtype=float), np.nan), correction)
    table["reject"] = np.nan_to_num(table["p_adjusted"].to_numpy(dtype=float), nan=np.inf) <= alpha
    if "note" not in table.columns:
        table["note"] = ""
    for i in np.flatnonzero(~informative):
        floor = f"cannot reject at any data: at best p {best[i]:.3g} after {correction} > α = {alpha}"
        before = table["note"].iloc[i]
        table.loc[table.index[i], "note"] = f"{before}; {floor}" if isinstance(before, str) and before else floor
    return table


tests_table.__test__ = False  # type: ignore[attr-defined]
# (pytest would collect a function named tests_* imported into a test module)
