"""Riemannian geometry: closed forms (float64, 1e-8), autodiff vs finite differences, model charts, head metrics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tlgeom.experiments.riemann as ER
import tlgeom.geometry.riemann as R
from tlgeom import TlgeomError
from tlgeom.models._compat import count_hooks

TOL = 1e-8  # float64 closed forms


def sphere_embed(r):
    def f(x):
        th, ph = x[0], x[1]
        return r * torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()])

    return f


def sphere_metric(r):
    return lambda x: torch.diag(torch.stack([torch.full_like(x[0], r**2), r**2 * x[0].sin() ** 2]))


def polar_metric(x):
    return torch.diag(torch.stack([torch.ones_like(x[0]), x[0] ** 2]))


def halfplane_metric(x):
    return torch.eye(2, dtype=x.dtype) / x[1] ** 2


def _pts(n=6, lo=0.3, hi=2.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    th = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    ph = -3 + 6 * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.stack([th, ph], -1)


@pytest.mark.parametrize("r", [0.5, 1.0, 2.5])
def test_sphere_closed_forms(r):
    x = _pts()
    th = x[:, 0]
    g = R.pullback_metric(sphere_embed(r), x)
    torch.testing.assert_close(
        g, torch.diag_embed(torch.stack([torch.full_like(th, r * r), r * r * th.sin() ** 2], -1)), rtol=0, atol=TOL
    )
    for metric in (sphere_metric(r), lambda z: R.pullback_metric(sphere_embed(r), z)):
        G = R.christoffel_symbols(metric, x)
        torch.testing.assert_close(G[:, 0, 1, 1], -th.sin() * th.cos(), rtol=0, atol=TOL)
        torch.testing.assert_close(G[:, 1, 0, 1], th.cos() / th.sin(), rtol=0, atol=TOL)
        torch.testing.assert_close(G[:, 1, 1, 0], th.cos() / th.sin(), rtol=0, atol=TOL)
        for k, i, j in [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 1, 1)]:
            assert G[:, k, i, j].abs().max() < TOL
        c = R.curvature(metric, x)
        torch.testing.assert_close(c.scalar, torch.full_like(th, 2 / r**2), rtol=0, atol=TOL)
        torch.testing.assert_close(c.ricci, c.g / r**2, rtol=0, atol=TOL)  # Einstein: Ric = K g


def test_plane_polar_and_hyperbolic():
    x = _pts()
    c = R.curvature(polar_metric, x)
    assert c.riemann.abs().max() < TOL and c.scalar.abs().max() < TOL
    G = R.christoffel_symbols(polar_metric, x)  # Γ^r_φφ = −r, Γ^φ_rφ = 1/r
    torch.testing.assert_close(G[:, 0, 1, 1], -x[:, 0], rtol=0, atol=TOL)
    torch.testing.assert_close(G[:, 1, 0, 1], 1 / x[:, 0], rtol=0, atol=TOL)
    y = torch.stack([x[:, 1], x[:, 0]], -1)  # (x, y) with y > 0
    torch.testing.assert_close(
        R.scalar_curvature(halfplane_metric, y), torch.full((len(y),), -2.0, dtype=torch.float64), rtol=0, atol=TOL
    )


def test_riemann_symmetries_and_batching():
    """Antisymmetry in the last pair, first Bianchi identity, and batched == per point (torch vmap/solve trap)."""
    A = torch.randn(3, 3, dtype=torch.float64)

    def metric(x):  # a generic smooth metric on R^3
        M = (
            torch.eye(3, dtype=x.dtype)
            + 0.3 * torch.outer(torch.sin(A @ x), torch.sin(A @ x))
            + 0.1 * torch.diag(x.cos())
        )
        return M @ M.T

    x = torch.randn(4, 3, dtype=torch.float64) * 0.5
    c = R.curvature(metric, x)
    Rm = c.riemann
    torch.testing.assert_close(Rm, -Rm.transpose(-1, -2), rtol=0, atol=1e-10)
    bianchi = Rm + Rm.permute(0, 1, 3, 4, 2) + Rm.permute(0, 1, 4, 2, 3)
    assert bianchi.abs().max() < 1e-10
    Rlow = torch.einsum("bar,brsmn->basmn", c.g, Rm)  # R_ασμν: pair symmetry R_ασμν = R_μνασ
    torch.testing.assert_close(Rlow, Rlow.permute(0, 3, 4, 1, 2), rtol=0, atol=1e-9)
    for i in range(len(x)):
        one = R.curvature(metric, x[i])
        torch.testing.assert_close(one.scalar, c.scalar[i], rtol=0, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.2, 2.9), st.floats(-3, 3))
def test_christoffel_vs_finite_differences(th, ph):
    """Autodiff Γ equals Γ from central differences of an independently coded metric."""
    A = torch.tensor([[1.0, 0.3], [-0.2, 0.7]], dtype=torch.float64)

    def metric(x):
        u = A @ x
        return torch.stack(
            [torch.stack([2 + u[0].sin(), 0.3 * u[1].cos()]), torch.stack([0.3 * u[1].cos(), 2 + u[0] * u[1] * 0.1])]
        )

    x = torch.tensor([th, ph], dtype=torch.float64)
    G = R.christoffel_symbols(metric, x)
    h = 1e-5
    dg = torch.stack([(metric(x + h * e) - metric(x - h * e)) / (2 * h) for e in torch.eye(2, dtype=torch.float64)], -1)
    gi = torch.linalg.inv(metric(x))
    ref = torch.zeros(2, 2, 2, dtype=torch.float64)
    for k in range(2):
        for i in range(2):
            for j in range(2):
                ref[k, i, j] = 0.5 * sum(gi[k, l] * (dg[j, l, i] + dg[i, l, j] - dg[i, j, l]) for l in range(2))
    torch.testing.assert_close(G, ref, rtol=0, atol=1e-8)


def test_geodesic_great_circle_and_transport_holonomy():
    r = 1.5
    g = sphere_metric(r)
    # start on the equator heading north: stays on the meridian φ = 0 with constant speed
    geo = R.geodesic(
        g,
        torch.tensor([math.pi / 2, 0.0], dtype=torch.float64),
        torch.tensor([0.7, 0.0], dtype=torch.float64),
        t1=2.0,
        n_steps=20,
    )
    assert geo.x[:, 1].abs().max() < 1e-12  # along a meridian the geodesic equation is θ'' = 0: RK4 is exact
    torch.testing.assert_close(geo.x[:, 0], math.pi / 2 + 0.7 * geo.t, rtol=0, atol=1e-9)
    # oblique start: a great circle, i.e. the embedded curve lies in a plane through the centre
    geo = R.geodesic(
        g,
        torch.tensor([[1.0, 0.2], [0.8, -1.0]], dtype=torch.float64),
        torch.tensor([[0.3, 0.5], [-0.2, 0.9]], dtype=torch.float64),
        t1=3.0,
        n_steps=60,
    )
    sp = geo.speed(g)  # RK4, h = 0.05: global error O(h⁴) ~ 1e-7
    assert (sp - sp[..., :1]).abs().max() < 1e-6
    E = R._batched(sphere_embed(r), geo.x)  # [2, T, 3]
    normal = torch.linalg.cross(E[:, 0], E[:, 5])
    assert (E @ normal[:, :, None]).abs().max() < 1e-6
    # parallel transport around the latitude θ0: rotation by 2π(1 − cos θ0), length kept
    th0 = 0.6
    w = R.parallel_transport(
        g, lambda t: torch.stack([torch.full_like(t, th0), t]), torch.tensor([1.0, 0.0]), t1=2 * math.pi, n_steps=60
    )  # RK4 h ≈ 0.1: error ~ 3e-6
    lengths = torch.einsum(
        "ti,ij,tj->t", w, torch.diag(torch.tensor([r * r, (r * math.sin(th0)) ** 2], dtype=torch.float64)), w
    )
    assert (lengths - r * r).abs().max() < 1e-5
    angle = math.atan2(float(w[-1, 1]) * r * math.sin(th0), float(w[-1, 0]) * r)
    assert abs(angle - 2 * math.pi * (1 - math.cos(th0))) < 1e-5


@pytest.mark.unchecked  # mistyped input on purpose: tlgeom's own TlgeomError is the subject
def test_bad_input():
    with pytest.raises(TlgeomError, match="x="):
        R.christoffel_symbols(polar_metric, torch.tensor([1, 2]))
    with pytest.raises(TlgeomError, match="metric_fn="):
        R.christoffel_symbols("g", torch.ones(2))
    with pytest.raises(TlgeomError, match="n ≤ 16"):
        R.curvature(lambda x: torch.eye(17, dtype=x.dtype), torch.ones(17))
    with pytest.raises(TlgeomError, match="metric_fn="):
        R.christoffel_symbols(lambda x: torch.eye(3, dtype=x.dtype), torch.ones(2))
    with pytest.raises(TlgeomError, match="n_steps="):
        R.geodesic(polar_metric, torch.ones(2), torch.ones(2), n_steps=0)


# ---------------------------------------------------------------------------------------------
# model charts


def test_layer_chart_metric_matches_generic_pullback(tiny_any):
    m = tiny_any
    chart = ER.model_chart(m, "the cat sat on the mat .", pos=3, l0=1, l1=2, basis="context", k=3)
    g_jvp = chart.metric()
    g_gen = R.pullback_metric(chart, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(g_jvp, g_gen, rtol=1e-5, atol=1e-6)  # float32 model
    # finite differences of the chart map
    h = 1e-2
    fd = torch.stack([(chart(h * e) - chart(-h * e)) / (2 * h) for e in torch.eye(3, dtype=torch.float64)])
    torch.testing.assert_close(chart.jacobian(), fd, rtol=2e-2, atol=2e-3)
    assert torch.linalg.eigvalsh(g_jvp).min() > 0


def test_layer_chart_reads_clean_state_at_origin(tiny_gpt2):
    from tlgeom.models.trajectory import record_trajectories

    text = "a big red dog ran up the road"
    chart = ER.model_chart(tiny_gpt2, text, pos=-2, l0=0, l1=2, basis=["dog", "cat"])
    assert chart.k == 2
    tr = record_trajectories(tiny_gpt2, text)
    torch.testing.assert_close(chart(torch.zeros(2)), tr.states[0, -2, 2].double(), rtol=0, atol=1e-5)


def test_layer_chart_hooks_removed(tiny_llama):
    chart = ER.model_chart(tiny_llama, "the cat sat", pos=1, l0=0, l1=1, k=2)
    tiny_llama(tiny_llama.to_tokens("the cat sat"))  # a Bridge adds 4 permanent hooks on its first forward
    n = count_hooks(tiny_llama)
    chart.metric()
    with pytest.raises(TlgeomError):
        chart(torch.zeros(5))
    assert count_hooks(tiny_llama) == n
    chart._B = None  # forces an error inside the forward pass
    with pytest.raises(Exception):  # noqa: B017 -- any error raised mid-forward; the point is the hooks
        chart(torch.zeros(2))
    assert count_hooks(tiny_llama) == n


def test_model_chart_bad_args(tiny_gpt2):
    with pytest.raises(TlgeomError, match="l1="):
        ER.model_chart(tiny_gpt2, "the cat", pos=0, l0=1, l1=1)
    with pytest.raises(TlgeomError, match="pos="):
        ER.model_chart(tiny_gpt2, "the cat", pos=9, l0=0, l1=1)
    with pytest.raises(TlgeomError, match="basis="):
        ER.model_chart(tiny_gpt2, "the cat", pos=0, l0=0, l1=1, basis="pca?")


def test_chart_curvature_finite(tiny_gpt2):
    chart = ER.model_chart(tiny_gpt2, "the cat sat on the mat", pos=2, l0=1, l1=2, basis="context", k=2)
    c = R.curvature(chart.metric_fn, torch.zeros(2, dtype=torch.float64))
    assert torch.isfinite(c.scalar) and c.riemann.shape == (2, 2, 2, 2)


# ---------------------------------------------------------------------------------------------
# effective metric of a head


def test_head_effective_metric_vs_dense():
    torch.manual_seed(1)
    WQ, WK = torch.randn(2, 3, 20, 4, dtype=torch.float64).unbind(0)
    lam, vec = R.head_effective_metric(WQ, WK)
    S = 0.5 * (WQ @ WK.transpose(-1, -2) + WK @ WQ.transpose(-1, -2)) / 2.0
    dense = torch.linalg.eigvalsh(S)
    nz = torch.cat([dense[..., :4], dense[..., -4:]], -1)  # 2h non-zero eigenvalues, d − 2h zeros between
    torch.testing.assert_close(lam, nz, rtol=0, atol=1e-10)
    torch.testing.assert_close(S @ vec, vec * lam[..., None, :], rtol=0, atol=1e-10)
    # W_Q = W_K: positive semi-definite, signature (h, 0)
    lam2, _ = R.head_effective_metric(WQ, WQ)
    assert (lam2[..., :4].abs() < 1e-10).all() and (lam2[..., 4:] > 0).all()


def test_head_metric_signature_models(tiny_any):
    sig = ER.head_metric_signature(tiny_any)
    L, H = tiny_any.cfg.n_layers, tiny_any.cfg.n_heads
    assert sig.n_pos.shape == (L, H) and sig.eigenvalues.shape == (L, H, 2 * tiny_any.cfg.d_head)
    assert ((sig.n_pos + sig.n_neg) <= 2 * sig.d_head).all()
    assert ((sig.pos_mass >= 0) & (sig.pos_mass <= 1)).all()
    df = sig.to_frame()
    assert len(df) == L * H
    # a subset of layers keeps the model's layer numbers, and equals those rows of the full result
    sub = ER.head_metric_signature(tiny_any, layers=[L - 1])
    assert sub.to_frame().layer.unique().tolist() == [L - 1]
    torch.testing.assert_close(sub.pos_mass[0], sig.pos_mass[L - 1])


def test_head_signature_gqa_pairs_query_with_its_key_head(tiny_llama):
    WQ, WK = ER._expanded_qk(tiny_llama)
    n_kv = tiny_llama.W_K.shape[1]
    assert WK.shape == WQ.shape
    group = WQ.shape[1] // n_kv
    torch.testing.assert_close(WK[:, group], tiny_llama.W_K[:, 1].detach())


def test_gauss_equation_scalar_equals_intrinsic():
    """Scalar curvature from the second fundamental form (Gauss) = from differentiating g twice."""
    r = 1.7
    x = _pts(4)
    torch.testing.assert_close(
        R.pullback_scalar_curvature(sphere_embed(r), x),
        torch.full((4,), 2 / r**2, dtype=torch.float64),
        rtol=0,
        atol=TOL,
    )
    g = torch.Generator().manual_seed(0)
    W1, W2 = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(5, 6, generator=g, dtype=torch.float64)
    f = lambda z: W2 @ torch.tanh(W1 @ z) + 0.1 * z.pow(2).sum()
    y = 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64)
    intrinsic = R.scalar_curvature(lambda z: R.pullback_metric(f, z), y)
    torch.testing.assert_close(R.pullback_scalar_curvature(f, y), intrinsic, rtol=1e-9, atol=1e-9)
    flat = lambda z: torch.stack([z[0], z[1], z[0] + 2 * z[1]])  # an affine plane: flat
    assert R.pullback_scalar_curvature(flat, y[:, :2]).abs().max() < TOL


def test_christoffel_forward_ad_equals_jacfwd_path():
    """christoffel_symbols (dual-number passes) equals the torch.func path used by curvature()."""
    g0 = torch.Generator().manual_seed(3)
    W = torch.randn(25, 5, generator=g0, dtype=torch.float64) / 5

    def metric(x):
        A = torch.tanh(W @ x).reshape(5, 5)
        return torch.eye(5, dtype=x.dtype) + A @ A.T

    x = torch.randn(3, 2, 5, generator=g0, dtype=torch.float64) * 0.4
    G = R.christoffel_symbols(metric, x)
    assert G.shape == (3, 2, 5, 5, 5)
    torch.testing.assert_close(G, R.curvature(metric, x).christoffel, rtol=1e-12, atol=1e-12)
