"""Attention vs heat-kernel diffusion on a model, and the residual cloud's Laplacian.

The diffusion-map Laplacian, its bandwidth rule and the heat kernel ``exp(−tL)`` (formulas and
conventions) are pure maths in ``tlgeom.geometry.heat``; this module applies them to a model's
residual states and compares the heat kernel with the model's own attention patterns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tlgeom._args import check_int, check_layers, renamed
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_panels
from tlgeom.geometry.heat import DEFAULT_K, GraphLaplacian, bandwidth, graph_laplacian
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device
from tlgeom.models.arch import architecture, require
from tlgeom.models.trajectory import record_trajectories
from tlgeom.stats.pvalues import row_spearman  # the one Spearman (scipy rankdata)

# ---------------------------------------------------------------------------------------------
# attention vs heat kernel


def residual_laplacian(
    model: Any, inputs: Any, point: Any, eps: float | None = None, *, k: Any = DEFAULT_K, alpha: float = 1.0
) -> GraphLaplacian:
    """Graph Laplacian on the residual states of every (valid) token at trajectory point ``point``.

    Points are 0 (input of block 0) … n_layers (output of the last block), as in
    :func:`tlgeom.record_trajectories`; padding is dropped. A cloud of a paragraph's tokens is
    small (N ≈ 100–200), so treat the spectrum as a coarse description.
    """
    info = _compat.check_model(model)
    if not isinstance(point, int) or isinstance(point, bool) or not 0 <= point <= info.n_layers:
        raise bad_arg("point", point, f"a trajectory point in [0, n_layers={info.n_layers}]")
    check_int("k", k, minimum=1)
    _compat.tokenize(model, inputs, info)  # bad inputs refused before the pass
    traj = record_trajectories(model, inputs)
    X = traj.states[:, :, point][traj.mask]
    if X.shape[0] <= k:
        raise bad_arg("inputs", inputs, f"more than k={k} tokens (got {X.shape[0]})")
    return graph_laplacian(X, eps, k=k, alpha=alpha)


def _row_kl(A: torch.Tensor, B: torch.Tensor, valid: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean over selected rows of KL(A_i ‖ B_i) (natural log), entries outside ``valid`` ignored."""
    tiny = 1e-300
    term = torch.where(valid & (A > 0), A * (A.clamp_min(tiny).log() - B.clamp_min(tiny).log()), torch.zeros_like(A))
    kl = term.sum(-1)
    return (kl * rows).sum(-1) / rows.sum()


def _normalise(W: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    W = torch.where(valid, W.clamp_min(0), torch.zeros_like(W))
    return W / W.sum(-1, keepdim=True).clamp_min(1e-300)


@dataclass
class HeatAttention(Result):
    """Attention patterns of one layer vs the best-fitting heat kernel and Gaussian kernel.

    Per head (arrays ``[head]``): ``kl_heat``, ``kl_gauss``, ``kl_uniform`` (mean over query rows
    with ≥ 2 keys of KL(attention ‖ kernel), nats), ``spearman_heat``, ``spearman_gauss`` (mean
    per-row Spearman ρ, rows with ≥ 3 keys), ``best_t`` and ``best_eps`` (heat kernel), ``best_sigma``
    (Gaussian), ``qk_err`` (max |softmax(q·k/√d) − pattern|: the q/k states reproduce the pattern
    when this is ~0). ``attention``, ``heat``, ``gauss``: ``[head, q, k]`` (best fits).
    """

    layer: int
    heads: list[int]
    str_tokens: list[str]
    causal: bool
    attention: torch.Tensor
    heat: torch.Tensor
    gauss: torch.Tensor
    kl_heat: torch.Tensor
    kl_gauss: torch.Tensor
    kl_uniform: torch.Tensor
    spearman_heat: torch.Tensor
    spearman_gauss: torch.Tensor
    best_t: torch.Tensor
    best_eps: torch.Tensor
    best_sigma: torch.Tensor
    qk_err: torch.Tensor
    forward_dtype: str | None = None  # the model's forward dtype ("float32", "bfloat16"…)

    result_name = "heat_attention"

    def headline(self) -> dict:
        """How many heads the heat kernel fits better (lower KL) than the Gaussian, and median KL / ρ."""
        return jsonable(
            {
                "layer": self.layer,
                "n_heads": len(self.heads),
                "n_tokens": len(self.str_tokens),
                "causal": self.causal,
                "n_heat_beats_gauss": int(self.heat_beats_gauss.sum()),
                "median_kl_heat": float(self.kl_heat.median()),
                "median_kl_gauss": float(self.kl_gauss.median()),
                "median_kl_uniform": float(self.kl_uniform.median()),
                "median_spearman_heat": float(self.spearman_heat.median()),
                "median_spearman_gauss": float(self.spearman_gauss.median()),
                "max_qk_err": float(self.qk_err.max()),
            }
        )

    @property
    def heat_beats_gauss(self) -> torch.Tensor:
        """``[head]`` True where the fitted heat kernel has the lower KL to the attention pattern."""
        return self.kl_heat < self.kl_gauss

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "layer": self.layer,
                "head": self.heads,
                "kl_heat": self.kl_heat.numpy(),
                "kl_gauss": self.kl_gauss.numpy(),
                "kl_uniform": self.kl_uniform.numpy(),
                "spearman_heat": self.spearman_heat.numpy(),
                "spearman_gauss": self.spearman_gauss.numpy(),
                "best_t": self.best_t.numpy(),
                "best_eps": self.best_eps.numpy(),
                "best_sigma": self.best_sigma.numpy(),
                "heat_beats_gauss": self.heat_beats_gauss.numpy(),
                "qk_err": self.qk_err.numpy(),
            }
        )

    def summary(self) -> str:
        """One line per head: KL and Spearman for both kernels and the verdict."""
        lines = [
            f"layer {self.layer}, {len(self.str_tokens)} tokens: attention vs row-normalised heat kernel "
            f"(fit t, ε) and Gaussian kernel (fit σ) on the head's query/key states"
        ]
        for i, h in enumerate(self.heads):
            win = bool(self.heat_beats_gauss[i])
            lines.append(
                f"  L{self.layer}H{h}: KL heat {self.kl_heat[i]:.3f} vs Gaussian {self.kl_gauss[i]:.3f} "
                f"(uniform {self.kl_uniform[i]:.3f}); Spearman {self.spearman_heat[i]:.3f} vs "
                f"{self.spearman_gauss[i]:.3f} -> {'heat kernel beats' if win else 'heat kernel does NOT beat'} "
                f"the Gaussian baseline"
            )
        bad = [h for h, e in zip(self.heads, self.qk_err.tolist()) if e > 1e-3]
        if bad:
            lines.append(
                f"  note: for heads {bad} softmax(q·k/√d) from the hooked q/k differs from the pattern by up to "
                f"{float(self.qk_err.max()):.3f} (this API fires no rotated-q/k hook): the cloud is pre-rotary"
            )
        n = int(self.heat_beats_gauss.sum())
        lines.append(
            f"heat kernel beats the Gaussian baseline (lower KL) in {n}/{len(self.heads)} heads; "
            f"median KL heat {self.kl_heat.median():.3f}, Gaussian {self.kl_gauss.median():.3f}, "
            f"uniform {self.kl_uniform.median():.3f} (the heat kernel has 2 fitted parameters, the Gaussian 1)"
        )
        return "\n".join(lines)

    def plot(self, ax=None, head: int | None = None, max_tokens: int = 60):
        """Attention, best heat kernel and best Gaussian kernel side by side (one row per head).

        Args:
            ax: None (a new figure) or one Axes whose area is split into the panels.
            head: a head index (as in ``heads``); default all heads.
            max_tokens: show the first ``max_tokens`` positions.

        Returns:
            The Figure.
        """
        rows = (
            list(range(len(self.heads))) if head is None else [self.heads.index(head)] if head in self.heads else None
        )
        if rows is None:
            raise bad_arg("head", head, f"one of {self.heads}")
        n = min(max_tokens, self.attention.shape[-1])
        fig, axes = new_panels(ax, len(rows), 3, (9, 3 * len(rows)))
        for r, i in enumerate(rows):
            for c, (name, M) in enumerate(
                (("attention", self.attention), ("heat kernel", self.heat), ("Gaussian", self.gauss))
            ):
                ax = axes[r, c]
                ax.imshow(M[i, :n, :n].numpy(), cmap="viridis", vmin=0, vmax=float(self.attention[i, :n, :n].max()))
                kl = {"attention": None, "heat kernel": self.kl_heat[i], "Gaussian": self.kl_gauss[i]}[name]
                ax.set_title(
                    f"L{self.layer}H{self.heads[i]} {name}" + (f" KL {kl:.2f}" if kl is not None else ""), fontsize=8
                )
                ax.set_xticks([])
                ax.set_yticks([])
        if ax is None:
            fig.tight_layout()
        return fig


QK_TOL = 1e-3  # max |softmax(q·k/s + mask) − pattern| accepted for a float32/float64 forward pass
QK_TOL_LOW_PRECISION = 2e-2  # … for bfloat16/float16


def _qk_and_pattern(model: Any, tokens: torch.Tensor, layer: int, info) -> tuple[torch.Tensor, ...]:
    base = f"blocks.{layer}.attn."
    names = [base + "hook_rot_q", base + "hook_rot_k", base + "hook_q", base + "hook_k", base + "hook_pattern"]
    names = [n for n in names if n in model.hook_dict]
    _compat.check_hook_names(model, [base + "hook_q", base + "hook_k", base + "hook_pattern"])
    required = [base + "hook_q", base + "hook_k", base + "hook_pattern"]
    got = _compat.capture(model, tokens, torch.ones_like(tokens, dtype=torch.bool), info, names, required=required)
    # rotary models: the rotated q/k (what the scores use) when the API fires those hooks
    qn = base + "hook_rot_q" if base + "hook_rot_q" in got else base + "hook_q"
    for n in (qn, qn.replace("_q", "_k"), base + "hook_pattern"):
        if not isinstance(got[n], torch.Tensor) or got[n].dim() != 4:
            raise TlgeomError(
                f"hook point {n!r} gave {type(got[n]).__name__}"
                f"{tuple(got[n].shape) if isinstance(got[n], torch.Tensor) else ''}, not a [batch, pos, head, d] / "
                "[batch, head, pos, pos] tensor: this bridge's attention hooks cannot be read per head"
            )
    q, k = got[qn][0].to(torch.float64), got[qn.replace("_q", "_k")][0].to(torch.float64)  # [pos, head, d]
    if k.shape[1] != q.shape[1]:  # grouped-query attention
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    return q, k, got[base + "hook_pattern"][0].to(torch.float64)


@renamed(text="inputs", layer="layers")
@takes_device
def attention_vs_heat_kernel(
    model: Any,
    inputs: Any,
    layers: int | Sequence[int] | None,
    *,
    heads: Sequence[int] | None = None,
    k: int = DEFAULT_K,
    eps_factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    n_t: int = 25,
    n_sigma: int = 41,
) -> Any:
    """Fit, per head, a heat kernel and a plain Gaussian kernel on the head's query/key states to its attention.

    For head h with queries ``q_i`` and keys ``k_j`` (rotated, for rotary models; grouped K heads
    expanded) scaled by ``s^{-1/2}`` (``s`` the score scale, √d_head) so that ``q̃_i · k̃_j`` is the
    attention score ``x_iᵀ W_Q W_Kᵀ x_j / s``:

    * heat kernel: :func:`graph_laplacian` on the 2N points ``{q̃_i} ∪ {k̃_j}`` (α = 1, bandwidth
      ``ε = f · ε_rule``, f in ``eps_factors``), ``H_t = exp(−tL)``, query rows × key columns,
      causal mask applied, rows renormalised; t on a log grid of ``n_t`` values
      ``4t/ε ∈ [10⁻², 10^{2.5}]`` (random-walk steps);
    * Gaussian baseline: ``exp(−‖q̃_i − k̃_j‖²/σ)``, masked, rows renormalised; σ on a log grid of
      ``n_sigma`` values around the median masked squared distance (× 10^{±2.5});

    both chosen by the smallest mean row KL(attention ‖ kernel) over query rows with ≥ 2 keys.
    The manifold is estimated from all the text's queries and keys (the space, not the causal
    prefix); the causal mask acts on the kernel (encoders: no mask).

    Args:
        model: a TransformerLens model (decoder or encoder).
        inputs: one text or token ids (``text=`` is its deprecated name).
        layers: a block index (→ one :class:`HeatAttention`), or a sequence of them (→ a list, one
            per layer, in the order given sorted); negative counts from the end (``layer=`` is its
            deprecated name).
        heads: head indices (default all).
        k: neighbour rank of the bandwidth rule.
        eps_factors: multiples of the rule's ε to try.
        n_t, n_sigma: grid sizes.
    """
    info = _compat.check_model(model)
    layer_list = check_layers(layers, info.n_layers)
    tokens, _ = _compat.tokenize(model, inputs, info)
    if tokens.shape[0] != 1:
        raise bad_arg("inputs", inputs, "one text or one sequence of token ids")
    N = tokens.shape[1]
    check_int("k", k, minimum=1)
    if N <= k + 1:
        raise bad_arg("inputs", inputs, f"more than k+1={k + 1} tokens (got {N}) for the bandwidth rule")
    n_heads = int(model.cfg.n_heads)
    heads = list(range(n_heads)) if heads is None else list(heads)
    if not heads or not all(isinstance(h, int) and 0 <= h < n_heads for h in heads):
        raise bad_arg("heads", heads, f"head indices in [0, {n_heads})")
    factors = torch.as_tensor(list(eps_factors), dtype=torch.float64)
    if factors.dim() != 1 or len(factors) == 0 or bool((factors <= 0).any()):
        raise bad_arg("eps_factors", eps_factors, "a non-empty list of positive floats")
    for name, v in (("n_t", n_t), ("n_sigma", n_sigma)):
        check_int(name, v, minimum=2)
    if not isinstance(layers, int):  # a sequence: one result per layer, every argument checked above
        kw = dict(heads=heads, k=k, eps_factors=eps_factors, n_t=n_t, n_sigma=n_sigma)
        return [attention_vs_heat_kernel(model, inputs, layer, **kw) for layer in layer_list]
    layer = layer_list[0]

    require(model, "attention_vs_heat_kernel", scores=True)  # MLA, ALiBi, soft-capping: q·k/s is not the score
    q, kk, pattern = _qk_and_pattern(model, tokens, layer, info)
    scale = architecture(model).attn_scale  # the model's true divisor (HF attention module / config)
    causal = not info.encoder
    valid = torch.ones(N, N, dtype=torch.bool).tril() if causal else torch.ones(N, N, dtype=torch.bool)
    rows = (valid.sum(-1) >= 2).to(torch.float64)
    qs, ks = q[:, heads] / math.sqrt(scale), kk[:, heads] / math.sqrt(scale)  # [N, H, d]
    A = pattern[heads]  # [H, N, N]
    A = _normalise(A, valid)
    H = len(heads)

    scores = torch.einsum("qhd,khd->hqk", qs, ks)
    qk_err = (scores.masked_fill(~valid, float("-inf")).softmax(-1) - A).abs().amax((-1, -2))
    tol = QK_TOL if _compat.forward_dtype(model).itemsize >= 4 else QK_TOL_LOW_PRECISION
    if float(qk_err.max()) > tol:
        worst = heads[int(qk_err.argmax())]
        raise TlgeomError(
            f"attention_vs_heat_kernel: layer {layer}: softmax(q·k/s + mask) with s={scale:.4g} "
            f"({architecture(model).attn_scale_source}) from the hooked q/k differs from the model's hook_pattern "
            f"by up to {float(qk_err.max()):.3g} (head {worst}; tolerance {tol:g}): the q/k cloud does not produce "
            "this attention (pre-rotary hooks, a sliding window shorter than the text, or an extra score term), "
            "so a kernel fitted on it would describe something else"
        )

    # Gaussian baseline, all heads and σ at once: [H, S, N, N]
    D2 = (qs.pow(2).sum(-1).T[:, :, None] + ks.pow(2).sum(-1).T[:, None, :] - 2 * scores).clamp_min(0)
    med = torch.stack([D2[h][valid].median() for h in range(H)]).clamp_min(1e-12)
    sig = med[:, None] * torch.logspace(-2.5, 2.5, n_sigma, dtype=torch.float64)[None]
    Gs = _normalise(
        torch.exp(
            -(D2[:, None] - D2.masked_fill(~valid, float("inf")).amin(-1, keepdim=True)[:, None])
            / sig[:, :, None, None]
        ),
        valid,
    )
    klG = _row_kl(A[:, None], Gs, valid, rows)  # [H, S]
    bs = klG.argmin(-1)
    ar = torch.arange(H)
    gauss, kl_gauss, best_sigma = Gs[ar, bs], klG[ar, bs], sig[ar, bs]

    # heat kernel: one eigendecomposition per (head, ε), every t from it
    taus = torch.logspace(-2, 2.5, n_t, dtype=torch.float64)
    heat = torch.empty(H, N, N, dtype=torch.float64)
    kl_heat = torch.empty(H, dtype=torch.float64)
    best_t = torch.empty(H, dtype=torch.float64)
    best_eps = torch.empty(H, dtype=torch.float64)
    for i in range(H):  # heads one at a time bounds memory to [E, T, N, N]
        Z = torch.cat([qs[:, i], ks[:, i]], 0)  # [2N, d]
        eps = bandwidth(Z, k) * factors  # [E]
        lap = graph_laplacian(Z.expand(len(factors), -1, -1), eps)
        mu, V = lap._decomp()
        left = (V / lap.sqrt_deg[..., :, None])[:, :N]  # query rows
        right = (V * lap.sqrt_deg[..., :, None])[:, N:]  # key columns
        E = torch.exp(-taus[None, :, None] * (1 - mu)[:, None, :])  # [E, T, 2N]  (t = τ ε / 4)
        Hqk = _normalise(torch.einsum("eim,etm,ejm->etij", left, E, right), valid)
        kl = _row_kl(A[i], Hqk, valid, rows)  # [E, T]
        e, t = divmod(int(kl.argmin()), n_t)
        heat[i], kl_heat[i] = Hqk[e, t], kl[e, t]
        best_eps[i], best_t[i] = eps[e], taus[t] * eps[e] / 4

    unif = _normalise(torch.ones(N, N, dtype=torch.float64), valid)
    kl_unif = _row_kl(A, unif, valid, rows)
    return HeatAttention(
        forward_dtype=_compat.dtype_name(_compat.forward_dtype(model)),
        layer=layer,
        heads=heads,
        str_tokens=_compat.str_tokens(model, tokens, torch.ones_like(tokens, dtype=torch.bool))[0],
        causal=causal,
        attention=A,
        heat=heat,
        gauss=gauss,
        kl_heat=kl_heat,
        kl_gauss=kl_gauss,
        kl_uniform=kl_unif,
        spearman_heat=torch.stack([row_spearman(A[h], heat[h], valid) for h in range(H)]),
        spearman_gauss=torch.stack([row_spearman(A[h], gauss[h], valid) for h in range(H)]),
        best_t=best_t,
        best_eps=best_eps,
        best_sigma=best_sigma,
        qk_err=qk_err,
    )
