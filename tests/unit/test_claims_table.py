"""results/claims.csv: the columns every row needs, its internal consistency, and the README numbers.

Every number a README quotes from the claims table sits in a block between ``<!-- claims:begin -->``
and ``<!-- claims:end -->`` that ``python scripts/claims.py --readme`` generates from the CSV; here the
block is regenerated and compared, so a README number that is not the CSV's fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT / "results" / "claims.csv"


from tlgeom import cli  # noqa: E402
from tlgeom.report import claims  # noqa: E402  (tlgeom claims; scripts/claims.py is its repository wrapper)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    assert CSV.is_file(), "results/claims.csv is missing: run `python scripts/claims.py`"
    return claims.read_table(CSV)


@pytest.fixture(scope="module")
def settings() -> dict:
    return json.loads(CSV.with_suffix(".json").read_text())


def _synthetic() -> pd.DataFrame:
    rows = []
    for model in ("m1", "m2"):
        for null, p in (("gaussian", 0.004), ("shuffle", 0.31)):
            rows.append(
                dict(claim="curvature", model=model, corpus="lee", item="", null=null, statistic="sharp_frac",
                     space="raw", observed=0.12, null_mean=0.05, effect=0.07, ci_low=0.05, ci_high=0.09, p=p,
                     p_adjusted=min(1.0, 2 * p), n_texts=50, reject=str(2 * p < 0.05), tlgeom_version="0")
            )  # fmt: skip
        for pair, rejects in (("bank", "FTT"), ("bat", "FFF"), ("bow", "FFT")):
            for point, rej in zip(("embed", "L0", "L1"), rejects):
                rows.append(
                    dict(claim="eclipse_deflection", model=model, corpus="minimal_pairs", item=pair, null="controls",
                         statistic=f"distance@{point}", space="raw", observed=1.0, null_mean=0.5, effect=0.5,
                         ci_low=np.nan, ci_high=np.nan, p=0.05, p_adjusted=0.05, n_texts=1, reject=str(rej == "T"),
                         tlgeom_version="0")
                )  # fmt: skip
        if model == "m1":  # a pair whose controls could not be matched: one not-run row
            rows.append(
                dict(claim="eclipse_deflection", model=model, corpus="minimal_pairs", item="crane", null="controls",
                     statistic="distance@not run", space="raw", observed=np.nan, null_mean=np.nan, effect=np.nan,
                     ci_low=np.nan, ci_high=np.nan, p=np.nan, p_adjusted=np.nan, n_texts=1, reject="False",
                     tlgeom_version="0")
            )  # fmt: skip
        for point, (q, rej) in zip(("embed", "L0", "L1"), ((0.9, "False"), (0.02, "True"), (0.01, "True"))):
            rows.append(
                dict(claim="eclipse_meaning_vs_control", model=model, corpus="minimal_pairs", item="",
                     null="controls", statistic=f"onset@{point}", space="raw", observed=0.6, null_mean=0.5,
                     effect=0.1, ci_low=0.0, ci_high=0.2, p=q / 2, p_adjusted=q, n_texts=18, reject=rej,
                     tlgeom_version="0")
            )  # fmt: skip
    return pd.DataFrame(rows)[claims.COLUMNS]


# ------------------------------------------------------------------------- the mechanism, on a synthetic table


def test_block_round_trips_through_a_readme(tmp_path):
    t = _synthetic()
    csv = tmp_path / "claims.csv"
    t.to_csv(csv, index=False)
    block = claims.render_block(claims.read_table(csv))
    assert block == claims.render_block(t)  # the CSV round trip loses nothing the block shows
    readme = "# Title\n\nSome text.\n"
    once = claims.replace_block(readme, block)
    assert once.startswith(readme.rstrip("\n")) and claims.read_block(once) == block
    assert claims.replace_block(once, block) == once  # idempotent: a rerun changes nothing
    assert (
        "| curvature | m1 | raw | gaussian | sharp_frac | 0.12 | 0.05 | 0.07 [0.05, 0.09] | 0.008 | 50 | yes |" in block
    )
    assert "| eclipse_deflection | m2 | raw | controls | distance | 2 of 3 | 1.5 | 0 |" in block  # onsets L0, L1
    assert "| eclipse_deflection | m1 | raw | controls | distance | 2 of 3 | 1.5 | 1 |" in block  # crane not run
    assert "| eclipse_meaning_vs_control | m1 | raw | controls | onset | L0 | 2 of 3 | 2 +, 0 − | 0.01 |" in block
    assert claims.read_block("no block here") is None


def test_block_changes_when_a_number_changes():
    t = _synthetic()
    changed = t.copy()
    changed.loc[0, "effect"] = 0.0712
    assert claims.render_block(changed) != claims.render_block(t)
    flipped = t.copy()
    flipped.loc[t.index[t["item"] == "bat"][0], "reject"] = "True"  # bat gets an onset
    assert claims.render_block(flipped) != claims.render_block(t)


def test_main_readme_writes_every_named_file(tmp_path):
    csv = tmp_path / "claims.csv"
    _synthetic().to_csv(csv, index=False)
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("# A\n\n<!-- claims:begin -->\nstale 0.5\n<!-- claims:end -->\n\nafter\n")
    assert cli.main(["claims", "--out", str(csv), "--readme", str(a), str(b)]) == 0
    block = claims.render_block(claims.read_table(csv))
    assert a.read_text() == f"# A\n\n{block}\n\nafter\n"
    assert claims.read_block(b.read_text()) == block


def test_truncate_to_tokens_counts_the_special_tokens(tiny_gpt2):
    text = "the cat sat on the mat and the dog sat on the cat " * 8
    n_special = claims.special_count(tiny_gpt2)
    assert n_special == tiny_gpt2.to_tokens("the cat").shape[-1] - 2
    cut, n = claims.truncate_to_tokens(tiny_gpt2.tokenizer, text, 20, n_special)
    assert n == 20 == tiny_gpt2.to_tokens(cut).shape[-1]
    assert text.startswith(cut) and not cut.endswith(" ")
    short, m = claims.truncate_to_tokens(tiny_gpt2.tokenizer, "the cat sat", 20, n_special)
    assert short == "the cat sat" and m == 3 + n_special


# ------------------------------------------------------------------------- the committed table


def test_claims_csv_has_the_required_columns(table):
    missing = [c for c in claims.COLUMNS if c not in table.columns]
    assert not missing, f"results/claims.csv lacks {missing}"
    assert len(table) > 0


def test_claims_csv_covers_both_models_both_spaces(table, settings):
    """Curvature rows for both offline models in both spaces, each space's rows made by the run its
    ``runs`` record names (the Lee corpus, at least 50 texts)."""
    curv = table[table["claim"] == "curvature"]
    runs = claims._runs_of(settings)
    for model in claims.MODELS:
        assert set(curv.loc[curv["model"] == model, "space"]) == set(claims.SPACES)
    for space in claims.SPACES:
        run = runs[f"curvature/{space}"]
        assert run["corpus_label"] == "lee" and run["n_texts"] >= 50
        assert (curv.loc[curv["space"] == space, "n_texts"] == run["n_texts"]).all()
    assert len(set(table["tlgeom_version"].astype(str))) == 1


def test_claims_csv_covers_both_models_and_every_pair(table, settings):
    ecl = table[table["claim"] == "eclipse_deflection"]
    from tlgeom.experiments.eclipse import minimal_pairs

    names = {p.name for p in minimal_pairs()}
    for model in claims.MODELS:
        assert set(ecl.loc[ecl["model"] == model, "item"]) == names
        mvc = table[(table["claim"] == "eclipse_meaning_vs_control") & (table["model"] == model)]
        assert len(mvc) > 2 and (mvc["n_texts"] == len(minimal_pairs("homonym"))).all()
    not_run = ecl[ecl["statistic"] == "distance@not run"]
    assert not_run["p"].isna().all() and not_run["note"].str.startswith("not run:").all()


def test_claims_csv_is_internally_consistent(table, settings):
    p, q = table["p"].astype(float), table["p_adjusted"].astype(float)
    ok = p.notna()
    assert ((p[ok] > 0) & (p[ok] <= 1)).all(), "p-values must lie in (0, 1]"
    assert (q[ok] >= p[ok] - 1e-12).all(), "an adjusted p-value is never below its raw p-value"
    decided = table["reject"].astype(str).isin(["True", "False"]) & q.notna()
    if "informative" in table.columns:  # an uninformative row is never a rejection, whatever its p
        uninformative = table["informative"].astype(str).eq("False")
        assert not table.loc[uninformative, "reject"].astype(str).eq("True").any()
        decided &= ~uninformative
    expected = (q[decided] <= settings["alpha"]).astype(str)
    assert (table.loc[decided, "reject"].astype(str) == expected).all(), "reject must be p_adjusted <= alpha"
    lo, hi = table["ci_low"].astype(float), table["ci_high"].astype(float)
    both = lo.notna() & hi.notna()
    assert (lo[both] <= hi[both]).all()


@pytest.mark.parametrize("readme", ["results/README.md", "README.md"])
def test_readme_numbers_are_the_csv_numbers(table, readme):
    path = ROOT / readme
    block = claims.read_block(path.read_text(encoding="utf-8")) if path.is_file() else None
    if block is None:
        if readme == "results/README.md":
            pytest.fail("results/README.md must carry the claims block (python scripts/claims.py --readme)")
        pytest.skip(f"{readme} quotes no claims block")
    runs = claims._runs_of(json.loads(CSV.with_suffix(".json").read_text()))
    assert block == claims.render_block(table, runs), (
        f"{readme} is stale: run `python scripts/claims.py --readme {readme}`"
    )


def test_every_part_in_the_table_has_its_run_settings(table):
    """Each part's rows (each space's, for curvature) name the settings that made them (claims.json runs)."""
    runs = claims._runs_of(json.loads(CSV.with_suffix(".json").read_text()))
    part = table["claim"].map(claims.part_of)
    have = {f"curvature/{sp}" for sp in table.loc[part == "curvature", "space"]} | set(part[part != "curvature"])
    assert have <= set(runs), f"rows without recorded run settings: {sorted(have - set(runs))}"
    assert len(claims.render_runs(table, runs)) == len(have)


def test_each_parts_run_record_counts_the_texts_its_rows_used(table):
    """A part's ``runs`` record names the number of texts its text-level rows were computed on (a part capped by
    its declaration, like readout, records its own number, not the corpus size)."""
    runs = claims._runs_of(json.loads(CSV.with_suffix(".json").read_text()))
    texts = table[table["inference_unit"].eq("text")]
    part = texts["claim"].map(claims.part_of)
    key = part.where(part != "curvature", "curvature/" + texts["space"].astype(str))
    for k, rows in texts.groupby(key):
        n = pd.to_numeric(rows["n"], errors="coerce").dropna()
        assert len(n) and n.max() == runs[k]["n_texts"], (k, n.max(), runs[k]["n_texts"])


def test_tlgeom_claims_command_end_to_end(tmp_path, capsys):
    """``tlgeom claims --quick`` (tiny random models, 8 Lee texts) writes the table and its settings, prints
    the table, and re-running one part keeps the other parts' rows."""
    from tlgeom.cli import main

    pytest.importorskip("pyarrow")
    from tlgeom.data.corpora import load_corpus

    try:
        load_corpus("lee", 1)
    except Exception as exc:  # the corpus fetch needs the gensim wheel (make corpus)
        pytest.skip(f"Lee corpus unavailable: {exc}")
    out = tmp_path / "claims.csv"
    argv = ["claims", "--quick", "--models", "gpt2", "--out", str(out), "--n-sims", "19"]
    assert main([*argv, "--parts", "curvature", "heads", "--spaces", "raw"]) == 0
    table = claims.read_table(out)
    assert set(table.claim) == {"curvature", "heads_positive_mass"} and set(table.model) == {"gpt2"}
    assert (table.n_texts[table.claim == "curvature"] == 8).all()
    printed = capsys.readouterr().out
    assert "| curvature | gpt2 | raw |" in printed and f"wrote {out}" in printed
    assert main([*argv, "--parts", "curvature", "--spaces", "normalized"]) == 0
    both = claims.read_table(out)
    assert set(both.space[both.claim == "curvature"]) == {"raw", "normalized"}  # the raw rows were kept
    assert (both[both.claim == "heads_positive_mass"].reset_index(drop=True)).equals(
        table[table.claim == "heads_positive_mass"].reset_index(drop=True)
    )
    settings = json.loads(out.with_suffix(".json").read_text())
    assert set(settings["runs"]) == {"curvature/raw", "curvature/normalized", "heads"}
    assert settings["runs"]["curvature/raw"]["n_sims"] == 19 and settings["spaces"] == ["normalized", "raw"]
    # re-running a part on another model keeps the first model's rows of that part
    assert main(["claims", "--quick", "--models", "llama", "--out", str(out), "--parts", "heads"]) == 0
    heads = claims.read_table(out).query("claim == 'heads_positive_mass'")
    assert set(heads.model) == {"gpt2", "llama"}
    with pytest.raises(SystemExit):
        main(["claims", "--parts", "nonsense"])


# ------------------------------------------------------------------------- the curvature verdicts in words


def _curvature_rows(space: str = "raw", model: str = "m1") -> pd.DataFrame:
    """Curvature rows of one model × space: sharp_flat against two nulls (rotation rejects, shuffle does
    not), a two-sided mean_angle that rejects with a negative effect, and a log_ltc that does not reject
    with its whole CI below 0."""
    base = dict(claim="curvature", model=model, corpus="lee", item="", space=space, observed=1.0, n_texts=50,
                tlgeom_version="0")  # fmt: skip
    specs = [  # null, statistic, alternative, effect, ci_low, ci_high, p_adjusted, reject
        ("rotation", "sharp_flat", "greater", 0.59, 0.584, 0.596, 0.032, "True"),
        ("shuffle", "sharp_flat", "greater", -0.000754, -0.004, 0.0027, 1.0, "False"),
        ("rotation", "mean_angle", "two-sided", -3.21, -3.41, -3.01, 0.032, "True"),
        ("rotation", "log_ltc", "greater", -0.0505, -0.0618, -0.0384, 1.0, "False"),
    ]
    rows = [
        dict(base, null=n, statistic=s, alternative=a, effect=e, ci_low=lo, ci_high=hi, null_mean=1.0 - e,
             p=q / 4, p_adjusted=q, reject=r, informative=True)
        for n, s, a, e, lo, hi, q, r in specs
    ]  # fmt: skip
    return pd.DataFrame(rows)


RUNS = {"curvature/raw": {"corpus_label": "lee", "n_texts": 50, "max_tokens": 48, "n_sims": 249, "seed": 0,
                          "alpha": 0.05, "correction": "holm"}}  # fmt: skip


def test_readme_curvature_verdicts_are_the_csv_verdicts(table):
    block = claims.read_verdicts((ROOT / "README.md").read_text(encoding="utf-8"))
    assert block is not None, "README.md lost its <!-- verdicts:curvature:begin --> block"
    runs = claims._runs_of(json.loads(CSV.with_suffix(".json").read_text()))
    assert block == claims.render_verdicts(table, runs), (
        "README.md's curvature verdicts are stale: run `python scripts/claims.py --readme README.md results/README.md`"
    )
    curv = table[table["claim"] == "curvature"]
    for (model, space), g in curv.groupby(["model", "space"]):  # one bullet per model x space, counts from the rows
        tests = g[~g["informative"].astype(str).eq("False")] if "informative" in g.columns else g
        n_rej, n = int(tests["reject"].astype(str).eq("True").sum()), len(tests)
        assert f"- **{model}, {space} space** (" in block and f"{n_rej} of {n} tests reject" in block


def test_verdicts_are_worded_from_reject_and_effect():
    t = _curvature_rows()
    text = claims.render_verdicts(t, RUNS)
    assert "- **m1, raw space** (50 lee texts of ≤ 48 tokens, 249 simulations per null; Holm over 4 tests at α = 0.05)" in text  # fmt: skip
    assert ": 2 of 4 tests reject" in text
    assert "(sharp/flat excess): more than rotation (+0.59 [0.584, 0.596], Holm p 0.032); not shown more than shuffle" in text  # fmt: skip
    assert "mean turning angle: smaller than rotation (-3.21° [-3.41, -3.01], Holm p 0.032)" in text
    assert "not shown longer than rotation (-0.0505 [-0.0618, -0.0384], Holm p 1; CI below 0: the opposite direction, not significant after the correction)" in text  # fmt: skip
    # reject flips -> the null moves from "more than" to "not shown more than"
    flipped = t.copy()
    flipped.loc[0, ["reject", "p_adjusted"]] = ["False", 0.2]
    out = claims.render_verdicts(flipped, RUNS)
    assert "more than rotation" not in out.replace("not shown more than rotation", "")
    assert "not shown more than rotation (+0.59 [0.584, 0.596], Holm p 0.2) or shuffle" in out
    assert ": 1 of 4 tests reject" in out
    # the effect's sign flips (still rejected) -> "fewer than"; a two-sided test not rejected -> "different from"
    signs = t.copy()
    signs.loc[0, ["effect", "ci_low", "ci_high"]] = [-0.59, -0.596, -0.584]
    signs.loc[2, ["reject", "p_adjusted"]] = ["False", 0.5]
    out = claims.render_verdicts(signs, RUNS)
    assert "fewer than rotation (-0.59 [-0.596, -0.584], Holm p 0.032)" in out
    assert "mean turning angle: not shown different from rotation (-3.21° [-3.41, -3.01], Holm p 0.5)" in out
    # a log LTC that rejects with a positive effect is "longer than"
    longer = t.copy()
    longer.loc[3, ["effect", "ci_low", "ci_high", "reject", "p_adjusted"]] = [0.527, 0.52, 0.534, "True", 0.028]
    assert "): longer than rotation (+0.527 [0.52, 0.534], Holm p 0.028)" in claims.render_verdicts(longer, RUNS)
    # an uninformative row is neither a rejection nor a test
    uninf = t.copy()
    uninf.loc[1, "informative"] = False
    out = claims.render_verdicts(uninf, RUNS)
    assert "uninformative against shuffle" in out and "Holm over 3 tests" in out


def test_verdicts_show_normalized_rows_when_present_and_say_when_absent():
    raw = _curvature_rows()
    only_raw = claims.render_verdicts(raw, RUNS)
    assert "No normalized-space rows yet" in only_raw and "normalized space" not in only_raw
    normalized = _curvature_rows(space="normalized")
    normalized["null"] = normalized["null"].replace({"rotation": "sphere_rotation", "shuffle": "untrained"})
    runs = {**RUNS, "curvature/normalized": {**RUNS["curvature/raw"], "n_sims": 99}}
    both = claims.render_verdicts(pd.concat([raw, normalized], ignore_index=True), runs)
    assert "No normalized-space rows yet" not in both and "No raw-space rows yet" not in both
    assert "- **m1, normalized space** (50 lee texts of ≤ 48 tokens, 99 simulations per null;" in both
    assert "more than sphere_rotation (+0.59 [0.584, 0.596], Holm p 0.032)" in both
    assert both.index("**m1, raw space**") < both.index("**m1, normalized space**")
    alone = claims.render_verdicts(normalized, runs)
    assert "No raw-space rows yet" in alone and "**m1, normalized space**" in alone
    # no curvature rows at all: nothing but the absent spaces
    none = claims.render_verdicts(raw.assign(claim="heads_positive_mass"), RUNS)
    assert "- **" not in none and "No raw-space rows yet" in none and "No normalized-space rows yet" in none


def test_main_readme_rewrites_the_verdicts_block_where_marked(tmp_path):
    csv = tmp_path / "claims.csv"
    pd.concat([_synthetic(), _curvature_rows()], ignore_index=True).to_csv(csv, index=False)
    csv.with_suffix(".json").write_text(json.dumps({"runs": RUNS}))
    marked, unmarked = tmp_path / "a.md", tmp_path / "b.md"
    marked.write_text(f"# A\n\n{claims.VERDICTS_BEGIN}\nstale 0.5\n{claims.VERDICTS_END}\n\nafter\n")
    unmarked.write_text("# B\n")
    assert cli.main(["claims", "--out", str(csv), "--readme", str(marked), str(unmarked)]) == 0
    table = claims.read_table(csv)
    verdicts = claims.render_verdicts(table, RUNS)
    assert claims.read_verdicts(marked.read_text()) == verdicts and "stale" not in marked.read_text()
    assert marked.read_text().startswith(f"# A\n\n{verdicts}\n\nafter\n")
    assert claims.read_verdicts(unmarked.read_text()) is None  # never added where not marked
    assert claims.read_block(unmarked.read_text()) == claims.render_block(table, RUNS)


def test_forest_plots_are_drawn_from_the_table_and_the_readme_shows_one(tmp_path):
    """One point per whole-corpus row, filled exactly where the row rejects; the README's curvature plot is
    the committed one beside the table."""
    t = claims.read_table(CSV)
    fig = claims.forest_plot(t, "curvature")
    rows = t[(t.claim == "curvature") & (t["item"].fillna("") == "")]
    points = [line for ax in fig.axes for line in ax.lines if line.get_marker() == "o"]
    assert len(points) == len(rows)
    filled = sum(line.get_markerfacecolor() != "white" for line in points)
    assert filled == int(rows["reject"].astype(str).eq("True").sum())
    with pytest.raises(claims.TlgeomError):
        claims.forest_plot(t, "no such claim")
    written = claims.write_forest_plots(t, tmp_path, CSV)
    assert sorted(p.name for p in written) == sorted(f"forest_{c}.png" for c in claims.FOREST_CLAIMS)
    assert "](results/forest_curvature.png)" in (ROOT / "README.md").read_text()
    assert (ROOT / "results" / "forest_curvature.png").is_file()


def test_verdicts_name_evidence_against_instead_of_the_untested_side():
    """A one-sided row significant on its opposite side (``against``) is worded as evidence against the
    claim, without the tested side's p; without the column the old wording stays."""
    rows = _curvature_rows()
    plain = claims.render_verdicts(rows, RUNS)
    assert "CI below 0: the opposite direction, not significant" in plain and "evidence against" not in plain
    marked = rows.assign(against=[False, False, False, True])  # log_ltc vs rotation: significantly shorter
    text = claims.render_verdicts(marked, RUNS)
    assert "**evidence against** the claim: significantly shorter than rotation (-0.0505 [-0.0618, -0.0384])" in text
    assert "opposite direction, not significant" not in text
