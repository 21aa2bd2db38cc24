"""The curvature landscape of one text: every token's turning angle at every layer vertex, from one streamed
forward pass (:func:`curvature_landscape` → :class:`Landscape`), drawn as a tokens × vertices heatmap or, as
in arXiv 2511.03060, as states in one PCA plane with the angle interpolated over it (:func:`pca_projection`).

The angles and their conventions are :mod:`tlgeom.geometry.curvature`'s; ``space="normalized"`` is its
:func:`~tlgeom.geometry.curvature.to_space`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

from tlgeom._args import check_points, check_space, renamed
from tlgeom._errors import bad_arg
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.models._compat import takes_device
from tlgeom.models.conventions import model_normalization
from tlgeom.models.streaming import (
    LengthToChord,
    NormalizedLengthToChord,
    NormalizedStepNorms,
    NormalizedTurningAngles,
    StepNorms,
    StreamMetric,
    TurningAngles,
)

# ---------------------------------------------------------------------------------------------
# The landscape


@dataclass
class Landscape(Result):
    """Turning angles of every token of one text at every layer vertex (from one streamed pass).

    Attributes:
        angles: ``[pos, vertex]`` turning angles in radians; vertex j is the turn at trajectory
            point j+1 (between the step into it and the step out of it). NaN = undefined.
        str_tokens: the decoded tokens, one per position.
        vertex_labels: the point label of each vertex (``"L0"`` = output of block 0, …).
        step_norms: ``[pos, step]`` ‖Δ‖ of each layer step (same space as the angles).
        length_to_chord: ``[pos]`` length-to-chord ratio of each token's whole trajectory.
        space: ``"raw"`` or ``"normalized"``; norm: the normalisation used (None when raw).
        forward_dtype: the dtype of the model's forward pass (``"float32"``, ``"bfloat16"``…):
            below float32 the states, and so the angles, carry the forward pass's rounding.
        d_model: the residual width (for the random-direction reference: angles between
            independent random directions in R^d are 90° ± (180/π)/√d).
        pca_xy: ``[pos − pca_skip_first, point, 2]`` every kept token's state at every point projected on
            the top two principal axes of all those states (``curvature_landscape(..., pca=True)``), else None;
            pca_explained: the fraction of the variance each axis explains.
        view: what :meth:`plot` draws by default: ``"heatmap"`` or ``"pca"``.
    """

    angles: Float[torch.Tensor, "pos vertex"]
    str_tokens: list[str]
    vertex_labels: list[str]
    step_norms: Float[torch.Tensor, "pos step"]
    length_to_chord: Float[torch.Tensor, " pos"]
    space: str = "raw"
    norm: str | None = None
    tokens: Int[torch.Tensor, " pos"] | None = None
    forward_dtype: str | None = None
    d_model: int | None = None
    pca_xy: Float[torch.Tensor, "kept point 2"] | None = None
    pca_explained: Float[torch.Tensor, " 2"] | None = None
    pca_skip_first: int = 0
    view: str = "heatmap"

    result_name = "landscape"

    @property
    def degrees(self) -> torch.Tensor:
        return torch.rad2deg(self.angles)

    def headline(self) -> dict:
        """Median, mean and 5–95% quantiles of the turning angles (degrees), the sharpest and flattest
        layer vertex (by per-vertex median), the median length-to-chord, and the random-direction
        reference ``90 ± (180/π)/√d`` degrees."""
        deg = self.degrees.detach().cpu().to(torch.float64)
        vals = deg[~torch.isnan(deg)]
        nan = float("nan")
        per_vertex = deg.nanmedian(0).values if deg.numel() else torch.empty(0, dtype=torch.float64)
        defined = ~torch.isnan(per_vertex)
        h: dict[str, Any] = {
            "n_tokens": int(deg.shape[0]),
            "n_vertices": int(deg.shape[1]),
            "space": self.space,
            "median_angle_deg": float(vals.median()) if vals.numel() else nan,
            "mean_angle_deg": float(vals.mean()) if vals.numel() else nan,
            "q05_angle_deg": float(vals.quantile(0.05)) if vals.numel() else nan,
            "q95_angle_deg": float(vals.quantile(0.95)) if vals.numel() else nan,
            "median_length_to_chord": float(self.length_to_chord.detach().cpu().double().nanmedian()),
            "sharpest_vertex": None,
            "flattest_vertex": None,
        }
        if bool(defined.any()):
            pv = torch.where(defined, per_vertex, torch.full_like(per_vertex, nan))
            hi = int(torch.nan_to_num(pv, nan=-math.inf).argmax())
            lo = int(torch.nan_to_num(pv, nan=math.inf).argmin())
            h.update(
                sharpest_vertex=self.vertex_labels[hi],
                sharpest_vertex_median_deg=float(pv[hi]),
                flattest_vertex=self.vertex_labels[lo],
                flattest_vertex_median_deg=float(pv[lo]),
            )
        if self.d_model:
            h["random_directions_deg"] = 90.0
            h["random_directions_sd_deg"] = math.degrees(1 / math.sqrt(self.d_model))
        return jsonable(h)

    def summary(self) -> str:
        """One paragraph: the angle distribution against random directions, sharpest/flattest vertex, LTC."""
        h = self.headline()
        if h["median_angle_deg"] is None:
            return (
                f"curvature landscape: {h['n_tokens']} tokens × {h['n_vertices']} layer vertices ({self.space} "
                "space); no turning angle is defined (too few layers or zero steps)"
            )
        ref = (
            f"; random directions in R^{self.d_model}: 90 ± {h['random_directions_sd_deg']:.1f}°"
            if self.d_model
            else ""
        )
        ltc = h["median_length_to_chord"]
        return (
            f"curvature landscape: {h['n_tokens']} tokens × {h['n_vertices']} layer vertices ({self.space} space); "
            f"median turning angle {h['median_angle_deg']:.1f}° (5–95% {h['q05_angle_deg']:.1f}–"
            f"{h['q95_angle_deg']:.1f}°{ref}); sharpest layer vertex {h['sharpest_vertex']} (median "
            f"{h['sharpest_vertex_median_deg']:.1f}°), flattest {h['flattest_vertex']} "
            f"({h['flattest_vertex_median_deg']:.1f}°); median length-to-chord "
            + ("undefined" if ltc is None else f"{ltc:.2f}")
        )

    def to_frame(self):
        """Tidy frame: one row per (pos, vertex): token, vertex label, angle (rad and degrees), step norms."""
        import numpy as np
        import pandas as pd

        P, V = self.angles.shape
        p, v = np.meshgrid(np.arange(P), np.arange(V), indexing="ij")
        a = self.angles.detach().cpu().numpy()
        sn = self.step_norms.detach().cpu().numpy()
        return pd.DataFrame(
            {
                "pos": p.ravel(),
                "token": np.asarray(self.str_tokens, dtype=object)[p].ravel(),
                "vertex": v.ravel(),
                "label": np.asarray(self.vertex_labels, dtype=object)[v].ravel(),
                "turning_angle_rad": a.ravel(),
                "turning_angle_deg": np.degrees(a).ravel(),
                "step_in_norm": sn[:, :-1].ravel(),
                "step_out_norm": sn[:, 1:].ravel(),
                "space": self.space,
            }
        )

    def plot(
        self,
        ax=None,
        vmin: float | None = None,
        vmax: float | None = None,
        cmap: str | None = None,
        max_labels: int = 400,
        *,
        view: str | None = None,
        layers: int | Sequence[int] | None = None,
        vcenter: float = 90.0,
        grid: int = 200,
        method: str = "linear",
    ):
        """The landscape: ``view="heatmap"`` (default) or ``view="pca"`` (None: the result's ``view``).

        ``"heatmap"``: tokens (rows) × layer vertices (columns) in degrees (``vmin``/``vmax``/``cmap``
        default 0/180/magma), with a colorbar. Every token is labelled (up to ``max_labels``; beyond that
        every k-th) in a font sized so a 150-token paragraph stays readable. Returns the Figure.

        ``"pca"``: the paper's landscape view, as a third-party reproduction describes it (the paper's own
        text was not available to us, so these defaults come from that description, not from the paper):
        every token's state projected to 2-D by one PCA fitted on all layers' states together (stored by
        ``curvature_landscape(..., pca=True)``), and the turning angle of each token interpolated over that
        plane (``scipy.interpolate.griddata``, ``method``, a ``grid × grid`` mesh over each panel's tokens),
        colour ``cmap`` (default ``"coolwarm"``) with a ``TwoSlopeNorm`` centred at ``vcenter`` = 90° with
        limits ``vmin`` = 75° / ``vmax`` = 105°; one panel per layer of ``layers`` (default four spread
        evenly over depth: 3, 6, 9, 12 on a 12-layer model, ``round(L·i/4)``). Layer ``l`` shows the states
        at the output of block ``l − 1`` (point ``l``) and the angle of the turn that arrives there (between
        the steps ``l−2 → l−1`` and ``l−1 → l``), so ``2 ≤ l ≤ n_layers``. The tokens are the points.
        """
        from tlgeom._args import check_choice

        view = check_choice("view", self.view if view is None else view, VIEWS)
        if view == "pca":
            return self._plot_pca(
                ax,
                layers=layers,
                vmin=75.0 if vmin is None else vmin,
                vmax=105.0 if vmax is None else vmax,
                vcenter=vcenter,
                cmap=cmap or "coolwarm",
                grid=grid,
                method=method,
            )
        vmin = 0.0 if vmin is None else vmin
        vmax = 180.0 if vmax is None else vmax
        cmap = cmap or "magma"
        P, V = self.angles.shape
        fig, ax = new_axes(ax, (min(3 + 0.28 * V, 16), max(4.0, 0.13 * P + 1.5)))
        im = ax.imshow(
            self.degrees.cpu().numpy(), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        every = max(1, math.ceil(P / max_labels))
        ax.set_yticks(range(0, P, every))
        ax.set_yticklabels([repr(t)[1:-1] for t in self.str_tokens[::every]], fontsize=6 if P > 60 else 8)
        ax.set_xticks(range(V))
        ax.set_xticklabels(self.vertex_labels, rotation=90, fontsize=7)
        ax.set_xlabel("vertex (turn at the output of block …)")
        ax.set_ylabel("token")
        ax.figure.colorbar(im, ax=ax, label="turning angle (degrees; 0 = straight on)", fraction=0.04, pad=0.02)
        ax.set_title(f"curvature landscape ({self.space} space, {P} tokens)")
        return fig

    def pca_layers(self, layers: int | Sequence[int] | None = None) -> list[int]:
        """The layers of the PCA view: ``layers`` checked, or four spread evenly (``round(L·i/4)``, i = 1..4,
        kept in ``[2, L]``; 3, 6, 9, 12 on a 12-layer model)."""
        import numpy as np

        L = len(self.vertex_labels) + 1 if self.pca_xy is None else int(self.pca_xy.shape[1]) - 1
        if layers is None:
            return sorted({int(min(max(round(L * i / 4), 2), L)) for i in (1, 2, 3, 4)})
        items = [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers
        if (
            isinstance(items, (str, bytes))
            or not hasattr(items, "__iter__")
            or not list(items)
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 2 <= v <= L for v in items)
        ):
            raise bad_arg("layers", layers, f"an int or ints in [2, {L}] (the turn arriving at block l's output)")
        return sorted({int(v) for v in items})

    def _plot_pca(self, ax, *, layers, vmin, vmax, vcenter, cmap, grid, method):
        import numpy as np
        from matplotlib.colors import TwoSlopeNorm
        from scipy.interpolate import griddata

        from tlgeom._result import new_panels

        if self.pca_xy is None:
            raise bad_arg(
                "view",
                "pca",
                "'heatmap' here: this landscape holds no PCA projection; compute it with "
                "curvature_landscape(model, text, pca=True)",
            )
        if any(".mid" in lb for lb in self.vertex_labels):
            raise bad_arg("view", "pca", "'heatmap' for points='sublayer' (the PCA view is per block)")
        if not (vmin < vcenter < vmax):
            raise bad_arg("vcenter", vcenter, f"a value strictly between vmin={vmin} and vmax={vmax}")
        if method not in ("linear", "nearest", "cubic"):
            raise bad_arg("method", method, "'linear', 'nearest' or 'cubic' (scipy.interpolate.griddata)")
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 10:
            raise bad_arg("grid", grid, "an int >= 10")
        ls = self.pca_layers(layers)
        given = ax
        fig, axes = new_panels(ax, 1, len(ls), (3.6 * len(ls), 3.6))
        s0 = self.pca_skip_first
        xy = self.pca_xy.detach().cpu().numpy()
        deg = self.degrees.detach().cpu().numpy()[s0:]
        norm = TwoSlopeNorm(vcenter=vcenter, vmin=vmin, vmax=vmax)
        im = None
        for a, l in zip(axes.flat, ls):
            pts, val = xy[:, l], deg[:, l - 2]
            # one plane for every layer; each panel's mesh spans that layer's tokens (the raw states' norm
            # grows with depth, so a mesh over all layers would shrink the early layers to a dot)
            lo, hi = np.nanmin(pts, 0), np.nanmax(pts, 0)
            gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
            ok = np.isfinite(val) & np.isfinite(pts).all(1)
            if ok.sum() >= 3:
                try:
                    z = griddata(pts[ok], val[ok], (gx, gy), method=method)
                except Exception:  # degenerate (collinear) points: no surface, just the tokens
                    z = None
                if z is not None:
                    im = a.pcolormesh(gx, gy, z, cmap=cmap, norm=norm, shading="auto")
            a.scatter(pts[:, 0], pts[:, 1], c=val, cmap=cmap, norm=norm, s=9, edgecolors="k", linewidths=0.3)
            a.set_title(f"layer {l} (output of block {l - 1})", fontsize=9)
            a.set_xlabel("PC1")
            a.set_ylabel("PC2")
        if im is not None:
            fig.colorbar(im, ax=list(axes.flat), label="turning angle (degrees)", fraction=0.03)
        ev = self.pca_explained
        fig.suptitle(
            "PCA plane of all layers' states"
            + (" " if len(ls) >= 3 else "\n")
            + f"({self.space} space"
            + (f"; PC1+PC2 explain {100 * float(ev.sum()):.0f} %" if ev is not None else "")
            + ")",
            fontsize=10,
            y=1.02,
        )
        del given
        return fig


VIEWS = ("heatmap", "pca")


def pca_projection(
    states: Float[torch.Tensor, "pos point d_model"], skip_first: int = 0
) -> tuple[Float[torch.Tensor, "kept point 2"], Float[torch.Tensor, " 2"]]:
    """2-D PCA of the states of every token at every point, fitted on all points together.

    ``X`` = the states of positions ``skip_first…`` at every point, as rows; centred on their mean;
    the projection is ``(X − μ) V₂`` with ``V₂`` the top two right singular vectors (float64). Also
    returns the fraction of the total variance each component explains.
    """
    x = states[skip_first:].to(torch.float64)
    P, L, D = x.shape
    flat = x.reshape(P * L, D)
    centred = flat - flat.mean(0, keepdim=True)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    var = S.pow(2)
    return (centred @ Vh[:2].T).reshape(P, L, 2), var[:2] / var.sum()


@renamed(text="inputs")
@takes_device
def curvature_landscape(
    model: Any,
    inputs: Any,
    *,
    space: str = "raw",
    points: str = "resid",
    norm: str | None = None,
    pca: Any = False,
    pca_skip_first: Any = 1,
    view: Any = None,
) -> Landscape:
    """The curvature landscape of one text: every token's turning angle at every layer vertex.

    Computed by streaming (:class:`~tlgeom.TurningAngles` or :class:`NormalizedTurningAngles`
    on the model's hooks): one forward pass, no stored layer stack.

    Args:
        model: a TransformerLens model (TransformerBridge, HookedTransformer, HookedEncoder).
        inputs: one string, or token ids ``[pos]`` / ``[1, pos]`` (``text=`` is its deprecated name).
        space: ``"raw"`` or ``"normalized"`` (the model's own normalisation, see
            :func:`model_normalization`, unless ``norm`` overrides it).
        points: ``"resid"`` (block inputs/outputs) or ``"sublayer"`` (adds mid-block points).
        norm: ``"rms"`` / ``"layernorm"`` to override the model's normalisation.
        pca: also store the states' 2-D PCA projection for ``plot(view="pca")`` (one extra recorded pass:
            the states of the text, in the landscape's space, are kept only long enough to project them).
        pca_skip_first: leading positions left out of the PCA (default 1: TransformerLens prepends BOS,
            an attention sink whose outsized state would be the first component; the reproduction fed
            text without it).
        view: the result's default view (``"heatmap"``; ``"pca"`` implies ``pca=True``); None = heatmap.

    A one-token text gives a one-row landscape. A bf16/fp16 model warns
    (:class:`tlgeom.PrecisionWarning`) and the result records its ``forward_dtype``.

    Raises:
        TlgeomError: bad ``model``, ``inputs`` (a list, a batch, empty, out-of-vocabulary ids),
            ``space``, ``points`` or ``norm``; a model with too few layers for a turning angle (a
            1-layer model with ``points="resid"`` has 2 trajectory points: use ``points="sublayer"``).
            All checked before the forward pass.
    """
    from tlgeom.models import _compat
    from tlgeom.models.streaming import stream

    check_space(space)
    check_points(points)
    if norm is not None:
        from tlgeom.geometry.curvature import NORMS

        if norm not in NORMS:
            raise bad_arg("norm", norm, f"None (the model's own) or one of {NORMS}")
    if isinstance(inputs, (list, tuple)):
        raise bad_arg("inputs", inputs, "one string (or token ids [pos]); call once per text")
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 2 and inputs.shape[0] != 1:
        raise bad_arg("inputs", f"Tensor(shape={tuple(inputs.shape)})", "token ids [pos] or [1, pos]")
    from tlgeom._args import check_bool, check_choice, check_int

    view = check_choice("view", "heatmap" if view is None else view, VIEWS)
    pca = check_bool("pca", pca) or view == "pca"
    check_int("pca_skip_first", pca_skip_first, minimum=0)
    info = _compat.check_model(model)
    if space == "normalized":
        if norm is None:
            nm, eps = model_normalization(model)
        else:
            nm, eps = norm, float(getattr(model.cfg, "eps", None) or 1e-5)
        metrics: list[StreamMetric] = [
            NormalizedTurningAngles(nm, eps),
            NormalizedStepNorms(nm, eps),
            NormalizedLengthToChord(nm, eps),
        ]
    else:
        nm = None
        metrics = [TurningAngles(), StepNorms(), LengthToChord()]
    out = stream(model, inputs, metrics, points=points)
    labels = _compat.point_labels(info.n_layers, points)
    toks, mask = out["tokens"], out["mask"]
    pca_xy = pca_explained = None
    if pca:
        from tlgeom.geometry.curvature import to_space
        from tlgeom.models.trajectory import record_trajectories

        states = record_trajectories(model, toks[:, mask[0]], points).states[0].to(torch.float64)
        if space == "normalized":
            assert nm is not None
            states = to_space(states, "normalized", nm, eps)
        if states.shape[0] <= pca_skip_first + 1:
            raise bad_arg("pca_skip_first", pca_skip_first, f"fewer than {states.shape[0] - 1} (the text's tokens)")
        pca_xy, pca_explained = pca_projection(states, pca_skip_first)
    return Landscape(
        angles=out[metrics[0].name][0],
        str_tokens=_compat.str_tokens(model, toks, mask)[0],
        vertex_labels=labels[1:-1],
        step_norms=out[metrics[1].name][0],
        length_to_chord=out[metrics[2].name][0],
        space=space,
        norm=nm,
        tokens=toks[0],
        forward_dtype=out["forward_dtype"],
        d_model=int(info.d_model),
        pca_xy=pca_xy,
        pca_explained=pca_explained,
        pca_skip_first=pca_skip_first,
        view=view,
    )
