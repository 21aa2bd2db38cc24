"""The eclipse experiment: how a context edit deflects one token's trajectory through the layers.

A :class:`ContextEdit` is a clean text, an edited text and a *target* word present in both.
:func:`deflection` records the target's residual-stream trajectory ``c_i`` (clean) and ``e_i``
(edited) at every trajectory point ``i`` (embedding, then each block's output) and measures:

* ``distance_i = ‖e_i − c_i‖`` and ``relative_distance_i = ‖e_i − c_i‖ / ‖c_i‖``;
* ``angle_i = ∠(c_i, e_i)`` (radians, the angle between the two state vectors);
* ``step_deflection_l = ∠(Δc_l, Δe_l)`` with ``Δx_l = x_{l+1} − x_l`` (how differently the two
  trajectories move in layer step l);
* ``cumulative_bending_i = Σ_{l<i} step_deflection_l`` (radians; 0 at the embedding; an
  undefined step angle, from a zero-length step, counts 0);
* the **onset**: the first point at which the edit deflects the target more than its *control
  edits* (39 by default, :data:`tlgeom._args.CONTROLS`: seeded edits of the same kind at the same place, matched in part of
  speech in context, frequency and length, :mod:`tlgeom.experiments.controls`), with the error
  controlled across all points: per-point rank p-value ``p_i = (1 + #{controls ≥ edit}) / (1 + n)``
  adjusted by the single-step max-statistic method over the exchangeable edit and controls
  (:mod:`tlgeom.stats.onset`); the onset is the first point with ``p_adjusted ≤ alpha`` (None if none);
* **meaning consistency**, given sense prototypes ``P_from`` (mean target state over contexts of
  the clean sense) and ``P_to`` (the edited sense): ``toward_i = ⟨e_i − c_i, u_i⟩ / ‖u_i‖²``
  with ``u_i = P_to,i − P_from,i`` (the fraction of the way to the other sense; 1 = moved by
  the full prototype difference) and ``toward_cosine_i = cos∠(e_i − c_i, u_i)``.

Target alignment. A string target is found in each text as a whole word (case-sensitive, not
inside a longer word; ``occurrence`` picks among repeats and is required when a text has
several). A character-span target ``(start, end)`` is located in the clean text and carried to
the edited text by token alignment (:func:`align_tokens`: difflib over token ids), unless
``edited_span`` gives it. Characters map to tokens through the tokenizer's offset mapping.
A word split into several tokens is represented by its **last sub-token** by default
(``subtoken="last"``; in a decoder that is the first position that has read the whole word),
or by its first (``subtoken="first"``).

Every state comes from :func:`tlgeom.record_trajectories`, so tokenization (BOS, [CLS]/[SEP])
and hook names are the same as everywhere in tlgeom, for TransformerBridge, HookedTransformer
and HookedEncoder. All measures are computed in float64.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from tlgeom._args import (
    CONTROLS,
    check_alpha,
    check_bool,
    check_choice,
    check_correction,
    check_int,
    check_points,
    check_seed,
)
from tlgeom._errors import bad_arg
from tlgeom._result import Result, new_axes
from tlgeom.experiments.controls import matched_controls
from tlgeom.experiments.edits import SUBTOKENS, ContextEdit, align_token_ids, resolve_edit

# the edit layer's names, importable from here as before (their home is tlgeom.experiments.edits)
from tlgeom.experiments.edits import ResolvedEdit as ResolvedEdit  # noqa: E402, I001
from tlgeom.experiments.edits import find_word as find_word  # noqa: E402
from tlgeom.experiments.edits import token_char_spans as token_char_spans  # noqa: E402
from tlgeom.geometry.curvature import angle_between, steps
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device
from tlgeom.models.trajectory import record_trajectories
from tlgeom.stats.onset import (
    corrected_onset,
    maxstat_adjusted,
    min_attainable_p,
    paired_onset_test,
    uncorrected_onset,
)
from tlgeom.stats.pvalues import (
    add_note,
    attainable,
    bootstrap_ci,
    min_pvalue_sign_flip,
    sign_flip_test,
    tests_table,
)

MEASURES = ("distance", "relative_distance", "angle")
#: The 0.1 name of :func:`~tlgeom.experiments.edits.align_token_ids` (token-id alignment; the language
#: module's word alignment is another thing).
align_tokens = align_token_ids
EDIT_KINDS = ("homonym", "mass", "after_target", "deletion")


# ---------------------------------------------------------------------------------------------
# Pure maths


def deflection_measures(
    clean: Float[torch.Tensor, "... point d_model"], edited: Float[torch.Tensor, "... point d_model"]
) -> dict[str, torch.Tensor]:
    """Deflection of ``edited`` from ``clean`` at every trajectory point (float64, any leading dims).

    Returns a dict with ``distance`` ``‖e_i − c_i‖``, ``relative_distance`` ``‖e_i − c_i‖/‖c_i‖``,
    ``angle`` ``∠(c_i, e_i)`` (each ``[..., point]``), ``step_deflection`` ``∠(Δc_l, Δe_l)``
    (``[..., point−1]``) and ``cumulative_bending`` ``Σ_{l<i} step_deflection_l`` (``[..., point]``,
    0 at point 0; NaN step angles count 0). Identical inputs give exactly 0 everywhere.
    """
    if not isinstance(clean, torch.Tensor) or not isinstance(edited, torch.Tensor) or clean.shape != edited.shape:
        raise bad_arg(
            "edited",
            getattr(edited, "shape", type(edited).__name__),
            f"a tensor with the clean states' shape {tuple(getattr(clean, 'shape', ()))}",
        )
    c = clean.to(torch.float64)
    e = edited.to(torch.float64)
    diff = torch.linalg.vector_norm(e - c, dim=-1)
    norm_c = torch.linalg.vector_norm(c, dim=-1)
    rel = torch.where(norm_c > 0, diff / norm_c, torch.full_like(diff, float("nan")))
    angle = angle_between(c, e).masked_fill(diff == 0, 0.0)  # identical vectors: exactly 0
    sc, se = steps(c), steps(e)
    step_def = angle_between(sc, se).masked_fill(torch.linalg.vector_norm(se - sc, dim=-1) == 0, 0.0)
    cum = torch.cat([torch.zeros_like(step_def[..., :1]), torch.nan_to_num(step_def, nan=0.0).cumsum(-1)], dim=-1)
    return {
        "distance": diff,
        "relative_distance": rel,
        "angle": angle,
        "step_deflection": step_def,
        "cumulative_bending": cum,
    }


def toward_sense(
    clean: Float[torch.Tensor, "... point d_model"],
    edited: Float[torch.Tensor, "... point d_model"],
    proto_from: Float[torch.Tensor, "point d_model"],
    proto_to: Float[torch.Tensor, "point d_model"],
) -> tuple[torch.Tensor, torch.Tensor]:
    """How far the deflection ``D_i = e_i − c_i`` moved toward the other sense, at each point.

    With ``u_i = P_to,i − P_from,i``: ``fraction_i = ⟨D_i, u_i⟩ / ‖u_i‖²`` (1 = moved by the whole
    prototype difference, 0 = orthogonal, < 0 = away) and ``cosine_i = ⟨D_i, u_i⟩ / (‖D_i‖ ‖u_i‖)``
    (NaN where ``D_i`` or ``u_i`` is zero). Both ``[..., point]``, float64.
    """
    d = edited.to(torch.float64) - clean.to(torch.float64)
    u = proto_to.to(torch.float64) - proto_from.to(torch.float64)
    if u.shape != d.shape[-2:]:
        raise bad_arg("prototypes", tuple(u.shape), f"prototype states of shape {tuple(d.shape[-2:])} [point, d_model]")
    dot = (d * u).sum(-1)
    uu = (u * u).sum(-1)
    frac = torch.where(uu > 0, dot / uu, torch.full_like(dot, float("nan")))
    cos = torch.cos(angle_between(d, u.expand_as(d)))
    return frac, cos


def _data() -> dict:
    from tlgeom.data import read_text

    return json.loads(read_text("minimal_pairs.json"))


def minimal_pairs(kind: str | None = None) -> list[ContextEdit]:
    """The bundled minimal pairs (``tlgeom/data/minimal_pairs.json``), written for this project.

    Args:
        kind: None (all), ``"homonym"`` (one context word before the target flips its sense:
            bank, bat, bark, spring, pitch, bass, crane, seal, match, mouse, plant, bow, fan, key),
            ``"mass"`` (words inserted before the target), ``"after_target"`` (an edit strictly
            after the target: a causal control for decoders) or ``"deletion"``.
    """
    if kind is not None and kind not in EDIT_KINDS:
        raise bad_arg("kind", kind, f"None or one of {EDIT_KINDS}")
    out = []
    for p in _data()["pairs"]:
        if kind is None or p["kind"] == kind:
            meta = {k: v for k, v in p.items() if k not in ("id", "kind", "target", "clean", "edited")}
            out.append(ContextEdit(p["clean"], p["edited"], p["target"], name=p["id"], kind=p["kind"], info=meta))
    return out


def sense_contexts() -> dict[str, dict[str, list[str]]]:
    """Bundled contexts for each sense of each homonym: ``{word: {sense: [text, ...]}}``."""
    return _data()["senses"]


def control_words() -> list[dict]:
    """The bundled control-word pool: dicts with ``word``, ``pos`` (noun/adj/verb) and ``zipf``.

    The Zipf values (log10 occurrences per billion words) are coarse, hand-assigned estimates
    written for this project, not corpus counts.
    """
    return _data()["control_words"]


def control_edits(
    edit: ContextEdit,
    n: int = CONTROLS,
    seed: int = 0,
    pool: Sequence[str] | Sequence[dict] | None = None,
    deletion: str = "slot",
) -> list[ContextEdit]:
    """Seeded control edits matched to ``edit``: :func:`tlgeom.experiments.controls.matched_controls`.

    Each control is an edit of the same kind at the same place (substitutions and insertions:
    the edit's open-class words replaced by words of the same part of speech *in context*
    (spaCy), within 0.5 Zipf (wordfreq) and 2 characters; deletions: by default the slot swap, a
    matched word put into the deleted slot and deleted, or with ``deletion="elsewhere"`` another
    word before the target deleted), seeded by ``seed`` and the two texts only. Each control's ``info`` records
    how well it matched (``pos_match``, ``zipf``, ``dzipf``, ``dlen``, ``widened``).

    Args:
        edit: the edit.
        n: number of controls (default 39, :data:`tlgeom._args.CONTROLS`: 19 is the fewest for which a rank
            p-value can reach 0.05; 39 has more power at the same false-onset rate).
        seed: an int in [0, 2**63).
        pool: candidate words (strings, or dicts with ``"word"`` like :func:`control_words`);
            default the 30 000 most frequent English words (wordfreq).
        deletion: a deletion's design, ``"slot"`` (default: matched words put into the deleted slot and
            deleted, so every control ends in the edit's edited text) or ``"elsewhere"`` (another word
            before the target deleted); :mod:`tlgeom.experiments.controls`.

    Raises:
        TlgeomError: the edit changes the target itself, the texts do not differ, fewer than ``n``
            candidates match (naming how many), or the ``language`` extra is missing.
    """

    if pool is not None:
        if isinstance(pool, str) or not all(isinstance(w, (str, dict)) for w in pool):
            raise bad_arg("pool", pool, "None or a list of words (str) or of dicts with a 'word'")
        pool = [w if isinstance(w, str) else str(w["word"]) for w in pool]
    return matched_controls(edit, n=n, seed=seed, pool=pool, deletion=deletion)


def _target_states(
    model: Any, resolved: Sequence[tuple[torch.Tensor, int]], points: str, info, max_batch: int = 64
) -> Float[torch.Tensor, "n point d_model"]:
    """The target's trajectory for each (tokens, position), batching texts of equal token length."""
    out: list[torch.Tensor | None] = [None] * len(resolved)
    groups: dict[int, list[int]] = {}
    for i, (toks, _) in enumerate(resolved):
        groups.setdefault(int(toks.numel()), []).append(i)
    for idx in groups.values():
        for s in range(0, len(idx), max_batch):
            chunk = idx[s : s + max_batch]
            traj = record_trajectories(model, torch.stack([resolved[i][0] for i in chunk]), points)
            for b, i in enumerate(chunk):
                out[i] = traj.states[b, resolved[i][1]].to(torch.float64).cpu()
    return torch.stack(out)  # type: ignore[arg-type]


def sense_prototypes(
    model: Any, contexts: Sequence[str], target: str, *, points: str = "resid", subtoken: str = "last"
) -> Float[torch.Tensor, "point d_model"]:
    """Mean trajectory of ``target`` over ``contexts`` (each must contain it exactly once), float64."""
    if isinstance(contexts, str) or not contexts or not all(isinstance(c, str) for c in contexts):
        raise bad_arg("contexts", contexts, "a non-empty list of texts, each containing the target once")
    info = _compat.check_model(model)
    res = []
    for c in contexts:
        r = resolve_edit(model, ContextEdit(c, c, target), subtoken, info)
        res.append((r.clean_tokens, r.clean_pos))
    return _target_states(model, res, points, info).mean(0)


# ---------------------------------------------------------------------------------------------
# The result


@dataclass
class Deflection(Result):
    """The target's deflection under one context edit, per trajectory point.

    Attributes:
        edit: the :class:`ContextEdit`.
        clean_states, edited_states: the target's trajectory in each text, ``[point, d_model]`` float64.
        distance, relative_distance, angle: ``[point]`` (angle in radians).
        step_deflection: ``[point−1]`` radians, ∠ between the clean and edited layer steps.
        cumulative_bending: ``[point]`` radians, running sum of ``step_deflection``.
        point_labels: ``"embed"``, ``"L0"``, …
        clean_pos, edited_pos: the target's token position in each text.
        clean_str_tokens, edited_str_tokens: the tokens of each text.
        control_texts: the control edits' texts (empty without controls).
        control_info: one dict per control: how it matched the edit (``words``, ``pos_match``,
            ``zipf``, ``dzipf``, ``dlen``, ``widened``; empty for user-given control texts).
        control_distance, control_angle, control_relative_distance: ``[n_controls, point]`` or None.
        band_quantile: the control quantile that bounds the plotted band (1.0 = the control maximum).
        alpha: level of the onset test.
        toward, toward_cosine: ``[point]`` meaning consistency (see module docs) or None.
        control_toward: ``[n_controls, point]`` or None.

    The **onset** is error-controlled (:mod:`tlgeom.stats.onset`): per point the rank p-value
    ``p_i = (1 + #{controls with measure ≥ the edit's}) / (1 + n_controls)`` (ties count against
    the edit), adjusted across all points by the single-step max-statistic method over the
    exchangeable edit and controls; the onset is the first point with ``p_adjusted ≤ alpha``.
    """

    edit: ContextEdit
    clean_states: torch.Tensor
    edited_states: torch.Tensor
    distance: torch.Tensor
    relative_distance: torch.Tensor
    angle: torch.Tensor
    step_deflection: torch.Tensor
    cumulative_bending: torch.Tensor
    point_labels: list[str]
    clean_pos: int
    edited_pos: int
    clean_str_tokens: list[str]
    edited_str_tokens: list[str]
    control_texts: list[str] = field(default_factory=list)
    control_info: list[dict] = field(default_factory=list)
    control_distance: torch.Tensor | None = None
    control_angle: torch.Tensor | None = None
    control_relative_distance: torch.Tensor | None = None
    band_quantile: float = 1.0
    alpha: float = 0.05
    toward: torch.Tensor | None = None
    toward_cosine: torch.Tensor | None = None
    control_toward: torch.Tensor | None = None

    result_name = "deflection"

    @property
    def n_points(self) -> int:
        return int(self.distance.shape[-1])

    @property
    def n_controls(self) -> int:
        return len(self.control_texts)

    @property
    def target_token(self) -> str:
        return self.clean_str_tokens[self.clean_pos]

    def _controls(self, measure: str) -> torch.Tensor | None:
        if measure not in MEASURES:
            raise bad_arg("measure", measure, f"one of {MEASURES}")
        return getattr(self, f"control_{measure}")

    def band(self, measure: str = "distance") -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(min, quantile_q)`` of the controls' ``measure`` at each point, or None without controls."""
        c = self._controls(measure)
        if c is None:
            return None
        return c.min(0).values, torch.quantile(c, self.band_quantile, dim=0)

    def pvalues(self, measure: str = "distance") -> tuple[np.ndarray, np.ndarray] | None:
        """``(p, p_adjusted)`` per point (:func:`tlgeom.stats.onset.maxstat_adjusted`), None without controls.

        NaN measures (e.g. a relative distance of a zero state) count as 0.
        """
        c = self._controls(measure)
        if c is None:
            return None
        e = torch.nan_to_num(getattr(self, measure), nan=0.0).numpy()
        return maxstat_adjusted(e, torch.nan_to_num(c, nan=0.0).numpy())

    def onset_point(self, measure: str = "distance", alpha: float | None = None) -> int | None:
        """First point whose corrected p-value is ≤ ``alpha`` (default ``self.alpha``); None: never / no controls."""
        pv = self.pvalues(measure)
        if pv is None:
            return None
        return corrected_onset(pv[1], self.alpha if alpha is None else alpha)

    def uncorrected_onset_point(self, measure: str = "distance") -> int | None:
        """The old rule, for comparison only: first point above every control (no error control)."""
        c = self._controls(measure)
        if c is None:
            return None
        return uncorrected_onset(getattr(self, measure).numpy(), c.numpy())

    @property
    def onset(self) -> int | None:
        """:meth:`onset_point` for ``distance`` (error-controlled across points)."""
        return self.onset_point("distance")

    @property
    def onset_label(self) -> str | None:
        o = self.onset
        return None if o is None else self.point_labels[o]

    def controls_frame(self):
        """One row per control edit: its text and how well it matched the edit."""
        import pandas as pd

        rows = []
        for i, t in enumerate(self.control_texts):
            info = self.control_info[i] if i < len(self.control_info) else {}
            rows.append(
                {
                    "control": i,
                    "text": t,
                    "words": " ".join(info.get("words", [])) or None,
                    "pos": " ".join(info.get("pos", [])) or None,
                    "slot_pos": " ".join(info.get("slot_pos", [])) or None,
                    "pos_match": info.get("pos_match"),
                    "zipf": " ".join(f"{z:.2f}" for z in info.get("zipf", [])) or None,
                    "dzipf": info.get("dzipf"),
                    "dlen": info.get("dlen"),
                    "widened": None if not info.get("widened") else json.dumps(info["widened"]),
                }
            )
        return pd.DataFrame(rows)

    def tests(self, measure: str = "distance", alpha: float | None = None):
        """One row per point: the edit against its controls (rank p, max-statistic adjusted p).

        Columns: ``null`` ("controls"), ``statistic`` (e.g. ``"distance@L7"``), ``space`` ("raw":
        the residual stream as recorded), ``observed`` (the edit's measure), ``null_mean`` (the
        controls' mean), ``effect`` (observed − null_mean), ``ci_low``/``ci_high`` (observed minus
        the controls' ``1 − α/2`` and ``α/2`` quantiles: where the effect lies relative to the
        control spread), ``p``, ``p_adjusted``, ``n_texts`` (1 edit), ``n_controls``, ``reject``
        (``p_adjusted ≤ alpha``), ``informative`` (False when ``1/(n_controls + 1) > alpha``: no point can
        reject), ``note``.
        """
        import pandas as pd

        alpha = self.alpha if alpha is None else check_alpha(alpha)
        c = self._controls(measure)
        y = getattr(self, measure).numpy()
        rows = []
        pv = self.pvalues(measure)
        for i, label in enumerate(self.point_labels):
            row = {
                "null": "controls",
                "statistic": f"{measure}@{label}",
                "space": "raw",
                "observed": float(y[i]),
                "null_mean": float("nan"),
                "effect": float("nan"),
                "ci_low": float("nan"),
                "ci_high": float("nan"),
                "p": float("nan"),
                "p_adjusted": float("nan"),
                "n_texts": 1,
                "n_controls": self.n_controls,
                "reject": False,
                "informative": c is not None and min_attainable_p(self.n_controls) <= alpha,
                "note": "not run: no control edits" if c is None else "",
            }
            if c is not None and not row["informative"]:
                row["note"] = (
                    f"cannot reject at any data: with {self.n_controls} controls the smallest p is "
                    f"1/{self.n_controls + 1} = {min_attainable_p(self.n_controls):.3g} > α = {alpha}"
                )
            if c is not None and pv is not None:
                ci = c[:, i].numpy()
                row.update(
                    null_mean=float(ci.mean()),
                    effect=float(y[i] - ci.mean()),
                    ci_low=float(y[i] - np.quantile(ci, 1 - alpha / 2)),
                    ci_high=float(y[i] - np.quantile(ci, alpha / 2)),
                    p=float(pv[0][i]),
                    p_adjusted=float(pv[1][i]),
                    reject=bool(pv[1][i] <= alpha),
                )
            rows.append(row)
        return tests_table(pd.DataFrame(rows), "edit")

    def to_frame(self):
        """One row per trajectory point: deflection measures, control band, p / p_adjusted, meaning consistency."""
        import pandas as pd

        nan = torch.full((1,), float("nan"), dtype=torch.float64)
        cols = {
            "point": np.arange(self.n_points),
            "label": self.point_labels,
            "distance": self.distance.numpy(),
            "relative_distance": self.relative_distance.numpy(),
            "angle_deg": self.angle.rad2deg().numpy(),
            "step_deflection_deg": torch.cat([nan, self.step_deflection]).rad2deg().numpy(),
            "cumulative_bending_deg": self.cumulative_bending.rad2deg().numpy(),
        }
        band = self.band("distance")
        if band is not None:
            p, padj = self.pvalues("distance")
            cols["control_distance_min"] = band[0].numpy()
            cols["control_distance_hi"] = band[1].numpy()
            cols["control_distance_mean"] = self.control_distance.mean(0).numpy()
            cols["exceeds_controls"] = (self.distance > band[1]).numpy()
            cols["p"] = p
            cols["p_adjusted"] = padj
            cols["significant"] = padj <= self.alpha
        if self.toward is not None:
            cols["toward"] = self.toward.numpy()
            cols["toward_cosine"] = self.toward_cosine.numpy()
            if self.control_toward is not None:
                cols["control_toward_mean"] = self.control_toward.mean(0).numpy()
        frame = pd.DataFrame(cols)
        frame.insert(0, "edit", self.edit.name)
        frame.insert(1, "target", self.target_token)
        return frame

    def headline(self) -> dict[str, Any]:
        """JSON-ready numbers: final-layer deflection, the corrected onset and how the controls matched."""
        last = self.n_points - 1
        out: dict[str, Any] = {
            "clean": self.edit.clean,
            "edited": self.edit.edited,
            "target": self.target_token,
            "final_distance": float(self.distance[last]),
            "final_relative_distance": float(self.relative_distance[last]),
            "final_angle_deg": float(self.angle[last].rad2deg()),
            "max_relative_distance": float(self.relative_distance.max()),
            "n_controls": self.n_controls,
            "alpha": self.alpha,
            "onset": self.onset_label,
            "onset_index": self.onset,
        }
        pv = self.pvalues("distance")
        if pv is not None:
            out["min_p_adjusted"] = float(pv[1].min())
            out["min_attainable_p"] = 1.0 / (self.n_controls + 1)
            uo = self.uncorrected_onset_point("distance")
            out["uncorrected_onset"] = None if uo is None else self.point_labels[uo]
            cd = self.control_distance[:, last]  # type: ignore[index]
            out["control_final_distance_mean"] = float(cd.mean())
            out["control_final_distance_max"] = float(cd.max())
        if self.control_info:
            out["controls_pos_match"] = float(np.mean([bool(i.get("pos_match")) for i in self.control_info]))
            out["controls_max_dzipf"] = float(max(i.get("dzipf", float("nan")) for i in self.control_info))
            out["controls_max_dlen"] = int(max(i.get("dlen", 0) for i in self.control_info))
            out["controls_widened"] = next((i["widened"] for i in self.control_info if i.get("widened")), None)
        if self.toward is not None:
            out["toward_final"] = float(self.toward[last])
            if self.control_toward is not None:
                out["control_toward_final_mean"] = float(self.control_toward[:, last].mean())
        return out

    def summary(self) -> str:
        """Numbers first: the edit, the final deflection, the corrected onset, the controls' match."""
        h = self.headline()
        lines = [
            f"edit: {self.edit.clean!r} → {self.edit.edited!r}; target {self.target_token!r} "
            f"(pos {self.clean_pos} → {self.edited_pos})",
            f"final layer: distance {h['final_distance']:.3g} ({h['final_relative_distance']:.3f} of ‖clean‖), "
            f"angle {h['final_angle_deg']:.1f}°",
        ]
        if self.n_controls == 0:
            lines.append("no control edits: no onset test was run")
        else:
            lines.append(
                f"onset (first point where the edit deflects more than its {self.n_controls} controls, rank p "
                f"max-statistic corrected across {self.n_points} points, α={self.alpha}): "
                f"{h['onset'] or 'none'} (smallest adjusted p {h['min_p_adjusted']:.3g}; uncorrected rule: "
                f"{h['uncorrected_onset'] or 'none'})"
            )
            if h["min_attainable_p"] > self.alpha:
                lines.append(
                    f"WARNING: with {self.n_controls} controls no p-value can be below {h['min_attainable_p']:.3g} "
                    f"> α={self.alpha}; use at least {math.ceil(1 / self.alpha) - 1} controls"
                )
            if self.control_info:
                lines.append(
                    f"controls matched: part of speech in context {h['controls_pos_match']:.0%}, "
                    f"max |Δzipf| {h['controls_max_dzipf']:.2f}, max |Δlen| {h['controls_max_dlen']}"
                    + (f", criteria widened to {h['controls_widened']}" if h["controls_widened"] else "")
                )
        if self.toward is not None:
            lines.append(
                f"toward the other sense's prototype at the last layer: {h['toward_final']:.2f}"
                + (f" (controls {h['control_toward_final_mean']:.2f})" if "control_toward_final_mean" in h else "")
            )
        return "\n".join(lines)

    def plot(self, ax: Any = None, measure: str = "distance") -> Any:
        """Deflection vs layer with the control band (min to the ``band_quantile``) and the corrected onset."""
        if measure not in MEASURES:
            raise bad_arg("measure", measure, f"one of {MEASURES}")
        fig, ax = new_axes(ax, figsize=(7.0, 3.5))
        y = getattr(self, measure)
        scale = (180 / math.pi) if measure == "angle" else 1.0
        x = np.arange(self.n_points)
        ax.plot(x, y.numpy() * scale, "o-", ms=3, color="C3", label=f"edit ({self.edit.name or 'edited'})")
        band = self.band(measure)
        if band is not None:
            ax.fill_between(
                x,
                band[0].numpy() * scale,
                band[1].numpy() * scale,
                color="0.6",
                alpha=0.4,
                label=f"{self.n_controls} control edits",
            )
            o = self.onset_point(measure)
            if o is not None:
                ax.axvline(
                    o, color="C3", ls=":", lw=1, label=f"onset {self.point_labels[o]} (corrected, α={self.alpha})"
                )
        ax.set_xticks(x)
        ax.set_xticklabels(self.point_labels, rotation=90, fontsize=6)
        ax.set_ylabel({"distance": "‖e − c‖", "relative_distance": "‖e − c‖ / ‖c‖", "angle": "∠(c, e) [deg]"}[measure])
        ax.set_title(f"deflection of {self.target_token!r}")
        ax.legend(fontsize=7)
        return fig


def _sense_pair(edit: ContextEdit) -> tuple[list[str], list[str]] | None:
    """The bundled contexts of the clean and the edited sense that ``edit.info`` names, or None."""
    clean_sense, edited_sense = edit.info.get("clean_sense"), edit.info.get("edited_sense")
    contexts = sense_contexts().get(edit.target) if isinstance(edit.target, str) else None
    if contexts and clean_sense in contexts and edited_sense in contexts:
        return contexts[clean_sense], contexts[edited_sense]
    return None


def _prototype_pair(model, prototypes, target, points, subtoken, n_points, d_model):
    if prototypes is None:
        return None
    if not (isinstance(prototypes, (tuple, list)) and len(prototypes) == 2):
        raise bad_arg(
            "prototypes",
            prototypes,
            "None or (from, to): two lists of texts (contexts of the clean and of the edited sense) "
            "or two [point, d_model] tensors",
        )
    out = []
    for p in prototypes:
        if isinstance(p, torch.Tensor):
            if tuple(p.shape) != (n_points, d_model):
                raise bad_arg("prototypes", f"Tensor(shape={tuple(p.shape)})", f"shape ({n_points}, {d_model})")
            out.append(p.to(torch.float64).cpu())
        else:
            if not isinstance(target, str):
                raise bad_arg("prototypes", "texts", "tensors when the target is a character span")
            out.append(sense_prototypes(model, p, target, points=points, subtoken=subtoken))
    return out


@takes_device
def deflection(
    model: Any,
    clean: str | ContextEdit,
    edited: str | None = None,
    target: str | tuple[int, int] | None = None,
    *,
    occurrence: int | tuple[int, int] | None = None,
    subtoken: str = "last",
    points: str = "resid",
    controls: int | Sequence[str] = CONTROLS,
    seed: int = 0,
    alpha: float = 0.05,
    band_quantile: float = 1.0,
    prototypes: Any = None,
) -> Deflection:
    """Deflection of the target's trajectory when ``clean`` is edited into ``edited``.

    Args:
        model: a TransformerBridge, HookedTransformer or HookedEncoder.
        clean: the clean text, or a :class:`ContextEdit` (then ``edited``/``target``/``occurrence`` are unused).
        edited: the edited text.
        target: the target word, or its character span ``(start, end)`` in the clean text.
        occurrence: which match of the word when a text contains it several times.
        subtoken: ``"last"`` (default) or ``"first"`` sub-token of a multi-token target.
        points: ``"resid"`` or ``"sublayer"`` trajectory points.
        controls: number of seeded matched control edits (:func:`control_edits`; default 39: power at the
            same false-onset rate as 19, the fewest for which a rank p-value can reach 0.05), or a list of control texts (each
            containing the target); 0 for none (no onset test; also when the texts are identical).
        seed: seed of the control edits, an int in [0, 2**63).
        alpha: level of the onset test (family-wise over all points).
        band_quantile: upper edge of the plotted control band (quantile over controls; 1.0 = maximum).
        prototypes: None, or ``(from, to)``: contexts (lists of texts containing the target) of the
            clean sense and of the edited sense, or their prototype tensors ``[point, d_model]``; or
            ``"senses"``: the bundled contexts (:func:`sense_contexts`) of the senses the edit names in
            ``edit.info`` (``clean_sense``, ``edited_sense``; the bundled pairs do), else none.

    Returns:
        A :class:`Deflection` whose ``onset`` is the first point significant after correction.
        Identical texts give exactly 0 everywhere.

    Raises:
        TlgeomError: target absent or ambiguous in either text (naming which), bad arguments.

    Warns:
        UserWarning: when ``1 / (n_controls + 1) > alpha`` (no point can be significant).
    """
    info = _compat.check_model(model)
    if isinstance(clean, ContextEdit):
        edit = clean
    else:
        if target is None:
            raise bad_arg("target", None, "the target word or its (start, end) span in the clean text")
        edit = ContextEdit(clean, edited, target, occurrence=occurrence)  # type: ignore[arg-type]
    if not (isinstance(band_quantile, (int, float)) and 0 < band_quantile <= 1):
        raise bad_arg("band_quantile", band_quantile, "a number in (0, 1]")
    if isinstance(prototypes, str):
        check_choice("prototypes", prototypes, ("senses",))
        prototypes = _sense_pair(edit)
    points = check_points(points)
    check_choice("subtoken", subtoken, SUBTOKENS)
    seed = check_seed(seed, allow_none=False)
    alpha = check_alpha(alpha)
    if isinstance(controls, (list, tuple)):
        if not all(isinstance(t, str) for t in controls):
            raise bad_arg("controls", controls, "an int >= 0 (number of matched control edits) or a list of texts")
        n_controls = len(controls)
    else:
        n_controls = check_int("controls", controls, 0)
    if n_controls and 1 / (n_controls + 1) > alpha:
        warnings.warn(
            f"controls={n_controls}: the smallest attainable p-value is 1/{n_controls + 1} = "
            f"{1 / (n_controls + 1):.3g} > alpha={alpha}, so no onset can be significant; use at least "
            f"{math.ceil(1 / alpha) - 1} controls",
            stacklevel=2,
        )
    if isinstance(controls, int):
        # identical texts: no edit, so no place for a control edit and nothing to test
        cedits = control_edits(edit, controls, seed) if controls and edit.clean != edit.edited else []
    else:
        cedits = [
            ContextEdit(edit.clean, t, edit.target, occurrence=edit.occurrence, name=f"control{i}", kind="control")
            for i, t in enumerate(controls)
        ]
    r = resolve_edit(model, edit, subtoken, info)
    rs = [resolve_edit(model, ce, subtoken, info) for ce in cedits]
    # one batched pass: texts of equal token length run together, so equal texts give bitwise equal
    # states and a control that ties with the edit ties exactly (ties count against the edit)
    states = _target_states(
        model,
        [(r.clean_tokens, r.clean_pos), (r.edited_tokens, r.edited_pos)]
        + [(x.edited_tokens, x.edited_pos) for x in rs],
        points,
        info,
    )
    c, e = states[0], states[1]
    m = deflection_measures(c, e)
    labels = _compat.point_labels(info.n_layers, points)
    out = Deflection(
        edit=edit,
        clean_states=c,
        edited_states=e,
        point_labels=labels,
        clean_pos=r.clean_pos,
        edited_pos=r.edited_pos,
        clean_str_tokens=r.clean_str_tokens,
        edited_str_tokens=r.edited_str_tokens,
        band_quantile=float(band_quantile),
        alpha=alpha,
        distance=m["distance"],
        relative_distance=m["relative_distance"],
        angle=m["angle"],
        step_deflection=m["step_deflection"],
        cumulative_bending=m["cumulative_bending"],
    )
    ctrl_states = None
    if cedits:
        ctrl_states = states[2:]
        cm = deflection_measures(c.expand_as(ctrl_states), ctrl_states)
        out.control_texts = [ce.edited for ce in cedits]
        out.control_info = [dict(ce.info) for ce in cedits]
        out.control_distance, out.control_angle = cm["distance"], cm["angle"]
        out.control_relative_distance = cm["relative_distance"]
    protos = _prototype_pair(model, prototypes, edit.target, points, subtoken, c.shape[0], c.shape[1])
    if protos is not None:
        out.toward, out.toward_cosine = toward_sense(c, e, *protos)
        if ctrl_states is not None:
            out.control_toward = toward_sense(c.expand_as(ctrl_states), ctrl_states, *protos)[0]
    return out


# ---------------------------------------------------------------------------------------------
# Meaning-changing edits vs control edits over many pairs


def _sign_flip_pvalue(d: np.ndarray, n_random: int = 100_000, seed: int = 0) -> float:
    """One-sided paired permutation p-value of mean(d) > 0 under random sign flips:
    :func:`tlgeom.stats.pvalues.sign_flip_test` (exact enumeration of all 2^n patterns for n ≤ 20,
    otherwise ``n_random`` seeded patterns)."""
    n = np.asarray(d).size
    return sign_flip_test(d, "greater", n_resamples=2**n if n <= 20 else n_random, seed=seed)


@dataclass
class DeflectionTest(Result):
    """Meaning-changing edits vs matched control edits over many pairs (the pair is the unit).

    Attributes:
        frame: one row per pair: ``meaning`` (the edit's summary deflection: the mean of
            ``measure`` over points 1…, in degrees for ``angle``), ``control`` (the same, averaged
            over its controls), ``diff``, ``toward_meaning``, ``toward_control`` (mean
            toward-fraction over points 1…; NaN without sense contexts), ``toward_diff``.
        measure: the per-point measure summarised (mean over points 1…, i.e. every block output).
        meaning_curve, control_curve: ``[point]`` means over pairs of the measure (radians for angle).
        p_wilcoxon, p_permutation: one-sided tests that ``meaning > control`` (Wilcoxon signed-rank;
            paired sign-flip permutation).
        p_toward_wilcoxon, p_toward_permutation: the same for ``toward_meaning > toward_control``
            (NaN when that test was not run: no pair has sense contexts).
        layers: one row per point: the across-pairs onset test (:func:`tlgeom.stats.onset.paired_onset_test`):
            ``statistic`` (mean normalised mid-rank of the edit among its controls, 0.5 under the null),
            ``p``, ``p_adjusted`` (max-T over points), ``effect`` (mean over pairs of edit − control mean,
            degrees for angle) with a percentile bootstrap CI over pairs (``ci_low``, ``ci_high``).
        onset: index of the first point with ``p_adjusted ≤ alpha`` across pairs, or None.
        toward_note: why the toward test was not run ("" when it was).
    """

    frame: Any
    measure: str
    point_labels: list[str]
    meaning_curve: torch.Tensor
    control_curve: torch.Tensor
    p_wilcoxon: float
    p_permutation: float
    p_toward_wilcoxon: float
    p_toward_permutation: float
    n_controls: int
    seed: int
    model_name: str = ""
    alpha: float = 0.05
    layers: Any = None
    onset: int | None = None
    toward_note: str = ""
    correction: str = "holm"
    n_perm: int = 9999

    result_name = "meaning_vs_control"

    @property
    def n_pairs(self) -> int:
        return len(self.frame)

    @property
    def toward_run(self) -> bool:
        return not self.toward_note

    @property
    def onset_label(self) -> str | None:
        return None if self.onset is None else self.point_labels[self.onset]

    def verdict(self, alpha: float | None = None) -> str:
        """A one-line, numbers-first statement of what the test found (a test not run says so)."""
        alpha = self.alpha if alpha is None else check_alpha(alpha)
        f = self.frame
        unit = " deg" if self.measure == "angle" else ""
        more = "deflect MORE than" if self.p_wilcoxon < alpha else "do NOT deflect significantly more than"
        out = (
            f"{self.model_name}: meaning edits {more} controls (mean {self.measure} "
            f"{f.meaning.mean():.3f}{unit} vs {f.control.mean():.3f}{unit}; {int((f['diff'] > 0).sum())}/"
            f"{len(f)} pairs higher; Wilcoxon p={self.p_wilcoxon:.2g}, permutation p={self.p_permutation:.2g}); "
        )
        if not self.toward_run:
            out += f"toward the other sense: {self.toward_note}"
        else:
            tw = "move MORE toward" if self.p_toward_wilcoxon < alpha else "do NOT move significantly more toward"
            out += (
                f"they {tw} the other sense than controls (toward {f.toward_meaning.mean():.3f} vs "
                f"{f.toward_control.mean():.3f}; Wilcoxon p={self.p_toward_wilcoxon:.2g}, "
                f"permutation p={self.p_toward_permutation:.2g})"
            )
        return out

    def summary(self) -> str:
        line = (
            f"onset across {self.n_pairs} pairs (pair as unit, {self.n_controls} matched controls each, "
            f"max-T over {len(self.point_labels)} points, α={self.alpha}): {self.onset_label or 'none'}"
        )
        if self.layers is not None:
            line += f" (smallest adjusted p {float(self.layers.p_adjusted.min()):.3g})"
        return self.verdict() + "\n" + line

    def tests(self, alpha: float | None = None, correction: str | None = None):
        """The family of tests: the summary deflection, the toward-sense test and one row per point.

        Columns: ``null``, ``statistic``, ``space``, ``observed``, ``null_mean``, ``effect``, ``ci_low``,
        ``ci_high``, ``p``, ``p_adjusted``, ``n_texts`` (pairs), ``reject``, ``informative`` (False for a test
        that cannot reach α at any data: too few pairs, too few relabellings), ``note``. The two summary
        tests are adjusted together by ``correction`` (Holm by default; those run); the per-point rows carry
        the max-T adjustment.
        A test not run has ``p`` NaN, ``reject`` False and a note saying why.
        """
        import pandas as pd

        alpha = self.alpha if alpha is None else check_alpha(alpha)
        correction = check_correction(self.correction if correction is None else correction)
        f = self.frame
        rows = [
            _pair_row(f["meaning"], f["control"], f"mean {self.measure} over points 1…", self.p_wilcoxon, self.seed),
            _pair_row(
                f["toward_meaning"], f["toward_control"], "toward other sense", self.p_toward_wilcoxon, self.seed
            ),
        ]
        if not self.toward_run:
            rows[1].update(p=float("nan"), note=self.toward_note)
        # the two summary tests are one family (those run); the per-point rows carry their max-T adjustment
        ran = [i for i, r in enumerate(rows) if np.isfinite(r["p"])]
        # the floor of a one-sided paired test over the row's own pairs (exact Wilcoxon / sign flips: 1/2^n)
        floors = np.array([min_pvalue_sign_flip(int(rows[i]["n_texts"]), "greater") for i in ran])
        informative, best = attainable(floors, alpha, correction)
        for row in rows:
            row["informative"] = False
        for k, i in enumerate(ran):
            rows[i]["informative"] = bool(informative[k])
            if not informative[k]:
                add_note(
                    rows[i], f"cannot reject at any data: at best p {best[k]:.3g} after {correction} > α = {alpha}"
                )
        rows = tests_table(rows, "pair", alpha=alpha, correction=correction).to_dict("records")
        if self.layers is not None:
            for _, lr in self.layers.iterrows():
                rows.append(
                    {
                        "null": "controls",
                        "statistic": f"{self.measure}@{lr['label']}",
                        "space": "raw",
                        "observed": float(lr["meaning_mean"]),
                        "null_mean": float(lr["control_mean"]),
                        "effect": float(lr["effect"]),
                        "ci_low": float(lr["ci_low"]),
                        "ci_high": float(lr["ci_high"]),
                        "p": float(lr["p"]),
                        "p_adjusted": float(lr["p_adjusted"]),
                        "n_texts": self.n_pairs,
                        "reject": bool(lr["p_adjusted"] <= alpha),
                        "informative": 1.0 / (self.n_perm + 1) <= alpha,
                        "note": "mid-rank of the edit among its controls, pairs relabelled; max-T over points",
                    }
                )
        return tests_table(pd.DataFrame(rows), "pair")

    def headline(self) -> dict[str, Any]:
        f = self.frame
        return {
            "model": self.model_name,
            "measure": self.measure,
            "n_pairs": self.n_pairs,
            "n_controls": self.n_controls,
            "alpha": self.alpha,
            "meaning_mean": float(f.meaning.mean()),
            "control_mean": float(f.control.mean()),
            "p_wilcoxon": self.p_wilcoxon,
            "p_permutation": self.p_permutation,
            "toward_test_run": self.toward_run,
            "toward_note": self.toward_note or None,
            "p_toward_wilcoxon": self.p_toward_wilcoxon,
            "p_toward_permutation": self.p_toward_permutation,
            "onset": self.onset_label,
            "onset_index": self.onset,
        }

    def to_frame(self):
        return self.frame.copy()

    def plot(self, ax: Any = None) -> Any:
        """Mean deflection of meaning edits vs controls across depth, with the corrected onset."""
        fig, ax = new_axes(ax, figsize=(7.0, 3.5))
        scale = 180 / math.pi if self.measure == "angle" else 1.0
        x = np.arange(len(self.point_labels))
        ax.plot(x, self.meaning_curve.numpy() * scale, "o-", ms=3, color="C3", label="meaning-changing edits")
        ax.plot(x, self.control_curve.numpy() * scale, "s--", ms=3, color="0.4", label="control edits")
        if self.onset is not None:
            ax.axvline(self.onset, color="C3", ls=":", lw=1, label=f"onset {self.onset_label} (corrected)")
        ax.set_xticks(x)
        ax.set_xticklabels(self.point_labels, rotation=90, fontsize=6)
        ax.set_ylabel(self.measure + (" [deg]" if self.measure == "angle" else ""))
        ax.set_title(f"{self.model_name}: {self.n_pairs} pairs, p={self.p_wilcoxon:.2g} (Wilcoxon)")
        ax.legend(fontsize=7)
        return fig


def _pair_row(meaning, control, statistic: str, p: float, seed: int) -> dict[str, Any]:
    m, c = np.asarray(meaning, dtype=np.float64), np.asarray(control, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(c)
    d = (m - c)[ok]
    lo, hi = bootstrap_ci(d[:, None], axis=0, n_resamples=2000, seed=seed)
    return {
        "null": "controls",
        "statistic": statistic,
        "space": "raw",
        "observed": float(m[ok].mean()) if ok.any() else float("nan"),
        "null_mean": float(c[ok].mean()) if ok.any() else float("nan"),
        "effect": float(d.mean()) if d.size else float("nan"),
        "ci_low": float(lo[0]),
        "ci_high": float(hi[0]),
        "p": float(p),
        "p_adjusted": float("nan"),
        "n_texts": int(ok.sum()),
        "reject": False,
        "note": "Wilcoxon signed-rank over pairs, one-sided",
    }


@takes_device
def meaning_vs_control(
    model: Any,
    pairs: Sequence[ContextEdit] | None = None,
    *,
    senses: dict | None = None,
    controls: int = CONTROLS,
    seed: int = 0,
    measure: str = "angle",
    points: str = "resid",
    alpha: float = 0.05,
    n_perm: int = 9999,
    model_name: str = "",
    progress: bool = False,
    correction: str = "holm",
    n_controls: int | None = None,
) -> DeflectionTest:
    """Do meaning-changing edits deflect the target more than control edits at the same place?

    For each pair, the summary is the mean of ``measure`` over points 1… (every block output);
    its control value is the mean of that summary over ``n_controls`` seeded control edits
    (:func:`control_edits`). ``diff = meaning − control`` is tested one-sided (``> 0``) with the
    Wilcoxon signed-rank test and an exact paired sign-flip permutation test. When sense
    contexts are known (``pair.info["clean_sense"]``/``["edited_sense"]`` and ``senses``), the
    toward-fraction of :func:`toward_sense` (mean over points 1…) is tested the same way;
    otherwise that test is reported as not run (never as a negative verdict).

    Onsets across pairs: at every point, each pair's edit is ranked among its own controls and
    :func:`tlgeom.stats.onset.paired_onset_test` relabels, within each pair, which unit is the
    edit (``n_perm`` seeded relabellings), adjusting across points by max-T; the onset is the first
    point with ``p_adjusted ≤ alpha``. Effects (edit − control mean) get percentile bootstrap CIs
    over pairs.

    Args:
        pairs: default the bundled homonym pairs (:func:`minimal_pairs` ``("homonym")``).
        senses: ``{word: {sense: [texts]}}``; default the bundled :func:`sense_contexts`.
        controls: matched control edits per pair (:func:`control_edits`; default 39), the name
            :func:`deflection` uses (``n_controls=`` still works, with a DeprecationWarning, until 0.3).
        progress: a tqdm bar over the pairs while their edits and controls are resolved.
        correction: how :meth:`DeflectionTest.tests` adjusts its summary tests together (default Holm).
        seed: seed of the controls, relabellings and bootstrap (an int in [0, 2**63)).
        alpha: level of every test.
        n_perm: relabellings of the across-pairs onset test.
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    if measure not in MEASURES:
        raise bad_arg("measure", measure, f"one of {MEASURES}")
    if n_controls is not None:
        warnings.warn(
            "meaning_vs_control(n_controls=) is deprecated: use controls= (as deflection does); removed in 0.3",
            DeprecationWarning,
            stacklevel=3,
        )
        controls = n_controls
    n_controls = check_int("controls", controls, 1)
    check_bool("progress", progress)
    correction = check_correction(correction)
    seed = check_seed(seed, allow_none=False)
    alpha = check_alpha(alpha)
    n_perm = check_int("n_perm", n_perm, 1)
    points = check_points(points)
    pairs = list(minimal_pairs("homonym") if pairs is None else pairs)
    if len(pairs) < 2 or not all(isinstance(p, ContextEdit) for p in pairs):
        raise bad_arg("pairs", pairs, "at least two ContextEdit pairs")
    senses = sense_contexts() if senses is None else senses
    info = _compat.check_model(model)
    # Resolve everything first, then record all trajectories in a few length-grouped batches.
    jobs: list[tuple[torch.Tensor, int]] = []
    layout = []
    for p in pairs:
        r = resolve_edit(model, p, "last", info)
        ctrl_resolved = [resolve_edit(model, ce, "last", info) for ce in control_edits(p, n_controls, seed)]
        layout.append(len(jobs))
        jobs += [(r.clean_tokens, r.clean_pos), (r.edited_tokens, r.edited_pos)]
        jobs += [(x.edited_tokens, x.edited_pos) for x in ctrl_resolved]
    proto_rows: dict[tuple[str, str], list[int]] = {}
    for p in pairs:
        cs, es = p.info.get("clean_sense"), p.info.get("edited_sense")
        if cs and es and isinstance(p.target, str) and p.target in senses:
            for sense in (cs, es):
                if (p.target, sense) not in proto_rows:
                    if sense not in senses[p.target]:
                        raise bad_arg(
                            "senses", sorted(senses[p.target]), f"contexts for sense {sense!r} of {p.target!r}"
                        )
                    proto_rows[(p.target, sense)] = list(range(len(jobs), len(jobs) + len(senses[p.target][sense])))
                    for text in senses[p.target][sense]:
                        r = resolve_edit(model, ContextEdit(text, text, p.target), "last", info)
                        jobs.append((r.clean_tokens, r.clean_pos))
    states = _target_states(model, jobs, points, info)
    scale = 180 / math.pi if measure == "angle" else 1.0

    rows, mcurves, ccurves, ccurves_all = [], [], [], []
    for p, base in zip(pairs, layout):
        c, e = states[base], states[base + 1]
        ctrl = states[base + 2 : base + 2 + n_controls]
        mm = deflection_measures(c, e)[measure]
        cm = deflection_measures(c.expand_as(ctrl), ctrl)[measure]
        mcurves.append(mm)
        ccurves.append(cm.mean(0))
        ccurves_all.append(cm)
        row = {
            "pair": p.name,
            "target": p.target,
            "meaning": float(mm[1:].nanmean()) * scale,
            "control": float(cm[:, 1:].nanmean(-1).mean()) * scale,
        }
        cs, es = p.info.get("clean_sense"), p.info.get("edited_sense")
        if cs and es and isinstance(p.target, str) and (p.target, cs) in proto_rows and (p.target, es) in proto_rows:
            pf = states[proto_rows[(p.target, cs)]].mean(0)
            pt = states[proto_rows[(p.target, es)]].mean(0)
            row["toward_meaning"] = float(toward_sense(c, e, pf, pt)[0][1:].nanmean())
            row["toward_control"] = float(toward_sense(c.expand_as(ctrl), ctrl, pf, pt)[0][:, 1:].nanmean(-1).mean())
        else:
            row["toward_meaning"] = row["toward_control"] = float("nan")
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["diff"] = frame.meaning - frame.control
    frame["toward_diff"] = frame.toward_meaning - frame.toward_control

    def tests(d):
        d = d[np.isfinite(d)]
        if d.size < 2:
            return float("nan"), float("nan")
        return float(wilcoxon(d, alternative="greater").pvalue), _sign_flip_pvalue(d, seed=seed)

    pw, pp = tests(frame["diff"].to_numpy())
    tw, tp = tests(frame["toward_diff"].to_numpy())
    n_toward = int(np.isfinite(frame["toward_diff"].to_numpy()).sum())
    if n_toward < 2:
        missing = sorted({str(p.target) for p in pairs if (p.target, p.info.get("clean_sense")) not in proto_rows})
        toward_note = (
            f"not run: no sense contexts for {', '.join(missing) or 'these pairs'} "
            f"({n_toward} of {len(pairs)} pairs have both senses' contexts; at least 2 are needed)"
        )
    else:
        toward_note = ""
    labels = _compat.point_labels(info.n_layers, points)
    em = torch.nan_to_num(torch.stack(mcurves), nan=0.0).numpy()  # [P, point]
    cmall = torch.nan_to_num(torch.stack(ccurves_all), nan=0.0).numpy()  # [P, n, point]
    ot = paired_onset_test(em, cmall, n_perm=n_perm, seed=seed, alpha=alpha)
    d_layer = (em - cmall.mean(1)) * scale
    lo, hi = bootstrap_ci(d_layer, axis=0, confidence=1 - alpha, n_resamples=2000, seed=seed)
    layers = pd.DataFrame(
        {
            "point": np.arange(len(labels)),
            "label": labels,
            "meaning_mean": em.mean(0) * scale,
            "control_mean": cmall.mean((0, 1)) * scale,
            "effect": d_layer.mean(0),
            "ci_low": lo,
            "ci_high": hi,
            "statistic": ot["statistic"],
            "p": ot["p"],
            "p_adjusted": ot["p_adjusted"],
        }
    )
    return DeflectionTest(
        frame=frame,
        measure=measure,
        point_labels=_compat.point_labels(info.n_layers, points),
        meaning_curve=torch.stack(mcurves).nanmean(0),
        control_curve=torch.stack(ccurves).nanmean(0),
        p_wilcoxon=pw,
        p_permutation=pp,
        p_toward_wilcoxon=tw,
        p_toward_permutation=tp,
        n_controls=n_controls,
        seed=seed,
        model_name=model_name or type(model).__name__,
        alpha=alpha,
        layers=layers,
        onset=ot["onset"],
        toward_note=toward_note,
        correction=correction,
        n_perm=n_perm,
    )
