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
* the **onset**: the first point whose deflection exceeds the spread of *control edits*
  (random replacement words of the same part of speech and similar length and frequency at
  the same place, seeded): ``measure_i > quantile_q(control measures at i)`` (q = 1: the max);
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
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int

from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.geometry.curvature import angle_between, steps
from tlgeom.models import _compat
from tlgeom.models.trajectory import record_trajectories

SUBTOKENS = ("last", "first")
MEASURES = ("distance", "relative_distance", "angle")
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


def align_tokens(
    a: Sequence[int] | torch.Tensor, b: Sequence[int] | torch.Tensor, pair_replaced: bool = False
) -> Int[torch.Tensor, " pos_a"]:
    """Map each position of token sequence ``a`` to its counterpart in ``b`` (−1: none).

    Uses ``difflib.SequenceMatcher(autojunk=False)`` over token ids: positions in matching
    ("equal") blocks are paired. With ``pair_replaced=True`` a replaced block of the *same*
    length on both sides is also paired position by position (a same-length substitution,
    which is what activation patching of equal-length prompts does); inserted, deleted and
    unequal replaced blocks stay unpaired.
    """
    a = [int(t) for t in (a.tolist() if isinstance(a, torch.Tensor) else a)]
    b = [int(t) for t in (b.tolist() if isinstance(b, torch.Tensor) else b)]
    out = torch.full((len(a),), -1, dtype=torch.long)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal" or (pair_replaced and tag == "replace" and i2 - i1 == j2 - j1):
            out[i1:i2] = torch.arange(j1, j2)
    return out


# ---------------------------------------------------------------------------------------------
# Edits and target resolution

_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def find_word(text: str, word: str) -> list[tuple[int, int]]:
    """Character spans of ``word`` in ``text`` as a whole word (not inside a longer word)."""
    return [(m.start(), m.end()) for m in re.finditer(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text)]


def _occ(occurrence: Any, which: int) -> int | None:
    if isinstance(occurrence, tuple):
        return occurrence[which]
    return occurrence


@dataclass
class ContextEdit:
    """A clean text, an edited text and the target word whose trajectory is compared.

    Attributes:
        clean: the unedited text.
        edited: the text after the edit (substitution, insertion or deletion, anywhere).
        target: the target word (found as a whole word in both texts) or a character span
            ``(start, end)`` in the clean text (carried to the edited text by token alignment).
        occurrence: which match of a string target to use when a text contains it more than
            once: an int for both texts or ``(clean_index, edited_index)``; None requires one match.
        edited_span: a character span ``(start, end)`` of the target in the edited text
            (span targets only; default: found by token alignment).
        name: a label. kind: e.g. ``"homonym"``, ``"mass"``, ``"after_target"``, ``"deletion"``.
        info: free metadata (senses, the slot's part of speech and frequency for controls).
    """

    clean: str
    edited: str
    target: str | tuple[int, int]
    occurrence: int | tuple[int, int] | None = None
    edited_span: tuple[int, int] | None = None
    name: str = ""
    kind: str = ""
    info: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for arg in ("clean", "edited"):
            v = getattr(self, arg)
            if not isinstance(v, str) or not v.strip():
                raise bad_arg(arg, v, "a non-empty string")
        t = self.target
        if isinstance(t, str):
            if not t.strip() or t != t.strip():
                raise bad_arg("target", t, "a word without surrounding whitespace, or a (start, end) character span")
        elif isinstance(t, (tuple, list)) and len(t) == 2 and all(isinstance(x, int) for x in t):
            if not 0 <= t[0] < t[1] <= len(self.clean):
                raise bad_arg("target", t, f"a span (start, end) with 0 <= start < end <= len(clean)={len(self.clean)}")
            self.target = (int(t[0]), int(t[1]))
        else:
            raise bad_arg("target", t, "a word (str) or a (start, end) character span in the clean text")
        o = self.occurrence
        ok = (
            o is None
            or (isinstance(o, int) and o >= 0)
            or (isinstance(o, (tuple, list)) and len(o) == 2 and all(isinstance(x, int) and x >= 0 for x in o))
        )
        if not ok:
            raise bad_arg("occurrence", o, "None, an int >= 0, or a pair (clean_index, edited_index)")
        if isinstance(o, list):
            self.occurrence = tuple(o)
        s = self.edited_span
        if s is not None:
            if not (
                isinstance(s, (tuple, list))
                and len(s) == 2
                and all(isinstance(x, int) for x in s)
                and 0 <= s[0] < s[1] <= len(self.edited)
            ):
                raise bad_arg(
                    "edited_span", s, f"None or a span (start, end) within the edited text (len {len(self.edited)})"
                )
            self.edited_span = (int(s[0]), int(s[1]))

    # -- character level --------------------------------------------------------------------
    def target_span(self, which: str) -> tuple[int, int] | None:
        """Character span of the target in ``which`` ("clean" or "edited"); None if it must be aligned.

        Raises:
            TlgeomError: the target word is absent from, or ambiguous in, that text.
        """
        text = self.clean if which == "clean" else self.edited
        if not isinstance(self.target, str):
            return self.target if which == "clean" else self.edited_span
        spans = find_word(text, self.target)
        k = _occ(self.occurrence, 0 if which == "clean" else 1)
        if not spans:
            other = [m.group() for m in re.finditer(r"\w+", text) if m.group().lower() == self.target.lower()]
            words = [m.group() for m in re.finditer(r"\w+", text)][:20]
            hint = f"; found {other[0]!r} (case differs)" if other else f"; its words are {words}"
            raise TlgeomError(
                f"target={self.target!r}: not found as a whole word in the {which} text {_short(text)!r}{hint}"
            )
        if k is None and len(spans) > 1:
            raise TlgeomError(
                f"target={self.target!r}: ambiguous in the {which} text {_short(text)!r}: found "
                f"{len(spans)} occurrences at characters {spans}; pass occurrence=<index> "
                "(or (clean_index, edited_index))"
            )
        k = k or 0
        if k >= len(spans):
            raise TlgeomError(
                f"occurrence={self.occurrence!r}: the {which} text {_short(text)!r} has only "
                f"{len(spans)} occurrence(s) of {self.target!r} (at characters {spans})"
            )
        return spans[k]

    def changed_region(self) -> tuple[tuple[int, int], tuple[int, int], int]:
        """The edited stretch at word level: clean char span, edited char span, edited word count.

        Covers everything from the first to the last differing word (difflib over words and
        punctuation). An insertion has an empty clean span ``(c, c)`` at the insertion point.

        Raises:
            TlgeomError: the texts do not differ.
        """
        cw = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(self.clean)]
        ew = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(self.edited)]
        ops = [
            op
            for op in SequenceMatcher(None, [w for w, *_ in cw], [w for w, *_ in ew], autojunk=False).get_opcodes()
            if op[0] != "equal"
        ]
        if not ops:
            raise TlgeomError(
                f"edited={_short(self.edited)!r}: no word differs from the clean text, "
                "so there is no edit place for control edits"
            )
        i1, i2, j1, j2 = ops[0][1], ops[-1][2], ops[0][3], ops[-1][4]

        def span(words, a, b, text):
            if a < b:
                return words[a][1], words[b - 1][2]
            pos = words[a][1] if a < len(words) else len(text)
            return pos, pos

        n_words = sum(1 for w, *_ in ew[j1:j2] if re.match(r"\w", w))
        return span(cw, i1, i2, self.clean), span(ew, j1, j2, self.edited), n_words

    def resolve(self, model: Any, subtoken: str = "last") -> ResolvedEdit:
        """Tokenize both texts with ``model`` and find the target's token position in each."""
        return _resolve(model, self, subtoken)


@dataclass
class ResolvedEdit:
    """A :class:`ContextEdit` tokenized for one model."""

    edit: ContextEdit
    clean_tokens: Int[torch.Tensor, " pos_c"]
    edited_tokens: Int[torch.Tensor, " pos_e"]
    clean_pos: int
    edited_pos: int
    clean_target_positions: list[int]
    edited_target_positions: list[int]
    alignment: Int[torch.Tensor, " pos_c"]  # clean → edited (equal blocks only), −1 unpaired
    clean_str_tokens: list[str]
    edited_str_tokens: list[str]


def token_char_spans(model: Any, text: str, tokens: torch.Tensor) -> list[tuple[int, int] | None]:
    """Character span in ``text`` of each model token (None for BOS/[CLS]/[SEP] and the like).

    The tokenizer's offset mapping (a fast tokenizer, without special tokens) is aligned to the
    model's own tokens (``model.to_tokens``, with its BOS/[CLS]) by difflib over token ids.
    """
    tok = getattr(model, "tokenizer", None)
    if tok is None or not getattr(tok, "is_fast", False):
        raise bad_arg(
            "model",
            type(model).__name__,
            "a model whose tokenizer is a Hugging Face *fast* tokenizer (offsets are needed to "
            f"find the target; got {type(tok).__name__})",
        )
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = list(enc["input_ids"]), list(enc["offset_mapping"])
    toks = [int(t) for t in tokens.tolist()]
    spans: list[tuple[int, int] | None] = [None] * len(toks)
    for tag, i1, i2, j1, _j2 in SequenceMatcher(None, ids, toks, autojunk=False).get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                s, e = offs[i1 + k]
                spans[j1 + k] = (int(s), int(e)) if e > s else None
    return spans


def _positions(spans, span, which, text, str_toks) -> list[int]:
    s, e = span
    pos = [p for p, sp in enumerate(spans) if sp is not None and sp[0] < e and sp[1] > s]
    if not pos:
        raise TlgeomError(
            f"target at characters [{s}, {e}) ({text[s:e]!r}) of the {which} text maps to no token (tokens: {str_toks})"
        )
    return pos


def _resolve(model: Any, edit: ContextEdit, subtoken: str = "last", info=None) -> ResolvedEdit:
    if not isinstance(edit, ContextEdit):
        raise bad_arg("edit", edit, "a ContextEdit")
    if subtoken not in SUBTOKENS:
        raise bad_arg("subtoken", subtoken, f"one of {SUBTOKENS} (which sub-token stands for a multi-token target)")
    info = info or _compat.check_model(model)
    ct, cm = _compat.tokenize(model, edit.clean, info, arg="clean")
    et, em = _compat.tokenize(model, edit.edited, info, arg="edited")
    ct, et = ct[0], et[0]
    cstr = _compat.str_tokens(model, ct[None], cm)[0]
    estr = _compat.str_tokens(model, et[None], em)[0]
    pick = (lambda ps: ps[-1]) if subtoken == "last" else (lambda ps: ps[0])
    cspans = token_char_spans(model, edit.clean, ct)
    cpos = _positions(cspans, edit.target_span("clean"), "clean", edit.clean, cstr)
    align = align_tokens(ct, et)
    espan = edit.target_span("edited")
    if espan is not None:
        epos = _positions(token_char_spans(model, edit.edited, et), espan, "edited", edit.edited, estr)
    else:
        mapped = [int(align[p]) for p in cpos]
        if any(m < 0 for m in mapped):
            raise TlgeomError(
                f"target={edit.target!r}: its clean tokens {[cstr[p] for p in cpos]} have no "
                f"unchanged counterpart in the edited text {_short(edit.edited)!r} (the edit touches "
                "the target); pass edited_span=(start, end)"
            )
        epos = mapped
    return ResolvedEdit(
        edit=edit,
        clean_tokens=ct,
        edited_tokens=et,
        clean_pos=pick(cpos),
        edited_pos=pick(epos),
        clean_target_positions=cpos,
        edited_target_positions=epos,
        alignment=align,
        clean_str_tokens=cstr,
        edited_str_tokens=estr,
    )


# ---------------------------------------------------------------------------------------------
# Bundled minimal pairs, control edits, sense prototypes


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
    edit: ContextEdit, n: int = 8, seed: int = 0, pool: Sequence[dict] | None = None
) -> list[ContextEdit]:
    """Seeded control edits: the clean text with its edited stretch replaced by random words.

    The stretch is :meth:`ContextEdit.changed_region` (an insertion point for insertions). It is
    replaced by as many random pool words as the edit put there (at least one), each drawn
    without replacement (across all the controls, while the pool lasts) from the words with the slot's part of speech (``edit.info["slot"]["pos"]``
    when known), at most 2 characters longer or shorter than the replaced word and within
    0.75 Zipf of its frequency (``edit.info["slot"]["zipf"]``); the length and then the frequency
    criterion are dropped when fewer than ``n`` words satisfy them. Pool words equal to the
    target or to a word of either text are excluded. The generator is seeded by ``seed`` and
    the clean text, so controls are reproducible and differ between pairs.

    Raises:
        TlgeomError: the edit changes the target itself, or the texts do not differ.
    """
    if not isinstance(n, int) or n < 1:
        raise bad_arg("n", n, "an int >= 1 (number of control edits)")
    if not isinstance(seed, int):
        raise bad_arg("seed", seed, "an int")
    (cs, ce), _, k = edit.changed_region()
    tspan = edit.target_span("clean")
    if tspan is not None and cs < tspan[1] and tspan[0] < ce:
        raise TlgeomError(
            f"edit={edit.name or _short(edit.clean)!r}: the edit changes the target itself "
            f"(clean characters [{cs}, {ce}) overlap the target); controls replace context words only"
        )
    k = max(k, 1)
    pool = list(pool if pool is not None else control_words())
    slot = edit.info.get("slot", {}) if isinstance(edit.info, dict) else {}
    replaced = edit.clean[cs:ce]
    seen = {w.lower() for w in re.findall(r"\w+", edit.clean + " " + edit.edited)}
    tword = edit.target.lower() if isinstance(edit.target, str) else edit.clean[tspan[0] : tspan[1]].lower()
    cands = [
        w
        for w in pool
        if w["word"].lower() not in seen
        and w["word"].lower() != tword
        and (slot.get("pos") is None or w["pos"] == slot["pos"])
    ]
    L = len(replaced) / max(len(replaced.split()), 1) if replaced else None
    filters = []
    if L is not None:
        filters.append(lambda w: abs(len(w["word"]) - L) <= 2)
    if slot.get("zipf") is not None:
        filters.append(lambda w: abs(w["zipf"] - slot["zipf"]) <= 0.75)
    while filters and sum(all(f(w) for f in filters) for w in cands) < n * k:
        filters.pop(0 if len(filters) == 2 and L is not None else -1)  # drop length first, then frequency
    cands = [w["word"] for w in cands if all(f(w) for f in filters)]
    if not cands:
        raise TlgeomError(f"pool: no control word has part of speech {slot.get('pos')!r}")
    rng = np.random.default_rng([seed, zlib.crc32(edit.clean.encode())])
    # distinct words across all controls while the pool lasts (a fresh permutation when it runs out)
    order = [str(w) for _ in range(-(-n * k // len(cands))) for w in rng.permutation(cands)]
    out = []
    for i in range(n):
        words = order[i * k : (i + 1) * k]
        if replaced[:1].isupper():
            words[0] = words[0][:1].upper() + words[0][1:]
        new = " ".join(words)
        if cs == ce:  # insertion: put the words (and a space) at the insertion point
            text = (edit.clean[:cs] + new + " " + edit.clean[cs:]) if cs < len(edit.clean) else (edit.clean + " " + new)
        else:
            text = edit.clean[:cs] + new + edit.clean[ce:]
        shift = len(text) - len(edit.clean)
        out.append(
            ContextEdit(
                edit.clean,
                text,
                edit.target,
                occurrence=edit.occurrence,
                edited_span=None
                if isinstance(edit.target, str) or tspan[0] < cs
                else (tspan[0] + shift, tspan[1] + shift),
                name=f"{edit.name}#control{i}",
                kind="control",
                info={"words": words},
            )
        )
    return out


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
        r = _resolve(model, ContextEdit(c, c, target), subtoken, info)
        res.append((r.clean_tokens, r.clean_pos))
    return _target_states(model, res, points, info).mean(0)


# ---------------------------------------------------------------------------------------------
# The result


@dataclass
class Deflection:
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
        control_distance, control_angle, control_relative_distance: ``[n_controls, point]`` or None.
        band_quantile: the control quantile that bounds the band (1.0 = the control maximum).
        toward, toward_cosine: ``[point]`` meaning consistency (see module docs) or None.
        control_toward: ``[n_controls, point]`` or None.
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
    control_distance: torch.Tensor | None = None
    control_angle: torch.Tensor | None = None
    control_relative_distance: torch.Tensor | None = None
    band_quantile: float = 1.0
    toward: torch.Tensor | None = None
    toward_cosine: torch.Tensor | None = None
    control_toward: torch.Tensor | None = None

    @property
    def n_points(self) -> int:
        return int(self.distance.shape[-1])

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

    def onset_point(self, measure: str = "distance") -> int | None:
        """First point where ``measure`` exceeds the control band's upper edge (None: never / no controls)."""
        band = self.band(measure)
        if band is None:
            return None
        above = (getattr(self, measure) > band[1]).nonzero()
        return int(above[0]) if len(above) else None

    @property
    def onset(self) -> int | None:
        """:meth:`onset_point` for ``distance``."""
        return self.onset_point("distance")

    @property
    def onset_label(self) -> str | None:
        o = self.onset
        return None if o is None else self.point_labels[o]

    def to_frame(self):
        """One row per trajectory point: deflection measures, control band, meaning consistency."""
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
            cols["control_distance_min"] = band[0].numpy()
            cols["control_distance_hi"] = band[1].numpy()
            cols["control_distance_mean"] = self.control_distance.mean(0).numpy()
            cols["exceeds_controls"] = (self.distance > band[1]).numpy()
        if self.toward is not None:
            cols["toward"] = self.toward.numpy()
            cols["toward_cosine"] = self.toward_cosine.numpy()
            if self.control_toward is not None:
                cols["control_toward_mean"] = self.control_toward.mean(0).numpy()
        frame = pd.DataFrame(cols)
        frame.insert(0, "edit", self.edit.name)
        frame.insert(1, "target", self.target_token)
        return frame

    def plot(self, measure: str = "distance", ax=None):
        """Deflection vs layer with the control band (min to the ``band_quantile``) and the onset."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        y = getattr(self, measure) if measure in MEASURES else None
        if y is None:
            raise bad_arg("measure", measure, f"one of {MEASURES}")
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
                label=f"{self.control_distance.shape[0]} control edits",
            )
            o = self.onset_point(measure)
            if o is not None:
                ax.axvline(o, color="C3", ls=":", lw=1, label=f"onset {self.point_labels[o]}")
        ax.set_xticks(x)
        ax.set_xticklabels(self.point_labels, rotation=90, fontsize=6)
        ax.set_ylabel({"distance": "‖e − c‖", "relative_distance": "‖e − c‖ / ‖c‖", "angle": "∠(c, e) [deg]"}[measure])
        ax.set_title(f"deflection of {self.target_token!r}")
        ax.legend(fontsize=7)
        return ax


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


def deflection(
    model: Any,
    clean: str | ContextEdit,
    edited: str | None = None,
    target: str | tuple[int, int] | None = None,
    *,
    occurrence: int | tuple[int, int] | None = None,
    subtoken: str = "last",
    points: str = "resid",
    controls: int | Sequence[str] = 0,
    seed: int = 0,
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
        controls: number of seeded random control edits (:func:`control_edits`), or a list of
            control texts (each containing the target); 0 for none.
        seed: seed of the control edits.
        band_quantile: upper edge of the control band (quantile over controls; 1.0 = maximum).
        prototypes: None, or ``(from, to)``: contexts (lists of texts containing the target) of the
            clean sense and of the edited sense, or their prototype tensors ``[point, d_model]``.

    Returns:
        A :class:`Deflection`. Identical texts give exactly 0 everywhere.

    Raises:
        TlgeomError: target absent or ambiguous in either text (naming which), bad arguments.
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
    r = _resolve(model, edit, subtoken, info)
    c = _target_states(model, [(r.clean_tokens, r.clean_pos)], points, info)[0]
    e = _target_states(model, [(r.edited_tokens, r.edited_pos)], points, info)[0]
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
        **m,
    )
    if isinstance(controls, bool) or not (
        isinstance(controls, int)
        and controls >= 0
        or isinstance(controls, (list, tuple))
        and all(isinstance(t, str) for t in controls)
    ):
        raise bad_arg("controls", controls, "an int >= 0 (number of random control edits) or a list of control texts")
    if isinstance(controls, int):
        cedits = control_edits(edit, controls, seed) if controls else []
    else:
        cedits = [
            ContextEdit(edit.clean, t, edit.target, occurrence=edit.occurrence, name=f"control{i}", kind="control")
            for i, t in enumerate(controls)
        ]
    ctrl_states = None
    if cedits:
        rs = [_resolve(model, ce, subtoken, info) for ce in cedits]
        ctrl_states = _target_states(model, [(x.edited_tokens, x.edited_pos) for x in rs], points, info)
        cm = deflection_measures(c.expand_as(ctrl_states), ctrl_states)
        out.control_texts = [ce.edited for ce in cedits]
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
    """One-sided paired permutation p-value of mean(d) > 0 under random sign flips.

    Exact (all 2^n sign patterns) for n ≤ 20, otherwise ``n_random`` seeded patterns;
    ``p = #{s : mean(s·d) ≥ mean(d)} / #patterns`` (the identity pattern included).
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    if n <= 20:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)[None]) & 1).astype(np.float64)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_random, n))
        signs[0] = 1.0
    stats = signs @ d / n
    return float(np.mean(stats >= d.mean() - 1e-12 * max(1.0, abs(d.mean()))))


@dataclass
class DeflectionTest:
    """Meaning-changing edits vs seeded control edits over many pairs (paired tests).

    Attributes:
        frame: one row per pair: ``meaning`` (the edit's summary deflection: the mean of
            ``measure`` over points 1…, in degrees for ``angle``), ``control`` (the same, averaged
            over its controls), ``diff``, ``toward_meaning``, ``toward_control`` (mean
            toward-fraction over points 1…), ``toward_diff``.
        measure: the per-point measure summarised (mean over points 1…, i.e. every block output).
        meaning_curve, control_curve: ``[point]`` means over pairs of the measure (radians for angle).
        p_wilcoxon, p_permutation: one-sided tests that ``meaning > control`` (Wilcoxon signed-rank;
            paired sign-flip permutation).
        p_toward_wilcoxon, p_toward_permutation: the same for ``toward_meaning > toward_control``.
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

    @property
    def n_pairs(self) -> int:
        return len(self.frame)

    def verdict(self, alpha: float = 0.05) -> str:
        """A one-line, numbers-first statement of what the test found."""
        f = self.frame
        unit = " deg" if self.measure == "angle" else ""
        more = "deflect MORE than" if self.p_wilcoxon < alpha else "do NOT deflect significantly more than"
        tw = "move MORE toward" if self.p_toward_wilcoxon < alpha else "do NOT move significantly more toward"
        return (
            f"{self.model_name}: meaning edits {more} controls (mean {self.measure} "
            f"{f.meaning.mean():.3f}{unit} vs {f.control.mean():.3f}{unit}; {int((f['diff'] > 0).sum())}/"
            f"{len(f)} pairs higher; Wilcoxon p={self.p_wilcoxon:.2g}, permutation p={self.p_permutation:.2g}); "
            f"they {tw} the other sense than controls (toward {f.toward_meaning.mean():.3f} vs "
            f"{f.toward_control.mean():.3f}; Wilcoxon p={self.p_toward_wilcoxon:.2g}, "
            f"permutation p={self.p_toward_permutation:.2g})"
        )

    def to_frame(self):
        return self.frame.copy()

    def plot(self, ax=None):
        """Mean deflection of meaning edits vs controls across depth."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        scale = 180 / math.pi if self.measure == "angle" else 1.0
        x = np.arange(len(self.point_labels))
        ax.plot(x, self.meaning_curve.numpy() * scale, "o-", ms=3, color="C3", label="meaning-changing edits")
        ax.plot(x, self.control_curve.numpy() * scale, "s--", ms=3, color="0.4", label="control edits")
        ax.set_xticks(x)
        ax.set_xticklabels(self.point_labels, rotation=90, fontsize=6)
        ax.set_ylabel(self.measure + (" [deg]" if self.measure == "angle" else ""))
        ax.set_title(f"{self.model_name}: {self.n_pairs} pairs, p={self.p_wilcoxon:.2g} (Wilcoxon)")
        ax.legend(fontsize=7)
        return ax


def meaning_vs_control(
    model: Any,
    pairs: Sequence[ContextEdit] | None = None,
    *,
    senses: dict | None = None,
    n_controls: int = 8,
    seed: int = 0,
    measure: str = "angle",
    points: str = "resid",
    model_name: str = "",
) -> DeflectionTest:
    """Do meaning-changing edits deflect the target more than control edits at the same place?

    For each pair, the summary is the mean of ``measure`` over points 1… (every block output);
    its control value is the mean of that summary over ``n_controls`` seeded control edits
    (:func:`control_edits`). ``diff = meaning − control`` is tested one-sided (``> 0``) with the
    Wilcoxon signed-rank test and an exact paired sign-flip permutation test. When sense
    contexts are known (``pair.info["clean_sense"]``/``["edited_sense"]`` and ``senses``), the
    toward-fraction of :func:`toward_sense` (mean over points 1…) is tested the same way.

    Args:
        pairs: default the bundled homonym pairs (:func:`minimal_pairs` ``("homonym")``).
        senses: ``{word: {sense: [texts]}}``; default the bundled :func:`sense_contexts`.
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    if measure not in MEASURES:
        raise bad_arg("measure", measure, f"one of {MEASURES}")
    if not isinstance(n_controls, int) or n_controls < 1:
        raise bad_arg("n_controls", n_controls, "an int >= 1")
    pairs = list(minimal_pairs("homonym") if pairs is None else pairs)
    if len(pairs) < 2 or not all(isinstance(p, ContextEdit) for p in pairs):
        raise bad_arg("pairs", pairs, "at least two ContextEdit pairs")
    senses = sense_contexts() if senses is None else senses
    info = _compat.check_model(model)
    # Resolve everything first, then record all trajectories in a few length-grouped batches.
    jobs: list[tuple[torch.Tensor, int]] = []
    layout = []
    for p in pairs:
        r = _resolve(model, p, "last", info)
        ctrl = [_resolve(model, ce, "last", info) for ce in control_edits(p, n_controls, seed)]
        layout.append(len(jobs))
        jobs += [(r.clean_tokens, r.clean_pos), (r.edited_tokens, r.edited_pos)]
        jobs += [(x.edited_tokens, x.edited_pos) for x in ctrl]
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
                        r = _resolve(model, ContextEdit(text, text, p.target), "last", info)
                        jobs.append((r.clean_tokens, r.clean_pos))
    states = _target_states(model, jobs, points, info)
    scale = 180 / math.pi if measure == "angle" else 1.0

    rows, mcurves, ccurves = [], [], []
    for p, base in zip(pairs, layout):
        c, e = states[base], states[base + 1]
        ctrl = states[base + 2 : base + 2 + n_controls]
        mm = deflection_measures(c, e)[measure]
        cm = deflection_measures(c.expand_as(ctrl), ctrl)[measure]
        mcurves.append(mm)
        ccurves.append(cm.mean(0))
        row = {
            "pair": p.name,
            "target": p.target,
            "meaning": float(mm[1:].nanmean()) * scale,
            "control": float(cm[:, 1:].nanmean(-1).mean()) * scale,
        }
        cs, es = p.info.get("clean_sense"), p.info.get("edited_sense")
        if (p.target, cs) in proto_rows and (p.target, es) in proto_rows:
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
    )
