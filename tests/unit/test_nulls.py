"""Null models and the text-level tests: exactness of the samplers (closed-form angle laws, reduced
vs direct walks, what each null keeps), the registry, seeding, the sphere, the results table, input
checks, and the untrained-model null on tiny models.

Distribution checks use two-sample Kolmogorov–Smirnov tests at fixed seeds with a small threshold
(p > 1e-3): deterministic, and a wrong sampler fails them by orders of magnitude. Calibration over
many corpora is in tests/calibration.
"""

from __future__ import annotations

import itertools
import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from null_reference import per_text_statistics, plain_rotation_reference  # tests/null_reference.py
from scipy import stats
from statsmodels.stats.multitest import multipletests

import tlgeom
from tlgeom._args import generator
from tlgeom.experiments.curvature import CurvatureReport, compare_to_nulls, curvature_test, untrained_model
from tlgeom.geometry.curvature import length_to_chord, step_norms, turning_angles
from tlgeom.models import _compat
from tlgeom.stats.nulls import (
    DEFAULT_NULLS,
    angle_preserving_walk,
    apply_haar_frames,
    dimension_matched_walk,
    effective_dimension,
    gaussian_walk,
    get_null,
    joint_rotation_steps,
    null_names,
    null_statistics,
    participation_ratio,
    sphere_log,
    sphere_rotation_walk,
    sphere_walk,
    step_shuffle,
)
from tlgeom.stats.pvalues import adjust_pvalues, exchangeable_pvalue, mc_pvalue, sign_flip_test


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(), b.flatten()
    return stats.ks_2samp(a[~torch.isnan(a)].numpy(), b[~torch.isnan(b)].numpy()).pvalue


def _obs(n=30, k=8, d=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k + 1, d, generator=g, dtype=torch.float64).cumsum(1) * torch.rand(n, 1, 1, generator=g)


def _corpus(sizes=(5, 7, 9, 5, 7), k=8, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, k + 1, d, generator=g, dtype=torch.float64).cumsum(1) for n in sizes]


# --- the per-token walks (tlgeom 0.1 samplers, now generator-driven) -----------------------------


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
    assert length_to_chord(w).std(0).min() > 0


def test_angle_preserving_walk_reduced_equals_full_dimension_in_distribution():
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
    cloud = torch.randn(20000, 7, generator=g, dtype=torch.float64) @ q.T
    assert abs(participation_ratio(cloud) - 7) < 0.1
    diag = torch.randn(20000, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.5]).sqrt()
    assert abs(participation_ratio(diag) - 2.5**2 / 2.25) < 0.05
    assert effective_dimension(line) == 2


@pytest.mark.parametrize("name", ["gaussian_token", "turn_plane_token", "shuffle_token", "dimension_token"])
def test_null_statistics_match_the_walks(name):
    """The closed-form per-token samplers (angles and chord recursions) = statistics of the walks."""
    x = _obs(10, 8, 16, seed=1)
    S = 600
    a, l = null_statistics(name, x, S, seed=11, d_eff=5)
    norms, theta = step_norms(x), turning_angles(x)
    if name == "gaussian_token":
        w = gaussian_walk(norms, S, 16, seed=12)
    elif name == "dimension_token":
        w = dimension_matched_walk(norms, S, d_eff=5, seed=12)
    elif name == "turn_plane_token":
        w = angle_preserving_walk(norms, theta, S, 16, seed=12)
    else:
        w = step_shuffle(x, S, seed=12)
    assert a.shape == (S, 10, 7)
    if name == "turn_plane_token":
        torch.testing.assert_close(a, theta.expand_as(a))
    else:
        for n in range(0, 10, 3):
            assert _ks(a[:, n], turning_angles(w)[:, n]) > 1e-3
    if name == "shuffle_token":
        assert l is None
    else:
        for n in range(0, 10, 3):
            assert _ks(l[:, n], length_to_chord(w)[:, n]) > 1e-3


# --- the registry -------------------------------------------------------------------------------


def test_registry_names_tests_and_spaces():
    assert set(null_names()) >= {"rotation", "shuffle", "sphere_rotation", "sphere_walk", "gaussian_token", "untrained"}
    assert DEFAULT_NULLS == {"raw": ("rotation", "shuffle"), "normalized": ("sphere_rotation",)}
    assert all(get_null(n).joint for n in DEFAULT_NULLS["raw"] + DEFAULT_NULLS["normalized"])
    assert not get_null("gaussian_token").joint
    assert "log_ltc" not in get_null("shuffle").tests and "log_ltc" not in get_null("shuffle_token").tests
    assert get_null("turn_plane_token").tests == {"log_ltc"}
    assert get_null("sphere_rotation").spaces == ("normalized",) and get_null("rotation").spaces == ("raw",)
    with pytest.raises(tlgeom.TlgeomError, match="'rotation'.*gaussian_token"):
        get_null("brownian")
    with pytest.raises(tlgeom.TlgeomError, match="gaussian_token"):
        get_null("gaussian")  # renamed: the error says to what
    with pytest.raises(tlgeom.TlgeomError, match="needs the paired states of a model"):
        get_null("untrained").simulate(_obs(3, 4, 5), 3)


# --- the joint nulls ---------------------------------------------------------------------------


def test_haar_frames_are_orthonormal_and_uniform():
    gen = generator(0)
    d, r = 10, 3
    w = apply_haar_frames(torch.eye(r, dtype=torch.float64), 4000, d, gen)  # rows of Wᵀ: the frame
    torch.testing.assert_close(w @ w.transpose(-1, -2), torch.eye(r, dtype=torch.float64).expand(4000, r, r))
    # uniform: the first coordinate of a frame vector has (t+1)/2 ~ Beta((d-1)/2, (d-1)/2)
    t = w[:, 0, 0].numpy()
    assert stats.kstest((t + 1) / 2, stats.beta((d - 1) / 2, (d - 1) / 2).cdf).pvalue > 1e-3
    big = apply_haar_frames(torch.eye(7, dtype=torch.float64), 2000, 10, generator(1))  # QR path (2r > d)
    torch.testing.assert_close(big @ big.transpose(-1, -2), torch.eye(7, dtype=torch.float64).expand(2000, 7, 7))
    assert stats.kstest((big[:, 0, 0].numpy() + 1) / 2, stats.beta(4.5, 4.5).cdf).pvalue > 1e-3


def test_rotation_null_keeps_norms_and_within_layer_geometry():
    x = _obs(6, 5, 12, seed=3)
    steps = x[:, 1:] - x[:, :-1]
    y = joint_rotation_steps(x, 50, generator(0))  # [S, pos, step, d]
    gram = torch.einsum("nkd,mkd->knm", steps, steps)
    torch.testing.assert_close(torch.einsum("snkd,smkd->sknm", y, y), gram.expand(50, *gram.shape))
    # but directions are random across layers: the consecutive angles follow the closed form in R^d
    ang = torch.nn.functional.cosine_similarity(y[:, :, :-1], y[:, :, 1:], dim=-1)
    assert stats.kstest((ang.flatten().numpy() + 1) / 2, stats.beta(5.5, 5.5).cdf).pvalue > 1e-3
    # the sampler's statistics are those of these steps (same generator stream)
    draw = get_null("rotation").simulate(x, 50, generator(0), method="ambient")
    walk = torch.cat([torch.zeros(50, 6, 1, 12, dtype=torch.float64), y.cumsum(2)], 2)
    torch.testing.assert_close(draw.angles, turning_angles(walk), rtol=0, atol=1e-7)
    torch.testing.assert_close(draw.ltc, length_to_chord(walk), rtol=1e-9, atol=0)


def test_joint_shuffle_uses_one_permutation_per_text():
    x = _obs(5, 6, 9, seed=4)
    draw = get_null("shuffle").simulate(x, 30, generator(2))
    walk = step_shuffle(x, 30, generator=generator(2), joint=True)
    torch.testing.assert_close(draw.angles, turning_angles(walk), rtol=0, atol=1e-9)
    assert draw.ltc is None
    # every token got the same permutation: the step-norm order is permuted identically
    perm = [(step_norms(walk)[:, n, :, None] - step_norms(x)[n]).abs().argmin(-1) for n in range(5)]
    assert all(torch.equal(perm[0], p) for p in perm[1:]) and len(set(map(tuple, perm[0].tolist()))) > 20


def test_texts_batched_equal_texts_alone_in_distribution():
    x = torch.stack(_corpus((6, 6, 6), k=6, d=10, seed=5))
    both = get_null("rotation").simulate(x, 400, generator(0))
    alone = get_null("rotation").simulate(x[1], 400, generator(1))
    assert both.angles.shape == (400, 3, 6, 5)
    assert _ks(both.ltc[:, 1], alone.ltc) > 1e-3


# --- the sphere -----------------------------------------------------------------------------------


def _on_sphere(n=6, k=7, d=12, seed=6):
    x = _obs(n, k, d, seed)
    return x * (math.sqrt(d) / x.norm(dim=-1, keepdim=True))


@pytest.mark.parametrize("center", [False, True])
def test_sphere_rotation_states_have_norm_sqrt_d_and_keep_geodesic_steps(center):
    x = _on_sphere()
    if center:
        x = x - x.mean(-1, keepdim=True)
        x = x * (math.sqrt(12) / x.norm(dim=-1, keepdim=True))
    y = sphere_rotation_walk(x, 40, generator(0), center=center)
    assert y.shape == (40, 6, 8, 12)
    torch.testing.assert_close(y.norm(dim=-1), torch.full(y.shape[:-1], math.sqrt(12), dtype=torch.float64))
    geo = lambda z: sphere_log(z[..., :-1, :], z[..., 1:, :]).norm(dim=-1)
    torch.testing.assert_close(geo(y), geo(x).expand(40, 6, 7), rtol=1e-9, atol=1e-9)
    if center:  # LayerNorm states stay in the hyperplane ⊥ 1
        assert y.sum(-1).abs().max() < 1e-9


def test_sphere_walk_norms_and_reduced_equals_direct():
    d, K, S = 9, 6, 3000
    geo = torch.full((1, K), 0.7, dtype=torch.float64)
    red = sphere_walk(geo, S, d, math.sqrt(d), generator(0))
    assert red.shape == (S, 1, K + 1, K + 1)
    torch.testing.assert_close(red.norm(dim=-1), torch.full(red.shape[:-1], math.sqrt(d), dtype=torch.float64))
    # direct walk in R^d: uniform tangent directions from full Gaussian draws
    gen = torch.Generator().manual_seed(1)
    y = torch.zeros(S, d, dtype=torch.float64)
    y[:, 0] = math.sqrt(d)
    pts = [y]
    for _ in range(K):
        g = torch.randn(S, d, generator=gen, dtype=torch.float64)
        g = g - (g * y).sum(-1, keepdim=True) * y / d
        g = g / g.norm(dim=-1, keepdim=True)
        y = math.cos(0.7 / math.sqrt(d)) * y + math.sin(0.7 / math.sqrt(d)) * math.sqrt(d) * g
        pts.append(y)
    direct = torch.stack(pts, 1)
    assert _ks(turning_angles(red[:, 0]), turning_angles(direct)) > 1e-3
    assert _ks(length_to_chord(red[:, 0]), length_to_chord(direct)) > 1e-3


def test_sphere_walks_are_not_curved_against_the_sphere_nulls_but_are_against_r_d():
    """A random walk on the sphere: its chord steps turn by more than 90° on average (the sphere
    curves back), which a walk in R^d does not reproduce; the sphere nulls do."""
    from tlgeom.stats.calibrate import dependent_sphere_walks

    corpus = dependent_sphere_walks(12, 5, 8, 16, generator(3), private=1.0, step=0.6)
    rep = compare_to_nulls(corpus, n_sims=199, seed=0, space="normalized", n_boot=0)
    assert not rep.tests().reject.any()
    assert rep.tests().set_index("statistic").loc["mean_angle", "null_mean"] > 93  # the sphere's own bend
    # the same states compared with walks in R^d (what tlgeom 0.1 did in normalized space): "curved"
    flat = compare_to_nulls(torch.cat(corpus), ["gaussian_token"], 199, 0, n_boot=0).tests().set_index("statistic")
    assert flat.loc["mean_angle", "reject"] and flat.loc["log_ltc", "reject"]


# --- p-values, corrections ------------------------------------------------------------------------


def test_pvalue_helpers():
    null = torch.arange(1.0, 100.0)
    assert float(mc_pvalue(99.0, null)) == pytest.approx(2 / 100)
    assert float(mc_pvalue(0.0, null, alternative="less")) == pytest.approx(1 / 100)
    assert float(exchangeable_pvalue(torch.cat([torch.tensor([50.0]), null]), "two-sided")) == 1.0
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.05, -0.4, 0.9])
    flips = [np.mean(np.array(s) * d) for s in itertools.product([-1, 1], repeat=d.size)]
    assert sign_flip_test(d) == pytest.approx(np.mean(np.array(flips) >= d.mean() - 1e-12), abs=1e-15)
    assert sign_flip_test(np.ones(5)) == pytest.approx(1 / 32)
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.2, 0.001])
    ok = np.isfinite(p)
    for corr, method in (("holm", "holm"), ("bh", "fdr_bh")):
        got = adjust_pvalues(p, corr)
        np.testing.assert_allclose(got[ok], multipletests(p[ok], method=method)[1], rtol=1e-12)
        assert np.isnan(got[3])
    with pytest.raises(tlgeom.TlgeomError, match="correction"):
        adjust_pvalues(p, "bonferroni")


# --- compare_to_nulls -----------------------------------------------------------------------------


def test_tests_table_and_result_protocol(tmp_path):
    texts = _corpus()
    rep = compare_to_nulls(texts, n_sims=199, seed=0)
    assert isinstance(rep, CurvatureReport) and rep.n_texts == 5
    t = rep.tests()
    cols = {"null", "statistic", "space", "observed", "null_mean", "effect", "ci_low", "ci_high", "p"}
    assert cols | {"p_adjusted", "n_texts", "reject"} <= set(t.columns)
    assert list(zip(t.null, t.statistic)) == [
        ("rotation", "sharp_flat"),
        ("rotation", "mean_angle"),
        ("rotation", "mean_abs_dev"),
        ("rotation", "log_ltc"),
        ("shuffle", "sharp_flat"),
        ("shuffle", "mean_angle"),
        ("shuffle", "mean_abs_dev"),
    ]
    assert (t.n_texts == 5).all() and ((t.p >= 1 / 200) & (t.p <= 1)).all()
    np.testing.assert_allclose(t.p_adjusted, multipletests(t.p, method="holm")[1])
    assert (t.reject == (t.p_adjusted <= 0.05)).all()
    assert ((t.ci_low <= t.effect) & (t.effect <= t.ci_high)).all()
    # observed = the mean over texts of each text's own statistic
    obs = np.mean([turning_angles(x).rad2deg().nanmean().item() for x in texts])
    assert t.set_index(["null", "statistic"]).loc[("rotation", "mean_angle"), "observed"] == pytest.approx(obs)
    log_ltc = np.mean([length_to_chord(x).log().mean().item() for x in texts])
    assert t.set_index(["null", "statistic"]).loc[("rotation", "log_ltc"), "observed"] == pytest.approx(log_ltc)
    f = rep.to_frame()
    assert len(f) == 7 * 5 and {"null", "statistic", "text", "observed", "null_mean", "effect", "z"} <= set(f.columns)
    h = rep.headline()
    json.dumps(h)
    assert h["n_texts"] == 5 and h["correction"] == "holm" and len(h["tests"]) == 7
    text = rep.summary()
    assert "[rotation]" in text and "not tested: LTC" in text and "one text" not in text
    paths = rep.save(tmp_path)
    assert all(p.exists() for p in paths.values())
    bh = compare_to_nulls(texts, n_sims=199, seed=0, correction="bh").tests()
    np.testing.assert_allclose(bh.p_adjusted, multipletests(bh.p, method="fdr_bh")[1])
    np.testing.assert_array_equal(bh.p, t.p)  # same seed: same simulations


def test_input_forms_agree_and_padding_is_dropped(tiny_gpt2):
    texts = _corpus((4, 6), k=6, d=10)
    as_list = compare_to_nulls(texts, n_sims=40, seed=1, n_boot=0).tests()
    padded = torch.full((2, 6, 7, 10), float("nan"), dtype=torch.float64)
    padded[0, :4], padded[1] = texts[0], texts[1]
    as_tensor = compare_to_nulls(padded, n_sims=40, seed=1, n_boot=0).tests()
    np.testing.assert_array_equal(as_list.p, as_tensor.p)
    one = compare_to_nulls(texts[0], n_sims=40, seed=1, n_boot=0)
    assert one.n_texts == 1 and "CAUTION: one text" in one.summary()
    t = tlgeom.record_trajectories(tiny_gpt2, ["the cat sat on the mat", "a big dog"])
    rep = compare_to_nulls(t, ["sphere_rotation"], 20, 0, space="normalized", norm="layernorm", n_boot=0)
    assert rep.n_texts == 2 and [a.shape[0] for a in rep.observed_angles] == t.mask.sum(1).tolist()
    assert rep.vertex_labels == t.point_labels[1:-1]
    expected = turning_angles(t, space="normalized", norm="layernorm")[t.mask]
    # the observed states are put exactly on the √d sphere (LayerNorm's ε shrinks them by
    # sqrt(var/(var + ε)), a visible 1e-4 rad for this tiny model's small residuals)
    torch.testing.assert_close(torch.cat(rep.observed_angles), expected, rtol=0, atol=1e-3)


def test_uninformative_fixed_thresholds_in_high_dimension():
    """In d = 576 a random walk turns by 90° ± 2.4°: no 110°/70° turns, so 'more sharp+flat than the
    null' would be true of any data with one such turn. The row is flagged and not counted."""
    x = _corpus((8, 8, 8), k=6, d=576, seed=2)
    x[0][0, 3] = x[0][0, 2] - (x[0][0, 2] - x[0][0, 1]) * 2  # one reversal (180°)
    rep = compare_to_nulls(x, ["rotation"], 99, 0, thresholds="degrees", statistics=["sharp_flat", "mean_angle"])
    t = rep.tests().set_index("statistic")
    assert not t.loc["sharp_flat", "informative"] and not t.loc["sharp_flat", "reject"]
    assert np.isnan(t.loc["sharp_flat", "p_adjusted"]) and t.loc["mean_angle", "informative"]
    assert "this null cannot produce such turns" in rep.summary() and "uninformative" in rep.summary()


def test_planted_zigzag_is_detected_across_texts():
    d, K = 32, 10
    gen = torch.Generator().manual_seed(0)
    texts = []
    for _ in range(8):
        basis = torch.linalg.qr(torch.randn(d, 2, generator=gen, dtype=torch.float64)).Q
        ang = math.radians(80)
        signs = torch.tensor([1.0 if k % 2 == 0 else -1.0 for k in range(K)], dtype=torch.float64)
        steps2 = torch.stack([torch.full((K,), math.cos(ang), dtype=torch.float64), signs * math.sin(ang)], -1)
        lengths = torch.rand(6, K, 1, generator=gen, dtype=torch.float64) * 0.2 + 1
        noise = 0.05 * torch.randn(6, K, d, generator=gen, dtype=torch.float64)
        steps = (lengths * steps2) @ basis.T + noise
        texts.append(torch.cat([torch.zeros(6, 1, d, dtype=torch.float64), steps.cumsum(1)], 1))
    t = compare_to_nulls(texts, n_sims=199, seed=0).tests().set_index(["null", "statistic"])
    assert t.loc[("rotation", "mean_angle"), "reject"] and t.loc[("rotation", "mean_angle"), "effect"] > 40
    assert t.loc[("rotation", "sharp_flat"), "reject"] and t.loc[("shuffle", "mean_angle"), "reject"]


def test_seeding_is_reproducible_and_leaves_global_rng_alone():
    texts = _corpus()
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = compare_to_nulls(texts, n_sims=50, seed=3, n_boot=0).tests()
    b = compare_to_nulls(texts, n_sims=50, seed=3, n_boot=0).tests()
    assert torch.equal(torch.get_rng_state(), state) and np.array_equal(np.random.get_state()[1], np_state)
    c = compare_to_nulls(texts, n_sims=50, seed=4, n_boot=0).tests()
    np.testing.assert_array_equal(a.p, b.p)
    assert not np.array_equal(a.p, c.p)
    only = compare_to_nulls(texts, nulls=["shuffle"], n_sims=50, seed=3, n_boot=0).tests()
    np.testing.assert_array_equal(only.p, a[a.null == "shuffle"].p)  # each null has its own stream


def test_bad_input():
    texts = _corpus()
    for kw, match in (
        (dict(nulls=["brownian"]), "nulls"),
        (dict(nulls=["untrained"]), "curvature_test"),
        (dict(nulls=["gaussian_token"], space="normalized"), "sphere"),
        (dict(n_sims=0), "n_sims"),
        (dict(thresholds="fixed"), "thresholds"),
        (dict(space="foo"), "space"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**70), "seed"),
        (dict(alpha=5), "alpha"),
        (dict(correction="bonferroni"), "correction"),
        (dict(statistics=["median"]), "statistics"),
        (dict(sharp_deg=60.0, flat_deg=70.0), "sharp_deg"),
    ):
        with pytest.raises(tlgeom.TlgeomError, match=match):
            compare_to_nulls(texts, **kw)
    with pytest.raises(tlgeom.TlgeomError, match="at least 3 points"):
        compare_to_nulls(torch.randn(4, 2, 5))
    for bad, match in ((float("inf"), "inf"), (float("nan"), "nan"), (1e300, "overflow")):
        x = [t.clone() for t in texts]
        x[2][3, 4, 1] = bad
        if bad == 1e300:
            x[2][3, 4] = 1e300
        with pytest.raises(tlgeom.TlgeomError, match=f"text 2, token 3, point 4.*{match}"):
            compare_to_nulls(x, n_sims=5)
    with pytest.raises(tlgeom.TlgeomError, match="d="):
        gaussian_walk(torch.ones(3, 4), 5, 1)


# --- the untrained model ----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_bert"])
def test_untrained_model_reinitialises_a_copy(fixture, request):
    m = request.getfixturevalue(fixture)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    state = torch.get_rng_state()
    u1, u2, u3 = untrained_model(m, seed=1), untrained_model(m, seed=1), untrained_model(m, seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is forked, not advanced
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])
    mats = [k for k, v in before.items() if v.dim() >= 2 and v.is_floating_point()]
    s1, s2, s3 = u1.state_dict(), u2.state_dict(), u3.state_dict()
    assert sum(not torch.equal(s1[k], before[k]) for k in mats) >= 0.9 * len(mats)
    assert all(torch.equal(s1[k], s2[k]) for k in mats)
    assert sum(not torch.equal(s1[k], s3[k]) for k in mats) >= 0.9 * len(mats)
    with pytest.raises(tlgeom.TlgeomError, match="seed"):
        untrained_model(m, seed=-1)


def test_curvature_test_on_a_tiny_model(tiny_llama):
    texts = ["the cat sat on the mat and the dog ran", "a big red car", "one two three four five six"]
    tlgeom.record_trajectories(tiny_llama, texts)
    before = _compat.count_hooks(tiny_llama)
    rep = curvature_test(tiny_llama, texts, n_sims=50, seed=0, init_seed=1)
    assert _compat.count_hooks(tiny_llama) == before
    assert [r.name for r in rep.results] == ["rotation", "shuffle", "untrained"] and rep.n_texts == 3
    t = tlgeom.record_trajectories(tiny_llama, texts)
    torch.testing.assert_close(torch.cat(rep.observed_angles), turning_angles(t)[t.mask])
    tab = rep.tests().set_index(["null", "statistic"])
    ut = tlgeom.record_trajectories(untrained_model(tiny_llama, 1), texts)
    u_mean = np.mean([turning_angles(ut)[b][ut.mask[b]].rad2deg().nanmean().item() for b in range(3)])
    assert tab.loc[("untrained", "mean_angle"), "null_mean"] == pytest.approx(u_mean)
    assert tab.loc[("untrained", "mean_angle"), "p"] >= 1 / 8  # 3 texts: 2^3 sign patterns
    summary = rep.summary()
    untrained_lines = [line for line in summary.splitlines() if "untrained" in line and "effect" in line]
    assert untrained_lines and not any("0.0 " in line.split("effect")[0] for line in untrained_lines)
    assert "paired, 3 text(s)" in summary
    skip = curvature_test(tiny_llama, texts, nulls=["rotation"], n_sims=10, skip_first=1)
    assert sum(a.shape[0] for a in skip.observed_angles) == int(t.mask.sum()) - 3
    with pytest.raises(tlgeom.TlgeomError, match="space"):
        curvature_test(tiny_llama, texts, space="foo")
    with pytest.raises(tlgeom.TlgeomError, match="seed"):
        curvature_test(tiny_llama, texts, seed=2**70)
    norm = curvature_test(tiny_llama, texts[:2], n_sims=20, space="normalized", nulls=["sphere_rotation", "untrained"])
    assert set(norm.tests().null) == {"sphere_rotation", "untrained"}


def test_curvature_test_on_one_text_says_inference_is_within_it(tiny_llama):
    """One text is a legitimate (weak) input: every null, the paired untrained one included, runs, and the
    summary says the inference is within that single text."""
    report = tlgeom.curvature_test(tiny_llama, "the cat sat on the mat and the dog ran", n_sims=19, seed=0, init_seed=1)
    table = report.tests()
    assert (table["n_texts"] == 1).all()
    assert "untrained" in set(table["null"])
    assert table["p"].between(0, 1).all()
    assert "one text" in report.summary()


def test_sign_flip_of_one_difference_is_exact():
    from tlgeom.stats.pvalues import sign_flip_test

    assert sign_flip_test([0.3]) == 0.5
    assert sign_flip_test([-0.3]) == 1.0
    assert sign_flip_test([0.3], alternative="two-sided") == 1.0


# --- the reduced samplers against a plain reference (issue 25: exact by test, not by hope) ------


@pytest.mark.parametrize("N, P, d", [(3, 6, 16), (4, 5, 9)])
def test_reduced_rotation_has_the_plain_distribution(N, P, d):
    """The reduced chain (d-free Haar blocks, Bartlett's Wishart, the chord's Gram chain) against QR
    of a d × d Gaussian: every statistic's distribution over 3000 simulations (two-sample KS), the
    fallback block (d − 2N < N: Gaussian rows instead of Bartlett's factor) included."""
    x = _obs(N, P - 1, d, seed=11)
    fast = get_null("rotation").simulate(x, 3000, generator(0), method="reduced")
    ref_a, ref_l = plain_rotation_reference(x, 3000, generator(1))
    q = torch.rad2deg(ref_a).flatten().quantile(torch.tensor([0.1, 0.9], dtype=torch.float64))
    a = per_text_statistics(fast.angles, fast.ltc, float(q[0]), float(q[1]))
    b = per_text_statistics(ref_a, ref_l, float(q[0]), float(q[1]))
    for k in a:
        assert _ks(a[k], b[k]) > 1e-3, k
    # the check has power: the same chain in two more dimensions is told apart
    wrong = get_null("rotation").simulate(torch.nn.functional.pad(x, (0, 3)), 3000, generator(2), method="reduced")
    w = per_text_statistics(wrong.angles, wrong.ltc, float(q[0]), float(q[1]))
    assert min(_ks(w[k], b[k]) for k in ("mean_abs_dev", "log_ltc")) < 1e-6


def test_reduced_rotation_is_chosen_where_cheaper_and_refused_where_impossible():
    x = _obs(3, 4, 40, seed=2)  # d >= 4N: auto takes the reduced chain
    auto = get_null("rotation").simulate(x, 20, generator(5))
    red = get_null("rotation").simulate(x, 20, generator(5), method="reduced")
    torch.testing.assert_close(auto.angles, red.angles)
    with pytest.raises(tlgeom.TlgeomError, match="method"):
        get_null("rotation").simulate(_obs(6, 4, 8), 5, generator(0), method="reduced")
    with pytest.raises(tlgeom.TlgeomError, match="method"):
        get_null("rotation").simulate(x, 5, generator(0), method="fast")


@pytest.mark.parametrize("method", ["reduced", "ambient"])
def test_ragged_batch_gives_each_text_its_own_law(method):
    """A short text zero-padded into a batch with a longer one (valid=) has the plain law it has alone."""
    short, long_ = _obs(3, 4, 24, seed=12), _obs(5, 4, 24, seed=13)
    x = torch.stack([torch.nn.functional.pad(short, (0, 0, 0, 0, 0, 2)), long_])
    valid = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    draw = get_null("rotation").simulate(x, 3000, generator(0), method=method, valid=valid)
    assert torch.isnan(draw.angles[:, 0, 3:]).all() and torch.isnan(draw.ltc[:, 0, 3:]).all()
    assert not torch.isnan(draw.angles[:, :, :3]).any() and not torch.isnan(draw.ltc[:, 1]).any()
    ref_a, ref_l = plain_rotation_reference(short, 3000, generator(1))
    a = per_text_statistics(draw.angles[:, 0, :3], draw.ltc[:, 0, :3], 80.0, 100.0)
    b = per_text_statistics(ref_a, ref_l, 80.0, 100.0)
    for k in a:
        assert _ks(a[k], b[k]) > 1e-3, k


def test_compare_to_nulls_batches_texts_of_different_lengths_like_alone():
    """compare_to_nulls pads texts of similar lengths into one batch for the ragged nulls: the rows of
    a text simulated in a padded batch follow the law of the text simulated alone."""
    texts = _corpus((5, 6, 7), k=5, d=64, seed=3)
    rep = compare_to_nulls(texts, ["rotation"], 400, 0, n_boot=0, statistics=("mean_angle", "log_ltc"))
    alone = compare_to_nulls(texts[:1], ["rotation"], 400, 1, n_boot=0, statistics=("mean_angle", "log_ltc"))
    pt, pa = rep.per_text, alone.per_text
    for st in ("mean_angle", "log_ltc"):
        m = pt[(pt.statistic == st) & (pt.text == 0)]
        ma = pa[(pa.statistic == st) & (pa.text == 0)]
        assert abs(float(m.null_mean.iloc[0]) - float(ma.null_mean.iloc[0])) < 4 * float(ma.null_sd.iloc[0]) / 10


def test_progress_counts_simulations_and_does_not_change_the_draws(capsys):
    texts = _corpus((5, 6, 9), k=5, d=32, seed=4)
    quiet = compare_to_nulls(texts, n_sims=150, seed=3, n_boot=0)
    loud = compare_to_nulls(texts, n_sims=150, seed=3, n_boot=0, progress=True)
    assert quiet.tests().equals(loud.tests())
    err = capsys.readouterr().err
    assert "null rotation" in err and "/450" in err and "sim/s" in err  # simulations × texts, with a rate


def test_a_test_that_cannot_reject_says_so_and_opposite_effects_are_evidence_against():
    """49 simulations over 11 tests: 11/50 > α, so no Monte-Carlo row can reject whatever the data: each
    is informative=False with a note naming its best adjusted p; 3 texts for the paired test likewise.
    With enough simulations, paths planted straighter than the rotation null (LTC lower, the claim is
    'longer') are reported as evidence against, not as 'consistent'."""
    from tlgeom.experiments.curvature import decide
    from tlgeom.stats.pvalues import attainable, min_pvalue_sign_flip

    assert min_pvalue_sign_flip(12, "greater") == 2.0**-12 and min_pvalue_sign_flip(12, "two-sided") == 2.0**-11
    ok, best = attainable([1 / 50] * 11, 0.05, "holm")
    assert not ok.any() and best[0] == pytest.approx(0.22)
    assert attainable([1 / 50] * 11, 0.05, "bh")[0].all()
    texts = _corpus((6, 6, 6, 6, 6, 6), k=6, d=32, seed=8)
    rep = compare_to_nulls(texts, ["rotation"], 49, 0, n_boot=0, statistics=("mean_angle", "log_ltc"))
    t = rep.tests()
    assert t.informative.all()  # 2 tests: 2 x 1/50 = 0.04 <= α; with 20 tests it would not be:
    few = compare_to_nulls(texts, ["rotation"], 19, 0, n_boot=0)  # 4 tests x 1/20 > α: the summary says so once
    assert "CAUTION: 4 of the 4 tests cannot reject at any data" in few.summary()
    assert few.summary().count("CANNOT DECIDE") == 4
    rows = [
        {**r, "p_min": 1 / 50, "p_min_why": "49 simulations", "p_opposite": 1.0}
        for r in t.to_dict(orient="records")
        for _ in range(10)
    ]
    d = decide(rows, 0.05, "holm")
    assert not d.informative.any() and d.note.str.contains("at best 0.4 after holm over 20 tests").all()
    assert d.note.str.contains("at least 399 simulations").all() and d.p_adjusted.isna().all()
    # straight paths: steps all in one direction; the rotation null winds them, so LTC is significantly lower
    g = torch.Generator().manual_seed(0)
    straight = [
        torch.cat(
            [
                torch.zeros(5, 1, 32, dtype=torch.float64),
                (torch.rand(5, 7, 1, generator=g, dtype=torch.float64) + 0.5).cumsum(1)
                * torch.randn(1, 1, 32, generator=g, dtype=torch.float64)
                + 0.3 * torch.randn(5, 7, 32, generator=g, dtype=torch.float64),
            ],
            1,
        )
        for _ in range(6)
    ]
    rep = compare_to_nulls(straight, ["rotation"], 199, 0, n_boot=0, statistics=("log_ltc",))
    row = rep.tests().iloc[0]
    assert row.informative and not row.reject and row.against and row.effect < 0
    assert "EVIDENCE AGAINST" in rep.summary()
