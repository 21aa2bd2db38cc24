"""The LayerNorm hypersphere report on a model (Traveling Words, Molina 2023, §3).

The normalisation maths (``n``, ``γ ⊙ n + β``, the √d sphere, the ellipsoid and the embedding
check, with their formulas and ε correction) is in ``tlgeom.geometry.sphere``; this module reads a
model's norm layers and reports, layer by layer, how close its normalised vectors sit to that sphere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from tlgeom._args import renamed
from tlgeom._errors import TlgeomError
from tlgeom._result import Result, jsonable, new_panels
from tlgeom.geometry.sphere import (
    SPHERE_TOL,
    ellipsoid_geometry,
    embedding_check,
    expected_radius,
    normalize,
)
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device
from tlgeom.models.conventions import NormLayer, norm_layers

# normalisation modules that belong to the residual stream (not q/k norms, not the MLM head)


# ----------------------------------------------------------------------------- the report

_LAYER_FIELDS = (
    "radius_rel_err_mean",
    "radius_rel_err_max",
    "eps_rel_err_max",
    "ones_cos_mean",
    "ones_cos_max",
    "raw_norm_mean",
    "raw_norm_std",
    "raw_ones_cos_mean",
    "out_norm_mean",
    "affine_rel_err",
)


@dataclass
class SphereReport(Result):
    """Per normalisation layer: how exactly tokens lie on the √d sphere, and what γ/β do to it.

    Attributes:
        layers: the :class:`NormLayer` s, in forward order.
        stats: per layer, a dict of floats (see :meth:`to_frame` for the columns).
        embedding: :func:`embedding_check` of W_E against the first normalisation's kind.
        d_model, n_tokens: dimension and number of valid tokens measured.
        encoder: post-LN BERT.
        norms: ``[layer, token]`` float64 ``‖n‖/√d`` per normalisation layer (for plots).
        raw_norms: ``[layer, token]`` float64 raw input norms ``‖x‖``.
        dtype, tol: the activations' dtype and the relative tolerance (:data:`SPHERE_TOL`) within
            which the ε-corrected radius counts as "on the sphere".
    """

    layers: list[NormLayer]
    stats: list[dict[str, float]]
    embedding: dict[str, dict[str, float]]
    d_model: int
    n_tokens: int
    encoder: bool
    norms: torch.Tensor | None = field(repr=False, default=None)
    raw_norms: torch.Tensor | None = field(repr=False, default=None)
    dtype: str = "float32"
    tol: float = SPHERE_TOL["float32"]

    result_name = "sphere"

    @property
    def kind(self) -> str:
        kinds = sorted({l.kind for l in self.layers})
        return kinds[0] if len(kinds) == 1 else "/".join(kinds)

    def to_frame(self):
        """Tidy frame, one row per normalisation layer.

        Columns: ``name``, ``kind``, ``block``, ``eps``, ``n_tokens``;
        ``radius_rel_err_mean/max`` = |‖n‖/√d − 1|; ``eps_rel_err_max`` = |‖n‖ / (√d·sqrt(1 − ε/s²)) − 1|
        (what is left after the exact ε correction: float rounding only);
        ``ones_cos_mean/max`` = |cos(n, 1)| (LayerNorm: 0, RMSNorm: unconstrained);
        ``raw_norm_mean/std`` = ‖x‖ of the residual entering the layer; ``raw_ones_cos_mean`` =
        |cos(x, 1)|; ``input_recon_err`` = max ‖normalize(x) − n‖/√d (checks that the raw input
        hooks are the module's input: float rounding only); ``out_norm_mean`` = mean ‖γ⊙n+β‖/√d; ``affine_rel_err`` = max ‖hook_out −
        (γ⊙n+β)‖/‖hook_out‖ (Bridge; NaN where the API has no output hook); and the
        :func:`ellipsoid_geometry` columns.
        """
        import pandas as pd

        rows = []
        for l, s in zip(self.layers, self.stats):
            rows.append(
                {"name": l.name, "kind": l.kind, "block": l.block, "eps": l.eps, "n_tokens": self.n_tokens, **s}
            )
        return pd.DataFrame(rows)

    def embedding_frame(self):
        """The embedding-matrix check as a tidy frame (one row per variant)."""
        import pandas as pd

        return pd.DataFrame([{"variant": k, **v} for k, v in self.embedding.items()])

    def summary(self) -> str:
        """Verdicts in words, with the numbers behind them."""
        f = self.to_frame()
        d = self.d_model
        lines = [
            f"{len(self.layers)} normalisation layers ({self.kind}{', post-LN encoder' if self.encoder else ''}), "
            f"d_model={d}, √d={math.sqrt(d):.3f}, {self.n_tokens} tokens"
        ]
        worst, exact = f.radius_rel_err_max.max(), f.eps_rel_err_max.max()
        on = exact <= self.tol
        lines.append(
            f"- sphere: after the exact ε correction max |‖n‖/(√d·√(1 − ε/s²)) − 1| = {exact:.1e} → "
            f"{'ON' if on else 'NOT on'} the √d sphere to {self.dtype} rounding (tolerance {self.tol:g}); "
            f"before it, max |‖n‖/√d − 1| = {worst:.2e} (ε shrinks short inputs)"
        )
        ln = f[f.kind == "LayerNorm"]
        rms = f[f.kind == "RMSNorm"]
        if len(ln):
            lines.append(f"- LayerNorm hyperplane ⊥ 1: max |cos(n, 1)| = {ln.ones_cos_max.max():.1e}")
        if len(rms):
            lines.append(
                f"- RMSNorm: no hyperplane constraint, mean |cos(n, 1)| = {rms.ones_cos_mean.mean():.3f} "
                f"(random directions in R^{d}: ≈ {math.sqrt(2 / (math.pi * d)):.3f})"
            )
        identity = bool(
            ((f.axis_ratio - 1).abs() < 1e-12).all()
            and (f.beta_norm == 0).all()
            and ((f.gamma_mean - 1).abs() < 1e-12).all()
        )
        if identity:
            lines.append(
                "- γ = 1, β = 0 everywhere: the sphere is not deformed here (folded by fold_ln / "
                "processed=True, or an untrained model); any ellipsoid lives in the next weights"
            )
        else:
            lines.append(
                f"- γ/β: ellipsoid axis ratio (|γ| 95th/5th percentile) from {f.axis_ratio_p95_p5.min():.3g} to "
                f"{f.axis_ratio_p95_p5.max():.3g} (max|γ|/min|γ| up to {f.axis_ratio.max():.3g}); centre offset ‖β‖/(√d·rms γ) from {f.offset_ratio.min():.3g} "
                f"to {f.offset_ratio.max():.3g}; output ‖γ⊙n+β‖/√d from {f.out_norm_mean.min():.3g} "
                f"to {f.out_norm_mean.max():.3g}"
            )
        raw = f.raw_norm_mean.to_numpy()
        lines.append(
            f"- raw residual norm entering each layer: {raw[0]:.3g} ({f.name.iloc[0]}) → "
            f"{raw[-1]:.3g} ({f.name.iloc[-1]}), max {raw.max():.3g}"
        )
        if len(ln):
            rc = ln.raw_ones_cos_mean.max()
            lines.append(
                f"- raw residual along 1: max mean |cos(x, 1)| = {rc:.2e}"
                + (" (mean-free: centred writing weights)" if rc < 1e-5 else "")
            )
        e = self.embedding
        best = min(e, key=lambda k: e[k]["l2_mean"])
        lines.append(
            "- embeddings vs normalize(E): "
            + ", ".join(f"{k} cos {v['cos_dist_mean']:.3g} / L2 {v['l2_rel_radius']:.3g}·√d" for k, v in e.items())
            + f"; closest in L2: {best}"
        )
        return "\n".join(lines)

    def headline(self) -> dict:
        """Worst distances from the √d sphere (before/after the exact ε correction), the LayerNorm
        hyperplane check, and the raw residual norm entering the first and last normalisation."""
        f = self.to_frame()
        exact = float(f.eps_rel_err_max.max())
        return jsonable(
            {
                "kind": self.kind,
                "d_model": self.d_model,
                "sqrt_d": math.sqrt(self.d_model),
                "n_tokens": self.n_tokens,
                "n_norm_layers": len(self.layers),
                "radius_rel_err_max": float(f.radius_rel_err_max.max()),
                "eps_rel_err_max": exact,
                "on_sphere": bool(exact <= self.tol),
                "tol": self.tol,
                "ones_cos_max": float(f.ones_cos_max.max()),
                "raw_norm_first": float(f.raw_norm_mean.iloc[0]),
                "raw_norm_last": float(f.raw_norm_mean.iloc[-1]),
            }
        )

    def plot(self, ax=None, *, axes=None):
        """Three panels: distance from the √d sphere, raw residual norms across depth, γ/β deformation.

        ``ax``: None (a new figure), one Axes (split into the three panels) or three axes
        (``axes=`` is the older name). Returns the Figure."""
        f = self.to_frame()
        fig, grid = new_panels(ax if ax is not None else axes, 1, 3, (14, 3.6))
        axes = list(grid.flat)
        x = range(len(f))
        ax = axes[0]
        ax.semilogy(x, f.radius_rel_err_max.clip(lower=1e-17), "o-", ms=3, label="max |‖n‖/√d − 1|")
        ax.semilogy(x, f.eps_rel_err_max.clip(lower=1e-17), "s-", ms=3, label="after ε correction")
        ax.semilogy(x, f.ones_cos_max.clip(lower=1e-17), "^-", ms=3, label="max |cos(n, 1)|")
        ax.set_title("normalised vectors on the √d sphere")
        ax.legend(fontsize=7)
        ax = axes[1]
        ax.errorbar(x, f.raw_norm_mean, yerr=f.raw_norm_std, fmt="o-", ms=3, capsize=2)
        ax.axhline(math.sqrt(self.d_model), color="grey", ls="--", lw=0.8, label="√d")
        ax.set_title("raw residual norm ‖x‖ entering each norm")
        ax.legend(fontsize=7)
        ax = axes[2]
        ax.plot(x, f.axis_ratio_p95_p5, "o-", ms=3, label="axis ratio |γ| p95/p5")
        ax.plot(x, f.offset_ratio, "s-", ms=3, label="offset ‖β‖/(√d·rms γ)")
        ax.plot(x, f.out_norm_mean, "^-", ms=3, label="‖γ⊙n+β‖/√d")
        ax.set_yscale("log")
        ax.set_title("γ/β: sphere → displaced ellipsoid")
        ax.legend(fontsize=7)
        for ax in axes:
            ax.set_xticks(list(x))
            ax.set_xticklabels(f.name.str.replace("blocks.", ""), rotation=90, fontsize=5)
        return fig


@renamed(texts="inputs")
@takes_device
def sphere_report(model: Any, inputs: Any) -> SphereReport:
    """Measure the LayerNorm/RMSNorm hypersphere on ``inputs``, layer by layer.

    One forward pass with hooks on every normalisation layer's ``hook_normalized``,
    ``hook_scale``, raw input and (Bridge) output; every hook is removed on every path.

    Args:
        model: a TransformerBridge, HookedTransformer or HookedEncoder with LayerNorm or RMSNorm.
        inputs: a string, a list of strings (right-padded; padding is excluded), or token ids
            (``texts=`` is its deprecated name).

    Returns:
        A :class:`SphereReport` (``.summary()``, ``.to_frame()``, ``.embedding_frame()``, ``.plot()``).

    Raises:
        TlgeomError: not a TransformerLens model, no normalisation hooks, bad ``inputs``.
    """
    info = _compat.check_model(model)
    layers = norm_layers(model)
    tokens, mask = _compat.tokenize(model, inputs, info)
    wanted: set[str] = set()
    for l in layers:
        wanted |= {f"{l.name}.hook_normalized", f"{l.name}.hook_scale", *l.input_hooks}
        if l.output_hook:
            wanted.add(l.output_hook)
    _compat.check_hook_names(model, sorted(wanted))
    acts = _compat.capture(model, tokens, mask, info, sorted(wanted))
    for hook_name, act in acts.items():  # e.g. OPT's bridge hands ln2 its input flattened to [batch·pos, d]
        if act.dim() < 3 or tuple(act.shape[:2]) != tuple(tokens.shape):
            raise TlgeomError(
                f"hook point {hook_name!r} gave an activation of shape {tuple(act.shape)}, not [batch, pos, …] = "
                f"[{tokens.shape[0]}, {tokens.shape[1]}, …]: this bridge does not keep tokens apart there, so the "
                "normalisation sphere cannot be measured token by token"
            )
    valid = mask.to(next(iter(acts.values())).device)
    d = info.d_model
    root = math.sqrt(d)
    ones = torch.ones(d, dtype=torch.float64) / root
    stats, norm_rows, raw_rows = [], [], []
    for l in layers:
        n = acts[f"{l.name}.hook_normalized"][valid].double().cpu()
        s = acts[f"{l.name}.hook_scale"][valid].double().cpu()
        zero = torch.zeros((), dtype=torch.float64)
        x = sum((acts[h][valid].double().cpu() for h in l.input_hooks), zero) if l.input_hooks else None
        nn_ = n.norm(dim=-1)
        ratio = nn_ / root
        exp = expected_radius(s[..., 0] if s.dim() == 2 else s, d, l.eps)
        ones_cos = (n @ ones).abs() / nn_.clamp_min(1e-300)
        y = n * l.gamma + l.beta
        row = {
            "radius_rel_err_mean": float((ratio - 1).abs().mean()),
            "radius_rel_err_max": float((ratio - 1).abs().max()),
            "eps_rel_err_max": float((nn_ / exp - 1).abs().max()),
            "ones_cos_mean": float(ones_cos.mean()),
            "ones_cos_max": float(ones_cos.max()),
            "raw_norm_mean": float("nan"),
            "raw_norm_std": float("nan"),
            "raw_ones_cos_mean": float("nan"),
            "input_recon_err": float("nan"),
            "out_norm_mean": float((y.norm(dim=-1) / root).mean()),
            "affine_rel_err": float("nan"),
        }
        if x is not None:
            xn = x.norm(dim=-1)
            row["input_recon_err"] = float((normalize(x, l.kind, l.eps) - n).norm(dim=-1).max() / root)
            row.update(
                raw_norm_mean=float(xn.mean()),
                raw_norm_std=float(xn.std()) if xn.numel() > 1 else 0.0,
                raw_ones_cos_mean=float(((x @ ones).abs() / xn.clamp_min(1e-300)).mean()),
            )
            raw_rows.append(xn)
        else:
            raw_rows.append(torch.full_like(nn_, float("nan")))
        if l.output_hook:
            out = acts[l.output_hook][valid].double().cpu()
            row["affine_rel_err"] = float(((out - y).norm(dim=-1) / out.norm(dim=-1).clamp_min(1e-300)).max())
        row.update(ellipsoid_geometry(l.gamma, l.beta))
        tol = 1e-3 if n.dtype.itemsize >= 4 and acts[f"{l.name}.hook_normalized"].dtype.itemsize >= 4 else 3e-2
        for key, what in (
            ("input_recon_err", f"n(x) of the hooked input ({l.kind}, ε={l.eps:g}) does not reproduce hook_normalized"),
            ("affine_rel_err", "γ⊙n+β with the module's effective gain does not reproduce the module's own output"),
        ):
            if row[key] > tol:  # NaN (no hook to check against) passes
                raise TlgeomError(
                    f"sphere_report: {l.name}: {what} (error {row[key]:.3g} > {tol:g}): this bridge's norm hooks or "
                    "this norm's convention are not the ones tlgeom reads, so its sphere statistics would be wrong"
                )
        stats.append(row)
        norm_rows.append(ratio)
    W_E = model.W_E
    emb = embedding_check(W_E, layers[0].kind, layers[0].eps)
    dtype = str(next(iter(acts.values())).dtype).replace("torch.", "")
    return SphereReport(
        layers=layers,
        stats=stats,
        embedding=emb,
        d_model=d,
        n_tokens=int(valid.sum()),
        encoder=info.encoder,
        norms=torch.stack(norm_rows),
        raw_norms=torch.stack(raw_rows),
        dtype=dtype,
        tol=SPHERE_TOL.get(dtype, SPHERE_TOL["float16"]),
    )
