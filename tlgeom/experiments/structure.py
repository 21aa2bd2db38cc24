"""Curvature vs language structure: the heat-kernel paper's testable hypothesis (3).

Per token, two curvature measures:

* ``turning_angle``: the mean over layers of the turning angle of the token's residual
  trajectory (:func:`tlgeom.geometry.curvature.turning_angles`), degrees;
* ``chart_scalar`` (optional, costly): the scalar curvature ``R`` of the token's local model
  chart (:func:`tlgeom.experiments.riemann.model_chart`, k = 2 by default: R = 2 × Gaussian curvature of the
  pulled-back surface), from the Gauss equation (second derivatives of the layer map, see
  :func:`tlgeom.geometry.riemann.pullback_scalar_curvature`).

Word class per token (:func:`classify_tokens`): ``punct`` (no letter or digit), ``function``
(the stripped, lower-cased token is in the bundled closed-class list ``data/function_words.txt``),
``content`` (everything else with a letter or digit), ``special`` (BOS/CLS/SEP/PAD tokens;
excluded). Subword pieces are classified as they are (a continuation piece of a content word is
"content").

Statistics (:func:`permutation_effect`): difference of means, Cohen's d (pooled SD), and a
two-sided permutation p-value for the difference of means (labels shuffled ``n_perm`` times,
``p = (1 + #{|Δ_perm| ≥ |Δ_obs|}) / (1 + n_perm)``); position: Spearman ρ between the measure and
the token position with a permutation p-value. Tokens of one paragraph are not independent
samples (neighbouring tokens share context), so read p-values as descriptive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from tlgeom._args import check_bool, check_int, check_seed, generator, renamed
from tlgeom._errors import bad_arg
from tlgeom._result import Result, jsonable, new_panels
from tlgeom.models import _compat
from tlgeom.stats.pvalues import mc_pvalue, spearman_rows

CLASSES = ("function", "content", "punct")
PAIRS = (("function", "content"), ("punct", "content"), ("punct", "function"))

__all__ = [
    "function_words",
    "classify_tokens",
    "permutation_effect",
    "permutation_spearman",
    "curvature_vs_structure",
    "StructureResult",
]


@lru_cache(maxsize=1)
def function_words() -> frozenset[str]:
    """The bundled English function-word list (lower case)."""
    from tlgeom.data import read_text

    return frozenset(
        w.strip() for w in read_text("function_words.txt").splitlines() if w.strip() and not w.startswith("#")
    )


def classify_tokens(str_tokens: Sequence[str], special: Sequence[str] = ()) -> list[str]:
    """Word class of each token: ``function``, ``content``, ``punct`` or ``special`` (module docstring)."""
    fw = function_words()
    out = []
    for tok in str_tokens:
        s = tok.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n").strip()
        if (
            tok in special
            or (s.startswith("<") and s.endswith(">") and len(s) > 2)
            or (s.startswith("[") and s.endswith("]") and s[1:-1].isupper())
        ):
            out.append("special")
        elif not s:
            out.append("punct")  # whitespace / newline tokens
        elif not any(c.isalnum() for c in s):
            out.append("punct")
        elif s.lower() in fw:
            out.append("function")
        else:
            out.append("content")
    return out


def _perm_index(n: int, n_perm: int, seed: int | None) -> torch.Tensor:
    g = generator(check_seed(seed))
    return torch.argsort(torch.rand(n_perm, n, generator=g), dim=-1)


def permutation_effect(
    values: torch.Tensor, in_a: torch.Tensor, in_b: torch.Tensor, n_perm: int = 10000, seed: int | None = 0
) -> dict[str, float | int]:
    """Group a vs group b: means, difference, Cohen's d and a two-sided permutation p-value.

    ``d = (m_a − m_b) / s_p``, ``s_p² = ((n_a−1) s_a² + (n_b−1) s_b²)/(n_a + n_b − 2)``. The null
    shuffles the pooled values across the two groups (vectorised: ``n_perm × n`` index matrix).
    """
    check_seed(seed)
    v = torch.as_tensor(values, dtype=torch.float64)
    a, b = torch.as_tensor(in_a, dtype=torch.bool), torch.as_tensor(in_b, dtype=torch.bool)
    keep = (a | b) & torch.isfinite(v)
    x, la = v[keep], a[keep]
    na, nb = int(la.sum()), int((~la).sum())
    out = {
        "n_a": na,
        "n_b": nb,
        "mean_a": float("nan"),
        "mean_b": float("nan"),
        "diff": float("nan"),
        "cohens_d": float("nan"),
        "p_value": float("nan"),
    }
    if na < 2 or nb < 2:
        return out
    xa, xb = x[la], x[~la]
    diff = xa.mean() - xb.mean()
    sp = (((na - 1) * xa.var() + (nb - 1) * xb.var()) / (na + nb - 2)).sqrt()
    perm = x[_perm_index(len(x), n_perm, seed)]  # [n_perm, n]
    la_f = la.to(torch.float64)
    null = perm @ la_f / na - perm @ (1 - la_f) / nb
    p = mc_pvalue(diff.abs(), null.abs())
    out.update(
        mean_a=float(xa.mean()),
        mean_b=float(xb.mean()),
        diff=float(diff),
        cohens_d=float(diff / sp) if sp > 0 else float("nan"),
        p_value=float(p),
    )
    return out


def permutation_spearman(
    values: torch.Tensor, position: torch.Tensor, n_perm: int = 10000, seed: int | None = 0
) -> dict[str, float | int]:
    """Spearman ρ between ``values`` and ``position`` with a two-sided permutation p-value."""
    check_seed(seed)
    v = torch.as_tensor(values, dtype=torch.float64)
    pos = torch.as_tensor(position, dtype=torch.float64)
    keep = torch.isfinite(v)
    v, pos = v[keep], pos[keep]
    if len(v) < 3:
        return {"n": len(v), "rho": float("nan"), "p_value": float("nan")}
    rho = spearman_rows(v[None], pos)[0]
    null = spearman_rows(v[_perm_index(len(v), n_perm, seed)], pos)
    p = mc_pvalue(rho.abs(), null.abs())
    return {"n": len(v), "rho": float(rho), "p_value": float(p)}


@dataclass
class StructureResult(Result):
    """Per-token curvature with word class and position, and the effect sizes.

    Attributes:
        tokens: frame-like dict of per-token columns (see :meth:`to_frame`).
        effects: list of dicts, one per (measure, comparison) incl. position.
        measures: the curvature measures computed.
    """

    str_tokens: list[str]
    classes: list[str]
    positions: torch.Tensor
    values: dict[str, torch.Tensor]
    effects: list[dict]
    n_perm: int
    forward_dtype: str | None = None  # the model's forward dtype ("float32", "bfloat16"…)

    result_name = "structure"

    def headline(self) -> dict:
        """Token counts per word class and every effect (means, Cohen's d or Spearman ρ, permutation p)."""
        return jsonable(
            {
                "n_tokens": len(self.str_tokens),
                "n_perm": self.n_perm,
                "classes": {c: self.classes.count(c) for c in CLASSES + ("special",)},
                "effects": [dict(e) for e in self.effects],
            }
        )

    @property
    def measures(self) -> list[str]:
        return list(self.values)

    def to_frame(self):
        """One row per token: pos, token, word class and each curvature measure."""
        import pandas as pd

        data = {"pos": self.positions.numpy(), "token": self.str_tokens, "word_class": self.classes}
        data.update({m: v.numpy() for m, v in self.values.items()})
        return pd.DataFrame(data)

    def effects_frame(self):
        """One row per (measure, comparison): means, difference, Cohen's d / Spearman ρ, permutation p."""
        import pandas as pd

        return pd.DataFrame(self.effects)

    def summary(self) -> str:
        lines = [
            f"{len(self.str_tokens)} tokens; classes: "
            + ", ".join(f"{c} {self.classes.count(c)}" for c in CLASSES + ("special",))
        ]
        for e in self.effects:
            if e["comparison"] == "position":
                lines.append(f"  {e['measure']}: Spearman ρ with position {e['rho']:+.3f} (p = {e['p_value']:.4f})")
            else:
                lines.append(
                    f"  {e['measure']}: {e['comparison']}: {e['mean_a']:.4g} vs {e['mean_b']:.4g}, "
                    f"Cohen's d {e['cohens_d']:+.2f} (p = {e['p_value']:.4f}, n = {e['n_a']}/{e['n_b']})"
                )
        lines.append(f"  permutation p-values from {self.n_perm} shuffles; tokens of one text are not independent")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Per measure: values by word class (box + points, fixed-seed jitter) and against position.

        ``ax``: None (a new figure) or one Axes split into the panels. Returns the Figure."""
        import numpy as np

        ms = self.measures
        given = ax
        fig, axes = new_panels(ax, len(ms), 2, (9, 3.2 * len(ms)))
        jitter = np.random.default_rng(0)
        cls = list(self.classes)
        colors = {"function": "tab:blue", "content": "tab:orange", "punct": "tab:green", "special": "gray"}
        for r, m in enumerate(ms):
            v = self.values[m]
            ax = axes[r, 0]
            groups = [v[[c == k for c in cls]].numpy() for k in CLASSES]
            groups = [g[~(g != g)] for g in groups]
            ax.boxplot(groups, showfliers=False)
            ax.set_xticks(range(1, len(CLASSES) + 1))
            ax.set_xticklabels(CLASSES)
            for i, g in enumerate(groups):
                ax.scatter(
                    i + 1.0 + 0.15 * (jitter.random(len(g)) - 0.5),
                    g,
                    s=6,
                    color=colors[CLASSES[i]],
                    alpha=0.6,
                )
            ax.set_ylabel(m)
            ax.set_title(f"{m} by word class", fontsize=9)
            ax = axes[r, 1]
            ax.scatter(self.positions.numpy(), v.numpy(), s=8, c=[colors[c] for c in cls])
            ax.set_xlabel("position")
            ax.set_title(f"{m} vs position", fontsize=9)
        if given is None:
            fig.tight_layout()
        return fig


def _chart_scalar_curvatures(
    model: Any, tokens: torch.Tensor, positions: Sequence[int], l0: int, l1: int, k: int
) -> torch.Tensor:
    from tlgeom.experiments.riemann import LayerChart, chart_basis
    from tlgeom.geometry.riemann import pullback_scalar_curvature
    from tlgeom.models.trajectory import record_trajectories

    traj = record_trajectories(model, tokens)
    B = chart_basis(model, "context", k, states=traj.states[0, :, l0])
    out = torch.full((tokens.shape[1],), float("nan"), dtype=torch.float64)
    for p in positions:  # each token has its own chart (its own forward passes)
        chart = LayerChart(model, tokens, p, l0, l1, B, traj.states[0, p, l0], traj.hook_names)
        out[p] = pullback_scalar_curvature(chart, torch.zeros(k, dtype=torch.float64)).detach()
    return out


@renamed(text="inputs")
def curvature_vs_structure(
    model: Any,
    inputs: Any,
    *,
    chart_curvature: Any = False,
    chart_points: Any = (1, 2),
    chart_k: Any = 2,
    n_perm: Any = 10000,
    seed: int | None = 0,
) -> StructureResult:
    """Per-token curvature against word class and position, with effect sizes and permutation p-values.

    Args:
        model: a TransformerLens model.
        inputs: one text or token ids (``text=`` is its deprecated name).
        chart_curvature: also compute each token's local-chart scalar curvature (Gauss equation on
            the map ``chart_points[0] → chart_points[1]``; one chart per token, k² second
            derivatives each).
        chart_points: trajectory points (l0, l1) of the chart map.
        chart_k: chart dimension (basis: top principal directions of the text's states at l0).
        n_perm: permutation shuffles.
        seed: permutation RNG seed (an int in [0, 2**63) or None).

    Raises:
        TlgeomError: bad ``model``, ``inputs`` (a batch, empty), ``chart_curvature``, ``chart_points``,
            ``chart_k``, ``n_perm`` or ``seed``; all checked before the forward pass.
    """
    from tlgeom.geometry.curvature import turning_angles
    from tlgeom.models.trajectory import record_trajectories

    info = _compat.check_model(model)
    check_int("n_perm", n_perm, minimum=99)
    check_seed(seed)
    check_bool("chart_curvature", chart_curvature)
    if not isinstance(chart_k, int) or isinstance(chart_k, bool) or not 2 <= chart_k <= 4:
        raise bad_arg("chart_k", chart_k, "an int in [2, 4] (k² second derivatives per token)")
    l0, l1 = chart_points if isinstance(chart_points, (tuple, list)) and len(chart_points) == 2 else (None, None)
    if not (isinstance(l0, int) and isinstance(l1, int) and 0 <= l0 < l1 <= info.n_layers):
        raise bad_arg("chart_points", chart_points, f"(l0, l1) with 0 ≤ l0 < l1 ≤ n_layers={info.n_layers}")
    tokens, _ = _compat.tokenize(model, inputs, info)
    if tokens.shape[0] != 1:
        raise bad_arg("inputs", inputs, "one text or one sequence of token ids")
    traj = record_trajectories(model, tokens)
    toks = traj.str_tokens[0]
    tok_obj = getattr(model, "tokenizer", None)
    special = set(getattr(tok_obj, "all_special_tokens", []) or [])
    classes = classify_tokens(toks, special=tuple(special))
    ids = tokens[0].tolist()
    special_ids = set(getattr(tok_obj, "all_special_ids", []) or [])
    classes = ["special" if i in special_ids else c for i, c in zip(ids, classes)]
    positions = torch.arange(len(toks))
    values = {"turning_angle": turning_angles(traj)[0].rad2deg().nanmean(-1).cpu()}
    if chart_curvature:
        keep = [p for p, c in enumerate(classes) if c != "special"]
        values["chart_scalar"] = _chart_scalar_curvatures(model, tokens, keep, l0, l1, chart_k)
    cls = classes
    effects = []
    for m, v in values.items():
        v = v.clone()
        v[[c == "special" for c in cls]] = float("nan")
        for a, b in PAIRS:
            e = permutation_effect(
                v, torch.tensor([c == a for c in cls]), torch.tensor([c == b for c in cls]), n_perm=n_perm, seed=seed
            )
            effects.append({"measure": m, "comparison": f"{a} vs {b}", **e})
        e = permutation_spearman(v, positions, n_perm=n_perm, seed=seed)
        effects.append({"measure": m, "comparison": "position", "n_a": e["n"], **e})
    return StructureResult(
        forward_dtype=_compat.dtype_name(_compat.forward_dtype(model)),
        str_tokens=toks,
        classes=classes,
        positions=positions,
        values=values,
        effects=effects,
        n_perm=n_perm,
    )
