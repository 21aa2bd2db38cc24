"""Projecting token trajectories through the layers into 2 or 3 dimensions (Traveling Words, Fig. 5).

The paper fits UMAP (15 neighbours, min_dist 0.1, 3 components) on the raw token embeddings E
and applies it to ``ln_f(block output)`` at every layer, for the phrase "To kill two birds with
one stone", so that each token's path through the layers can be drawn as arrows among the
vocabulary.

tlgeom does the same with PCA by default (in torch, float64, deterministic, a linear map whose
axes can be read) and UMAP as an option (``pip install 'tlgeom[umap]'``, umap-learn; a
non-linear map: distances between far-apart points mean little, and the fit is stochastic —
``seed`` fixes it).

Which states are projected (``final_norm``):

* decoders (default ``True``): the final normalisation (``ln_final``, with γ, β) applied to every
  point of the trajectory, as in the paper: it puts every layer on the scale the unembedding
  reads, where E lives (tied embeddings);
* post-LN encoders (default ``False``): block outputs are already LayerNorm outputs; the Bridge's
  ``ln_final`` belongs to the masked-LM head and is not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float

from tlgeom._args import check_choice, check_int, check_seed, generator, renamed
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable
from tlgeom.geometry.sphere import apply_norm
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device
from tlgeom.models.conventions import norm_layers

METHODS = ("pca", "umap")
UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1}


# ----------------------------------------------------------------------------- pure functions


def pca(x: Float[torch.Tensor, "n d"], n_components: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal components of the rows of x (float64).

    ``C = (x − x̄)ᵀ(x − x̄)/(n − 1) = W Λ Wᵀ`` (``torch.linalg.eigh``); the components are the top
    eigenvectors, each signed so that its largest-magnitude loading is positive.

    Returns:
        ``mean [d]``, ``components [n_components, d]`` (orthonormal rows),
        ``explained_variance_ratio [n_components]`` (λ_i / Σλ).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 2:
        raise bad_arg(
            "reference",
            x if not isinstance(x, torch.Tensor) else f"Tensor{tuple(x.shape)}",
            "a [n, d] tensor with n ≥ 2",
        )
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= x.shape[1]:
        raise bad_arg("n_components", n_components, f"an int in [1, {x.shape[1]}]")
    x = x.detach().double()
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / (x.shape[0] - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    comps = evecs[:, :n_components].T.contiguous()
    idx = comps.abs().argmax(-1, keepdim=True)
    comps = comps * torch.gather(comps, -1, idx).sign()
    total = evals.sum()
    ratio = evals[:n_components] / (total if total > 0 else 1)
    return mean, comps, ratio


@dataclass
class Projection:
    """A fitted map from R^d_model to R^n_components.

    Attributes:
        method: ``"pca"`` or ``"umap"``.
        n_components: 2 or 3 for plots (any for PCA).
        mean, components, explained_variance_ratio: PCA only (``transform`` is ``(x − mean) @ componentsᵀ``).
        reducer: the fitted ``umap.UMAP`` (UMAP only).
        reference_coords: the reference cloud projected (a subsample of at most 5000 rows, for plots).
    """

    method: str
    n_components: int
    mean: torch.Tensor | None = None
    components: torch.Tensor | None = None
    explained_variance_ratio: torch.Tensor | None = None
    reducer: Any = field(default=None, repr=False)
    reference_coords: torch.Tensor | None = field(default=None, repr=False)

    def transform(self, x: Float[torch.Tensor, "... d_model"]) -> Float[torch.Tensor, "... n_components"]:
        """Project vectors of any leading shape."""
        if not isinstance(x, torch.Tensor):
            raise bad_arg("x", x, "a tensor [..., d_model]")
        d = self.mean.shape[0] if self.mean is not None else None
        if d is not None and x.shape[-1] != d:
            raise bad_arg("x", f"Tensor{tuple(x.shape)}", f"last dimension d_model={d}")
        lead = x.shape[:-1]
        flat = x.detach().double().reshape(-1, x.shape[-1])
        if self.method == "pca":
            assert self.mean is not None and self.components is not None  # fit_projection sets both for PCA
            out = (flat - self.mean) @ self.components.T
        else:
            import numpy as np

            out = torch.from_numpy(np.asarray(self.reducer.transform(flat.cpu().numpy()), dtype="float64"))
        return out.reshape(*lead, self.n_components)


def _umap_class():
    try:
        import umap  # noqa: F401  (umap-learn)
    except ImportError as exc:
        raise TlgeomError(
            "method='umap': expected umap-learn to be installed (the optional extra: "
            "pip install 'tlgeom[umap]'); use method='pca' (the default) without it"
        ) from exc
    return umap.UMAP


def fit_projection(
    reference: Float[torch.Tensor, "n d_model"],
    method: str = "pca",
    n_components: int = 2,
    *,
    seed: int = 0,
    max_plot_points: Any = 5000,
    **umap_kwargs: Any,
) -> Projection:
    """Fit PCA (default) or UMAP on a reference cloud (rows of ``reference``).

    Args:
        reference: ``[n, d_model]``, e.g. ``model.W_E`` (the paper's choice) or stacked states.
        method: ``"pca"`` or ``"umap"`` (needs the ``tlgeom[umap]`` extra).
        n_components: output dimension.
        seed: UMAP's ``random_state`` and the plot subsample's seed.
        max_plot_points: reference rows kept (projected) for plotting.
        **umap_kwargs: passed to ``umap.UMAP`` (defaults: the paper's ``n_neighbors=15``,
            ``min_dist=0.1``).

    Raises:
        TlgeomError: unknown method, UMAP requested without umap-learn, bad reference shape or seed.
    """
    check_choice("method", method, METHODS)
    check_seed(seed, allow_none=False)
    check_int("max_plot_points", max_plot_points, minimum=1)
    if not isinstance(reference, torch.Tensor) or reference.dim() != 2 or reference.shape[0] < 2:
        raise bad_arg(
            "reference",
            reference if not isinstance(reference, torch.Tensor) else f"Tensor{tuple(reference.shape)}",
            "a [n, d_model] tensor with n ≥ 2",
        )
    if (
        isinstance(n_components, bool)
        or not isinstance(n_components, int)
        or not 1 <= n_components <= reference.shape[1]
    ):
        raise bad_arg("n_components", n_components, f"an int in [1, {reference.shape[1]}]")
    gen = generator(seed)
    n = reference.shape[0]
    sub = torch.randperm(n, generator=gen)[:max_plot_points].sort().values if n > max_plot_points else torch.arange(n)
    if method == "pca":
        mean, comps, ratio = pca(reference, n_components)
        proj = Projection("pca", n_components, mean=mean, components=comps, explained_variance_ratio=ratio)
        proj.reference_coords = proj.transform(reference[sub])
        return proj
    UMAP = _umap_class()
    kwargs = {**UMAP_DEFAULTS, **umap_kwargs}
    # umap-learn seeds a numpy RandomState (seeds < 2**32): a larger seed is hashed down, deterministically
    state = seed if seed < 2**32 else int(__import__("numpy").random.SeedSequence(seed).generate_state(1)[0])
    reducer = UMAP(n_components=n_components, random_state=state, **kwargs)
    emb = reducer.fit_transform(reference.detach().double().cpu().numpy())
    proj = Projection("umap", n_components, mean=torch.zeros(reference.shape[1], dtype=torch.float64), reducer=reducer)
    proj.reference_coords = torch.as_tensor(emb, dtype=torch.float64)[sub]
    return proj


# ----------------------------------------------------------------------------- model adapter


@dataclass
class TrajectoryProjection(Result):
    """A phrase's token trajectories projected layer by layer.

    Attributes:
        coords: ``[pos, point, n_components]`` float64.
        states: ``[pos, point, d_model]`` the vectors that were projected (float64).
        str_tokens: the phrase's tokens; ``point_labels``: ``embed``, ``L0``, …
        projection: the fitted :class:`Projection`.
        final_norm: whether ``ln_final`` was applied to every point.
    """

    coords: torch.Tensor
    states: torch.Tensor = field(repr=False)
    str_tokens: list[str] = field(default_factory=list)
    point_labels: list[str] = field(default_factory=list)
    projection: Projection | None = field(default=None, repr=False)
    final_norm: bool = False
    forward_dtype: str | None = None  # the model's forward dtype ("float32", "bfloat16"…)

    result_name = "projection"

    def headline(self) -> dict:
        """Sizes, the PCA explained-variance share of the kept components (None for UMAP), and per
        token the projected path length Σ‖c_{l+1} − c_l‖ over its chord ‖c_L − c_0‖ (median)."""
        P, N, C = self.coords.shape
        steps = (self.coords[:, 1:] - self.coords[:, :-1]).norm(dim=-1).sum(-1)
        chord = (self.coords[:, -1] - self.coords[:, 0]).norm(dim=-1)
        ratio = torch.where(chord > 0, steps / chord, torch.full_like(steps, float("nan")))
        proj = self.projection
        evr = proj.explained_variance_ratio if proj is not None else None
        return jsonable(
            {
                "method": proj.method if proj is not None else None,
                "n_components": C,
                "n_tokens": P,
                "n_points": N,
                "final_norm": self.final_norm,
                "explained_variance": float(evr.sum()) if evr is not None else None,
                "median_projected_length_to_chord": float(ratio.nanmedian()) if P else float("nan"),
            }
        )

    def summary(self) -> str:
        h = self.headline()
        ev = "" if h["explained_variance"] is None else f", {h['explained_variance']:.1%} of the reference variance"
        ltc = h["median_projected_length_to_chord"]
        return (
            f"{(h['method'] or 'projection').upper()} of {h['n_tokens']} token trajectories × {h['n_points']} points "
            f"onto {h['n_components']} components{ev}"
            + (", ln_final applied" if self.final_norm else "")
            + "; median projected length-to-chord "
            + ("undefined" if ltc is None else f"{ltc:.2f}")
            + " (a projection can hide or create turns: read angles from the full space)"
        )

    def _positions(self, tokens: Any) -> list[int]:
        P = len(self.str_tokens)
        if tokens is None:
            return list(range(P))
        items = [tokens] if isinstance(tokens, (int, str)) else list(tokens)
        out = []
        for t in items:
            if isinstance(t, bool):
                raise bad_arg("tokens", tokens, f"positions in [0, {P - 1}] or token strings of {self.str_tokens}")
            if isinstance(t, int):
                if not 0 <= t < P:
                    raise bad_arg("tokens", tokens, f"positions in [0, {P - 1}] or token strings of {self.str_tokens}")
                out.append(t)
            elif isinstance(t, str):
                hits = [i for i, s in enumerate(self.str_tokens) if s == t or s.strip() == t.strip()]
                if not hits:
                    raise bad_arg(
                        "tokens", t, f"one of the phrase's tokens {self.str_tokens} or a position in [0, {P - 1}]"
                    )
                out += hits
            else:
                raise bad_arg("tokens", tokens, f"positions in [0, {P - 1}] or token strings of {self.str_tokens}")
        return list(dict.fromkeys(out))

    def to_frame(self):
        """Tidy frame, one row per (pos, point): ``pos``, ``token``, ``point``, ``label``, ``c0``, ``c1``, …"""
        import numpy as np
        import pandas as pd

        P, N, C = self.coords.shape
        p, i = np.meshgrid(np.arange(P), np.arange(N), indexing="ij")
        cols = {
            "pos": p.ravel(),
            "token": np.asarray(self.str_tokens, dtype=object)[p].ravel(),
            "point": i.ravel(),
            "label": np.asarray(self.point_labels, dtype=object)[i].ravel(),
        }
        for c in range(C):
            cols[f"c{c}"] = self.coords[:, :, c].numpy().ravel()
        return pd.DataFrame(cols)

    def plot(self, ax=None, tokens: Any = None, show_reference: bool = True):
        """Arrows from layer to layer for the chosen tokens (positions or token strings; default all).

        2 components: a plane; 3 components: a 3D axis (``ax`` must then be a 3D axes). The reference
        cloud is drawn in grey. Returns the Figure.
        """
        import matplotlib.pyplot as plt

        pos = self._positions(tokens)
        C = self.coords.shape[-1]
        if C not in (2, 3):
            raise bad_arg("n_components", C, "2 or 3 to plot")
        if ax is None:
            fig = plt.figure(figsize=(7, 6))
            ax = fig.add_subplot(111, projection="3d" if C == 3 else None)
        ref = self.projection.reference_coords if self.projection is not None else None
        if show_reference and ref is not None:
            ax.scatter(*[ref[:, c].numpy() for c in range(C)], s=2, c="lightgrey", alpha=0.4, label="reference")
        cmap = plt.get_cmap("tab10")
        for j, p in enumerate(pos):
            xy = self.coords[p].numpy()  # [point, C]
            color = cmap(j % 10)
            ax.scatter(*[xy[:, c] for c in range(C)], s=10, color=color)
            d = xy[1:] - xy[:-1]
            if C == 2:
                ax.quiver(
                    xy[:-1, 0],
                    xy[:-1, 1],
                    d[:, 0],
                    d[:, 1],
                    angles="xy",
                    scale_units="xy",
                    scale=1,
                    color=color,
                    width=0.004,
                    alpha=0.8,
                )
                ax.annotate(repr(self.str_tokens[p]), xy[-1], color=color, fontsize=8)
            else:
                ax.quiver(
                    xy[:-1, 0],
                    xy[:-1, 1],
                    xy[:-1, 2],
                    d[:, 0],
                    d[:, 1],
                    d[:, 2],
                    color=color,
                    arrow_length_ratio=0.15,
                    alpha=0.8,
                )
                ax.text(*xy[-1], repr(self.str_tokens[p]), color=color, fontsize=8)
            ax.plot([], [], color=color, label=f"{p}: {self.str_tokens[p]!r}")
        method = self.projection.method.upper() if self.projection is not None else ""
        ax.set_title(
            f"{method} of token trajectories ({self.point_labels[0]} → {self.point_labels[-1]})"
            + (", ln_final applied" if self.final_norm else ""),
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="best")
        return ax.figure


@renamed(text="inputs")
@takes_device
def project_trajectory(
    model: Any,
    inputs: Any,
    *,
    reference: Any = "embeddings",
    method: Any = "pca",
    n_components: Any = 2,
    final_norm: Any = None,
    projection: Any = None,
    seed: int = 0,
    **umap_kwargs: Any,
) -> TrajectoryProjection:
    """Record a phrase's trajectory through the layers and project it.

    Args:
        model: a TransformerBridge, HookedTransformer or HookedEncoder.
        inputs: the phrase: one string or token ids ``[pos]`` / ``[1, pos]`` (``text=`` is its
            deprecated name).
        reference: the cloud the projection is fitted on: ``"embeddings"`` (``model.W_E``, the
            paper's choice), ``"states"`` (the phrase's own projected states) or a tensor [n, d_model].
        method: ``"pca"`` (default) or ``"umap"`` (``tlgeom[umap]`` extra).
        n_components: 2 or 3 for plotting.
        final_norm: apply ``ln_final`` (with γ, β) to every point; default True on decoders,
            False on encoders (see the module docstring).
        projection: an already fitted :class:`Projection` (then reference/method are ignored).
        seed, **umap_kwargs: passed to :func:`fit_projection`.

    Returns:
        :class:`TrajectoryProjection` (``.coords [pos, point, n_components]``, ``.plot(tokens=...)``).

    Raises:
        TlgeomError: bad inputs, reference, method, seed; UMAP without umap-learn; final_norm=True
            on a model without a usable final normalisation. All checked before the forward pass.
    """
    from tlgeom.models.trajectory import record_trajectories

    info = _compat.check_model(model)
    if isinstance(inputs, (list, tuple)):
        raise bad_arg("inputs", inputs, "one string or token ids [pos] (the phrase to follow)")
    tokens, _ = _compat.tokenize(model, inputs, info)
    if tokens.shape[0] != 1:
        raise bad_arg("inputs", f"Tensor(shape={tuple(tokens.shape)})", "one string or token ids [pos] / [1, pos]")
    if final_norm is None:
        final_norm = not info.encoder
    if not isinstance(final_norm, bool):
        raise bad_arg("final_norm", final_norm, "True, False or None")
    if projection is None:
        check_choice("method", method, METHODS)
        check_seed(seed, allow_none=False)
        if isinstance(reference, str):
            check_choice("reference", reference, ("embeddings", "states"))
    elif not isinstance(projection, Projection):
        raise bad_arg("projection", projection, "a tlgeom Projection (from fit_projection) or None")
    traj = record_trajectories(model, tokens)
    states = traj.states[0].double().cpu()  # [pos, point, d]
    if final_norm:
        if info.encoder:
            raise bad_arg("final_norm", True, "False on an encoder (its ln_final belongs to the masked-LM head)")
        finals = [n for n in norm_layers(model) if n.name == "ln_final"]
        if not finals:
            raise bad_arg("final_norm", True, "False for a model without ln_final")
        f = finals[0]
        states = apply_norm(states, f.kind, f.gamma, f.beta, f.eps)
    if projection is None:
        if isinstance(reference, str):
            if reference == "embeddings":
                ref = model.W_E.detach().double().cpu()
            elif reference == "states":
                ref = states.reshape(-1, states.shape[-1])
            else:
                raise bad_arg("reference", reference, "'embeddings', 'states' or a [n, d_model] tensor")
        elif isinstance(reference, torch.Tensor) and reference.dim() == 2 and reference.shape[1] == info.d_model:
            ref = reference.detach().double().cpu()
        else:
            raise bad_arg(
                "reference",
                reference if not isinstance(reference, torch.Tensor) else f"Tensor{tuple(reference.shape)}",
                f"'embeddings', 'states' or a [n, d_model={info.d_model}] tensor",
            )
        projection = fit_projection(ref, method, n_components, seed=seed, **umap_kwargs)
    elif not isinstance(projection, Projection):
        raise bad_arg("projection", projection, "a tlgeom Projection (from fit_projection) or None")
    coords = projection.transform(states)
    return TrajectoryProjection(
        forward_dtype=traj.forward_dtype,
        coords=coords,
        states=states,
        str_tokens=traj.str_tokens[0],
        point_labels=traj.point_labels,
        projection=projection,
        final_norm=final_norm,
    )
