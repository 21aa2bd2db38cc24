"""The README quotes the measured error rates of tlgeom's inference from results/, never by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tlgeom.report import readme as blocks

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"


def test_readme_calibration_block_matches_results():
    readme = (ROOT / "README.md").read_text()
    assert blocks.CALIBRATION_BEGIN in readme and blocks.CALIBRATION_END in readme
    quoted = (
        blocks.CALIBRATION_BEGIN
        + readme.split(blocks.CALIBRATION_BEGIN, 1)[1].split(blocks.CALIBRATION_END, 1)[0]
        + blocks.CALIBRATION_END
    )
    assert quoted == blocks.render_calibration_block(RESULTS), (
        "README calibration numbers differ from results/: run scripts/readme_blocks.py"
    )


def test_block_changes_when_a_result_changes(tmp_path):
    for name in ("calibration.csv", "onset_calibration.csv"):
        (tmp_path / name).write_text((ROOT / "results" / name).read_text())
    before = blocks.render_calibration_block(tmp_path)
    text = (tmp_path / "calibration.csv").read_text().replace("0.045,", "0.145,", 1)
    (tmp_path / "calibration.csv").write_text(text)
    assert blocks.render_calibration_block(tmp_path) != before


# ------------------------------------------------------------------------------ facts blocks (results/facts.csv)


def _facts_copy(tmp_path, edit=None):
    """results/facts.csv copied to tmp_path, with ``edit(frame) -> frame`` applied."""
    import pandas as pd

    frame = pd.read_csv(ROOT / "results" / "facts.csv", keep_default_na=False, dtype={"model": str})
    if edit is not None:
        frame = edit(frame)
    frame.to_csv(tmp_path / "facts.csv", index=False)
    return tmp_path


def _set(frame, fact, model, value):
    frame = frame.copy()
    rows = (frame.fact == fact) & (frame.model == model)
    assert rows.sum() == 1, (fact, model)
    frame.loc[rows, "value"] = value
    return frame


def test_readme_facts_blocks_match_results():
    """Every facts block of the README is what its template makes of results/facts.csv, and every template's
    block is in the README."""
    readme = (ROOT / "README.md").read_text()
    found = blocks.facts_blocks(readme)
    assert sorted(found) == sorted(blocks.FACT_BLOCKS), "README facts blocks differ from scripts/readme_blocks.py"
    assert len(found) == len(set(found)), "a facts block appears twice in the README"
    for name in found:
        assert blocks.quoted_facts_block(readme, name) == blocks.render_facts_block(name, RESULTS), (
            f"README facts block {name!r} differs from results/facts.csv: run scripts/readme_blocks.py README.md"
        )


def test_every_fact_a_block_quotes_is_in_the_csv():
    """The templates ask only for (fact, model) rows the CSV has, and every CSV row is quoted or settings."""
    facts = blocks.Facts(RESULTS)
    for name in blocks.FACT_BLOCKS:
        blocks.render_facts_block(name, facts=facts)  # MissingFact if one is absent
    assert facts.used <= set(facts.values)
    unused = set(facts.values) - facts.used
    assert not unused, f"results/facts.csv rows no README block quotes: {sorted(unused)}"


def test_a_missing_fact_fails_naming_it(tmp_path):
    results = _facts_copy(tmp_path, lambda f: f[~((f.fact == "heat_beats_gauss") & (f.model == "smollm2-135m"))])
    with pytest.raises(blocks.MissingFact, match="heat_beats_gauss.*smollm2-135m"):
        blocks.render_facts_block("heat", results)
    results = _facts_copy(tmp_path, lambda f: f[f.fact != "noun_self_value_first"])
    with pytest.raises(blocks.MissingFact, match="noun_self_value_first"):
        blocks.render_facts_block("noun_probe", results)


def test_facts_csv_is_complete_and_reproducible():
    """Columns, finite values, a `how` for every row, and the settings of the run next to it."""
    import json
    import math

    import pandas as pd

    frame = pd.read_csv(ROOT / "results" / "facts.csv", keep_default_na=False)
    assert list(frame.columns) == ["section", "fact", "model", "value", "unit", "how"]
    assert frame.value.map(lambda v: math.isfinite(float(v))).all()
    assert (frame.how.str.len() > 0).all() and (frame.unit.str.len() > 0).all()
    assert not frame.duplicated(["fact", "model"]).any()
    settings = json.loads((ROOT / "results" / "facts.json").read_text())
    for key in ("tlgeom_version", "torch_version", "transformer_lens_version", "circle_seed", "torch_threads"):
        assert key in settings
    assert settings["n_facts"] == len(frame)


def _flat(text):
    """``text`` with every run of whitespace (line wraps included) as one space."""
    return " ".join(text.split())


def test_wording_follows_the_numbers(tmp_path):
    """When a number stops supporting a sentence, the generated sentence changes, never the claim alone.

    Each case starts from the committed CSV with the values it is about set explicitly, so the test does not
    depend on what the last run measured."""

    def sphere(**l2):  # l2: model -> (scaled, centred & scaled)
        def edit(f):
            for m, (s, cs) in l2.items():
                f = _set(_set(f, "embed_l2_scaled", m, s), "embed_l2_centred_scaled", m, cs)
            return f

        return _flat(blocks.render_facts_block("sphere", _facts_copy(tmp_path, edit)))

    S, M = "smollm2-135m", "minilm-l6"
    text = sphere(**{S: (3.0, 16.0), M: (3.0, 4.0)})
    assert (
        "against the paper's reading, plain *scaled* embeddings are closer to LN(E) than *centred & scaled* ones on both"
        in text
    )
    # the embedding check flips on minilm: the sentence says so
    text = sphere(**{S: (3.0, 16.0), M: (9.0, 4.0)})
    assert "against the paper's reading" not in text and "as the paper reads it" not in text
    assert "scaled* ones on smollm2 3.00 vs 16.0 (mean L2) but not on minilm 9.00 vs 4.00" in text
    # both flip: the paper's reading holds
    text = sphere(**{S: (99.0, 16.0), M: (9.0, 4.0)})
    assert "as the paper reads it, *centred & scaled* embeddings are closer" in text

    # off the sphere: said, with the number
    def off(f):
        f = _set(_set(f, "sphere_eps_rel_err_max", M, 0.002), "sphere_tol", M, 1e-5)
        return _set(_set(f, "sphere_eps_rel_err_max", S, 1.5e-7), "sphere_tol", S, 1e-5)

    text = _flat(blocks.render_facts_block("sphere", _facts_copy(tmp_path, off)))
    assert "NOT on the √d sphere after ε on minilm (off by 2.0e-3, tolerance 1e-05) (on smollm2: to 1.5e-7)" in text

    # the heat kernel wins in most heads (weak evidence) or in a minority (no evidence)
    win = _facts_copy(tmp_path, lambda f: _set(_set(f, "heat_beats_gauss", S, 6), "heat_n_heads", S, 9))
    assert "in 6 of 9 heads — weak evidence" in _flat(blocks.render_facts_block("heat", win))
    lose = _facts_copy(tmp_path, lambda f: _set(_set(f, "heat_beats_gauss", S, 2), "heat_n_heads", S, 9))
    text = _flat(blocks.render_facts_block("heat", lose))
    assert "in only 2 of 9 heads — no evidence" in text and "weak evidence" not in text

    # the noun probe's early/late contrast: on both, on one, on none
    def nouns(**rates):  # model -> (layer 0, last layer)
        def edit(f):
            for m, (a, b) in rates.items():
                f = _set(_set(f, "noun_self_value_first", m, a), "noun_self_value_last", m, b)
            return f

        return _flat(blocks.render_facts_block("noun_probe", _facts_copy(tmp_path, edit)))

    assert "(the paper's early/late contrast)." in nouns(**{S: (0.0, 0.2), M: (0.04, 0.2)})
    assert "early/late contrast on smollm2 only" in nouns(**{S: (0.0, 0.2), M: (0.04, 0.0)})
    assert "not the paper's early/late contrast" in nouns(**{S: (0.3, 0.2), M: (0.04, 0.0)})

    # a changed eigenvalue changes the quoted number and the stated error
    def circle(f):
        for i, v in enumerate((1.0, 1.0, 3.5, 4.1), start=1):
            f = _set(f, f"circle_eig_{i}", "", v)
        return f

    eig = _facts_copy(tmp_path, circle)
    text = _flat(blocks.render_facts_block("circle", eig))
    assert "3.50, 4.10 (exact: 1, 1, 4, 4; largest relative error 12.5 %)" in text


def test_wrapping_never_opens_a_list():
    text = blocks._wrap("- lead " + "word " * 19 + "- dash 12. num * star " + "tail " * 40)
    for line in text.splitlines()[1:]:
        assert not blocks._BLOCK_START.match(line), line
    assert (
        text.replace("\n  ", " ").split()
        == ("- lead " + "word " * 19 + "- dash 12. num * star " + "tail " * 40).split()
    )


def test_readme_costs_block_matches_results():
    """The null engine's measured costs (issue 25) are quoted from results/costs.csv, never by hand."""
    readme = (ROOT / "README.md").read_text()
    assert blocks.COSTS_BEGIN in readme and blocks.COSTS_END in readme
    quoted = (
        blocks.COSTS_BEGIN + readme.split(blocks.COSTS_BEGIN, 1)[1].split(blocks.COSTS_END, 1)[0] + blocks.COSTS_END
    )
    assert quoted == blocks.render_costs_block(RESULTS), (
        "README costs differ from results/costs.csv: run scripts/readme_blocks.py"
    )


def test_landscape_caption_compares_with_what_random_directions_give():
    """The caption's comparison is computed, not asserted: the fraction of random-direction angles within
    10° of 90° in R^576 (≈ 100 %: ±10° is 4 standard deviations), and in R^3 (where it is sin-weighted:
    sin 10° ≈ 17 %)."""
    assert blocks._random_within(576, 10) > 0.9999
    assert blocks._random_within(3, 10) == pytest.approx(math.sin(math.radians(10)), rel=1e-6)
