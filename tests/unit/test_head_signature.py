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


def _sig(trained, reference, layers=10, **kw):
    t = torch.as_tensor(trained, dtype=torch.float64).reshape(layers, -1)
    r = None if reference is None else torch.as_tensor(reference, dtype=torch.float64).reshape(-1, layers, t.shape[1])
    z = torch.zeros_like(t, dtype=torch.long)
    return ER.HeadSignature(
        eigenvalues=torch.zeros(*t.shape, 4, dtype=torch.float64),
        n_pos=z + 2,
        n_neg=z + 2,
        pos_mass=t,
        d_head=2,
        rtol=1e-6,
        reference_pos_mass=None if r is None else (r[0] if r.shape[0] == 1 else r),
        seed=0,
        **kw,
    )


def test_tests_frame_detects_a_shift_with_layers_as_units_and_its_ci_covers_it():
    g = torch.Generator().manual_seed(1)
    ref = 0.5 + 0.01 * torch.randn(40, generator=g, dtype=torch.float64)
    trained = 0.56 + 0.01 * torch.randn(40, generator=g, dtype=torch.float64)
    sig = _sig(trained, ref, n_boot=1999)
    t = sig.tests()
    assert list(t.columns[: len(COLUMNS) + 2]) == [*COLUMNS, "n", "inference_unit"] and len(t) == 2
    row, heads = t.iloc[0], t.iloc[1]
    assert row.statistic == "pos_mass_by_layer" and row.inference_unit == "layer" and row.n_texts == 10
    assert heads.statistic == "pos_mass" and heads.inference_unit == "head" and heads.n_texts == 40
    assert math.isnan(heads.p) and not heads.reject  # heads are not independent units: descriptive only
    layer_diff = trained.reshape(10, 4).mean(-1) - ref.reshape(10, 4).mean(-1)
    assert row.effect == pytest.approx(float(layer_diff.mean()))
    assert row.ci_low < row.effect < row.ci_high and row.ci_low > 0
    assert row.p == pytest.approx(2 / 2**10) and row.p_adjusted == row.p and bool(row.reject)  # all 10 layers up
    h = sig.headline()
    assert h["reject"] is True and h["untrained_pos_mass_mean"] == pytest.approx(float(ref.mean()))
    assert "training SHIFTS" in sig.summary() and "not a finding" in sig.summary()


def test_several_initialisations_must_each_be_beaten():
    """Against K initialisations the layer test takes the largest p (intersection-union); one initialisation
    the trained model does not beat keeps the claim from rejecting."""
    g = torch.Generator().manual_seed(2)
    trained = 0.56 + 0.01 * torch.randn(40, generator=g, dtype=torch.float64)
    low = 0.5 + 0.01 * torch.randn(2, 40, generator=g, dtype=torch.float64)
    row = _sig(trained, low).tests().iloc[0]
    assert bool(row.reject) and "against 2 initialisations" in row.note
    mixed = torch.stack([low[0], trained.flip(0)])  # the second initialisation is as high as the trained model
    row = _sig(trained, mixed).tests().iloc[0]
    assert not row.reject and row.p > 0.05


def test_too_few_layers_cannot_reject_and_say_so():
    row = _sig(torch.full((8,), 0.6), torch.full((8,), 0.5), layers=2).tests().iloc[0]
    assert not row.informative and not row.reject and "cannot reject at any data" in row.note


def test_tests_frame_no_shift_when_samples_are_the_same():
    vals = torch.linspace(0.45, 0.55, 20)
    row = _sig(vals, vals, layers=5).tests().iloc[0]
    assert row.effect == pytest.approx(0.0, abs=1e-12) and row.p == pytest.approx(1.0) and not row.reject
    assert row.ci_low <= 0 <= row.ci_high


def test_without_reference_nothing_is_tested():
    sig = _sig(torch.full((8,), 0.6), None, layers=2)
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
    assert sig.tests().iloc[0].n_texts == tiny_llama.cfg.n_layers  # layers are the units
    assert sig.tests().iloc[1].n_texts == tiny_llama.cfg.n_layers * tiny_llama.cfg.n_heads
    sub = ER.head_metric_signature(tiny_llama, layers=[1], seed=3)
    torch.testing.assert_close(sub.reference_pos_mass[0], sig.reference_pos_mass[1])
    assert ER.head_metric_signature(tiny_llama, reference=False).reference_pos_mass is None
    several = ER.head_metric_signature(tiny_llama, seed=3, init_seeds=2)
    assert several.reference_pos_mass.shape[0] == 2
    torch.testing.assert_close(several.reference_pos_mass[0], sig.reference_pos_mass)
    with pytest.raises(ValueError, match="seed=-1"):
        ER.head_metric_signature(tiny_llama, seed=-1)
