"""Curvature vs language structure: word classes, permutation statistics, the adapter on tiny models."""

from __future__ import annotations

import pytest
import torch

from tlgeom import TlgeomError
from tlgeom.experiments.structure import (
    classify_tokens,
    curvature_vs_structure,
    function_words,
    permutation_effect,
    permutation_spearman,
)


def test_function_word_list_and_classes():
    fw = function_words()
    assert {"the", "of", "and", "is", "which"} <= fw and "cat" not in fw
    assert classify_tokens(
        [" The", "cat", ",", " of", "ing", "<|im_start|>", "...", " 42"], special=("<|im_start|>",)
    ) == ["function", "content", "punct", "function", "content", "special", "punct", "content"]


def test_permutation_effect_against_scipy():
    from scipy.stats import permutation_test

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, generator=g, dtype=torch.float64)
    a = torch.zeros(40, dtype=torch.bool)
    a[:15] = True
    x[:15] += 0.8
    e = permutation_effect(x, a, ~a, n_perm=20000, seed=1)
    xa, xb = x[:15].numpy(), x[15:].numpy()
    ref = permutation_test((xa, xb), lambda u, v: u.mean() - v.mean(), n_resamples=20000, random_state=0)
    assert abs(e["p_value"] - ref.pvalue) < 0.01
    assert abs(e["diff"] - (xa.mean() - xb.mean())) < 1e-12
    sp = ((14 * xa.var(ddof=1) + 24 * xb.var(ddof=1)) / 38) ** 0.5
    assert abs(e["cohens_d"] - (xa.mean() - xb.mean()) / sp) < 1e-12


def test_permutation_null_is_calibrated():
    """Under the null (no group difference), p-values are roughly uniform: few fall below 0.05."""
    g = torch.Generator().manual_seed(2)
    ps = []
    for i in range(40):
        x = torch.randn(30, generator=g, dtype=torch.float64)
        a = torch.arange(30) < 12
        ps.append(permutation_effect(x, a, ~a, n_perm=999, seed=i)["p_value"])
    ps = torch.tensor(ps)
    assert (ps < 0.05).float().mean() <= 0.15 and ps.mean() > 0.3


def test_permutation_spearman_against_scipy():
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(0)
    pos = torch.arange(30, dtype=torch.float64)
    v = pos * 0.1 + torch.randn(30, generator=g, dtype=torch.float64)
    e = permutation_spearman(v, pos, n_perm=5000)
    ref = spearmanr(v.numpy(), pos.numpy())
    assert abs(e["rho"] - ref.statistic) < 1e-12
    assert e["p_value"] < 0.01 and ref.pvalue < 0.01


def test_curvature_vs_structure_tiny(tiny_gpt2):
    text = "the cat sat on the mat , and the dog ran up the road . the man saw a big red ball"
    r = curvature_vs_structure(tiny_gpt2, text, n_perm=999)
    df = r.to_frame()
    assert set(df.word_class) <= {"function", "content", "punct", "special"}
    assert (df.word_class == "punct").sum() == 2 and (df.word_class == "special").sum() == 1  # [BOS]
    assert df.loc[df.word_class != "special", "turning_angle"].notna().all()
    eff = r.effects_frame()
    assert set(eff.measure) == {"turning_angle"}
    assert ((eff.p_value > 0) & (eff.p_value <= 1)).all()
    assert "Cohen's d" in r.summary()
    import matplotlib

    matplotlib.use("Agg")
    r.plot()


def test_chart_scalar_curvature_column(tiny_gpt2):
    r = curvature_vs_structure(tiny_gpt2, "the cat , a dog", n_perm=99, chart_curvature=True, chart_points=(0, 1))
    df = r.to_frame()
    assert df.loc[df.word_class != "special", "chart_scalar"].notna().all()
    assert df.loc[df.word_class == "special", "chart_scalar"].isna().all()
    assert "chart_scalar" in set(r.effects_frame().measure)


def test_bad_args(tiny_gpt2):
    with pytest.raises(TlgeomError, match="n_perm="):
        curvature_vs_structure(tiny_gpt2, "the cat", n_perm=5)
    with pytest.raises(TlgeomError, match="chart_points="):
        curvature_vs_structure(tiny_gpt2, "the cat", chart_points=(2, 1))
