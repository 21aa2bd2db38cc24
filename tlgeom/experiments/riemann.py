"""Riemannian geometry on a model: model charts and the effective metric of attention heads.

The pullback metric, Christoffel symbols, curvature, geodesics and ``head_effective_metric`` (their
formulas and index conventions) are pure maths in ``tlgeom.geometry.riemann``; this module builds
charts through the model (``model_chart``: a token's state at point ``l0`` moved in a k-dimensional
subspace and mapped to point ``l1``, its metric from k JVPs) and the per-head signature with the
untrained model as reference (``head_metric_signature``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch.func import jacfwd, jvp

from tlgeom._args import check_choice, check_init_seeds, check_int
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.geometry.riemann import head_effective_metric
from tlgeom.models import _compat
from tlgeom.stats.pvalues import tests_table

# ---------------------------------------------------------------------------------------------
# model charts


def _orthonormal(B: torch.Tensor) -> torch.Tensor:
    Q, R = torch.linalg.qr(B.to(torch.float64))
    if bool((R.diagonal().abs() <= 1e-10 * R.diagonal().abs().max().clamp_min(1e-300)).any()):
        raise bad_arg("basis", f"Tensor(shape={tuple(B.shape)})", "linearly independent directions")
    return Q


def chart_basis(
    model: Any, basis: Any = "embedding", k: int = 8, *, states: torch.Tensor | None = None
) -> Float[torch.Tensor, "d_model k"]:
    """An orthonormal ``d_model × k`` basis for a model chart.

    Args:
        model: a TransformerLens model (for ``W_E`` and the tokenizer).
        basis: ``"embedding"`` (top-k principal directions of the token-embedding cloud ``W_E``,
            centred), ``"context"`` (top-k principal directions of ``states``, e.g. the
            paragraph's residual states at the chart's input point), a list of k token strings
            (the span of their embedding vectors, orthonormalised), or a tensor ``[d_model, k]``
            (orthonormalised).
        k: chart dimension (ignored for a list or tensor, whose size sets it).
        states: ``[N, d_model]`` points for ``basis="context"``.
    """
    d = int(model.cfg.d_model)
    if isinstance(basis, torch.Tensor):
        if basis.dim() != 2 or basis.shape[0] != d or not 1 <= basis.shape[1] <= d:
            raise bad_arg("basis", f"Tensor(shape={tuple(basis.shape)})", f"a [d_model={d}, k] tensor")
        return _orthonormal(basis.detach().cpu())
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d:
        raise bad_arg("k", k, f"an int in [1, d_model={d}]")
    if isinstance(basis, (list, tuple)) and basis and all(isinstance(s, str) for s in basis):
        W_E = model.W_E.detach().cpu().to(torch.float64)
        ids = []
        for s in basis:
            t = model.tokenizer.encode(s, add_special_tokens=False)
            if len(t) != 1:
                raise bad_arg("basis", s, "strings that are single tokens of this model's tokenizer")
            ids.append(t[0])
        return _orthonormal(W_E[ids].T)
    if basis == "embedding":
        W_E = model.W_E.detach().cpu().to(torch.float64)
        X = W_E - W_E.mean(0)
    elif basis == "context":
        if not isinstance(states, torch.Tensor) or states.dim() != 2 or states.shape[-1] != d:
            raise bad_arg(
                "states",
                None if states is None else f"Tensor(shape={tuple(states.shape)})",
                f"a [N, d_model={d}] tensor of points when basis='context'",
            )
        X = states.detach().cpu().to(torch.float64)
        X = X - X.mean(0)
    else:
        raise bad_arg("basis", basis, "'embedding', 'context', a list of single-token strings or a [d_model, k] tensor")
    if k > min(X.shape):
        raise bad_arg("k", k, f"at most {min(X.shape)} principal directions of this cloud")
    # principal directions = right singular vectors; eigh of the k-by-k ... here d×d Gram is avoided:
    _, _, V = torch.svd_lowrank(X, q=min(k + 8, min(X.shape)), niter=4)
    return _orthonormal(V[:, :k])


class LayerChart:
    """A token's residual state moved in a k-dim subspace at point ``l0``, read at point ``l1``.

    ``f(u) = state_{l1}[pos]`` when ``state_{l0}[pos]`` is replaced by ``x0 + B u`` (``B`` the
    orthonormal basis, ``x0`` the clean state) and every other position's input is the clean
    one. Points are trajectory points (0 = input of block 0, l = output of block l−1; see
    :func:`tlgeom.record_trajectories`). The map runs the model with two hooks (replace at
    ``l0``, read at ``l1``) and ``stop_at_layer`` where the API has it, so it works on the
    TransformerBridge (TransformerLens 3.9 and 4.x) and HookedTransformer alike, and every
    hook is removed on every path.

    Call it on one point ``u[k]`` (it then composes with ``torch.func`` transforms:
    :func:`pullback_metric`, :func:`christoffel_symbols`, :func:`curvature`, :func:`geodesic`)
    or on a batch ``u[b, k]`` (one batched forward pass). Outputs are float64; derivatives are
    exact forward-mode autodiff in the model's dtype.
    """

    def __init__(
        self,
        model: Any,
        tokens: torch.Tensor,
        pos: int,
        l0: int,
        l1: int,
        basis: torch.Tensor,
        x0: torch.Tensor,
        hook_names: Sequence[str],
    ):
        self.model, self.tokens, self.pos, self.l0, self.l1 = model, tokens, pos, l0, l1
        self.basis = basis.to(torch.float64)
        self.x0 = x0.to(torch.float64)
        self.in_hook, self.out_hook = hook_names[l0], hook_names[l1]
        self.info = _compat.check_model(model)
        self.device = _compat.model_device(model)
        self.dtype = next(iter(model.parameters())).dtype
        self._B = self.basis.to(self.device, self.dtype)

    @property
    def k(self) -> int:
        return self.basis.shape[1]

    def _forward(self, U: torch.Tensor) -> torch.Tensor:
        b = U.shape[0]
        store: dict[str, torch.Tensor] = {}
        pos = self.pos

        def replace(act, hook=None):
            onehot = torch.zeros(act.shape[1], dtype=act.dtype, device=act.device)
            onehot[pos] = 1
            delta = U.to(act.dtype) @ self._B.T  # [b, d]: only k-dim vectors, never d×d
            return act + onehot[None, :, None] * delta[:, None, :]

        def read(act, hook=None):
            store["y"] = act[:, pos]
            return act

        toks = self.tokens.to(self.device).expand(b, -1)
        kwargs: dict[str, Any] = {}
        if self.info.api != "hooked_encoder":
            kwargs["return_type"] = None
            if self.l1 < self.info.n_layers:
                kwargs["stop_at_layer"] = self.l1
        with self.model.hooks(fwd_hooks=[(self.in_hook, replace), (self.out_hook, read)]):
            self.model(toks, **kwargs)
        return store["y"].to(torch.float64)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if not isinstance(u, torch.Tensor) or u.shape[-1] != self.k or u.dim() not in (1, 2):
            raise bad_arg("u", getattr(u, "shape", u), f"chart coordinates [k={self.k}] or [batch, k]")
        u = u.to(self.device)
        return self._forward(u[None])[0] if u.dim() == 1 else self._forward(u)

    def jacobian(self, u: torch.Tensor | None = None) -> Float[torch.Tensor, "k d_model"]:
        """``Jᵀ`` at ``u`` (default 0): row i is ``∂f/∂u_i``, from k JVPs in one batched forward pass."""
        u = torch.zeros(self.k, dtype=torch.float64) if u is None else u.to(torch.float64)
        U = u.to(self.device)[None].expand(self.k, -1).contiguous()
        JT = jvp(self._forward, (U,), (torch.eye(self.k, dtype=torch.float64, device=self.device),))[1]
        return JT.detach()

    def metric(self, u: torch.Tensor | None = None) -> Float[torch.Tensor, "k k"]:
        """Pullback metric ``JᵀJ`` at ``u`` (default 0) from k JVPs; float64 ``[k, k]``."""
        JT = self.jacobian(u)
        return JT @ JT.T

    def metric_fn(self, u: torch.Tensor) -> torch.Tensor:
        """``g(u)`` for one point, composable with torch.func (for :func:`curvature` etc.)."""
        J = jacfwd(self.__call__)(u)
        return J.T @ J

    def __repr__(self) -> str:
        return (
            f"LayerChart(pos={self.pos}, l0={self.l0}, l1={self.l1}, k={self.k}, "
            f"in={self.in_hook!r}, out={self.out_hook!r})"
        )


def model_chart(
    model: Any, inputs: Any, pos: int, l0: int, l1: int, basis: Any = "embedding", k: int = 8
) -> LayerChart:
    """A :class:`LayerChart`: token ``pos`` of ``inputs`` moved in a k-dim subspace at point ``l0``,
    mapped to point ``l1`` with the rest of the context fixed.

    Args:
        model: TransformerBridge (TL 3.9/4.x), HookedTransformer or HookedEncoder.
        inputs: one text or token ids ``[pos]`` / ``[1, pos]``.
        pos: the moved token's position (negative counts from the end).
        l0, l1: trajectory points, ``0 ≤ l0 < l1 ≤ n_layers`` (0 = block 0's input).
        basis: see :func:`chart_basis` (``"context"`` uses the text's states at ``l0``).
        k: chart dimension.
    """
    from tlgeom.models.trajectory import record_trajectories

    info = _compat.check_model(model)
    for name, v in (("l0", l0), ("l1", l1)):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= info.n_layers:
            raise bad_arg(name, v, f"a trajectory point in [0, n_layers={info.n_layers}]")
    if l1 <= l0:
        raise bad_arg("l1", l1, f"a point after l0={l0}")
    tokens, mask = _compat.tokenize(model, inputs, info)
    if tokens.shape[0] != 1:
        raise bad_arg("inputs", inputs, "one text or one sequence of token ids")
    P = tokens.shape[1]
    if not isinstance(pos, int) or isinstance(pos, bool) or not -P <= pos < P:
        raise bad_arg("pos", pos, f"a position in [-{P}, {P})")
    pos = pos % P
    if not isinstance(basis, (torch.Tensor, list, tuple)):  # the basis and k checked before the pass
        check_choice("basis", basis, ("embedding", "context"))
        check_int("k", k, minimum=1, maximum=int(model.cfg.d_model))
    traj = record_trajectories(model, tokens)
    B = chart_basis(model, basis, k, states=traj.states[0, :, l0])
    return LayerChart(model, tokens, pos, l0, l1, B, traj.states[0, pos, l0], traj.hook_names)


def _expanded_qk(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    W_Q, W_K = model.W_Q.detach(), model.W_K.detach()
    if W_K.shape[1] != W_Q.shape[1]:  # grouped-query attention: Bridge keeps n_kv heads
        if W_Q.shape[1] % W_K.shape[1]:
            raise TlgeomError(f"model: {W_Q.shape[1]} query heads are not a multiple of {W_K.shape[1]} key heads")
        W_K = W_K.repeat_interleave(W_Q.shape[1] // W_K.shape[1], dim=1)
    return W_Q, W_K


@dataclass
class HeadSignature(Result):
    """Eigen-spectrum of each head's effective metric ``S = sym(W_Q W_Kᵀ)/√d_head``, against the
    same architecture untrained.

    "The head metrics are indefinite" is no finding: ``S = ½ [W_Q W_K] [[0, I], [I, 0]] [W_Q W_K]ᵀ``
    is congruent to a form of signature (d_head, d_head), so by Sylvester's law of inertia S has at
    most d_head positive and at most d_head negative eigenvalues, and generic (e.g. random) weights
    give exactly d_head of each. What training can change is how the spectrum's mass splits:
    the positive mass ``Σλ₊/Σ|λ|`` (1 = an inner product, 0.5 = balanced, as random weights give
    up to noise). :meth:`tests` compares the trained heads' positive mass with the untrained
    model's heads (:func:`tlgeom.models.untrained.untrained_model`, same seed-able re-initialisation).

    Attributes:
        eigenvalues: ``[layer, head, 2·d_head]`` non-zero spectrum of S (ascending).
        n_pos, n_neg: ``[layer, head]`` eigenvalues above ``rtol·max|λ|`` / below ``−rtol·max|λ|``
            (≤ d_head each by construction, see above).
        pos_mass: ``[layer, head]`` ``Σ λ₊ / Σ |λ|`` (1 = positive semi-definite, an inner
            product; 0.5 = balanced indefinite form; 0 = negative).
        d_head, rtol: as used.
        layers: the model layer of each row (default: all layers, in order).
        reference_pos_mass: ``[layer, head]`` the same for the untrained model, ``[init, layer, head]`` for
            several initialisations (None: not computed).
        seed: the untrained model's seed (also seeds the bootstrap CI).
        alpha: level of :meth:`tests`.
    """

    eigenvalues: torch.Tensor
    n_pos: torch.Tensor
    n_neg: torch.Tensor
    pos_mass: torch.Tensor
    d_head: int
    rtol: float
    layers: list[int] | None = None
    reference_pos_mass: torch.Tensor | None = None
    seed: int | None = 0
    alpha: float = 0.05
    n_boot: int = 9999

    result_name = "head_signature"

    @property
    def references(self) -> torch.Tensor | None:
        """``[init, layer, head]``: the untrained reference's positive mass, one slice per initialisation."""
        ref = self.reference_pos_mass
        if ref is None:
            return None
        ref = ref.detach().cpu().double()
        return ref[None] if ref.dim() == 2 else ref

    def tests(self):
        """Training against the untrained reference: the test with layers as the units, and the heads pooled.

        ``pos_mass_by_layer`` (the test, ``inference_unit = "layer"``): per layer, the trained heads' mean
        positive mass minus the untrained model's same layer (the architecture pairs them), tested by sign
        flips across layers (two-sided, :func:`~tlgeom.stats.pvalues.sign_flip_test`). Heads of one layer
        share its input and, with grouped-query attention, their key matrices: they are not independent
        units, layers are closer to it. Against several initialisations the test must hold against each:
        ``p`` is the largest per-initialisation p (intersection-union), ``effect`` the mean over them, with
        their range in the note. ``informative`` is False when the layers are too few for any p to reach
        ``alpha`` (``2^(1-L)``). CI: bootstrap over layers (``n_boot`` resamples, seeded).

        ``pos_mass`` (``inference_unit = "head"``): the mean over every head, trained and untrained, and its
        difference; descriptive only (no p: treating heads as independent would be pseudo-replication).
        Without a reference, every test column is NaN and ``reject`` False. ``space`` is ``"normalized"``:
        S acts on the normalised attention input.
        """
        import pandas as pd

        from tlgeom.stats.pvalues import bootstrap_ci, min_pvalue_sign_flip, sign_flip_test

        nan = float("nan")
        pm = self.pos_mass.detach().cpu().double()
        base = {"null": "untrained", "space": "normalized", "null_mean": nan, "effect": nan, "ci_low": nan}
        base.update(ci_high=nan, p=nan, p_adjusted=nan, reject=False, informative=True, note="")
        layer = {**base, "statistic": "pos_mass_by_layer", "observed": float(pm.mean(-1).mean())}
        layer.update(n_texts=int(pm.shape[0]), inference_unit="layer")
        head = {**base, "statistic": "pos_mass", "observed": float(pm.mean()), "n_texts": int(pm.numel())}
        head.update(inference_unit="head", informative=False, note="descriptive: heads are not independent units")
        refs = self.references
        if refs is not None:
            obs_l, ref_l = pm.mean(-1).numpy(), refs.mean(-1).numpy()  # [L], [K, L]
            diffs = obs_l[None] - ref_l
            d = diffs.mean(0)
            L, K = d.size, diffs.shape[0]
            layer.update(null_mean=float(ref_l.mean()), effect=float(d.mean()))
            lo, hi = bootstrap_ci(d, confidence=1 - self.alpha, n_resamples=self.n_boot, seed=self.seed)
            layer.update(ci_low=lo, ci_high=hi)
            if L > 1:
                layer["p"] = max(sign_flip_test(x, "two-sided", seed=self.seed) for x in diffs)
            floor = min_pvalue_sign_flip(L, "two-sided")
            if not floor <= self.alpha:
                layer["informative"] = False
                layer["note"] = f"cannot reject at any data: {L} layers give p >= {floor:.3g} > α = {self.alpha}"
            if K > 1:
                each = diffs.mean(1)
                spread = (
                    f"against {K} initialisations: effect = mean over them (each from {each.min():.3g} to "
                    f"{each.max():.3g}); p = the largest of their sign-flip p-values"
                )
                layer["note"] = f"{layer['note']}; {spread}" if layer["note"] else spread
            head.update(null_mean=float(refs.mean()), effect=float(pm.mean() - refs.mean()))
        rows = pd.DataFrame([layer, head])
        rows["p_adjusted"] = rows["p"]  # a family of one test
        rows["reject"] = (rows["p_adjusted"] <= self.alpha) & rows["informative"].astype(bool)
        return tests_table(rows, "layer")

    def headline(self) -> dict:
        """Positive mass (mean, median, range) trained vs untrained, the test, and the signature counts
        (reported only as a check: ≤ d_head each by construction)."""
        t = self.tests().iloc[0]  # the layer-level test
        pm = self.pos_mass.detach().cpu().double()
        h = {
            "n_layers": int(pm.shape[0]),
            "n_heads": int(pm.shape[1]),
            "d_head": self.d_head,
            "pos_mass_mean": float(pm.mean()),
            "pos_mass_median": float(pm.median()),
            "pos_mass_min": float(pm.min()),
            "pos_mass_max": float(pm.max()),
            "n_pos_median": float(self.n_pos.double().median()),
            "n_neg_median": float(self.n_neg.double().median()),
            "untrained_pos_mass_mean": None,
            "untrained_pos_mass_median": None,
        }
        refs = self.references
        if refs is not None:
            h["untrained_pos_mass_mean"] = float(refs.mean())
            h["untrained_pos_mass_median"] = float(refs.median())
            h["n_inits"] = int(refs.shape[0])
        h.update(
            {
                "effect": t.effect,
                "ci_low": t.ci_low,
                "ci_high": t.ci_high,
                "p": t.p,
                "alpha": self.alpha,
                "reject": bool(t.reject),
                "seed": self.seed,
            }
        )
        return jsonable(h)

    def summary(self) -> str:
        h = self.headline()
        lines = [
            f"head metrics sym(W_Q W_Kᵀ)/√d_head: {h['n_layers']} layers × {h['n_heads']} heads, d_head {h['d_head']}; "
            f"positive mass Σλ₊/Σ|λ| mean {h['pos_mass_mean']:.3f} (median {h['pos_mass_median']:.3f}, range "
            f"{h['pos_mass_min']:.3f}–{h['pos_mass_max']:.3f}; 1 = inner product, 0.5 = balanced)"
        ]
        if h["untrained_pos_mass_mean"] is None:
            lines.append("no untrained reference computed: the positive mass is not tested")
        else:
            ci = (
                f", {1 - self.alpha:.0%} bootstrap CI {h['ci_low']:+.3f} to {h['ci_high']:+.3f}"
                if h["ci_low"] is not None
                else ""
            )
            p = "undefined" if h["p"] is None else f"{h['p']:.3g}"
            lines.append(
                f"untrained reference ({h['n_inits']} initialisation(s) from seed {self.seed}): mean "
                f"{h['untrained_pos_mass_mean']:.3f}; trained − untrained per layer {h['effect']:+.3f}{ci}; sign flips "
                f"across the {h['n_layers']} layers p = {p} → "
                + ("training SHIFTS" if h["reject"] else "no evidence that training shifts")
                + f" the positive mass (α = {self.alpha}; layers are the units, not heads)"
            )
        lines.append(
            f"signature: median {h['n_pos_median']:g}+/{h['n_neg_median']:g}− of {2 * self.d_head} eigenvalues; "
            f"at most {self.d_head} of each sign by construction, so 'indefinite' is not a finding"
        )
        return "\n".join(lines)

    @property
    def layer_ids(self) -> list[int]:
        return list(range(self.n_pos.shape[0])) if self.layers is None else list(self.layers)

    def to_frame(self):
        import numpy as np
        import pandas as pd

        L, H = self.n_pos.shape
        l, h = np.meshgrid(np.asarray(self.layer_ids), np.arange(H), indexing="ij")
        lam = self.eigenvalues
        return pd.DataFrame(
            {
                "layer": l.ravel(),
                "head": h.ravel(),
                "n_pos": self.n_pos.numpy().ravel(),
                "n_neg": self.n_neg.numpy().ravel(),
                "pos_mass": self.pos_mass.numpy().ravel(),
                "lambda_max": lam[..., -1].numpy().ravel(),
                "lambda_min": lam[..., 0].numpy().ravel(),
            }
        )

    def plot(self, ax=None):
        """Heat map of the positive mass ``Σλ₊/Σ|λ|`` per layer × head; returns the Figure."""
        fig, ax = new_axes(ax, (6, 5))
        im = ax.imshow(self.pos_mass.numpy(), aspect="auto", cmap="RdBu_r", vmin=0, vmax=1)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ids = self.layer_ids
        step = max(1, len(ids) // 15)
        ax.set_yticks(range(0, len(ids), step))
        ax.set_yticklabels([str(i) for i in ids[::step]])
        ref = self.reference_pos_mass
        extra = f"; untrained mean {float(ref.double().mean()):.3f}" if ref is not None else ""
        ax.set_title(f"positive mass of sym(W_Q W_Kᵀ) (0.5 = balanced{extra})", fontsize=9)
        fig.colorbar(im, ax=ax)
        return fig


def head_metric_signature(
    model: Any,
    layers: Sequence[int] | None = None,
    rtol: float = 1e-6,
    *,
    reference: bool = True,
    seed: int = 0,
    alpha: float = 0.05,
    init_seeds: int | Sequence[int] | None = None,
) -> HeadSignature:
    """Eigen-signature of every head's effective metric, ``S = ½ (W_Q W_Kᵀ + W_K W_Qᵀ)/√d_head``.

    The score ``x_iᵀ W_Q W_Kᵀ x_j/√d_head`` is a bilinear form on the attention input (the
    LN/RMSNorm output); its symmetric part S is the "effective metric" a head induces. Grouped-query
    models are handled (each query head paired with its key head). Biases (an affine part) and rotary
    rotations (S is the form at relative offset 0) are not included.

    With ``reference=True`` (default) the same is computed on the untrained model
    (:func:`tlgeom.models.untrained.untrained_model` with ``seed``; a deep copy, re-initialised) and
    :meth:`HeadSignature.tests` compares the positive mass, layers as the units, at level ``alpha``.
    ``init_seeds``: several initialisations (a count from ``seed`` on, or the seeds); the test must hold
    against each.
    """
    from tlgeom._args import check_alpha, check_bool, check_seed

    check_bool("reference", reference)
    check_seed(seed, allow_none=False)
    check_alpha(alpha)
    _compat.check_model(model)
    W_Q, W_K = _expanded_qk(model)
    idx = list(range(W_Q.shape[0]))
    if layers is not None:
        idx = list(layers)
        if not idx or not all(isinstance(l, int) and 0 <= l < W_Q.shape[0] for l in idx):
            raise bad_arg("layers", layers, f"layer indices in [0, {W_Q.shape[0]})")
        W_Q, W_K = W_Q[idx], W_K[idx]
    if not (isinstance(rtol, float) and 0 < rtol < 1):
        raise bad_arg("rtol", rtol, "a float in (0, 1)")
    lam, _ = head_effective_metric(W_Q.cpu(), W_K.cpu())
    tol = rtol * lam.abs().amax(-1, keepdim=True)
    n_pos = (lam > tol).sum(-1)
    n_neg = (lam < -tol).sum(-1)
    pos_mass = lam.clamp_min(0).sum(-1) / lam.abs().sum(-1)
    seeds = check_init_seeds(init_seeds, first=seed)
    ref_mass = None
    if reference:
        from tlgeom.models.untrained import untrained_model

        masses = []
        for s in seeds:
            U_Q, U_K = _expanded_qk(untrained_model(model, seed=s))
            ref_lam, _ = head_effective_metric(U_Q[idx].cpu(), U_K[idx].cpu())
            masses.append(ref_lam.clamp_min(0).sum(-1) / ref_lam.abs().sum(-1))
        ref_mass = masses[0] if len(masses) == 1 else torch.stack(masses)
    return HeadSignature(
        eigenvalues=lam,
        n_pos=n_pos,
        n_neg=n_neg,
        pos_mass=pos_mass,
        d_head=int(W_Q.shape[-1]),
        rtol=rtol,
        layers=idx,
        reference_pos_mass=ref_mass,
        seed=seed,
        alpha=alpha,
    )
