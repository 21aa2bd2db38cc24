"""HeadSignature: 'indefinite' is certain by construction; the positive mass is tested against the
untrained model across heads."""

from __future__ import annotations

import math

import pytest
import torch

from tlgeom._result import TEST_COLUMNS
from tlgeom.experiments import riemann as ER
from tlgeom.geometry import riemann as R

COLUMNS = list(TEST_COLUMNS)  # the shared tests() columns


def test_random_weights_give_exactly_half_positive_half_negative():
    """Sylvester: sym(W_Q W_Kᵀ) has at most d_head eigenvalues of each sign; generic weights give d_head each,
    so 'the head metric is indefinite' cannot be a finding."""
    g = torch.Generator().manual_seed(0)
    L, H, d, h = 3, 4, 48, 8
    WQ = torch.randn(L, H, d, h, generator=g, dtype=torch.float64)
    WK = torch.randn(L, H, d, h, generator=g, dtype=torch.float64)
    lam, _ = R.head_effective_metric(WQ, WK)
    tol = 1e-9 * lam.abs().amax(-1, keepdim=True)
    assert ((lam > tol).sum(-1) == h).all() and ((lam < -tol).sum(-1) == h).all()
    pos_mass = lam.clamp_min(0).sum(-1) / lam.abs().sum(-1)
    assert abs(float(pos_mass.mean()) - 0.5) < 0.05  # balanced up to noise


def _sig(trained, reference, **kw):
    t = torch.as_tensor(trained, dtype=torch.float64).reshape(2, -1)
    r = None if reference is None else torch.as_tensor(reference, dtype=torch.float64).reshape(2, -1)
    z = torch.zeros_like(t, dtype=torch.long)
    return ER.HeadSignature(
        eigenvalues=torch.zeros(*t.shape, 4, dtype=torch.float64),
        n_pos=z + 2,
        n_neg=z + 2,
        pos_mass=t,
        d_head=2,
        rtol=1e-6,
        reference_pos_mass=r,
        seed=0,
        **kw,
    )


def test_tests_frame_detects_a_shift_and_its_ci_covers_it():
    g = torch.Generator().manual_seed(1)
    ref = 0.5 + 0.01 * torch.randn(40, generator=g, dtype=torch.float64)
    trained = 0.56 + 0.01 * torch.randn(40, generator=g, dtype=torch.float64)
    sig = _sig(trained, ref, n_boot=1999)
    t = sig.tests()
    assert list(t.columns) == [*COLUMNS, "n", "inference_unit"] and len(t) == 1 and t.inference_unit.item() == "head"
    row = t.iloc[0]
    assert row.null == "untrained" and row.statistic == "pos_mass" and row.n_texts == 40
    assert row.effect == pytest.approx(float(trained.mean() - ref.mean()))
    assert row.ci_low < row.effect < row.ci_high and row.ci_low > 0
    assert row.p < 1e-6 and row.p_adjusted == row.p and bool(row.reject)
    h = sig.headline()
    assert h["reject"] is True and h["untrained_pos_mass_mean"] == pytest.approx(float(ref.mean()))
    assert "training SHIFTS" in sig.summary() and "not a finding" in sig.summary()


def test_tests_frame_no_shift_when_samples_are_the_same():
    vals = torch.linspace(0.45, 0.55, 20)
    row = _sig(vals, vals.flip(0)).tests().iloc[0]
    assert row.effect == pytest.approx(0.0, abs=1e-12) and row.p == pytest.approx(1.0) and not row.reject
    assert row.ci_low <= 0 <= row.ci_high


def test_without_reference_nothing_is_tested():
    sig = _sig(torch.full((8,), 0.6), None)
    row = sig.tests().iloc[0]
    assert math.isnan(row.p) and math.isnan(row.null_mean) and not row.reject
    assert "not tested" in sig.summary()
    assert sig.headline()["p"] is None  # JSON null, not NaN


def test_head_metric_signature_reference_is_the_untrained_model(tiny_llama):
    from tlgeom.models.untrained import untrained_model

    before = tiny_llama.W_Q.detach().clone()
    sig = ER.head_metric_signature(tiny_llama, seed=3)
    torch.testing.assert_close(tiny_llama.W_Q.detach(), before)  # the model is untouched
    UQ, UK = ER._expanded_qk(untrained_model(tiny_llama, seed=3))
    lam, _ = R.head_effective_metric(UQ.cpu(), UK.cpu())
    torch.testing.assert_close(sig.reference_pos_mass, lam.clamp_min(0).sum(-1) / lam.abs().sum(-1))
    assert sig.tests().iloc[0].n_texts == tiny_llama.cfg.n_layers * tiny_llama.cfg.n_heads
    sub = ER.head_metric_signature(tiny_llama, layers=[1], seed=3)
    torch.testing.assert_close(sub.reference_pos_mass[0], sig.reference_pos_mass[1])
    assert ER.head_metric_signature(tiny_llama, reference=False).reference_pos_mass is None
    with pytest.raises(ValueError, match="seed=-1"):
        ER.head_metric_signature(tiny_llama, seed=-1)
