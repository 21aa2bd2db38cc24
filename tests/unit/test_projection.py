"""Trajectory projections: PCA closed forms, ln_final on every point, plots, the optional UMAP extra."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tlgeom
from tlgeom.experiments.projection import Projection, fit_projection, pca, project_trajectory
from tlgeom.models import _compat
from tlgeom.models.conventions import norm_layers


def test_pca_closed_form_ellipse():
    t = torch.linspace(0, 2 * math.pi, 401, dtype=torch.float64)[:-1]
    x = torch.stack([3 * t.cos(), t.sin(), torch.zeros_like(t)], -1)
    Q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))).Q
    y = x @ Q.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    mean, comps, ratio = pca(y, 2)
    torch.testing.assert_close(ratio, torch.tensor([0.9, 0.1], dtype=torch.float64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(comps[0].abs(), Q[:, 0].abs(), rtol=1e-8, atol=1e-8)  # the long axis
    torch.testing.assert_close(comps[1].abs(), Q[:, 1].abs(), rtol=1e-8, atol=1e-8)
    # sign convention: largest-magnitude loading positive
    assert bool((comps.gather(1, comps.abs().argmax(1, keepdim=True)) > 0).all())


@settings(max_examples=20, deadline=None)
@given(n=st.integers(5, 40), d=st.integers(2, 8), seed=st.integers(0, 10**6))
def test_pca_matches_numpy_svd(n, d, seed):
    x = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    k = min(2, d)
    mean, comps, ratio = pca(x, k)
    xc = (x - x.mean(0)).numpy()
    s = np.linalg.svd(xc, compute_uv=False)
    np.testing.assert_allclose(ratio.numpy(), (s**2 / (s**2).sum())[:k], rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(comps @ comps.T, torch.eye(k, dtype=torch.float64), rtol=0, atol=1e-10)
    proj = fit_projection(x, "pca", k)
    torch.testing.assert_close(proj.transform(mean[None]), torch.zeros(1, k, dtype=torch.float64), rtol=0, atol=1e-10)
    # a second fit is bit-identical (deterministic signs)
    assert torch.equal(fit_projection(x, "pca", k).components, proj.components)


@pytest.mark.skipif(importlib.util.find_spec("umap") is not None, reason="umap-learn is installed")
def test_umap_missing_names_the_extra():
    with pytest.raises(tlgeom.TlgeomError, match=r"tlgeom\[umap\]"):
        fit_projection(torch.randn(20, 4), "umap", 2)


def test_project_trajectory_decoder(tiny_any):
    m = tiny_any
    info = _compat.check_model(m)
    text = "the cat sat on the mat"
    tp = project_trajectory(m, text, n_components=2)
    P = len(tp.str_tokens)
    assert tp.coords.shape == (P, m.cfg.n_layers + 1, 2)
    assert tp.final_norm == (not info.encoder)
    traj = tlgeom.record_trajectories(m, text)
    if info.encoder:
        torch.testing.assert_close(tp.states, traj.states[0].double())  # already post-LN block outputs
        with pytest.raises(tlgeom.TlgeomError, match="final_norm"):
            project_trajectory(m, text, final_norm=True)
    else:  # ln_final (with γ, β) applied to every point; at the last point it is the model's own ln_final output
        f = [n for n in norm_layers(m) if n.name == "ln_final"][0]
        kw = {} if info.api == "hooked_encoder" else {"return_type": None}
        _, cache = m.run_with_cache(traj.tokens, names_filter=["ln_final.hook_normalized"], **kw)
        want = cache["ln_final.hook_normalized"][0].double() * f.gamma + f.beta
        torch.testing.assert_close(tp.states[:, -1], want, rtol=1e-5, atol=1e-5)
    # PCA fitted on the embeddings by default: coords = (state − mean(E)) @ componentsᵀ
    E = m.W_E.detach().double()
    torch.testing.assert_close(tp.coords, (tp.states - E.mean(0)) @ tp.projection.components.T)
    frame = tp.to_frame()
    assert len(frame) == P * (m.cfg.n_layers + 1) and {"c0", "c1", "token", "label"} <= set(frame.columns)


def test_reference_options_and_plots(tiny_gpt2, unchecked):
    import matplotlib

    matplotlib.use("Agg")
    m = tiny_gpt2
    own = project_trajectory(m, "the dog ran up the road", reference="states", n_components=3)
    assert own.coords.shape[-1] == 3
    ax = own.plot(tokens=["dog", 0]).axes[0]  # plot() returns the Figure
    assert ax.name == "3d"
    proj = fit_projection(m.W_E.detach(), "pca", 2)
    again = project_trajectory(m, "the dog ran up the road", projection=proj)
    assert isinstance(again.projection, Projection)
    again.plot(tokens=[1, 2])
    with pytest.raises(tlgeom.TlgeomError, match="tokens"):
        again.plot(tokens=["zebra"])
    with pytest.raises(tlgeom.TlgeomError, match="tokens"):
        again.plot(tokens=[99])
    with pytest.raises(tlgeom.TlgeomError, match="reference"):
        project_trajectory(m, "the dog", reference="vocab")
    with pytest.raises(tlgeom.TlgeomError, match="method"):
        project_trajectory(m, "the dog", method="tsne")
    with unchecked(), pytest.raises(tlgeom.TlgeomError, match="inputs"):
        project_trajectory(m, ["the dog"])
    with pytest.raises(tlgeom.TlgeomError, match="n_components"):
        fit_projection(torch.randn(10, 4), "pca", 5)
