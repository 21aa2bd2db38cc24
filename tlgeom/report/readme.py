"""The README's generated blocks, in one place: each is made from committed results and nothing is hand-typed.

A block sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers and is rewritten whole:

* ``claims`` and ``verdicts:curvature``: the claims table and the curvature verdicts in words, from
  ``results/claims.csv`` (``tlgeom claims --readme``; :func:`render_block`, :func:`render_verdicts`);
* ``calibration``: the measured error rates of tlgeom's inference, from ``results/calibration.csv`` and
  ``results/onset_calibration.csv`` (:func:`render_calibration_block`);
* ``costs``: what the null tests and the demo cost, from ``results/costs.csv`` (:func:`render_costs_block`);
* ``facts:NAME``: the prose around a measured number, from ``results/facts.csv`` through one small template
  per block (:data:`FACT_BLOCKS`); a template picks its wording from the values and refuses, naming it, a
  fact the CSV lacks.

In the repository ``python scripts/readme_blocks.py README.md`` rewrites the calibration, costs and facts
blocks and ``python scripts/claims.py --readme README.md results/README.md`` the claims blocks;
``tests/unit/test_readme_numbers.py`` and ``tests/unit/test_claims_table.py`` regenerate each and compare.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tlgeom._args import SPACES
from tlgeom.experiments.analyses import ANALYSES, claim_parts

BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
#: the claims table's parts, in order (the declared analyses' claims)
PARTS = claim_parts()


def _replace_between(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with everything from ``begin`` to ``end`` (markers included) replaced by ``block``."""
    head, rest = text.split(begin, 1)
    return head + block + rest.split(end, 1)[1]


def _units(part: str) -> str | None:
    """The declared units of a claims part's rows in words (None: the corpus texts)."""
    return next((a.claim.units for a in ANALYSES if a.claim is not None and a.claim.part == part), None)


def part_of(claim: str) -> str:
    """Which part of the run makes a claim's rows: the claim's first word (``"curvature"``, ``"eclipse"``,
    ``"heads"``, ``"language"``)."""
    for part in PARTS:
        if str(claim).startswith(part):
            return part
    return "curvature"


def render_runs(table: pd.DataFrame, runs: dict[str, dict]) -> list[str]:
    """One Markdown bullet per run (part, and space for curvature): the models, the units and how many
    (the largest ``n_texts`` of its rows; minimal pairs for the eclipse), and the recorded settings."""
    t = table.copy()
    t["item"] = t["item"].fillna("").astype(str)
    part = t["claim"].map(part_of)
    lines = []
    for key in sorted(runs, key=lambda k: (PARTS.index(k.split("/")[0]), k)):
        name, _, space = key.partition("/")
        rows = t[(part == name) & ((t["space"] == space) if space else True)]
        if not len(rows):
            continue
        r = runs[key]
        models = ", ".join(dict.fromkeys(rows["model"]))
        declared = _units(name)
        if declared is not None and (rows["item"] != "").any():  # one unit per item (each minimal pair)
            units = f"{rows.loc[rows['item'] != '', 'item'].nunique()} {declared}"
        elif declared is not None:
            units = declared
        else:
            n = int(pd.to_numeric(rows.loc[rows["item"] == "", "n_texts"], errors="coerce").max())
            units = f"{n} {r.get('corpus_label') or 'corpus'} texts of at most {r.get('max_tokens')} tokens"
        extra = f"; {r['n_sims']} simulations per null" if name == "curvature" and r.get("n_sims") else ""
        inits = r.get("untrained_seeds") or []
        extra += f"; {len(inits)} untrained initialisations (seeds {inits[0]}–{inits[-1]})" if len(inits) > 1 else ""
        lines.append(f"- `{key}`: {models}; {units}{extra}; seed {r.get('seed')}")
    return lines


# ------------------------------------------------------------------------------------------------ README block


def _cell(x: Any) -> str:
    """A number as the README prints it: 3 significant digits, ``–`` for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, (bool,)) or str(x) in ("True", "False"):
        return "yes" if str(x) == "True" else "no"
    x = float(x)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.2e}"
    return f"{x:.3g}"


def _family(statistic: str) -> str:
    """``"distance@L7"`` -> ``"distance"``: the per-point statistics of one family share a prefix."""
    return str(statistic).split("@", 1)[0]


def _point(statistic: str) -> str:
    return str(statistic).split("@", 1)[1] if "@" in str(statistic) else ""


def _rejected(g: pd.DataFrame) -> pd.Series:
    return g["reject"].astype(str).eq("True")


def render_block(table: pd.DataFrame, runs: dict[str, dict] | None = None) -> str:
    """The README's numbers block, made from the claims table (and ``runs``, the settings of each run
    recorded in ``claims.json``, listed first when given) alone (deterministic).

    Three tables: (1) whole-corpus / across-pairs tests with a single statistic: observed, null mean,
    effect [CI], adjusted p, n, decision; (2) per-point families (statistic ``name@point``, e.g. the
    onset across pairs): the first rejected point and how many points reject; (3) per-item rows (one
    per minimal pair): how many items reject at some point, and their median onset point index.
    """
    t = table.copy()
    t["item"] = t["item"].fillna("").astype(str)
    t["statistic"] = t["statistic"].astype(str)
    language = t[t["claim"] == "language"]
    t = t[t["claim"] != "language"]
    per_point = t["statistic"].str.contains("@", regex=False)
    lines = [
        BEGIN,
        "<!-- generated by `python scripts/claims.py --readme` from results/claims.csv: do not edit by hand -->",
        "",
        *(["Runs (from `results/claims.json`):", "", *render_runs(table, runs), ""] if runs else []),
        "| claim | model | space | null | statistic | observed | null mean | effect [95% CI] | p (adj.) | n | reject |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in t[(t["item"] == "") & ~per_point].iterrows():
        lines.append(
            f"| {r['claim']} | {r['model']} | {r['space']} | {r['null']} | {r['statistic']} | {_cell(r['observed'])} "
            f"| {_cell(r['null_mean'])} | {_cell(r['effect'])} [{_cell(r['ci_low'])}, {_cell(r['ci_high'])}] "
            f"| {_cell(r['p_adjusted'])} | {_cell(r['n_texts'])} | {_cell(r['reject'])} |"
        )
    keys = ["claim", "model", "space", "null", "family"]
    t["family"] = t["statistic"].map(_family)
    families = t[(t["item"] == "") & per_point]
    if len(families):
        lines += [
            "",
            "| claim | model | space | null | statistic | first rejected point | points rejected | signs of the "
            "rejected effects | min p (adj.) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, g in families.groupby(keys, sort=False, dropna=False):
            rej = _rejected(g)
            first = _point(g.loc[rej, "statistic"].iloc[0]) if rej.any() else "none"
            effects = pd.to_numeric(g.loc[rej, "effect"], errors="coerce")
            signs = f"{int((effects > 0).sum())} +, {int((effects < 0).sum())} −" if rej.any() else "–"
            lines.append(
                "| " + " | ".join(str(v) for v in key) + f" | {first} | {int(rej.sum())} of {len(g)} | {signs} "
                f"| {_cell(g['p_adjusted'].astype(float).min())} |"
            )
    items = t[t["item"] != ""]
    if len(items):
        lines += [
            "",
            "| claim | model | space | null | statistic | items rejected (any point) | median onset (point index) "
            "| not run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        ran = items["p"].astype(float).notna().groupby([items[k] for k in ["claim", "model", "item"]]).transform("any")
        not_run = items[~ran].groupby(["claim", "model"], sort=False)["item"].nunique()
        for key, g in items[ran].groupby(keys, sort=False, dropna=False):
            onsets = []
            for _, gi in g.groupby("item", sort=False):
                rej = _rejected(gi).to_numpy()
                if rej.any():
                    onsets.append(int(rej.argmax()))
            median = _cell(float(pd.Series(onsets, dtype=float).median())) if onsets else "–"
            n_items, skipped = g["item"].nunique(), int(not_run.get((key[0], key[1]), 0))
            lines.append(
                "| " + " | ".join(str(v) for v in key) + f" | {len(onsets)} of {n_items} | {median} | {skipped} |"
            )
    lines += _language_lines(language)
    lines.append(END)
    return "\n".join(lines)


def _language_lines(language: pd.DataFrame) -> list[str]:
    """The language claim, compactly: per model, how many pooled tests reject against 0 (after Holm), and
    the rejected effects with their CI and origin (``learned`` / ``architecture`` from the untrained
    reference model); the other rows are in the CSV."""
    if not len(language):
        return []
    out = [
        "",
        "| language (curvature vs annotation, pooled) | model | statistic | effect [95% CI] | p (adj.) | n | origin |",
        "|---|---|---|---|---|---|---|",
    ]
    family = language[language["item"] == ""]  # the trained model's rows: Holm runs over all of them
    trained = family[family["null"] == "zero"]
    for model, g in trained.groupby("model", sort=False):
        rej = g[_rejected(g)]
        m = int((family["model"] == model).sum())
        out.append(
            f"| {len(rej)} of {len(g)} tests against 0 reject (Holm over the model's {m} tests) | {model} | | | | | |"
        )
        for _, r in rej.iterrows():
            out.append(
                f"| | {model} | {r['statistic']} | {_cell(r['effect'])} [{_cell(r['ci_low'])}, {_cell(r['ci_high'])}] "
                f"| {_cell(r['p_adjusted'])} | {_cell(r['n_texts'])} | {r.get('origin', '')} |"
            )
    return out


# ------------------------------------------------------------------------------------------------ curvature verdicts

VERDICTS_BEGIN, VERDICTS_END = "<!-- verdicts:curvature:begin -->", "<!-- verdicts:curvature:end -->"

#: per curvature statistic: its name in words, what a rejected positive / negative effect and a difference
#: say (each followed by the nulls), and the unit its effect is printed in
_CURVATURE_WORDS: dict[str, dict[str, str]] = {
    "sharp_flat": {
        "label": "turns beyond the null's tails (sharp/flat excess)",
        "greater": "more than",
        "less": "fewer than",
        "unit": "",
    },
    "mean_angle": {"label": "mean turning angle", "greater": "larger than", "less": "smaller than", "unit": "°"},
    "mean_abs_dev": {
        "label": "mean |θ − 90°| (how far turns lie from 90°)",
        "greater": "larger than",
        "less": "smaller than",
        "unit": "°",
    },
    "log_ltc": {
        "label": "mean log length-to-chord (path length for its chord)",
        "greater": "longer than",
        "less": "shorter than",
        "unit": "",
    },
}
#: the alternative of each statistic when the table has no ``alternative`` column (``compare_to_nulls``'s)
_CURVATURE_ALTERNATIVE = {"mean_angle": "two-sided"}
_CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "unadjusted"}


def _words(statistic: str, key: str) -> str:
    """``key`` (``label``, ``greater``, ``less``, ``two-sided``, ``unit``) of a statistic, generic for one
    the table names but :data:`_CURVATURE_WORDS` does not."""
    default = {"label": statistic, "greater": "above", "less": "below", "unit": ""}
    return {**default, "two-sided": "different from", **_CURVATURE_WORDS.get(statistic, {})}[key]


def _join(items: list[str], last: str) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"`` (``last`` = ``"and"`` / ``"or"``)."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {last} " + items[-1]


def _verdict_item(r: pd.Series, unit: str, p_name: str, note: str = "", p: bool = True) -> str:
    """``rotation (+7.39° [7.25, 7.52], Holm p 0.032)``: a null, its effect with its CI, the adjusted p (left
    out with ``p=False``: the row's p is its tested side's, not the side it is significant on)."""
    effect = float(r["effect"])
    sign = "+" if effect > 0 else ""
    ci = "" if pd.isna(r["ci_low"]) else f" [{_cell(r['ci_low'])}, {_cell(r['ci_high'])}]"
    shown = f", {p_name} p {_cell(r['p_adjusted'])}" if p else ""
    return f"{r['null']} ({sign}{_cell(effect)}{unit}{ci}{shown}{note})"


def _informative_rows(g: pd.DataFrame) -> pd.Series:
    """Which rows count as tests: all, except those the table marks ``informative == False``."""
    if "informative" not in g.columns:
        return pd.Series(True, index=g.index)
    return ~g["informative"].astype(str).eq("False")


def _untested_side(r: pd.Series, alternative: str) -> str:
    """For a one-sided test not rejected: a note when the whole CI lies on the side the test does not test."""
    lo, hi = float(r["ci_low"]), float(r["ci_high"])
    if alternative == "greater" and hi < 0:
        return "; CI below 0: the opposite direction, not significant after the correction"
    if alternative == "less" and lo > 0:
        return "; CI above 0: the opposite direction, not significant after the correction"
    return ""


def _statistic_verdict(g: pd.DataFrame, p_name: str) -> str:
    """One statistic's rows (one per null) in words: the nulls rejected, grouped by the sign of the effect,
    then those significant on the claim's opposite side (``against``: evidence against it), then the nulls not
    rejected (worded by the test's alternative), then the uninformative ones."""
    statistic = str(g["statistic"].iloc[0])
    unit, fallback = _words(statistic, "unit"), _CURVATURE_ALTERNATIVE.get(statistic, "greater")
    alternative = (
        g["alternative"].fillna(fallback).astype(str)
        if "alternative" in g.columns
        else pd.Series(fallback, index=g.index)
    )
    informative = _informative_rows(g)
    rejected, effect = _rejected(g) & informative, g["effect"].astype(float)
    parts = []
    for direction, sel in (("greater", rejected & (effect > 0)), ("less", rejected & (effect < 0))):
        if sel.any():
            items = [_verdict_item(r, unit, p_name) for _, r in g[sel].iterrows()]
            parts.append(f"{_words(statistic, direction)} {_join(items, 'and')}")
    against = (
        g["against"].astype(str).eq("True") & ~rejected & informative if "against" in g.columns else rejected & False
    )
    opposite = {"greater": "less", "less": "greater"}
    for alt in dict.fromkeys(alternative[against]):
        rows = g[against & (alternative == alt)]
        items = [_verdict_item(r, unit, p_name, p=False) for _, r in rows.iterrows()]
        word = _words(statistic, opposite.get(alt, alt))
        parts.append(
            f"**evidence against** the claim: significantly {word} {_join(items, 'and')} ({p_name} on the opposite side)"
        )
    kept = ~rejected & informative & ~against
    for alt in dict.fromkeys(alternative[kept]):
        rows = g[kept & (alternative == alt)]
        items = [_verdict_item(r, unit, p_name, _untested_side(r, alt)) for _, r in rows.iterrows()]
        parts.append(f"not shown {_words(statistic, alt)} {_join(items, 'or')}")
    if (~informative).any():
        parts.append(f"uninformative against {_join([str(n) for n in g.loc[~informative, 'null']], 'and')}")
    return f"  - {_words(statistic, 'label')}: " + "; ".join(parts)


def render_verdicts(table: pd.DataFrame, runs: dict[str, dict] | None = None) -> str:
    """The curvature verdicts in words, made from the ``curvature`` rows of the claims table alone
    (and ``runs``, the settings recorded in ``claims.json``, for the texts' length and the simulations).

    One Markdown bullet per model × space that has rows: the run's units (texts, tokens, simulations, the
    correction over the family's informative tests), then per statistic which nulls the trajectories
    differ from (``reject`` after the correction within that model × space family; the direction is the
    sign of ``effect`` = observed − null mean), with effect [95 % CI] and adjusted p, and which nulls they
    are not shown to differ from. Every word that carries a verdict is chosen from the row's ``reject``,
    ``effect`` and ``alternative``; the numbers have 3 significant digits. A closing sentence names each
    space (of :data:`SPACES`) with no rows yet. Deterministic; between :data:`VERDICTS_BEGIN` and
    :data:`VERDICTS_END`.
    """
    runs = runs or {}
    t = table[table["claim"] == "curvature"].copy()
    t["item"] = t["item"].fillna("").astype(str)
    t = t[t["item"] == ""]
    t["statistic"] = t["statistic"].astype(str)
    lines = [
        VERDICTS_BEGIN,
        "<!-- generated by `python scripts/claims.py --readme` from results/claims.csv: do not edit by hand -->",
        "",
    ]
    present = [sp for sp in SPACES if (t["space"] == sp).any()]
    present += sorted(set(t["space"].astype(str)) - set(SPACES))
    for space in present:
        run = runs.get(f"curvature/{space}", {})
        correction = str(run.get("correction") or "")
        p_name = _CORRECTION_NAMES.get(correction, "adjusted")
        rows = t[t["space"] == space]
        for model, g in rows.groupby("model", sort=False):
            informative = _informative_rows(g)
            n_tests = int(informative.sum())
            n_texts = int(pd.to_numeric(g["n_texts"], errors="coerce").max())
            corpus = str(g["corpus"].iloc[0]) if "corpus" in g.columns and pd.notna(g["corpus"].iloc[0]) else ""
            units = f"{n_texts} {corpus + ' ' if corpus else ''}texts"
            units += f" of ≤ {run['max_tokens']} tokens" if run.get("max_tokens") else ""
            units += f", {run['n_sims']} simulations per null" if run.get("n_sims") else ""
            family = f"{p_name} over {n_tests} tests" if correction else f"adjusted over {n_tests} tests"
            alpha = f" at α = {_cell(run['alpha'])}" if run.get("alpha") else ""
            n_rej = int((_rejected(g) & informative).sum())
            lines.append(f"- **{model}, {space} space** ({units}; {family}{alpha}): {n_rej} of {n_tests} tests reject")
            lines += [_statistic_verdict(s, p_name) for _, s in g.groupby("statistic", sort=False)]
    absent = [sp for sp in SPACES if sp not in present]
    if absent:
        lines += [
            "",
            " ".join(
                f"No {sp}-space rows yet (`python scripts/claims.py --parts curvature --spaces {sp}`)." for sp in absent
            ),
        ]
    lines.append(VERDICTS_END)
    return "\n".join(lines)


def read_verdicts(text: str) -> str | None:
    """The curvature verdicts block of a README (markers included), or None when it has none."""
    if VERDICTS_BEGIN not in text or VERDICTS_END not in text:
        return None
    return VERDICTS_BEGIN + text.split(VERDICTS_BEGIN, 1)[1].split(VERDICTS_END, 1)[0] + VERDICTS_END


def replace_verdicts(text: str, block: str) -> str:
    """``text`` with its curvature verdicts block replaced by ``block``; unchanged when it has none."""
    if read_verdicts(text) is None:
        return text
    return _replace_between(text, VERDICTS_BEGIN, VERDICTS_END, block)


def replace_block(text: str, block: str) -> str:
    """``text`` with its marked block replaced by ``block`` (appended when there is none)."""
    if BEGIN in text and END in text:
        return _replace_between(text, BEGIN, END, block)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def read_block(text: str) -> str | None:
    """The marked block of a README (markers included), or None when it has none."""
    if BEGIN not in text or END not in text:
        return None
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END


# ------------------------------------------------------------------------------------------- calibration, costs, facts

CALIBRATION_BEGIN, CALIBRATION_END = "<!-- calibration:begin -->", "<!-- calibration:end -->"


def render_calibration_block(results: Path) -> str:
    """The Markdown block (markers included) from the two calibration CSVs."""
    cal = pd.read_csv(results / "calibration.csv")
    onset = pd.read_csv(results / "onset_calibration.csv")
    lines = [
        CALIBRATION_BEGIN,
        "<!-- generated by `python scripts/readme_blocks.py README.md` from results/: do not edit by hand -->",
        "",
        "| curvature procedure | space | truth | corpora × texts × tokens | rate of any rejection (± MC s.e.) |",
        "|---|---|---|---|---|",
    ]
    for r in cal.itertuples():
        truth = "every null true" if float(r.anti) == 0 else f"planted effect (anti = {r.anti:g})"
        what = "power" if float(r.anti) != 0 else "family-wise false alarms"
        lines.append(
            f"| {r.procedure} | {r.space} | {truth} | {r.corpora} × {r.texts} × {r.tokens_per_text} "
            f"| {what}: {r.rate_any_reject:.3f} ± {r.mc_se:.3f} |"
        )
    lines += [
        "",
        "| eclipse onset | unit | controls | planted deflection | simulations | onset rate, corrected "
        "| onset rate, tlgeom 0.1 rule |",
        "|---|---|---|---|---|---|---|",
    ]
    if "design" not in onset.columns:  # a table written before the across-pair rows
        onset = onset.assign(design="edit")
    for r in onset.itertuples():
        pairs = r.design == "pairs"
        unit = f"pair ({int(r.n_pairs)} pairs)" if pairs else "one edit"
        old = "–" if pd.isna(r.old_rule_onset_rate) else f"{r.old_rule_onset_rate:.3f}"
        lines.append(
            f"| {'false onsets' if float(r.planted) == 0 else 'power'} | {unit} | {r.n_controls} | {r.planted:g} "
            f"| {r.n_sims} {'sets of pairs' if pairs else 'edits'} | {r.corrected_onset_rate:.3f} | {old} |"
        )
    lines.append(CALIBRATION_END)
    return "\n".join(lines)


def replace_calibration_block(text: str, block: str) -> str:
    """``text`` with its calibration block replaced by ``block``."""
    if CALIBRATION_BEGIN not in text or CALIBRATION_END not in text:
        raise KeyError(f"no {CALIBRATION_BEGIN} … {CALIBRATION_END} block in the file")
    return _replace_between(text, CALIBRATION_BEGIN, CALIBRATION_END, block)


# ------------------------------------------------------------------------------------------- facts

FACTS_NOTE = (
    "<!-- generated by `python scripts/readme_blocks.py README.md` from results/facts.csv: do not edit by hand -->"
)
FACTS_BLOCK = re.compile(r"<!-- facts:([a-z_]+):begin -->")


def facts_markers(name: str) -> tuple[str, str]:
    """The begin and end markers of facts block ``name``."""
    return f"<!-- facts:{name}:begin -->", f"<!-- facts:{name}:end -->"


class MissingFact(LookupError):
    """A template asked for a (fact, model) that ``results/facts.csv`` does not hold."""


class Facts:
    """The rows of ``results/facts.csv``, looked up by (fact, model); records what a template used."""

    def __init__(self, results: Path = Path("results")) -> None:
        frame = pd.read_csv(results / "facts.csv", keep_default_na=False, dtype={"model": str})
        self.values = {(r.fact, r.model): float(r.value) for r in frame.itertuples()}
        self.order = list(dict.fromkeys(frame.model))  # models in the CSV's order
        self.used: set[tuple[str, str]] = set()

    def __call__(self, fact: str, model: str = "") -> float:
        key = (fact, model)
        self.used.add(key)
        if key not in self.values:
            raise MissingFact(
                f"results/facts.csv has no fact {fact!r}"
                + (f" for model {model!r}" if model else "")
                + ": run `python scripts/facts.py`"
            )
        return self.values[key]

    def models(self, fact: str) -> list[str]:
        """The models that have ``fact``, in the CSV's order (refuses when none has it)."""
        found = [m for m in self.order if (fact, m) in self.values and m]
        if not found:
            self.used.add((fact, "*"))
            raise MissingFact(f"results/facts.csv has no fact {fact!r} for any model: run `python scripts/facts.py`")
        return found


def _short(model: str) -> str:
    return model.split("-")[0]  # "smollm2-135m" -> "smollm2"


def _digits(x: float, sig: int = 3) -> str:
    """``x`` to ``sig`` significant digits, without an exponent (1262.1 -> "1262", 2.5824 -> "2.58")."""
    if x == 0:
        return "0"
    digits = max(0, sig - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{digits}f}"


def _sci(x: float) -> str:
    """``1.556e-07`` -> ``1.6e-7``."""
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _every(n: int) -> str:
    return {1: "the one", 2: "both"}.get(n, f"all {n}")


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _pct(x: float, digits: int = 0) -> str:
    return f"{100 * x:.{digits}f} %"


#: a line that starts like this would open a list, heading or quote instead of continuing the paragraph
_BLOCK_START = re.compile(r"^\s*([-+*>#]|\d+[.)])(\s|$)")


def _wrap(text: str, bullet: bool = True) -> str:
    """One paragraph (or list item) wrapped at the README's width, never starting a line with a block marker."""
    lines = textwrap.wrap(
        text, width=105, subsequent_indent="  " if bullet else "", break_long_words=False, break_on_hyphens=False
    )
    i = 1
    while i < len(lines):
        if _BLOCK_START.match(lines[i]):  # move the offending word up to the previous line
            word, _, rest = lines[i].strip().partition(" ")
            lines[i - 1] += " " + word
            if rest:
                lines[i] = ("  " if bullet else "") + rest
                continue
            del lines[i]
            continue
        i += 1
    return "\n".join(lines)


def _random_within(d: int, deg: float) -> float:
    """The fraction of angles between independent uniform directions in R^d that lie within ``deg`` of
    90°: the angle's density is ∝ sin^(d−2) θ (integrated numerically, Simpson's rule in log space)."""
    n = 4000
    lo, hi = math.radians(90 - deg), math.radians(90 + deg)

    def mass(a: float, b: float) -> float:
        h = (b - a) / n
        w = [1 if i in (0, n) else (4 if i % 2 else 2) for i in range(n + 1)]
        return (
            sum(wi * math.exp((d - 2) * math.log(max(math.sin(a + i * h), 1e-300))) for i, wi in enumerate(w)) * h / 3
        )

    return mass(lo, hi) / mass(1e-9, math.pi - 1e-9)


def _landscape(f: Facts) -> str:
    m = "smollm2-135m"
    n, d = int(f("landscape_n_tokens", m)), int(f("d_model", m))
    near, med = f("landscape_near_90", m), f("landscape_median_deg", m)
    spread = 180 / math.pi / math.sqrt(d)  # independent random directions in R^d: 90° ± (180/π)/√d
    rand = _random_within(d, 10)
    turns = (
        f"{_pct(near)} of the turns lie within 10° of 90° (median {med:.1f}°), where independent random directions "
        f"in R^{d} would put {_pct(rand)} (90° ± {spread:.1f}°): "
        + (
            "the turns are far more spread than random directions, and "
            if near < rand - 0.05
            else "the turns look like random directions, and "
        )
        + 'every claim about "bending" is tested against null models.'
    )
    return _wrap(
        f"*The curvature landscape of a {n}-token paragraph on SmolLM2-135M (`make demo`): one row per token, one "
        "column per layer vertex, colour = turning angle between the layer steps into and out of that vertex "
        f"(0° straight on, 90° orthogonal, 180° reversal). {turns}*",
        bullet=False,
    )


def _sphere(f: Facts) -> str:
    models = f.models("sphere_eps_rel_err_max")
    err = {m: f("sphere_eps_rel_err_max", m) for m in models}
    tol = {m: f("sphere_tol", m) for m in models}
    on = [m for m in models if err[m] <= tol[m]]
    off = [m for m in models if m not in on]
    if not off:
        sphere = f"the normalised vectors sit on the √d sphere to {_sci(max(err.values()))} (after ε)"
    else:
        sphere = "the normalised vectors are NOT on the √d sphere after ε on " + _names(
            [f"{_short(m)} (off by {_sci(err[m])}, tolerance {tol[m]:g})" for m in off]
        )
        if on:
            sphere += f" (on {_names([_short(m) for m in on])}: to {_sci(max(err[m] for m in on))})"
    norms = []
    for m in models:
        a, b, peak = f("raw_norm_first", m), f("raw_norm_last", m), f("raw_norm_max", m)
        verb = "grow" if b > a else "shrink"
        extra = f", peak {_digits(peak)}" if peak > max(a, b) * 1.01 else ""
        norms.append(f"{verb} {_digits(a, 2)} → {_digits(b)} ({_short(m)}{extra})")
    closer: list[str] = []
    farther: list[str] = []
    for m in models:
        s, cs = f("embed_l2_scaled", m), f("embed_l2_centred_scaled", m)
        (closer if s < cs else farther).append(f"{_short(m)} {_digits(s)} vs {_digits(cs)}")
    if not farther:
        embed = (
            "against the paper's reading, plain *scaled* embeddings are closer to LN(E) than *centred & scaled* "
            f"ones on {_every(len(models))} (mean L2, scaled vs centred & scaled: {'; '.join(closer)})"
        )
    elif not closer:
        embed = (
            "as the paper reads it, *centred & scaled* embeddings are closer to LN(E) than plain *scaled* ones on "
            f"{_every(len(models))} (mean L2, scaled vs centred & scaled: {'; '.join(farther)})"
        )
    else:
        embed = (
            "plain *scaled* embeddings are closer to LN(E) than *centred & scaled* ones on "
            f"{'; '.join(closer)} (mean L2) but not on {'; '.join(farther)}"
        )
    return _wrap(
        "- `sphere_report`: per normalisation layer, ‖n‖/√d of `hook_normalized` (before the gain; exact "
        "ε correction), |cos(n, 1)| (0 for LayerNorm's hyperplane, unconstrained for RMSNorm), the raw "
        "residual norm entering the layer, and how γ/β make the sphere a displaced ellipsoid; plus the "
        "paper's embedding check (E, centred, scaled, centred & scaled vs normalize(E)). On the example's "
        f"sentence, on {_every(len(models))} offline models {sphere}; the mean raw residual norms from the first "
        f"to the last normalisation layer {' and '.join(norms)}; and {embed}."
    )


def _noun_probe(f: Facts) -> str:
    models = f.models("noun_self_value_first")
    parts, rising = [], []
    for m in models:
        a, b, last = f("noun_self_value_first", m), f("noun_self_value_last", m), int(f("last_layer", m))
        parts.append(f"{_short(m)} {a:.2f} at layer 0 vs {b:.2f} at layer {last}")
        rising.append(b > a)
    if all(rising):
        contrast = "the paper's early/late contrast"
    elif not any(rising):
        contrast = "not the paper's early/late contrast: no rise with depth"
    else:
        contrast = "the paper's early/late contrast on " + _names([_short(m) for m, r in zip(models, rising) if r])
        contrast += " only"
    sizes = {m: (int(f("noun_n_nouns", m)), int(f("noun_k", m))) for m in models}
    if len(set(sizes.values())) == 1:
        n, k = next(iter(sizes.values()))
        what = f"the fraction of the {n} nouns among their own top-{k} value tokens"
    else:
        what = "the fraction of the nouns among their own top-k value tokens; " + ", ".join(
            f"{_short(m)} {n} nouns, k = {k}" for m, (n, k) in sizes.items()
        )
    return _wrap(
        f"- `noun_probe`: how often a noun's value update points back to itself ({what}, mean over heads): "
        f"{'; '.join(parts)} ({contrast})."
    )


def _circle(f: Facts) -> str:
    n, k = int(f("circle_n_points")), int(f("bandwidth_k"))
    lam = [f(f"circle_eig_{i}") for i in range(1, 5)]
    exact = [((i + 1) // 2) ** 2 for i in range(1, 5)]  # −Δ on the unit circle: m² for m = 1, 1, 2, 2
    worst = max(abs(v - e) / e for v, e in zip(lam, exact))
    return _wrap(
        "- `tlgeom.geometry.heat.graph_laplacian(X)`: diffusion maps with α = 1, scaled so that L → −Δ_g "
        f"(bandwidth ε = median squared distance to the {_ordinal(k)} neighbour); `heat_kernel(L, t) = exp(−tL)`. "
        f"On {n:,} points of the unit circle its first eigenvalues after 0 are "
        f"{', '.join(f'{v:.2f}' for v in lam)} (exact: {', '.join(map(str, exact))}; largest relative error "
        f"{_pct(worst, 1)})."
    )


def _heat(f: Facts) -> str:
    m = "smollm2-135m"
    layer, wins, n = int(f("heat_layer", m)), int(f("heat_beats_gauss", m)), int(f("heat_n_heads", m))
    if 2 * wins > n:
        verdict = f"in {wins} of {n} heads — weak evidence, since it has one more fitted parameter."
    else:
        verdict = (
            f"in only {wins} of {n} heads — no evidence for heat-kernel attention here, even with its one more "
            "fitted parameter."
        )
    return _wrap(
        f"- `attention_vs_heat_kernel`: on {_short(m)} layer {layer} (the bundled paragraph, as in the example) "
        f"the heat kernel fits the attention pattern better than a plain Gaussian kernel {verdict}"
    )


#: the facts blocks: name -> template (Facts -> the block's Markdown, markers excluded)
FACT_BLOCKS: dict[str, Callable[[Facts], str]] = {
    "landscape": _landscape,
    "sphere": _sphere,
    "noun_probe": _noun_probe,
    "circle": _circle,
    "heat": _heat,
}


def render_facts_block(name: str, results: Path = Path("results"), facts: Facts | None = None) -> str:
    """Facts block ``name`` (markers included) from ``results/facts.csv``; raises :class:`MissingFact`."""
    if name not in FACT_BLOCKS:
        raise KeyError(f"no template for facts block {name!r}: known {sorted(FACT_BLOCKS)}")
    begin, end = facts_markers(name)
    body = FACT_BLOCKS[name](facts if facts is not None else Facts(results))
    return "\n".join([begin, FACTS_NOTE, body, end])


def facts_blocks(text: str) -> list[str]:
    """The names of the facts blocks in ``text``, in order."""
    return FACTS_BLOCK.findall(text)


def quoted_facts_block(text: str, name: str) -> str:
    """Facts block ``name`` as ``text`` has it (markers included)."""
    begin, end = facts_markers(name)
    if begin not in text or end not in text:
        raise KeyError(f"no {begin} … {end} block in the file")
    return begin + text.split(begin, 1)[1].split(end, 1)[0] + end


COSTS_BEGIN, COSTS_END = "<!-- costs:begin -->", "<!-- costs:end -->"


def render_costs_block(results: Path = Path("results")) -> str:
    """The measured costs (markers included) from ``results/costs.csv``: one table, the machine it ran on."""
    costs = pd.read_csv(results / "costs.csv", keep_default_na=False)
    machine = sorted(set(costs.machine))
    lines = [
        COSTS_BEGIN,
        "<!-- generated by `python scripts/readme_blocks.py README.md` from results/costs.csv: do not edit by hand -->",
        "",
        f"Measured by `benchmarks/bench_nulls.py` on {'; '.join(machine)} (read the ratios: the machine is shared):",
        "",
        "| what | seconds | × a forward pass | note |",
        "|---|---|---|---|",
    ]
    for r in costs.itertuples():
        ratio = f"{float(r.x_forward):.2f}" if str(r.x_forward) not in ("", "nan") else ""
        sec = float(r.seconds)
        lines.append(
            f"| {r.measure} | {sec:.1f} | {ratio} | {r.note} |"
            if sec >= 1
            else f"| {r.measure} | {sec:.2f} | {ratio} | {r.note} |"
        )
    lines.append(COSTS_END)
    return "\n".join(lines)


def replace_costs_block(text: str, results: Path = Path("results")) -> str:
    """``text`` with its costs block (if any) regenerated."""
    if COSTS_BEGIN not in text:
        return text
    return _replace_between(text, COSTS_BEGIN, COSTS_END, render_costs_block(results))


def replace_facts_blocks(text: str, results: Path = Path("results")) -> str:
    """``text`` with every facts block in it regenerated from ``results/facts.csv``."""
    facts = Facts(results)
    for name in facts_blocks(text):
        text = text.replace(quoted_facts_block(text, name), render_facts_block(name, facts=facts), 1)
    return text
