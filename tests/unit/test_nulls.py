"""Null models and the statistics: exactness of the walks, agreement of the fast samplers with
the walks they summarise, seeding, calibration (uniform p-values under the null), power (a
zig-zag), the report, the untrained-model null on tiny models.

Distribution checks use two-sample Kolmogorov–Smirnov tests at fixed seeds with a small
threshold (p > 1e-3): deterministic, and a wrong sampler fails them by orders of magnitude.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from scipy import stats

import tlgeom
from tlgeom.experiments.curvature import CurvatureReport, compare_to_nulls, curvature_test, untrained_model
from tlgeom.geometry.curvature import length_to_chord, sharp_flat_counts, step_norms, turning_angles
from tlgeom.models import _compat
from tlgeom.stats.nulls import (
    NULLS,
    angle_preserving_walk,
    dimension_matched_walk,
    effective_dimension,
    gaussian_walk,
    null_statistics,
    participation_ratio,
    seeded,
    step_shuffle,
)
from tlgeom.stats.pvalues import permutation_p


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(), b.flatten()
    return stats.ks_2samp(a[~torch.isnan(a)].numpy(), b[~torch.isnan(b)].numpy()).pvalue


def _obs(n=30, k=8, d=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k + 1, d, generator=g, dtype=torch.float64).cumsum(1) * torch.rand(n, 1, 1, generator=g)


# --- the walks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["reduced", "direct"])
def test_gaussian_walk_norms_and_angle_law(method):
    norms = torch.rand(50, 6, dtype=torch.float64) + 0.5
    d = 100
    w = gaussian_walk(norms, 40, d, seed=1, method=method)
    assert w.shape == (40, 50, 7, 6 if method == "reduced" else d)
    torch.testing.assert_close(step_norms(w), norms.expand(40, 50, 6), rtol=1e-12, atol=0)
    a = turning_angles(w)
    assert abs(a.mean().item() - math.pi / 2) < 4 / math.sqrt(d * a.numel())
    assert abs(a.std().item() * math.sqrt(d) - 1) < 0.05


def test_reduced_and_direct_walks_agree_in_distribution():
    norms = torch.rand(20, 10, dtype=torch.float64) + 0.2
    r = gaussian_walk(norms, 300, 24, seed=2, method="reduced")
    dct = gaussian_walk(norms, 300, 24, seed=3, method="direct")
    assert _ks(turning_angles(r), turning_angles(dct)) > 1e-3
    assert _ks(length_to_chord(r), length_to_chord(dct)) > 1e-3
    # the whole Gram matrix, not only consecutive angles: the cosine between steps 0 and 9
    cos = lambda w: torch.nn.functional.cosine_similarity(
        w[..., 1, :] - w[..., 0, :], w[..., 10, :] - w[..., 9, :], dim=-1
    )
    assert _ks(cos(r), cos(dct)) > 1e-3


def test_angle_preserving_walk_keeps_norms_and_angles():
    x = _obs(12, 9, 30)
    norms, theta = step_norms(x), turning_angles(x)
    w = angle_preserving_walk(norms, theta, 25, 30, seed=0)
    assert w.shape == (25, 12, 10, 9)
    torch.testing.assert_close(step_norms(w), norms.expand_as(step_norms(w)), rtol=1e-10, atol=0)
    torch.testing.assert_close(turning_angles(w), theta.expand_as(turning_angles(w)), rtol=0, atol=1e-8)
    # but the turn planes differ: LTC varies across simulations
    assert length_to_chord(w).std(0).min() > 0


def test_angle_preserving_walk_reduced_equals_full_dimension_in_distribution():
    """The reduced construction (χ(d−m) along a new axis) vs an explicit walk in R^d."""
    d, K, S = 12, 8, 4000
    norms = torch.ones(1, K, dtype=torch.float64)
    theta = torch.full((1, K - 1), math.radians(70), dtype=torch.float64)
    red = angle_preserving_walk(norms, theta, S, d, seed=4)
    gen = torch.Generator().manual_seed(5)
    u = torch.zeros(S, K, d, dtype=torch.float64)
    u0 = torch.randn(S, d, generator=gen, dtype=torch.float64)
    u[:, 0] = u0 / u0.norm(dim=-1, keepdim=True)
    for l in range(K - 1):
        g = torch.randn(S, d, generator=gen, dtype=torch.float64)
        v = g - (g * u[:, l]).sum(-1, keepdim=True) * u[:, l]
        v = v / v.norm(dim=-1, keepdim=True)
        u[:, l + 1] = math.cos(theta[0, l]) * u[:, l] + math.sin(theta[0, l]) * v
    full = torch.cat([torch.zeros(S, 1, d, dtype=torch.float64), u.cumsum(1)], 1)
    assert _ks(length_to_chord(red), length_to_chord(full)) > 1e-3


def test_step_shuffle_permutes_steps_and_keeps_ltc():
    x = _obs(6, 7, 20)
    w = step_shuffle(x, 10, seed=0)
    assert w.shape == (10, 6, 8, 7)
    got = step_norms(w).sort(-1).values
    torch.testing.assert_close(got, step_norms(x).sort(-1).values.expand_as(got), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(length_to_chord(w), length_to_chord(x).expand(10, 6), rtol=1e-10, atol=0)
    full = step_shuffle(x, 3, seed=0, reduced=False)
    assert full.shape[-1] == 20
    torch.testing.assert_close(turning_angles(full), turning_angles(w[:3]), rtol=0, atol=1e-9)  # same perms


def test_participation_ratio_closed_forms():
    g = torch.Generator().manual_seed(0)
    line = torch.randn(500, 1, generator=g, dtype=torch.float64) * torch.randn(1, 30, generator=g, dtype=torch.float64)
    assert abs(participation_ratio(line + 5) - 1) < 1e-9
    q = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64)).Q[:, :7]
    cloud = torch.randn(20000, 7, generator=g, dtype=torch.float64) @ q.T  # isotropic in 7 of 30 dims
    assert abs(participation_ratio(cloud) - 7) < 0.1
    # spectrum (1, 1, 0.5) → (2.5)² / 2.25
    diag = torch.randn(20000, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.5]).sqrt()
    assert abs(participation_ratio(diag) - 2.5**2 / 2.25) < 0.05
    assert effective_dimension(line) == 2


# --- the fast statistics sampler = the walks -------------------------------------------------------


@pytest.mark.parametrize("name", ["gaussian", "rotation", "shuffle", "dimension"])
def test_null_statistics_match_the_walks(name):
    x = _obs(10, 8, 16, seed=1)
    S = 600
    with seeded(11):
        a, l = null_statistics(name, x, S, d_eff=5)
    norms, theta = step_norms(x), turning_angles(x)
    if name == "gaussian":
        w = gaussian_walk(norms, S, 16, seed=12)
    elif name == "dimension":
        w = dimension_matched_walk(norms, S, d_eff=5, seed=12)
    elif name == "rotation":
        w = angle_preserving_walk(norms, theta, S, 16, seed=12)
    else:
        w = step_shuffle(x, S, seed=12)
    assert a.shape == (S, 10, 7)
    if name == "rotation":
        torch.testing.assert_close(a, theta.expand_as(a))
    else:
        for n in range(0, 10, 3):  # per token (the norms differ between tokens)
            assert _ks(a[:, n], turning_angles(w)[:, n]) > 1e-3
    if name == "shuffle":
        assert l is None
    else:
        for n in range(0, 10, 3):
            assert _ks(l[:, n], length_to_chord(w)[:, n]) > 1e-3


def test_seeding_is_reproducible_and_leaves_global_rng_alone():
    x = _obs()
    state = torch.get_rng_state()
    r1 = compare_to_nulls(x, n_sims=50, seed=3)
    r2 = compare_to_nulls(x, n_sims=50, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    r3 = compare_to_nulls(x, n_sims=50, seed=4)
    for a, b, c in zip(r1.results, r2.results, r3.results):
        for k in a.null:
            assert torch.equal(a.null[k], b.null[k])
        if a.ltc_null is not None:
            assert torch.equal(a.ltc_null, b.ltc_null) and not torch.equal(a.ltc_null, c.ltc_null)
    # the same null's stream does not depend on which other nulls run
    only = compare_to_nulls(x, nulls=["rotation"], n_sims=50, seed=3)
    assert torch.equal(only["rotation"].ltc_null, r1["rotation"].ltc_null)


# --- calibration and power -----------------------------------------------------------------------


def test_calibration_gaussian_walk_gives_uniform_p_values():
    """200 seeded repeats of 'observed' = a norm-matched Gaussian walk: FPR at 0.05 in [0.02, 0.08].

    Vectorised over the repeats: one null_statistics draw for all 200×N tokens (the sampler
    compare_to_nulls uses), per-repeat counts and thresholds, and permutation_p (its p-value).
    With 200 repeats the FPR itself has sd ≈ 0.015, and count statistics are discrete (ties make
    the +1-corrected p conservative): over observation seeds 0–4 we measured FPRs of 0.03–0.07
    (counts, 100°/80°) and 0.01–0.05 (LTC), so this fixed seed is one draw from that spread.
    """
    g = torch.Generator().manual_seed(0)
    R, N, K, d, S = 200, 40, 8, 16, 99
    norms = torch.rand(R, N, K, generator=g, dtype=torch.float64) + 0.5
    steps = torch.randn(R, N, K, d, generator=g, dtype=torch.float64)  # drawn directly, not by tlgeom
    steps = steps / steps.norm(dim=-1, keepdim=True) * norms[..., None]
    obs = torch.cat([torch.zeros(R, N, 1, d, dtype=torch.float64), steps.cumsum(2)], 2)
    with seeded(100):
        null_a, null_l = null_statistics("gaussian", obs.reshape(R * N, K + 1, d), S)
    null_a, null_l = null_a.reshape(S, R, N, K - 1), null_l.reshape(S, R, N)
    obs_a, obs_l = turning_angles(obs), length_to_chord(obs)  # [R, N, V], [R, N]
    p = {"ltc median": permutation_p(obs_l.median(-1).values, null_l.median(-1).values)}
    # sharp+flat with thresholds from each repeat's null spread (μ ± 1σ per vertex) and in degrees
    mu = torch.rad2deg(null_a).mean((0, 2))  # [R, V]
    sd = torch.rad2deg(null_a).std((0, 2))
    for name, (sh, fl) in {"sharp+flat (null_sd)": (mu + sd, mu - sd), "sharp+flat (100°/80°)": (100.0, 80.0)}.items():
        sh = torch.as_tensor(sh)[..., None, :] if torch.is_tensor(sh) else sh
        fl = torch.as_tensor(fl)[..., None, :] if torch.is_tensor(fl) else fl
        c_obs = sharp_flat_counts(obs_a, sh, fl, dim=(-2, -1))
        c_null = sharp_flat_counts(null_a, sh, fl, dim=(-2, -1))
        p[name] = permutation_p(c_obs.sharp + c_obs.flat, c_null.sharp + c_null.flat)
    for name, pv in p.items():
        assert pv.shape == (R,)
        fpr = (pv <= 0.05).double().mean().item()
        print(
            f"calibration {name}: FPR at 0.05 = {fpr:.3f}, KS vs U(0,1) p = {stats.kstest(pv.numpy(), 'uniform').pvalue:.3f}"
        )
        assert 0.02 <= fpr <= 0.08, (name, fpr)
    assert stats.kstest(p["ltc median"].numpy(), "uniform").pvalue > 1e-3
    # compare_to_nulls computes exactly this p-value from its own simulations
    rep = compare_to_nulls(obs[0], nulls=["gaussian"], n_sims=S, seed=0)
    r = rep["gaussian"]
    assert r.ltc_stats()["p"] == pytest.approx(float(permutation_p(r.ltc_observed, r.ltc_null)))


def test_planar_zigzag_is_detected():
    d, N, K = 32, 20, 12
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(d, 2, generator=gen, dtype=torch.float64)).Q
    ang = math.radians(85)
    signs = torch.tensor([1.0 if k % 2 == 0 else -1.0 for k in range(K)], dtype=torch.float64)
    steps2 = torch.stack([torch.full((K,), math.cos(ang), dtype=torch.float64), signs * math.sin(ang)], -1)
    lengths = torch.rand(N, K, 1, generator=gen, dtype=torch.float64) * 0.2 + 1
    steps = (lengths * steps2) @ basis.T
    x = torch.cat([torch.zeros(N, 1, d, dtype=torch.float64), steps.cumsum(1)], 1)
    rep = compare_to_nulls(x, nulls=["gaussian", "rotation"], n_sims=1999, seed=0)
    g = rep["gaussian"]
    assert g.stats("sharp+flat")["p"] < 0.001 and g.stats("sharp")["p"] < 0.001
    assert g.ltc_stats()["p"] < 0.001 and g.ltc_stats()["ratio"] > 1
    # the rotation null keeps the 170° turns but not the plane: its walks fold back on themselves
    # (LTC even longer), so the zig-zag is not longer *given its angles*
    assert rep["rotation"].ltc_stats()["p"] > 0.05
    assert rep.verdicts()["gaussian"] == {"sharp+flat exceeds": True, "ltc longer": True}


# --- the report ---------------------------------------------------------------------------------


def test_report_counts_equal_direct_recount_and_formats():
    x = _obs(25, 9, 20, seed=2)
    x[0, 4] = x[0, 3]  # a zero step: two undefined angles, masked everywhere
    rep = compare_to_nulls(x, n_sims=99, seed=0, sharp_deg=100.0, flat_deg=80.0)
    assert isinstance(rep, CurvatureReport) and [r.name for r in rep.results] == list(NULLS)
    deg = torch.rad2deg(turning_angles(x))
    g = rep["gaussian"]
    assert g.observed["sharp"].tolist() == (deg >= 100).sum(0).tolist()
    assert g.observed["flat"].tolist() == (deg <= 80).sum(0).tolist()
    assert g.valid.sum().item() == (~torch.isnan(deg)).sum().item() == deg.numel() - 2
    assert torch.isnan(g.angles_sample[:, 0, 2:4]).all()  # null angles masked where observed undefined
    s = g.stats("sharp+flat")
    assert 1 / 100 <= s["p"] <= 1 and s["excess"] == pytest.approx(s["observed"] - s["reference"])
    assert rep["rotation"].tests_angles is False and rep["shuffle"].tests_ltc is False
    assert rep.observed_ltc.nanmedian().item() == pytest.approx(rep["gaussian"].ltc_observed)
    text = rep.summary()
    print(text)
    for r in rep.results:
        assert f"[{r.name}]" in text
    assert "n/a" in text and "not the paper's" in text
    f = rep.to_frame()
    assert set(f.null) == set(NULLS)
    assert {"null", "statistic", "vertex", "observed", "reference", "null_mean", "null_sd", "excess", "z", "p"} <= set(
        f.columns
    )
    assert ((f.p > 0) & (f.p <= 1)).all()
    fig = rep.plot()
    assert len(fig.axes) == 2
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_normalized_space_and_trajectories_input(tiny_gpt2):
    t = tlgeom.record_trajectories(tiny_gpt2, ["the cat sat on the mat", "a big dog"])
    rep = compare_to_nulls(t, nulls=["gaussian"], n_sims=20, seed=0, space="normalized", norm="layernorm")
    assert rep.observed_angles.shape == (int(t.mask.sum()), tiny_gpt2.cfg.n_layers - 1)  # padding dropped
    assert rep.vertex_labels == t.point_labels[1:-1]
    expected = turning_angles(t, space="normalized", norm="layernorm")[t.mask]
    torch.testing.assert_close(rep.observed_angles, expected)


@pytest.mark.unchecked  # mistyped input on purpose: tlgeom's own TlgeomError is the subject
def test_bad_input():
    x = _obs()
    with pytest.raises(tlgeom.TlgeomError, match="curvature_test"):
        compare_to_nulls(x, nulls=["untrained"])
    for kw, match in (
        (dict(nulls=["brownian"]), "nulls"),
        (dict(n_sims=0), "n_sims"),
        (dict(thresholds="quantile"), "thresholds"),
        (dict(space="curved"), "space"),
        (dict(sharp_deg=60.0, flat_deg=70.0), "sharp_deg"),
        (dict(alpha=5), "alpha"),
        (dict(seed="x"), "seed"),
    ):
        with pytest.raises(tlgeom.TlgeomError, match=match):
            compare_to_nulls(x, **kw)
    with pytest.raises(tlgeom.TlgeomError, match="at least 3 points"):
        compare_to_nulls(torch.randn(4, 2, 5))
    with pytest.raises(tlgeom.TlgeomError, match="d="):
        gaussian_walk(torch.ones(3, 4), 5, 1)
    with pytest.raises(tlgeom.TlgeomError, match="turning_angles"):
        angle_preserving_walk(torch.ones(3, 4), torch.ones(3, 4), 5, 8)


# --- the untrained model ----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_bert"])  # native Bridge, Bridge over HF
def test_untrained_model_reinitialises_a_copy(fixture, request):
    m = request.getfixturevalue(fixture)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    u1, u2, u3 = untrained_model(m, seed=1), untrained_model(m, seed=1), untrained_model(m, seed=2)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
    mats = [k for k, v in before.items() if v.dim() >= 2 and v.is_floating_point()]
    s1, s2, s3 = u1.state_dict(), u2.state_dict(), u3.state_dict()
    changed = sum(not torch.equal(s1[k], before[k]) for k in mats)
    assert changed >= 0.9 * len(mats)
    assert all(torch.equal(s1[k], s2[k]) for k in mats)  # seeded
    assert sum(not torch.equal(s1[k], s3[k]) for k in mats) >= 0.9 * len(mats)


def test_untrained_model_hooked_transformer():
    try:
        from transformer_lens import HookedTransformer  # noqa: F401
    except ImportError:
        pytest.skip("HookedTransformer exists only in TransformerLens 3.x")
    m = tlgeom.models.tiny_model("gpt2", api="hooked")
    u = untrained_model(m, seed=3)
    w0, w1 = m.blocks[0].attn.W_Q, u.blocks[0].attn.W_Q
    assert not torch.equal(w0, w1) and torch.equal(untrained_model(m, seed=3).blocks[0].attn.W_Q, w1)


def test_curvature_test_on_a_tiny_model(tiny_llama):
    texts = ["the cat sat on the mat and the dog ran", "a big red car"]
    tlgeom.record_trajectories(tiny_llama, texts)  # the Bridge wires permanent capture hooks on a first pass
    before = _compat.count_hooks(tiny_llama)
    rep = curvature_test(tiny_llama, texts, n_sims=50, seed=0, init_seed=1)
    assert _compat.count_hooks(tiny_llama) == before
    assert [r.name for r in rep.results] == list(NULLS) + ["untrained"]
    t = tlgeom.record_trajectories(tiny_llama, texts)
    torch.testing.assert_close(rep.observed_angles, turning_angles(t)[t.mask])
    u = rep["untrained"]
    ut = tlgeom.record_trajectories(untrained_model(tiny_llama, 1), texts)
    ua = torch.rad2deg(turning_angles(ut)[t.mask])
    assert u.reference["sharp+flat"].tolist() == ((ua >= 110) | (ua <= 70)).sum(0).tolist()
    assert u.ltc_reference == pytest.approx(length_to_chord(ut)[t.mask].median().item())
    # the swap null always lies between the two arms
    lo = torch.minimum(u.observed["sharp+flat"], u.reference["sharp+flat"].long())
    hi = torch.maximum(u.observed["sharp+flat"], u.reference["sharp+flat"].long())
    assert ((u.null["sharp+flat"] >= lo) & (u.null["sharp+flat"] <= hi)).all()
    skip = curvature_test(tiny_llama, texts, nulls=["gaussian"], n_sims=10, skip_first=1)
    assert skip.observed_angles.shape[0] == rep.observed_angles.shape[0] - 2
    assert "untrained" in rep.summary()
