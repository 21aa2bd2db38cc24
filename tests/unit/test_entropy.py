"""Contextual curvature against next-token entropy: the partial correlation and the per-layer tests."""

from __future__ import annotations

import numpy as np
import pytest

import tlgeom
from tlgeom.experiments import entropy as E

TEXTS = [
    "the cat sat on the mat and looked at the dog for a while .",
    "a river runs through the old town near the green hills today .",
    "we ate bread and cheese at the small table in the kitchen .",
    "she wrote a long letter to her friend late last night again .",
]


def test_partial_correlation_removes_what_the_covariates_explain():
    """x and y both driven by position only: the raw correlation is large, the partial one about 0; a shared
    term beyond position survives."""
    g = np.random.default_rng(0)
    pos = np.arange(500.0)
    x = pos / 100 + g.normal(size=500)
    y = pos / 100 + g.normal(size=500)
    assert np.corrcoef(x, y)[0, 1] > 0.5
    assert abs(E.partial_correlation(x, y, pos[:, None])) < 0.1
    shared = g.normal(size=500)
    assert E.partial_correlation(x + shared, y + shared, pos[:, None]) > 0.3
    assert np.isnan(E.partial_correlation(x[:3], y[:3], pos[:3, None]))


def test_entropy_test_rows_per_layer(tiny_gpt2, tmp_path):
    r = E.entropy_test(tiny_gpt2, TEXTS, n_resamples=999)
    t = r.tests()
    assert len(t) == tiny_gpt2.cfg.n_layers + 1 and t.statistic.str.startswith("entropy_r@").all()
    assert (t.adjusted_for == E.ADJUSTED_FOR).all() and (t.n == 4).all()
    assert not t.informative.any() and not t.reject.any()  # 4 texts, two-sided: p >= 1/8
    assert r.r.shape == (4, tiny_gpt2.cfg.n_layers + 1) and np.isfinite(r.r).all()
    assert all(p.exists() for p in r.save(tmp_path).values()) and "entropy" in r.summary()


def test_entropy_test_refuses_an_encoder(tiny_bert):
    with pytest.raises(tlgeom.TlgeomError, match="language-model head"):
        E.entropy_test(tiny_bert, TEXTS)
