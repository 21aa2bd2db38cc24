"""Contextual curvature and next-token entropy (King, Fedorenko & Hosseini, arXiv 2604.23985): where the
token path bends across tokens, is the model less sure of the next token?

Their curvature is contextual: at one layer, the angle of the path across tokens at token ``t``, between
the steps ``x_t − x_{t−1}`` and ``x_{t+1} − x_t`` (:func:`tlgeom.geometry.curvature.sequence_turning_angles`),
not the layer-wise turning angle. Per text and layer, the Pearson correlation between that angle and the
entropy of the model's own next-token distribution at ``t`` (nats), both first residualised on the
position and the token's frequency (a partial correlation: position and frequency drive both). The first
``skip_first`` positions (BOS) are left out.

Tests (the text is the unit, :meth:`EntropyTest.tests`): per layer, the mean Fisher-z of the texts'
correlations against 0, two-sided sign flips across texts, bootstrap CI (reported as r), Holm across the
layers (statistics ``entropy_r@<point>``). Evidence against the claim: no layer rejects; a peak at mid
depth is what the paper reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tlgeom._args import check_alpha, check_correction, check_int, check_seed, check_space, check_texts
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.stats.pvalues import (
    bootstrap_ci,
    decide_family,
    min_pvalue_sign_flip,
    sign_flip_test,
    tests_table,
)

__all__ = ["EntropyTest", "entropy_test", "partial_correlation"]

#: what the correlation is adjusted for (the ``adjusted_for`` column)
ADJUSTED_FOR = "position, token frequency"


def partial_correlation(x: np.ndarray, y: np.ndarray, covariates: np.ndarray) -> float:
    """Pearson correlation of ``x`` and ``y`` after regressing each on ``[1, covariates]`` (NaN rows left out;
    NaN with fewer than ``covariates + 4`` rows or a constant residual)."""
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(covariates).all(1)
    if ok.sum() < covariates.shape[1] + 4:
        return float("nan")
    z = np.column_stack([np.ones(int(ok.sum())), covariates[ok]])
    rx = x[ok] - z @ np.linalg.lstsq(z, x[ok], rcond=None)[0]
    ry = y[ok] - z @ np.linalg.lstsq(z, y[ok], rcond=None)[0]
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass
class EntropyTest(Result):
    """Per text and layer, the partial correlation of contextual curvature with next-token entropy.

    Attributes:
        r: ``[text, point]`` correlations. point_labels. table: :meth:`tests`. alpha, correction, space.
    """

    r: np.ndarray
    point_labels: list[str]
    table: Any
    alpha: float = 0.05
    correction: str = "holm"
    space: str = "raw"

    result_name = "entropy"

    def tests(self):
        """One row per layer: observed (mean r over texts), effect (the same), CI, sign-flip p on Fisher-z,
        Holm across layers, n (texts), reject, informative, note, adjusted_for."""
        return tests_table(self.table, "text")

    def to_frame(self):
        import pandas as pd

        t, p = np.meshgrid(np.arange(self.r.shape[0]), np.arange(self.r.shape[1]), indexing="ij")
        return pd.DataFrame({"text": t.ravel(), "point": np.asarray(self.point_labels)[p.ravel()], "r": self.r.ravel()})

    def headline(self) -> dict[str, Any]:
        mean = np.nanmean(self.r, 0)
        peak = int(np.nanargmax(np.abs(mean))) if np.isfinite(mean).any() else None
        return jsonable(
            {
                "n_texts": int(self.r.shape[0]),
                "mean_r_by_point": mean.tolist(),
                "peak_point": None if peak is None else self.point_labels[peak],
                "n_rejected": int(self.table.reject.sum()),
            }
        )

    def summary(self) -> str:
        h = self.headline()
        t = self.tests()
        rej = t[t.reject]
        return (
            f"contextual curvature vs next-token entropy ({self.space} space, {h['n_texts']} texts, partial on "
            f"{ADJUSTED_FOR}): mean r peaks at {h['peak_point']}; {len(rej)} of {len(t)} layers reject after "
            f"{self.correction}" + (f" ({', '.join(rej.statistic)})" if len(rej) else "")
        )

    def plot(self, ax: Any = None):
        """Mean r per layer with its CI, rejected layers filled; returns the figure."""
        fig, ax = new_axes(ax, (7, 4))
        t = self.tests()
        x = np.arange(len(t))
        ax.errorbar(x, t.effect, yerr=[t.effect - t.ci_low, t.ci_high - t.effect], fmt="none", color="tab:blue")
        ax.scatter(x, t.effect, c=["tab:blue" if r else "white" for r in t.reject], edgecolors="tab:blue", zorder=3)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x[:: max(1, len(x) // 12)])
        ax.set_xticklabels(self.point_labels[:: max(1, len(x) // 12)], rotation=90, fontsize=7)
        ax.set_ylabel("partial r (curvature, entropy)")
        ax.set_title("contextual curvature vs next-token entropy (filled: rejected)", fontsize=9)
        return fig


def entropy_test(
    model: Any,
    inputs: Sequence[str],
    *,
    space: str = "raw",
    skip_first: int = 1,
    seed: int | None = 0,
    alpha: float = 0.05,
    correction: str = "holm",
    n_resamples: int = 9999,
    progress: bool = False,
) -> EntropyTest:
    """Contextual (across-token) curvature against next-token entropy, layer by layer (module doc).

    Args:
        model: a TransformerLens model with a language-model head. inputs: texts (each one unit; at least 3).
        space: ``"raw"`` or ``"normalized"``. skip_first: leading positions left out (BOS).
        seed: sign flips and bootstrap. alpha, correction: the family (the layers). n_resamples: resamples.
        progress: a tqdm bar over texts.

    Raises:
        TlgeomError: bad arguments, a model without a language-model head.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from tlgeom.experiments.controls import zipf
    from tlgeom.experiments.readout import require_lm_head
    from tlgeom.geometry.curvature import sequence_turning_angles
    from tlgeom.models.conventions import model_normalization
    from tlgeom.models.trajectory import record_trajectories

    require_lm_head(model)
    inputs = check_texts(inputs)
    space = check_space(space)
    check_int("skip_first", skip_first, 0)
    seed = check_seed(seed)
    alpha, correction = check_alpha(alpha), check_correction(correction)
    check_int("n_resamples", n_resamples, 99)
    norm, eps = model_normalization(model) if space == "normalized" else ("rms", 1e-5)
    rs, labels = [], None
    for text in tqdm(list(inputs), disable=not progress, desc="texts"):
        traj = record_trajectories(model, text)
        labels = list(traj.point_labels)
        with torch.no_grad():
            logits = model(traj.tokens).to(torch.float64)[0]  # [pos, vocab]
        logp = torch.log_softmax(logits, -1)
        entropy = -(logp.exp() * logp).sum(-1).cpu().numpy()  # [pos]
        ang = (
            sequence_turning_angles(traj.states[0].to(torch.float64), space, norm, eps).cpu().numpy()
        )  # [point, pos-2]
        tokens = model.to_str_tokens(traj.tokens[0])
        pos = np.arange(len(tokens), dtype=float)
        freq = np.array([zipf(t.strip().lower()) if t.strip() else 0.0 for t in tokens])
        middle = np.arange(1, len(tokens) - 1)  # the token each across-token angle sits at
        keep = middle >= skip_first
        cov = np.column_stack([pos[middle], freq[middle]])[keep]
        rs.append([partial_correlation(np.degrees(a)[keep], entropy[middle][keep], cov) for a in ang])
    r = np.asarray(rs, dtype=float)  # [text, point]
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    rows = []
    for p, label in enumerate(labels or []):
        d, zr = r[:, p], z[:, p]
        ok = np.isfinite(zr)
        lo_z, hi_z = bootstrap_ci(zr[ok], n_resamples=n_resamples, seed=seed)
        rows.append(
            {
                "null": "zero",
                "statistic": f"entropy_r@{label}",
                "space": space,
                "observed": float(np.nanmean(d)),
                "null_mean": 0.0,
                "effect": float(np.tanh(np.mean(zr[ok]))) if ok.any() else float("nan"),
                "ci_low": float(np.tanh(lo_z)),
                "ci_high": float(np.tanh(hi_z)),
                "p": sign_flip_test(zr[ok], "two-sided", n_resamples=n_resamples, seed=seed)
                if ok.sum() > 1
                else float("nan"),
                "p_min": min_pvalue_sign_flip(int(ok.sum()), "two-sided", n_resamples),
                "n_texts": int(ok.sum()),
                "note": "partial correlation per text; Fisher-z mean across texts, shown as r",
                "adjusted_for": ADJUSTED_FOR,
            }
        )
    t = pd.DataFrame(rows)
    t = decide_family(t, alpha, correction)
    return EntropyTest(r=r, point_labels=labels or [], table=t, alpha=alpha, correction=correction, space=space)
