"""Context edits and where their target lies: the layer that :mod:`tlgeom.experiments.eclipse` (deflection,
patching) and :mod:`tlgeom.experiments.controls` (matched control edits) both build on.

* :class:`ContextEdit`: a clean text, an edited text and the target word (or its character span), with
  which occurrence when it repeats, and what changed between the two texts;
* :func:`resolve_edit`: the edit tokenized by a model, the target's token position in each text and the
  clean → edited token alignment (:class:`ResolvedEdit`);
* :func:`align_token_ids`, :func:`token_char_spans`, :func:`find_word`: the pieces, also used by the
  patching and language modules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

import torch
from jaxtyping import Int

from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.models import _compat

#: Which sub-token stands for a target word that the tokenizer splits.
SUBTOKENS = ("last", "first")


def align_token_ids(
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

WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def short_text(text: str, n: int = 70) -> str:
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
                f"target={self.target!r}: not found as a whole word in the {which} text {short_text(text)!r}{hint}"
            )
        if k is None and len(spans) > 1:
            raise TlgeomError(
                f"target={self.target!r}: ambiguous in the {which} text {short_text(text)!r}: found "
                f"{len(spans)} occurrences at characters {spans}; pass occurrence=<index> (tlgeom deflect: --occurrence INDEX) "
                "(or (clean_index, edited_index))"
            )
        k = k or 0
        if k >= len(spans):
            raise TlgeomError(
                f"occurrence={self.occurrence!r}: the {which} text {short_text(text)!r} has only "
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
        cw = [(m.group(), m.start(), m.end()) for m in WORD.finditer(self.clean)]
        ew = [(m.group(), m.start(), m.end()) for m in WORD.finditer(self.edited)]
        ops = [
            op
            for op in SequenceMatcher(None, [w for w, *_ in cw], [w for w, *_ in ew], autojunk=False).get_opcodes()
            if op[0] != "equal"
        ]
        if not ops:
            raise TlgeomError(
                f"edited={short_text(self.edited)!r}: no word differs from the clean text, "
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
        return resolve_edit(model, self, subtoken)


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


def resolve_edit(model: Any, edit: ContextEdit, subtoken: str = "last", info=None) -> ResolvedEdit:
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
    align = align_token_ids(ct, et)
    espan = edit.target_span("edited")
    if espan is not None:
        epos = _positions(token_char_spans(model, edit.edited, et), espan, "edited", edit.edited, estr)
    else:
        mapped = [int(align[p]) for p in cpos]
        if any(m < 0 for m in mapped):
            raise TlgeomError(
                f"target={edit.target!r}: its clean tokens {[cstr[p] for p in cpos]} have no "
                f"unchanged counterpart in the edited text {short_text(edit.edited)!r} (the edit touches "
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
