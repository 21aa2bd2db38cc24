"""The gibberish-input null: each text against its shuffled words and random tokens, paired per text."""

from __future__ import annotations

import pytest

import tlgeom
from tlgeom.experiments import gibberish as G

TEXTS = [
    "the cat sat on the mat and looked at the dog .",
    "a river runs through the old town near the hills .",
    "we ate bread and cheese at the small table today .",
    "she wrote a long letter to her friend last night .",
]


def test_gibberish_rows_are_paired_per_text_and_seeded(tiny_gpt2, tmp_path):
    a = G.gibberish_test(tiny_gpt2, TEXTS, seed=3, n_resamples=999)
    b = G.gibberish_test(tiny_gpt2, TEXTS, seed=3, n_resamples=999)
    t = a.tests()
    assert len(t) == 6 and set(t.null) == set(G.GIBBERISH) and set(t.statistic) == set(G.STATISTICS)
    assert t.equals(b.tests())  # seeded: the same shuffles and random tokens
    for r in t.itertuples():
        d = a.per_text[f"{r.statistic}_text"] - a.per_text[f"{r.statistic}_{r.null}"]
        assert r.effect == pytest.approx(float(d.mean()))
    assert not t.informative.any()  # 4 texts, two-sided: p >= 1/8 before Holm over 6
    assert t.note.str.contains("cannot reject at any data").all()
    assert all(p.exists() for p in a.save(tmp_path).values()) and "gibberish" in a.summary()
    with pytest.raises(tlgeom.TlgeomError, match="inputs"):
        G.gibberish_test(tiny_gpt2, TEXTS[:2])
