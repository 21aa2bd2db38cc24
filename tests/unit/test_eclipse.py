"""Deflection under context edits: closed forms, alignment, targets, controls, tiny models (both APIs)."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tlgeom
from tlgeom._args import CONTROLS
from tlgeom._errors import TlgeomError
from tlgeom.experiments.eclipse import (
    ContextEdit,
    _sign_flip_pvalue,
    align_tokens,
    control_edits,
    deflection,
    deflection_measures,
    find_word,
    meaning_vs_control,
    minimal_pairs,
    sense_contexts,
    toward_sense,
)

F64 = dict(rtol=1e-12, atol=1e-12)  # float64 closed forms


def _rot(theta: float, d: int) -> torch.Tensor:
    """Rotation by theta in the (0, 1) plane of R^d."""
    r = torch.eye(d, dtype=torch.float64)
    r[0, 0] = r[1, 1] = math.cos(theta)
    r[0, 1], r[1, 0] = -math.sin(theta), math.sin(theta)
    return r


# ---------------------------------------------------------------- closed forms (float64)


@settings(max_examples=30, deadline=None)
@given(theta=st.floats(0.01, 3.0), n=st.integers(3, 7), d=st.integers(2, 9), seed=st.integers(0, 10_000))
def test_rotated_trajectory_closed_form(theta, n, d, seed):
    """e = R c (a rotation by θ): angle θ, distance 2‖c‖sin(θ/2), every step deflected by θ."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, d, generator=g, dtype=torch.float64)
    c[:, 2:] = 0  # keep the trajectory in the rotation plane so angles are exactly θ
    e = c @ _rot(theta, d).T
    m = deflection_measures(c, e)
    torch.testing.assert_close(m["angle"], torch.full((n,), theta, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(m["distance"], 2 * c.norm(dim=-1) * math.sin(theta / 2), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        m["step_deflection"], torch.full((n - 1,), theta, dtype=torch.float64), rtol=1e-9, atol=1e-9
    )
    torch.testing.assert_close(
        m["cumulative_bending"], theta * torch.arange(n, dtype=torch.float64), rtol=1e-9, atol=1e-9
    )
    torch.testing.assert_close(m["relative_distance"], m["distance"] / c.norm(dim=-1), **F64)


def test_identical_and_scaled(unchecked):
    c = torch.randn(2, 5, 8, dtype=torch.float64)  # leading dims are fine
    m = deflection_measures(c, c.clone())
    for k, v in m.items():
        assert torch.equal(v, torch.zeros_like(v)), k
    m = deflection_measures(c, 3 * c)  # same direction, 3× longer: angle 0, distance 2‖c‖
    torch.testing.assert_close(m["angle"], torch.zeros(2, 5, dtype=torch.float64), rtol=0, atol=1e-7)
    torch.testing.assert_close(m["distance"], 2 * c.norm(dim=-1), **F64)
    with unchecked(), pytest.raises(TlgeomError, match="edited"):
        deflection_measures(c, c[..., :3, :])


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(-2, 2).filter(lambda a: abs(a) > 1e-3), seed=st.integers(0, 10_000))
def test_toward_sense_closed_form(alpha, seed):
    """e = c + α (P_to − P_from): fraction α, cosine sign(α)."""
    g = torch.Generator().manual_seed(seed)
    c, pf, pt = (torch.randn(4, 6, generator=g, dtype=torch.float64) for _ in range(3))
    frac, cos = toward_sense(c, c + alpha * (pt - pf), pf, pt)
    torch.testing.assert_close(frac, torch.full((4,), alpha, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cos, torch.full((4,), math.copysign(1, alpha), dtype=torch.float64), rtol=0, atol=1e-7)
    # a deflection orthogonal to the prototype difference moves 0 toward the other sense
    u = pt - pf
    z = torch.randn(4, 6, generator=g, dtype=torch.float64)
    z = z - (z * u).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True) * u
    torch.testing.assert_close(
        toward_sense(c, c + z, pf, pt)[0], torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_sign_flip_pvalue_is_exact_enumeration():
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.05, -0.4, 0.9])
    stats = [np.mean(np.array(s) * d) for s in itertools.product([-1, 1], repeat=d.size)]
    expected = np.mean(np.array(stats) >= d.mean() - 1e-12)
    assert _sign_flip_pvalue(d) == pytest.approx(expected, abs=1e-15)
    assert _sign_flip_pvalue(np.ones(5)) == pytest.approx(1 / 32)


# ---------------------------------------------------------------- alignment and targets


def test_align_tokens():
    a = [1, 2, 3, 4, 5]
    assert align_tokens(a, [1, 9, 3, 4, 5]).tolist() == [0, -1, 2, 3, 4]  # substitution
    assert align_tokens(a, [1, 9, 3, 4, 5], pair_replaced=True).tolist() == [0, 1, 2, 3, 4]
    assert align_tokens(a, [1, 2, 7, 8, 3, 4, 5]).tolist() == [0, 1, 4, 5, 6]  # insertion
    assert align_tokens(a, [1, 4, 5]).tolist() == [0, -1, -1, 1, 2]  # deletion
    assert align_tokens(a, [1, 7, 8, 4, 5], pair_replaced=True).tolist() == [0, 1, 2, 3, 4]  # 2→2 replace
    assert align_tokens(a, [1, 7, 8, 4, 5]).tolist() == [0, -1, -1, 3, 4]
    assert align_tokens(a, [1, 7, 4, 5], pair_replaced=True).tolist() == [0, -1, -1, 2, 3]  # 2→1: unpaired


def test_find_word_whole_words_only():
    assert find_word("the bat and the batsman bat", "bat") == [(4, 7), (24, 27)]
    assert find_word("big red car", "big red") == [(0, 7)]


def test_target_errors_name_the_text():
    e = ContextEdit("the cat sat on the mat", "the dog sat on the rug", "mat")
    with pytest.raises(TlgeomError, match="edited text") as ex:
        e.target_span("edited")
    assert "words are" in str(ex.value) and "'rug'" in str(ex.value)
    with pytest.raises(TlgeomError, match="not found as a whole word in the clean text"):
        ContextEdit("the cat sat", "the cat sat", "dog").target_span("clean")
    with pytest.raises(TlgeomError, match=r"ambiguous in the clean text.*2 occurrences"):
        ContextEdit("the cat and the cat", "the cat and the cat", "cat").target_span("clean")
    with pytest.raises(TlgeomError, match="case differs"):
        ContextEdit("The Bank", "The Bank", "bank").target_span("clean")
    e = ContextEdit("the cat and the cat", "a cat and the cat", "cat", occurrence=1)
    assert e.target_span("clean") == (16, 19) and e.target_span("edited") == (14, 17)
    assert ContextEdit("a cat", "a cat cat", "cat", occurrence=(0, 1)).target_span("edited") == (6, 9)
    with pytest.raises(TlgeomError, match="only 1 occurrence"):
        ContextEdit("a cat", "a dog cat", "cat", occurrence=1).target_span("clean")


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        (dict(clean="", edited="x", target="x"), "clean"),
        (dict(clean="x", edited=3, target="x"), "edited"),
        (dict(clean="x y", edited="x y", target=" y"), "target"),
        (dict(clean="x y", edited="x y", target=(2, 9)), "target"),
        (dict(clean="x y", edited="x y", target=1.5), "target"),
        (dict(clean="x y", edited="x y", target="y", occurrence=-1), "occurrence"),
        (dict(clean="x y", edited="x y", target=(2, 3), edited_span=(0, 99)), "edited_span"),
    ],
)
@pytest.mark.unchecked  # mistyped fields on purpose: tlgeom's own TlgeomError is the subject
def test_context_edit_validation(kwargs, arg):
    with pytest.raises(TlgeomError, match=arg):
        ContextEdit(**kwargs)


def test_resolve_substitution_insertion_deletion(tiny_gpt2):
    m = tiny_gpt2
    sub = ContextEdit("the cat sat on the mat", "the dog sat on the mat", "mat").resolve(m)
    ins = ContextEdit("the cat sat on the mat", "the big red cat sat on the mat", "mat").resolve(m)
    dele = ContextEdit("the big cat sat on the mat", "the cat sat on the mat", "mat").resolve(m)
    for r in (sub, ins, dele):
        assert r.clean_str_tokens[r.clean_pos] == "mat" and r.edited_str_tokens[r.edited_pos] == "mat"
    assert ins.edited_pos == ins.clean_pos + 2 and dele.edited_pos == dele.clean_pos - 1
    # a span target is carried to the edited text by token alignment
    span = ContextEdit("the cat sat on the mat", "the big red cat sat on the mat", (19, 22)).resolve(m)
    assert span.edited_pos == ins.edited_pos
    with pytest.raises(TlgeomError, match="edit touches the target"):
        ContextEdit("the cat sat", "the dog sat", (4, 7)).resolve(m)


def test_multi_token_target_last_subtoken_by_default(tiny_gpt2):
    """A two-token target ('big red') is represented by its last sub-token unless subtoken='first'."""
    e = ContextEdit("a big red car", "the big red car", "big red")
    r = e.resolve(tiny_gpt2)
    assert len(r.clean_target_positions) == 2
    assert r.clean_str_tokens[r.clean_pos] == "red"
    assert r.clean_str_tokens[e.resolve(tiny_gpt2, "first").clean_pos] == "big"
    d_last = deflection(tiny_gpt2, e, controls=0)
    d_first = deflection(tiny_gpt2, e, subtoken="first", controls=0)
    assert d_last.target_token == "red" and d_first.target_token == "big"
    with pytest.raises(TlgeomError, match="subtoken"):
        deflection(tiny_gpt2, e, subtoken="mean")


# ---------------------------------------------------------------- deflection on tiny models


def test_identical_texts_give_exact_zero(tiny_any):
    d = deflection(tiny_any, "the cat sat on the mat .", "the cat sat on the mat .", "mat")
    n = tiny_any.cfg.n_layers + 1
    assert d.distance.shape == (n,) and d.step_deflection.shape == (n - 1,)
    for k in ("distance", "relative_distance", "angle", "step_deflection", "cumulative_bending"):
        v = getattr(d, k)
        assert v.dtype == torch.float64 and torch.equal(v, torch.zeros_like(v)), k


def test_states_are_record_trajectories(tiny_any):
    # no controls: they would share a batch with the edited text (float32 batching differs by ~1e-7)
    d = deflection(tiny_any, "the cat sat on the mat .", "the big dog sat on the mat .", "sat", controls=0)
    tc = tlgeom.record_trajectories(tiny_any, "the cat sat on the mat .")
    te = tlgeom.record_trajectories(tiny_any, "the big dog sat on the mat .")
    torch.testing.assert_close(d.clean_states, tc.states[0, d.clean_pos].double(), rtol=0, atol=0)
    torch.testing.assert_close(d.edited_states, te.states[0, d.edited_pos].double(), rtol=0, atol=0)
    m = deflection_measures(d.clean_states, d.edited_states)
    torch.testing.assert_close(d.distance, m["distance"], rtol=0, atol=0)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_decoder_causality(fixture, request):
    """An edit strictly after the target leaves its trajectory unchanged; one before does not."""
    m = request.getfixturevalue(fixture)
    after = deflection(m, "the cat sat on the mat .", "the cat sat on the big mat .", "sat")
    before = deflection(m, "the cat sat on the mat .", "the dog sat on the mat .", "sat")
    assert float(after.relative_distance.max()) < 1e-5  # float32 states of different-length runs
    assert float(before.relative_distance[1:].min()) > 1e-3


def test_encoder_sees_edits_after_the_target(tiny_bert):
    d = deflection(tiny_bert, "the cat sat on the mat .", "the cat sat on the big mat .", "sat")
    assert float(d.relative_distance[1:].min()) > 1e-4


AFTER_WORDS = "rug bed box floor chair table road hill sand wall roof door grass porch shelf sofa step stool tree"
CAUSAL = ("the cat sat on the mat .", "the dog sat on the mat .", "sat")


def test_controls_band_onset_and_prototypes(tiny_gpt2):
    m = tiny_gpt2
    # 19 identical "controls" have zero deflection: the band is 0 and the onset is the first point > 0
    d = deflection(
        m, "the cat sat on the mat .", "the dog sat on the mat .", "mat", controls=["the cat sat on the mat ."] * 19
    )
    assert torch.equal(d.band()[1], torch.zeros(d.n_points, dtype=torch.float64))  # batched with the clean run
    assert d.onset == int((d.distance > 0).nonzero()[0]) == 1  # the embedding of 'mat' is unchanged
    assert d.onset_label == "L0"
    # prototypes equal to the two runs' own states: the edit moves the whole way, straight toward them
    d2 = deflection(
        m,
        "the cat sat on the mat .",
        "the dog sat on the mat .",
        "mat",
        prototypes=(d.clean_states, d.edited_states),
        controls=0,
    )
    torch.testing.assert_close(d2.toward[1:], torch.ones(d.n_points - 1, dtype=torch.float64), **F64)
    torch.testing.assert_close(d2.toward_cosine[1:], torch.ones(d.n_points - 1, dtype=torch.float64), rtol=0, atol=1e-7)
    assert math.isnan(float(d2.toward[0]))  # identical embeddings: no prototype difference
    assert d2.onset is None and "no onset test" in d2.summary()
    # text prototypes = the mean of sense_prototypes over the contexts; 39 matched controls by default
    d3 = deflection(
        m,
        "the cat sat on the mat .",
        "the dog sat on the mat .",
        "mat",
        prototypes=(["a cat on the mat", "the old cat sat on the mat"], ["a dog on the mat"]),
    )
    assert d3.toward.shape == (d.n_points,) and d3.control_toward.shape == (CONTROLS, d.n_points)
    f = d3.to_frame()
    assert len(f) == d.n_points and {
        "distance",
        "angle_deg",
        "control_distance_hi",
        "toward",
        "p",
        "p_adjusted",
    } <= set(f.columns)
    assert (f.p_adjusted >= f.p).all() and f.p.between(1 / (CONTROLS + 1), 1).all()


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_placebo_controls_give_an_onset(fixture, request):
    """Controls that change only words AFTER the target cannot reach it in a causal model (deflection
    ~0): the edit must then be significant after correction, from the first block output on."""
    m = request.getfixturevalue(fixture)
    placebo = [f"the cat sat on the {w} ." for w in AFTER_WORDS.split()]
    assert len(placebo) == 19
    d = deflection(m, *CAUSAL, controls=placebo)
    assert float(d.control_relative_distance.max()) < 1e-5  # causal: the controls do not reach 'sat'
    p, padj = d.pvalues()
    assert p[0] == 1.0 and padj[0] == 1.0  # the embedding: every deflection is 0, ties count against the edit
    np.testing.assert_allclose(p[1:], 1 / 20)  # the edit beats all 19 controls at every block output
    assert float(padj[1:].max()) <= 0.05
    assert d.onset == 1 and d.onset_label == d.point_labels[1]
    t = d.tests()
    want = {"null", "statistic", "space", "observed", "null_mean", "effect", "ci_low", "ci_high", "p", "p_adjusted"}
    assert want | {"n_texts", "reject"} <= set(t.columns) and len(t) == d.n_points
    assert t.statistic[1] == f"distance@{d.point_labels[1]}" and t.reject.tolist() == [False] + [True] * (
        d.n_points - 1
    )
    np.testing.assert_allclose(t.effect, t.observed - t.null_mean, rtol=0, atol=1e-12)


def test_ties_count_against_the_edit(tiny_gpt2):
    """Controls identical to the edit tie with it at every point: p = 1, no onset."""
    d = deflection(tiny_gpt2, *CAUSAL, controls=[CAUSAL[1]] * 19)
    p, padj = d.pvalues()
    assert (p == 1).all() and (padj == 1).all() and d.onset is None
    # the old rule would not fire either here; with a single control strictly below it does, uncorrected
    assert d.uncorrected_onset_point() is None


def test_alpha_unreachable_warns_and_bad_args(tiny_gpt2):
    with pytest.warns(UserWarning, match=r"smallest attainable p-value is 1/4"):
        d = deflection(tiny_gpt2, *CAUSAL, controls=[CAUSAL[0]] * 3)
    assert d.onset is None and "WARNING" in d.summary()  # p >= 1/4 everywhere
    assert d.uncorrected_onset_point() == 1  # the old rule calls it an onset
    for kw, arg in [
        (dict(seed=-1), "seed"),
        (dict(seed=2**70), "seed"),
        (dict(controls=-1), "controls"),
        (dict(alpha=1.5), "alpha"),
        (dict(points="foo"), "points"),
    ]:
        with pytest.raises(TlgeomError, match=arg):
            deflection(tiny_gpt2, *CAUSAL, **kw)


def test_deflection_follows_the_result_protocol(tiny_gpt2, tmp_path):
    import json

    import matplotlib

    matplotlib.use("Agg")
    from tlgeom._result import Result

    d = deflection(tiny_gpt2, *CAUSAL)  # 39 matched controls by default
    assert isinstance(d, Result) and d.n_controls == CONTROLS == 39 and len(d.control_info) == 39
    paths = d.save(tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["headline"]["n_controls"] == 39 and doc["headline"]["onset"] == d.onset_label
    assert doc["headline"]["controls_pos_match"] == 1.0  # every control has the edit's POS in context
    assert doc["headline"]["controls_max_dzipf"] <= 0.5 and doc["headline"]["controls_max_dlen"] <= 2
    cf = d.controls_frame()
    assert len(cf) == CONTROLS and cf.pos_match.all() and (cf.slot_pos == "NOUN").all()
    assert str(d) == d.summary() and "onset" in d.summary()


def test_report_and_api_agree_on_bundled_pair_0(tiny_gpt2, tmp_path):
    """The report's bundled pair 0 and the API on the same texts get the same controls and onset."""
    from tlgeom.report import bundled_pair, deflection_section

    pair = bundled_pair(0)
    api = deflection(tiny_gpt2, pair.clean, pair.edited, pair.target, controls=CONTROLS, seed=0)
    sec = deflection_section(tiny_gpt2, pair, tmp_path, controls=CONTROLS, seed=0, patch=False, progress=False)
    assert sec.results["onset"] == api.onset_label and sec.results["n_controls"] == CONTROLS
    again = deflection(tiny_gpt2, pair, seed=0)
    assert again.control_texts == api.control_texts and again.onset == api.onset
    assert deflection(tiny_gpt2, pair, seed=1).control_texts != api.control_texts


def test_control_edits_seeded_matched_and_of_the_edits_kind():
    from tlgeom.experiments.controls import WIDENING, pos_in_context, zipf

    e = minimal_pairs("homonym")[0]  # river -> savings before 'bank'
    a, b = control_edits(e, 19, seed=0), control_edits(e, 19, seed=0)
    assert [x.edited for x in a] == [x.edited for x in b]
    assert [x.edited for x in a] != [x.edited for x in control_edits(e, 19, seed=1)]
    (cs, ce), (es, ee), _ = e.changed_region()
    words = [x.info["words"][0] for x in a]
    assert len(set(words)) == 19  # distinct
    slot = e.edited[es:ee]
    for x, w in zip(a, words):
        assert x.edited == e.clean[:cs] + w + e.clean[ce:]
        assert x.info["pos_match"] and x.info["widened"] is None
        assert abs(zipf(w) - zipf(slot)) <= WIDENING[0][0] and abs(len(w) - len(slot)) <= WIDENING[0][1]
        # the recorded POS is what spaCy gives the control word in its own sentence
        assert pos_in_context(x.edited, (cs, cs + len(w))) == pos_in_context(e.edited, (es, ee)) == "NOUN"
    # an insertion's controls insert, keeping the edit's function words
    ins = ContextEdit("we saw the cat", "we saw the big red cat", "cat")
    for x in control_edits(ins, 3):
        assert x.edited.startswith("we saw the ") and x.edited.endswith(" cat")
        assert len(x.edited.split()) == 6  # two words inserted, like the edit
        assert x.info["slot_pos"] == ["ADJ", "ADJ"] and x.info["pos"] == ["ADJ", "ADJ"]
    # a deletion's slot-swap controls (the default): a matched word put into the deleted slot and deleted,
    # so every control ends in the edit's own edited text and only the clean text differs
    dele = ContextEdit(
        "the old man and the young boy met the tall dog", "the old man and the boy met the tall dog", "dog"
    )
    (ds, de), _, _ = dele.changed_region()
    slot_controls = control_edits(dele, 39, seed=0)
    assert len({x.clean for x in slot_controls}) == 39
    for x in slot_controls:
        w = x.info["words"][0]
        assert x.edited == dele.edited and x.clean == dele.clean[:ds] + w + dele.clean[de:]
        assert x.info["design"] == "slot" and x.info["pos"] == x.info["slot_pos"] == ["ADJ"]
        assert x.info["slot_words"] == ["young"] and w.lower() not in dele.clean.split()
        assert pos_in_context(x.clean, (ds, ds + len(w))) == "ADJ"
    assert [x.clean for x in control_edits(dele, 39, seed=0)] == [x.clean for x in slot_controls]
    # a span target is carried into each control's clean text
    span = ContextEdit("The old man sat by the bank.", "The man sat by the bank.", (23, 27))
    for x in control_edits(span, 3):
        assert x.clean[x.target[0] : x.target[1]] == "bank" and x.edited == span.edited
    # a span target before the deletion stays where it is; an occurrence pair is kept for a repeated target
    before = ContextEdit("The bank by the old river was closed.", "The bank by the river was closed.", (4, 8))
    for x in control_edits(before, 3):
        assert x.target == (4, 8) and x.clean[4:8] == "bank" and x.edited == before.edited
    twice = ContextEdit("a bank and the old bank", "a bank and the bank", "bank", occurrence=(1, 1))
    for x in control_edits(twice, 3):
        assert x.occurrence == (1, 1) and x.target_span("clean")[0] == x.clean.rindex("bank")
    # deleting a copy of the target word would move the target's occurrence: refused, saying what to do
    with pytest.raises(TlgeomError, match="include the target word"):
        control_edits(ContextEdit("the cat saw the cat sit", "the saw the cat sit", "cat", occurrence=(1, 0)), 3)
    # the other design deletes a comparable word before the target, and refuses when too few exist
    with pytest.warns(UserWarning, match="widened to"):  # too few words within 0.5 Zipf: widened, and said so
        dcs = control_edits(dele, 2, deletion="elsewhere")
    for x in dcs:
        assert x.info["widened"] is not None and x.info["dzipf"] <= x.info["widened"]["max_dzipf"]
        assert len(x.edited.split()) == len(dele.edited.split()) and x.edited != dele.edited
        assert x.info["words"][0] in ("old", "tall") and x.info["pos"] == ["ADJ"]
    with pytest.raises(TlgeomError, match=r"only \d+ other word|ask for at most 2"):
        control_edits(dele, 3, deletion="elsewhere")
    with pytest.raises(TlgeomError, match="deletion"):
        control_edits(dele, 3, deletion="somewhere")
    with pytest.raises(TlgeomError, match="changes the target itself"):
        control_edits(ContextEdit("the cat sat", "the dog sat", (4, 7), edited_span=(4, 7)), 2)
    with pytest.raises(TlgeomError, match="no word differs"):
        control_edits(ContextEdit("the cat", "the cat", "cat"), 2)


def test_controls_refuse_rather_than_drop_a_criterion():
    e = ContextEdit("a cat sat on the mat", "the cat sat on the mat", "mat")  # a determiner: few of them
    with pytest.raises(TlgeomError, match=r"controls=19: only \d+ control\(s\) match the edit's part of speech"):
        control_edits(e, 19)


def test_plot_and_bad_args(tiny_gpt2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = deflection(tiny_gpt2, *CAUSAL, controls=[f"the cat sat on the {w} ." for w in AFTER_WORDS.split()])
    fig = d.plot()
    ax = fig.axes[0]
    assert len(ax.lines) >= 2 and ax.get_title() and any("onset" in t.get_text() for t in ax.get_legend().get_texts())
    d.plot(measure="angle")
    plt.close("all")
    with pytest.raises(TlgeomError, match="measure"):
        d.plot(measure="curvature")
    with pytest.raises(TlgeomError, match="model"):
        deflection(object(), "a", "b", "a")
    with pytest.raises(TlgeomError, match="target"):
        deflection(tiny_gpt2, "the cat", "the dog")
    with pytest.raises(TlgeomError, match="band_quantile"):
        deflection(tiny_gpt2, "the cat sat", "the dog sat", "sat", band_quantile=0)
    with pytest.raises(TlgeomError, match="prototypes"):
        deflection(tiny_gpt2, "the cat sat", "the dog sat", "sat", prototypes=torch.zeros(3, 64), controls=0)


# ---------------------------------------------------------------- bundled data


def test_bundled_minimal_pairs():
    pairs = minimal_pairs()
    assert len(pairs) >= 20 and len({p.name for p in pairs}) == len(pairs)
    kinds = {p.kind for p in pairs}
    assert {"homonym", "mass", "after_target", "deletion"} <= kinds
    homs = minimal_pairs("homonym")
    assert {"bank", "bat", "bark", "spring", "pitch"} <= {p.target for p in homs}
    senses = sense_contexts()
    for p in pairs:
        cspan, espan = p.target_span("clean"), p.target_span("edited")  # present exactly once in each
        (cs, ce), (es, ee), _ = p.changed_region()
        if p.kind == "after_target":
            assert cs >= cspan[1] and es >= espan[1], p.name
        else:
            assert ce <= cspan[0] and ee <= espan[0], p.name  # the edit comes before the target
        if p.kind == "mass":
            assert cs == ce, p.name  # an insertion
        if p.kind == "homonym":
            cs = control_edits(p)  # the default 39 matched controls for every bundled homonym pair
            assert len(cs) == CONTROLS and all(c.info["pos_match"] for c in cs), p.name
            for sense in (p.info["clean_sense"], p.info["edited_sense"]):
                for text in senses[p.target][sense]:
                    assert len(find_word(text, p.target)) == 1, (p.target, text)


def test_meaning_vs_control_computation(tiny_gpt2, tmp_path):
    """The paired tests are computed from the frame (Wilcoxon = scipy's; permutation = enumeration)."""
    from scipy.stats import wilcoxon

    pairs = [
        ContextEdit(
            f"the {a} sat on the mat .",
            f"the {b} sat on the mat .",
            "mat",
            name=f"{a}-{b}",
            info={"slot": {"pos": "noun"}},
        )
        for a, b in [("cat", "dog"), ("boy", "girl"), ("man", "woman"), ("sun", "moon"), ("car", "tree")]
    ]
    r = meaning_vs_control(tiny_gpt2, pairs, controls=3, model_name="tiny")
    f = r.frame
    assert len(f) == 5 and r.n_pairs == 5
    assert r.p_wilcoxon == pytest.approx(wilcoxon(f["diff"], alternative="greater").pvalue)
    assert r.p_permutation == pytest.approx(_sign_flip_pvalue(f["diff"].to_numpy()))
    assert 0 < r.p_permutation <= 1 and np.isnan(r.p_toward_wilcoxon)  # no senses for these pairs
    assert r.meaning_curve.shape == (tiny_gpt2.cfg.n_layers + 1,)
    assert re.match(r"tiny: meaning edits (deflect|do NOT)", r.verdict())
    # no sense contexts: the toward test was NOT run, and says so (never a negative verdict)
    assert not r.toward_run and "not run: no sense contexts for mat" in r.verdict()
    assert "do NOT move" not in r.verdict() and "nan" not in r.verdict()
    t = r.tests()
    toward = t[t.statistic == "toward other sense"].iloc[0]
    assert np.isnan(toward.p) and not toward.reject and toward.note.startswith("not run")
    # onsets across pairs: one row per point, max-T adjusted p >= per-point p, CI brackets the effect
    lay = t[t.statistic.str.startswith("angle@")]
    assert len(lay) == tiny_gpt2.cfg.n_layers + 1 and (lay.p_adjusted >= lay.p - 1e-12).all()
    assert (lay.n_texts == 5).all() and ((lay.ci_low <= lay.effect + 1e-9) & (lay.effect <= lay.ci_high + 1e-9)).all()
    assert r.layers.p.iloc[0] == 1.0  # the embedding: every unit ties at 0
    assert r.onset is None or r.layers.p_adjusted.iloc[r.onset] <= 0.05
    h = r.headline()
    assert h["toward_test_run"] is False and h["n_controls"] == 3
    import matplotlib

    matplotlib.use("Agg")
    paths = r.save(tmp_path)  # the Result protocol: PNG, CSV (one row per pair), JSON headline
    assert paths["png"].stat().st_size > 0 and len(pd.read_csv(paths["csv"])) == 5
    assert "not run: no sense contexts" in paths["json"].read_text()
    with pytest.raises(TlgeomError, match="measure"):
        meaning_vs_control(tiny_gpt2, pairs, measure="speed")
