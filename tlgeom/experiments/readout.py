"""What the model reads out where its trajectories bend: the logit lens at every trajectory point.

Readout (:func:`logit_lens`)
----------------------------
Every trajectory point ``x`` (embedding, each block's output; ``points="sublayer"`` adds the
mid-block points) is decoded as the model would decode its last layer,
``logits = unembed(ln_final(x))`` (the final norm with statistics recomputed per vector, ``W_U``,
``b_U`` and the adapter's output transform), by TransformerLens' own
``transformer_lens.tools.analysis.logit_lens.logit_readout`` (one full-vocabulary readout per vector,
in chunks; top-k, entropy and rank are taken from those logits). At the last point this *is* the
model's output (tested against the model's own logits). Per point: the top-``k`` tokens and their
probabilities, the entropy of the softmax (nats), and the zero-based rank of the actual next token
(0 = the model's top guess; NaN at the last position, which has no next token). A model without a
language-model head (a bare encoder such as minilm-l6) is refused with a :class:`~tlgeom.TlgeomError`.

Do readout changes coincide with sharp turns? (:func:`curvature_vs_readout`)
---------------------------------------------------------------------------
At layer vertex ``v`` (the turn at point ``v + 1``, between the steps ``v → v+1`` and ``v+1 → v+2``)
two readout events, both across the two steps that make the angle:

* ``top1_change``: ``top1(v + 2) ≠ top1(v)`` (the decoded top-1 token changes);
* ``rank_gain``: ``log2(1 + rank(v)) − log2(1 + rank(v + 2))`` of the actual next token (> 0: it
  moved up, its rank "dropped").

A turn is *sharp* when its angle is in the top ``sharp_quantile`` of that text's angles at that
vertex (so layer-wide differences in angle and in readout rate cannot create an association). Per
text ``t``: ``S_t = mean over vertices of [mean(event | sharp) − mean(event | not sharp)]``
(vertices with an empty group skipped; the first ``skip_first`` positions, BOS, and the last
position for ranks left out).

The same association **adjusted for its confounds** (:func:`adjusted_association`, statistics
``top1_change_adjusted`` and ``rank_gain_adjusted``, ``adjusted_for`` naming them): per text, the
coefficient of "sharp" in a least-squares fit of the event on sharp, a fixed effect per vertex, the log
norms of the two steps that make the angle (a large step both bends and changes the readout), the
position and the token's frequency (:func:`readout_covariates`). The unadjusted rows stay, labelled.

Tests (the text is the unit, :meth:`ReadoutTest.tests`):

* null ``"zero"``: ``S_t`` has mean 0 (no association within texts): one-sided sign-flip test
  across texts (:func:`tlgeom.stats.pvalues.sign_flip_test`), 95 % bootstrap CI of the mean;
* null ``"untrained"``: ``S_t(trained) − S_t(untrained)`` has mean 0 (the untrained model, read
  out through its own head, on the same texts): paired sign-flip test. With several initialisations
  (``init_seeds``) the effect is against their mean and ``p`` is the largest of the per-initialisation
  p-values (it must hold against every one).

Holm across the eight rows (four unadjusted, four adjusted). Evidence against "the model changes its mind where it bends": no row
rejects, or only the zero null rejects while the untrained model shows as much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int

from tlgeom._args import (
    check_alpha,
    check_bool,
    check_correction,
    check_init_seeds,
    check_int,
    check_points,
    check_seed,
    check_space,
    check_texts,
)
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_panels
from tlgeom.models._compat import takes_device
from tlgeom.models.load import model_label
from tlgeom.stats.pvalues import tests_table

__all__ = ["Readout", "logit_lens", "ReadoutTest", "curvature_vs_readout", "EVENTS"]

EVENTS = ("top1_change", "rank_gain")


def require_lm_head(model: Any) -> None:
    """A TlgeomError unless ``model`` has a language-model head (final norm + unembedding) to read out."""
    from tlgeom.models import _compat

    info = _compat.check_model(model)
    if info.encoder or getattr(model, "unembed", None) is None or getattr(model, "W_U", None) is None:
        raise bad_arg(
            "model",
            model_label(model),
            "a model with a language-model head (final norm + unembedding); this one has none "
            "(a bare encoder such as minilm-l6 cannot be read out with the logit lens)",
        )


@dataclass
class Readout(Result):
    """The logit lens of one text at every trajectory point.

    Attributes:
        top_ids: ``[pos, point, k]`` top-k token ids; top_probs: their probabilities.
        entropy: ``[pos, point]`` entropy of the readout distribution (nats).
        next_rank: ``[pos, point]`` zero-based rank of the actual next token (NaN at the last position).
        str_tokens: the text's tokens; top1_str: ``[pos][point]`` decoded top-1 tokens.
        point_labels: the trajectory points.
    """

    top_ids: Int[torch.Tensor, "pos point k"]
    top_probs: Float[torch.Tensor, "pos point k"]
    entropy: Float[torch.Tensor, "pos point"]
    next_rank: Float[torch.Tensor, "pos point"]
    str_tokens: list[str]
    top1_str: list[list[str]]
    point_labels: list[str]

    result_name = "readout"

    @property
    def top1(self) -> torch.Tensor:
        return self.top_ids[..., 0]

    def to_frame(self):
        """One row per (pos, point): token, top-1 token and probability, entropy, next-token rank."""
        import pandas as pd

        P, L = self.entropy.shape
        rows = []
        for p in range(P):
            for j in range(L):
                rows.append(
                    {
                        "pos": p,
                        "token": self.str_tokens[p],
                        "point": self.point_labels[j],
                        "top1": self.top1_str[p][j],
                        "top1_prob": float(self.top_probs[p, j, 0]),
                        "entropy": float(self.entropy[p, j]),
                        "next_rank": float(self.next_rank[p, j]),
                    }
                )
        return pd.DataFrame(rows)

    def headline(self) -> dict:
        last = self.next_rank[:-1, -1]
        return jsonable(
            {
                "n_tokens": len(self.str_tokens),
                "n_points": len(self.point_labels),
                "k": int(self.top_ids.shape[-1]),
                "median_entropy_by_point": self.entropy.nanmedian(0).values,
                "final_top1_accuracy": float((last == 0).double().mean()) if last.numel() else float("nan"),
            }
        )

    def summary(self) -> str:
        h = self.headline()
        return (
            f"logit lens: {h['n_tokens']} tokens × {h['n_points']} trajectory points; top-1 next-token accuracy at "
            f"the last point {h['final_top1_accuracy']:.2f}; median entropy from {h['median_entropy_by_point'][0]:.2f} "
            f"(embedding) to {h['median_entropy_by_point'][-1]:.2f} nats (last point)"
        )

    def plot(self, ax=None):
        """Heatmap of the next token's log2(1 + rank) over tokens × points, top-1 tokens written in. Returns the Figure."""
        from tlgeom._result import new_axes

        P, L = self.entropy.shape
        fig, ax = new_axes(ax, (min(3 + 0.5 * L, 18), max(4.0, 0.22 * P + 1.5)))
        im = ax.imshow(np.log2(1 + self.next_rank.numpy()), aspect="auto", cmap="viridis_r")
        if P * L <= 1500:
            for p in range(P):
                for j in range(L):
                    ax.text(j, p, repr(self.top1_str[p][j])[1:-1][:8], ha="center", va="center", fontsize=5)
        ax.set_yticks(range(P))
        ax.set_yticklabels([repr(t)[1:-1] for t in self.str_tokens], fontsize=6)
        ax.set_xticks(range(L))
        ax.set_xticklabels(self.point_labels, rotation=90, fontsize=7)
        fig.colorbar(im, ax=ax, label="log2(1 + rank of the next token)")
        ax.set_title("logit lens: decoded top-1 token at each point")
        return fig


@takes_device
def logit_lens(model: Any, inputs: Any, *, k: Any = 5, points: str = "resid", trajectories: Any = None) -> Readout:
    """Decode every trajectory point of one text with the logit lens (module docstring).

    Args:
        model: a TransformerLens model with a language-model head (TransformerBridge).
        inputs: one text or token ids ``[pos]`` / ``[1, pos]``.
        k: how many top tokens to keep per point.
        points: ``"resid"`` or ``"sublayer"``.
        trajectories: a :class:`~tlgeom.models.trajectory.Trajectories` of these inputs already
            recorded (saves the forward pass).

    Raises:
        TlgeomError: no LM head (an encoder), bad ``k`` / ``points`` / ``inputs``.
    """
    from tlgeom.models import _compat
    from tlgeom.models.trajectory import record_trajectories

    require_lm_head(model)
    check_int("k", k, minimum=1, maximum=int(model.cfg.d_vocab))
    check_points(points)
    if isinstance(inputs, (list, tuple)):
        raise bad_arg("inputs", inputs, "one text (or token ids [pos]); call once per text")
    try:
        from transformer_lens.tools.analysis.logit_lens import logit_readout
    except ImportError as exc:  # pragma: no cover - TransformerLens < 4.3
        raise TlgeomError("the logit lens needs TransformerLens >= 4.3 (transformer_lens.tools.analysis)") from exc
    traj = trajectories if trajectories is not None else record_trajectories(model, inputs, points)
    if traj.states.shape[0] != 1:
        raise bad_arg("inputs", inputs, "one text (or token ids [pos]); call once per text")
    x = traj.states[0]  # [pos, point, d]
    toks = traj.tokens[0]
    P, L, D = x.shape
    nxt = torch.cat([toks[1:], toks[-1:]]).to(x.device)[:, None].expand(P, L).reshape(-1)  # last: placeholder
    flat = x.reshape(P * L, D)
    top_ids = torch.empty(P * L, k, dtype=torch.long)
    top_probs = torch.empty(P * L, k, dtype=torch.float64)
    entropy = torch.empty(P * L, dtype=torch.float64)
    rank = torch.empty(P * L, dtype=torch.float64)
    rows = max(1, (1 << 24) // max(1, int(model.cfg.d_vocab)))  # ~16M logits per call
    try:
        for s in range(0, P * L, rows):
            # one full-vocabulary readout per vector: top-k, entropy and the next token's rank from it
            out = logit_readout(model, flat[s : s + rows], return_type="logits")
            logits = out.values.detach()
            tv, ti = logits.topk(k, dim=-1)
            lse = logits.to(torch.float64).logsumexp(-1, keepdim=True)
            top_ids[s : s + rows], top_probs[s : s + rows] = ti.cpu(), (tv.to(torch.float64) - lse).exp().cpu()
            entropy[s : s + rows] = out.entropy.detach().to(torch.float64).cpu()
            target = logits.gather(-1, nxt[s : s + rows, None].to(logits.device))
            rank[s : s + rows] = (logits > target).sum(-1).to(torch.float64).cpu()
    except (NotImplementedError, ValueError) as exc:
        raise bad_arg("model", type(model).__name__, f"a model the logit lens can read out ({exc})") from exc
    top_ids, top_probs = top_ids.reshape(P, L, k), top_probs.reshape(P, L, k)
    entropy, rank = entropy.reshape(P, L), rank.reshape(P, L)
    rank[-1] = float("nan")
    tok = model.tokenizer
    top1_str = [[_compat.token_string(tok, int(i)) for i in row] for row in top_ids[..., 0]]
    return Readout(
        top_ids=top_ids,
        top_probs=top_probs,
        entropy=entropy,
        next_rank=rank,
        str_tokens=_compat.str_tokens(model, traj.tokens, traj.mask)[0],
        top1_str=top1_str,
        point_labels=list(traj.point_labels),
    )


# ---------------------------------------------------------------------------------------------
# Association with sharp turns


def events(readout: Readout) -> dict[str, torch.Tensor]:
    """``[pos, vertex]`` readout events across each layer vertex (module docstring)."""
    t1 = readout.top1
    r = torch.log2(1 + readout.next_rank)
    return {
        "top1_change": (t1[:, 2:] != t1[:, :-2]).to(torch.float64),
        "rank_gain": r[:, :-2] - r[:, 2:],
    }


def association(angles: torch.Tensor, event: torch.Tensor, sharp_quantile: float) -> float:
    """``mean over vertices of [mean(event | sharp) − mean(event | not sharp)]``; sharp = angle in the
    top ``sharp_quantile`` of the vertex's angles (rows with NaN angle or event left out)."""
    diffs = []
    for v in range(angles.shape[1]):
        a, e = angles[:, v], event[:, v]
        ok = torch.isfinite(a) & torch.isfinite(e)
        a, e = a[ok], e[ok]
        if a.numel() < 3:
            continue
        thr = torch.quantile(a, 1 - sharp_quantile)
        sharp = a >= thr
        if sharp.all() or not sharp.any():
            continue
        diffs.append(float(e[sharp].mean() - e[~sharp].mean()))
    return float(np.mean(diffs)) if diffs else float("nan")


#: what the adjusted association controls for (the ``adjusted_for`` column of its rows)
ADJUSTED_FOR = "adjacent step norms, position, token frequency"


def adjusted_association(
    angles: torch.Tensor, event: torch.Tensor, sharp_quantile: float, covariates: torch.Tensor
) -> float:
    """:func:`association` adjusted for confounds: the coefficient of "sharp" in one least-squares fit of the
    event on sharp, a fixed effect per vertex and ``covariates`` ``[pos, vertex, k]`` (e.g. the log norms of
    the two steps that make the angle, the position, the token's frequency), over the text's (position,
    vertex) cells. Sharp is defined per vertex as in :func:`association`. NaN when the fit has too few
    cells or sharp is collinear with the rest."""
    P, V = angles.shape
    sharp = torch.zeros(P, V, dtype=torch.float64)
    ok = torch.isfinite(angles) & torch.isfinite(event) & torch.isfinite(covariates).all(-1)
    for v in range(V):
        a = angles[:, v][ok[:, v]]
        if a.numel() < 3:
            ok[:, v] = False
            continue
        sharp[:, v] = (angles[:, v] >= torch.quantile(a, 1 - sharp_quantile)).double()
    rows = ok.nonzero()
    if rows.shape[0] < V + covariates.shape[-1] + 3:
        return float("nan")
    pos, ver = rows[:, 0], rows[:, 1]
    x = torch.cat(
        [
            sharp[pos, ver, None],
            torch.nn.functional.one_hot(ver, V).double(),
            covariates[pos, ver].double(),
        ],
        dim=1,
    ).numpy()
    y = event[pos, ver].double().numpy()
    x[:, 2 + V - 1 :] -= x[:, 2 + V - 1 :].mean(0)  # centred covariates: the vertex effects stay the intercepts
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    if rank < x.shape[1] or x[:, 0].std() == 0:
        return float("nan")
    return float(coef[0])


def readout_covariates(states: torch.Tensor, tokens: list[str]) -> torch.Tensor:
    """``[pos, vertex, 4]``: the log norms of the two steps into and out of each vertex, the position, and the
    token's Zipf frequency (:func:`tlgeom.experiments.controls.zipf`; 0 where ``wordfreq`` has none)."""
    from tlgeom.experiments.controls import zipf

    steps = torch.linalg.vector_norm(states[:, 1:] - states[:, :-1], dim=-1).double()  # [pos, point-1]
    log_steps = torch.log(steps.clamp_min(1e-300))
    P, V = steps.shape[0], steps.shape[1] - 1
    position = torch.arange(P, dtype=torch.float64)[:, None].expand(P, V)
    freq = torch.tensor([zipf(t.strip().lower()) if t.strip() else 0.0 for t in tokens], dtype=torch.float64)
    return torch.stack([log_steps[:, :-1], log_steps[:, 1:], position, freq[:, None].expand(P, V)], dim=-1)


@dataclass
class ReadoutTest(Result):
    """Sharp turns against readout changes, text as the unit (see the module docstring).

    Attributes:
        per_text: one row per text: ``S_t`` for each event, trained and untrained.
        table: the tests (:meth:`tests`).
        example_angles: ``[pos, vertex]`` turning angles (degrees) of the first text; example_events its
            ``top1_change`` events; example_tokens its tokens; vertex_labels.
    """

    per_text: Any
    table: Any
    example_angles: torch.Tensor
    example_events: torch.Tensor
    example_tokens: list[str]
    vertex_labels: list[str]
    sharp_quantile: float = 0.1
    alpha: float = 0.05
    space: str = "raw"
    correction: str = "holm"
    init_seeds: list[int] = field(default_factory=list)

    result_name = "readout_test"

    def tests(self):
        """One row per (null, event): observed (mean S_t), null_mean, effect, ci_low, ci_high, p, p_adjusted (``correction``, default Holm),
        n_texts, reject."""
        return tests_table(self.table, "text")

    def to_frame(self):
        return self.per_text.copy()

    def headline(self) -> dict:
        return jsonable(
            {
                "n_texts": int(len(self.per_text)),
                "sharp_quantile": self.sharp_quantile,
                "init_seeds": list(self.init_seeds),
                "tests": {
                    f"{r.statistic} vs {r.null}": {
                        "effect": r.effect,
                        "ci": [r.ci_low, r.ci_high],
                        "p_adjusted": r.p_adjusted,
                        "reject": bool(r.reject),
                    }
                    for r in self.table.itertuples()
                },
            }
        )

    def summary(self) -> str:
        lines = [
            f"Readout vs sharp turns ({self.space} space): {len(self.per_text)} texts; sharp = top "
            f"{100 * self.sharp_quantile:g} % of a text's angles at each vertex; S = mean over vertices of "
            "[event rate at sharp turns − elsewhere]; sign-flip tests across texts, Holm over "
            f"{len(self.table)} tests at α = {self.alpha}."
            + (
                f" Untrained reference: {len(self.init_seeds)} initialisations, the largest p counts."
                if len(self.init_seeds) > 1
                else ""
            )
        ]
        for r in self.table.itertuples():
            lines.append(
                f"  {r.statistic} vs {r.null}: observed {r.observed:+.3g} (null {r.null_mean:+.3g}), effect "
                f"{r.effect:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}], p_adj {r.p_adjusted:.3g}"
                + (" — rejected" if r.reject else "")
                + ("" if r.informative else f" — not informative: {r.note}")
            )
        return "\n".join(lines)

    def plot(self, ax=None):
        """Left: the first text's landscape (tokens × vertices) with top-1 readout changes marked; right: S per
        text, trained against untrained. Returns the Figure."""
        given = ax
        P, V = self.example_angles.shape
        fig, axes = new_panels(ax, 1, 2, (11, max(4.0, 0.13 * P + 1.5)))
        a = axes[0, 0]
        im = a.imshow(self.example_angles.numpy(), aspect="auto", cmap="magma", vmin=0, vmax=180)
        pp, vv = torch.nonzero(self.example_events > 0, as_tuple=True)
        a.scatter(vv.numpy(), pp.numpy(), marker="o", s=10, facecolors="none", edgecolors="cyan", lw=0.8)
        a.set_yticks(range(P))
        a.set_yticklabels([repr(t)[1:-1] for t in self.example_tokens], fontsize=5 if P > 60 else 7)
        a.set_xticks(range(V))
        a.set_xticklabels(self.vertex_labels, rotation=90, fontsize=7)
        a.set_title("turning angle; ○ = top-1 readout changes across the vertex", fontsize=9)
        fig.colorbar(im, ax=a, label="degrees", fraction=0.04)
        b = axes[0, 1]
        d = self.per_text
        for i, ev in enumerate(EVENTS):
            y = d[f"{ev}_trained"].to_numpy()
            b.scatter(np.full(len(y), 2 * i) + 0.1 * (np.arange(len(y)) % 5 - 2), y, s=10, color="tab:red")
            if f"{ev}_untrained" in d:
                u = d[f"{ev}_untrained"].to_numpy()
                b.scatter(np.full(len(u), 2 * i + 0.8), u, s=10, color="tab:gray")
        b.axhline(0, color="k", lw=0.6)
        b.set_xticks([0, 0.8, 2, 2.8])
        b.set_xticklabels(["top-1\ntrained", "untr.", "rank gain\ntrained", "untr."], fontsize=7)
        b.set_ylabel("S per text (sharp − elsewhere)")
        b.set_title("association per text", fontsize=9)
        if given is None:
            fig.tight_layout()
        return fig


@takes_device
def curvature_vs_readout(
    model: Any,
    inputs: Any,
    *,
    points: str = "resid",
    space: str = "raw",
    sharp_quantile: Any = 0.1,
    skip_first: Any = 1,
    untrained: bool = True,
    init_seeds: int | Sequence[int] | None = None,
    seed: int | None = 0,
    alpha: float = 0.05,
    n_resamples: Any = 9999,
    progress: bool = False,
    correction: str = "holm",
) -> ReadoutTest:
    """Do sharp turns coincide with logit-lens readout changes more often than chance / the untrained model?

    Args:
        model: a TransformerLens model with a language-model head.
        inputs: a list of texts (each one unit; at least 3).
        points, space: the trajectory points and the space of the angles.
        sharp_quantile: the top fraction of a vertex's angles (within a text) called sharp.
        skip_first: leading positions left out (BOS, an attention sink).
        untrained: also run the untrained reference(s) (``untrained_model(model, s)`` for each of
            ``init_seeds``, default ``[seed]``).
        init_seeds: several initialisations of the untrained reference: a count ``k`` (seeds 0, 1, …, as
            every untrained reference in tlgeom) or the seeds; its rows then hold against every one (effect: the mean over them;
            p: the largest of their sign-flip p-values). Default: ``seed`` alone.
        seed: untrained weights (unless ``init_seeds``), sign-flip and bootstrap seeds.
        alpha: level after Holm.
        n_resamples: sign-flip patterns / bootstrap resamples.
        progress: a tqdm bar over texts.

    Raises:
        TlgeomError: bad arguments (before any forward pass), a model without an LM head.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from tlgeom.geometry.curvature import turning_angles
    from tlgeom.models.conventions import model_normalization
    from tlgeom.models.trajectory import record_trajectories
    from tlgeom.stats.pvalues import decide_family, paired_text_row

    require_lm_head(model)
    inputs = check_texts(inputs)
    check_points(points)
    check_space(space)
    if (
        isinstance(sharp_quantile, bool)
        or not isinstance(sharp_quantile, (int, float))
        or not 0 < float(sharp_quantile) < 0.5
    ):
        raise bad_arg("sharp_quantile", sharp_quantile, "a float in (0, 0.5)")
    check_int("skip_first", skip_first, minimum=0)
    check_bool("untrained", untrained)
    check_bool("progress", progress)
    seed = check_seed(seed)
    alpha = check_alpha(alpha)
    correction = check_correction(correction)
    check_int("n_resamples", n_resamples, minimum=99)
    norm, eps = model_normalization(model) if space == "normalized" else ("rms", 1e-5)
    seeds = (
        (check_init_seeds(init_seeds) if init_seeds is not None else [0 if seed is None else seed]) if untrained else []
    )
    names = ["trained"] + [f"untrained#{s}" for s in seeds]
    rows: list[dict[str, Any]] = [{"text_id": i} for i in range(len(inputs))]
    example: dict[str, Any] = {}
    for name in names:  # one model in memory at a time besides the trained one
        if name == "trained":
            m = model
        else:
            from tlgeom.models.untrained import untrained_model

            m = untrained_model(model, seed=int(name.split("#")[1]))
        for i, text in enumerate(tqdm(list(inputs), disable=not progress, desc=f"texts ({name})")):
            row = rows[i]
            traj = record_trajectories(m, text, points)
            ro = logit_lens(m, text, points=points, trajectories=traj)
            ang = turning_angles(traj.states[0].to(torch.float64), space, norm, eps).rad2deg().cpu()
            ev = events(ro)
            ev["rank_gain"][-1] = float("nan")
            cov = readout_covariates(traj.states[0].to(torch.float64).cpu(), ro.str_tokens)
            for e in EVENTS:
                a, x = ang[skip_first:], ev[e][skip_first:]
                row[f"{e}_{name}"] = association(a, x, float(sharp_quantile))
                row[f"{e}_adjusted_{name}"] = adjusted_association(a, x, float(sharp_quantile), cov[skip_first:])
            if i == 0 and name == "trained":
                example = {
                    "angles": ang,
                    "events": ev["top1_change"],
                    "tokens": ro.str_tokens,
                    "labels": ro.point_labels[1:-1],
                }
            row["n_tokens"] = int(traj.tokens.shape[1])
        del m
    per = pd.DataFrame(rows)
    table = []
    for e, adjusted in [(e, a) for a in ("", ADJUSTED_FOR) for e in EVENTS]:
        column = f"{e}_adjusted" if adjusted else e
        tr = per[f"{column}_trained"].to_numpy(np.float64)
        if seeds:  # the untrained reference: the mean over its initialisations, kept per text
            refs = np.stack([per[f"{column}_untrained#{s}"].to_numpy(np.float64) for s in seeds])
            per[f"{column}_untrained"] = refs.mean(0)
        nulls = [("zero", tr, np.zeros((1, tr.size)))]
        if seeds:
            nulls.append(("untrained", tr, refs))
        for null, obs, ref_k in nulls:
            row = paired_text_row(null, column, space, obs, ref_k, n_resamples=n_resamples, seed=seed)
            row["adjusted_for"] = adjusted
            table.append(row)
    t = decide_family(pd.DataFrame(table), alpha, correction)  # informative, p_adjusted, reject, the floor's note
    t = t[
        ["null", "statistic", "space", "observed", "null_mean", "effect", "ci_low", "ci_high", "p", "p_adjusted"]
        + ["n_texts", "reject", "informative", "adjusted_for", "note"]
        + [c for c in ("n_inits", "init_effect_min", "init_effect_max") if c in t.columns]
    ]
    return ReadoutTest(
        per_text=per,
        table=t,
        example_angles=example["angles"],
        example_events=example["events"],
        example_tokens=example["tokens"],
        vertex_labels=example["labels"],
        sharp_quantile=float(sharp_quantile),
        alpha=alpha,
        space=space,
        correction=correction,
        init_seeds=seeds,
    )
