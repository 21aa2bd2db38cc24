"""Riemannian geometry and heat-kernel attention on SmolLM2 (Bridge; HookedTransformer on TL 3.x)."""

from __future__ import annotations

import time

import pytest
import torch

import tlgeom.experiments.riemann as ER
from tlgeom.experiments.heat import attention_vs_heat_kernel
from tlgeom.experiments.structure import curvature_vs_structure

pytestmark = pytest.mark.integration


def _first_100(model, paragraph):
    return model.to_tokens(paragraph)[:, :100]


def test_pullback_metric_k8_smollm2(smollm2, paragraph):
    toks = _first_100(smollm2, paragraph)
    chart = ER.model_chart(smollm2, toks, pos=60, l0=2, l1=3, basis="embedding", k=8)
    g = chart.metric()
    assert g.shape == (8, 8) and torch.allclose(g, g.T)
    eig = torch.linalg.eigvalsh(g)
    assert eig.min() > 0
    # JVP columns equal central differences of the map (float32 model: loose tolerance)
    h = 0.05
    e0 = torch.zeros(8, dtype=torch.float64)
    e0[0] = h
    with torch.no_grad():  # TL 3.9's parameters require grad
        fd = (chart(e0) - chart(-e0)) / (2 * h)
    JT = chart.jacobian()
    rel = float((fd - JT[0]).norm() / JT[0].norm())
    print(f"\nsmollm2 block-2 chart k=8: g eigenvalues {eig.min():.3f}..{eig.max():.3f}; JVP vs FD rel err {rel:.2e}")
    assert rel < 0.05


def test_chart_same_on_hooked_transformer(smollm2, smollm2_hooked, paragraph):
    toks = _first_100(smollm2, paragraph)[:, :40]
    B = ER.chart_basis(smollm2, "embedding", 4)
    gb = ER.model_chart(smollm2, toks, pos=20, l0=3, l1=5, basis=B).metric()
    gh = ER.model_chart(smollm2_hooked, toks, pos=20, l0=3, l1=5, basis=B).metric()
    torch.testing.assert_close(gb, gh, rtol=2e-3, atol=2e-3)


def test_head_signature_smollm2(smollm2):
    sig = ER.head_metric_signature(smollm2)
    assert sig.n_pos.shape == (30, 9)
    pm = sig.pos_mass
    print(
        f"\nsmollm2 sym(W_Q W_K^T): positive mass per head median {pm.median():.3f}, "
        f"range {pm.min():.3f}..{pm.max():.3f}; heads with pos_mass > 0.6: {int((pm > 0.6).sum())}/270, "
        f"< 0.4: {int((pm < 0.4).sum())}/270; n_pos median {sig.n_pos.float().median():.0f}, "
        f"n_neg median {sig.n_neg.float().median():.0f} of {2 * sig.d_head}"
    )


def test_head_signature_bridge_equals_hooked(smollm2, smollm2_hooked):
    a = ER.head_metric_signature(smollm2, layers=[0, 15])
    b = ER.head_metric_signature(smollm2_hooked, layers=[0, 15])
    torch.testing.assert_close(a.eigenvalues, b.eigenvalues, rtol=1e-4, atol=1e-5)


def test_attention_vs_heat_kernel_smollm2(smollm2, paragraph):
    toks = _first_100(smollm2, paragraph)
    t0 = time.perf_counter()
    r = attention_vs_heat_kernel(smollm2, toks, layers=3)
    dt = time.perf_counter() - t0
    print(f"\nattention_vs_heat_kernel(smollm2, 100 tokens, layer 3): {dt:.1f} s\n{r.summary()}")
    assert r.qk_err.max() < 1e-4  # the rotated q/k reproduce the pattern
    assert torch.isfinite(r.kl_heat).all() and torch.isfinite(r.kl_gauss).all()
    assert len(r.to_frame()) == 9


def test_structure_smollm2(smollm2, paragraph):
    r = curvature_vs_structure(smollm2, paragraph, n_perm=5000)
    print("\n" + r.summary())
    eff = r.effects_frame()
    assert eff.p_value.between(0, 1).all()
