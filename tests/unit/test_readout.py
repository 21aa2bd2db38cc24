"""tlgeom.experiments.readout (logit lens at every trajectory point, sharp turns vs readout changes) and the
PCA view of the landscape (Landscape.plot(view="pca"))."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tlgeom._errors import TlgeomError
from tlgeom.experiments import readout as ro


def _has_tl_logit_lens() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("transformer_lens.tools.analysis.logit_lens") is not None
    except ModuleNotFoundError:
        return False


#: the logit lens reuses TransformerLens 4.3's tools.analysis; on 3.9 tlgeom refuses it (tested below)
needs_tl43 = pytest.mark.skipif(
    not _has_tl_logit_lens(), reason="TransformerLens < 4.3 has no tools.analysis logit lens"
)

TEXT = "the cat sat on the mat and the dog ran to the door"
TEXTS = [TEXT, "a bird sang in the old tree by the river", "the man walked home in the rain at night", "we ate bread"]


@needs_tl43
def test_logit_lens_last_point_is_the_models_own_output(tiny_gpt2):
    r = ro.logit_lens(tiny_gpt2, TEXT, k=3)
    toks = tiny_gpt2.to_tokens(TEXT)
    with torch.no_grad():
        logits = tiny_gpt2(toks)[0].double()  # independent: the model's own forward pass
    logp = logits.log_softmax(-1)
    probs = logp.exp()
    top = probs.topk(3, dim=-1)
    assert torch.equal(r.top_ids[:, -1], top.indices)
    torch.testing.assert_close(r.top_probs[:, -1], top.values, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r.entropy[:, -1], -(probs * logp).sum(-1), rtol=1e-4, atol=1e-5)
    nxt = toks[0, 1:]
    rank = (logits[:-1] > logits[:-1].gather(-1, nxt[:, None])).sum(-1).double()
    torch.testing.assert_close(r.next_rank[:-1, -1], rank)
    assert math.isnan(float(r.next_rank[-1, -1]))
    assert r.top_ids.shape == (toks.shape[1], tiny_gpt2.cfg.n_layers + 1, 3)
    assert r.top1_str[1][-1] == tiny_gpt2.tokenizer.decode([int(top.indices[1, 0])])
    assert len(r.to_frame()) == toks.shape[1] * (tiny_gpt2.cfg.n_layers + 1)


def test_logit_lens_refuses_an_encoder(tiny_bert):
    with pytest.raises(TlgeomError, match="language-model head"):
        ro.logit_lens(tiny_bert, TEXT)
    with pytest.raises(TlgeomError, match="language-model head"):
        ro.curvature_vs_readout(tiny_bert, TEXTS)


def test_association_planted_and_shuffled():
    rng = np.random.default_rng(0)
    angles = torch.from_numpy(rng.uniform(60, 120, (200, 5)))
    sharp = angles >= torch.quantile(angles, 0.9, dim=0)
    # the event happens exactly at the sharp turns: S = 1 - 0
    assert ro.association(angles, sharp.double(), 0.1) == pytest.approx(1.0)
    # an event independent of the angles: S near 0 (|S| well under its standard error ~ 0.1)
    ev = torch.from_numpy(rng.random((200, 5)) < 0.5).double()
    assert abs(ro.association(angles, ev, 0.1)) < 0.15


def test_events_definitions():
    top_ids = torch.tensor([[[1], [1], [2], [2]]])  # one position, 4 points
    rank = torch.tensor([[7.0, 3.0, 0.0, 0.0]])
    r = ro.Readout(
        top_ids=top_ids,
        top_probs=torch.ones(1, 4, 1, dtype=torch.float64),
        entropy=torch.zeros(1, 4, dtype=torch.float64),
        next_rank=rank.double(),
        str_tokens=["x"],
        top1_str=[["a", "a", "b", "b"]],
        point_labels=["embed", "L0", "L1", "L2"],
    )
    e = ro.events(r)
    assert e["top1_change"].tolist() == [[1.0, 1.0]]  # across vertex 0: points 0 → 2; vertex 1: 1 → 3
    assert e["rank_gain"][0, 0].item() == pytest.approx(math.log2(8) - 0.0)
    assert e["rank_gain"][0, 1].item() == pytest.approx(math.log2(4))


@needs_tl43
def test_curvature_vs_readout_table_and_figure(tiny_gpt2, tmp_path):
    r = ro.curvature_vs_readout(tiny_gpt2, TEXTS, seed=1, n_resamples=999)
    t = r.tests()
    cols = ["null", "statistic", "space", "observed", "null_mean", "effect", "ci_low", "ci_high", "p"]
    first = cols + ["p_adjusted", "n_texts", "reject", "n", "inference_unit"]
    assert list(t.columns) == first + ["informative", "adjusted_for", "note"]
    assert set(t.null) == {"zero", "untrained"}
    assert set(t.statistic) == set(ro.EVENTS) | {f"{e}_adjusted" for e in ro.EVENTS} and len(t) == 8
    assert (t.adjusted_for[t.statistic.str.endswith("_adjusted")] == ro.ADJUSTED_FOR).all()
    assert (t.adjusted_for[~t.statistic.str.endswith("_adjusted")] == "").all()
    assert len(r.per_text) == len(TEXTS)
    paths = r.save(tmp_path)
    assert all(p.exists() for p in paths.values())
    assert "sharp" in r.summary()
    # 4 texts: a one-sided sign flip reaches 1/16 at best, 8 × 1/16 after Holm > 0.05: every row says so
    assert not t.informative.any() and not t.reject.any() and t.p_adjusted.isna().all()
    assert t.note.str.contains("cannot reject at any data").all() and "not informative" in r.summary()
    # at alpha = 0.5 without the untrained rows (Holm over 4: 4/16 <= 0.5) every row can reject, and is adjusted
    t2 = ro.curvature_vs_readout(tiny_gpt2, TEXTS, seed=1, n_resamples=999, untrained=False, alpha=0.5).tests()
    assert t2.informative.all() and (t2.p_adjusted >= t2.p).all() and set(t2.null) == {"zero"}


@needs_tl43
def test_readout_against_several_initialisations(tiny_gpt2):
    """init_seeds: the untrained rows' p is the largest single-initialisation p, the effect their mean."""
    many = ro.curvature_vs_readout(tiny_gpt2, TEXTS, seed=1, n_resamples=999, init_seeds=[2, 3])
    single = [ro.curvature_vs_readout(tiny_gpt2, TEXTS, seed=1, n_resamples=999, init_seeds=[s]) for s in (2, 3)]
    t = many.tests().set_index(["null", "statistic"])
    assert many.init_seeds == [2, 3] and "2 initialisations" in many.summary()
    for stat in t.loc["untrained"].index:
        each = [x.tests().set_index(["null", "statistic"]).loc[("untrained", stat)] for x in single]
        row = t.loc[("untrained", stat)]
        assert row.p == pytest.approx(max(e.p for e in each)) and row.n_inits == 2
        assert row.effect == pytest.approx(np.mean([e.effect for e in each]))
        assert row.init_effect_min == pytest.approx(min(e.effect for e in each))
        # the trained model's own rows do not depend on the reference
        assert t.loc[("zero", stat)].p == pytest.approx(
            single[0].tests().set_index(["null", "statistic"]).loc[("zero", stat)].p
        )


@pytest.mark.unchecked
def test_bad_arguments(tiny_gpt2):
    with pytest.raises(TlgeomError, match="k"):
        ro.logit_lens(tiny_gpt2, TEXT, k=0)
    with pytest.raises(TlgeomError, match="inputs"):
        ro.logit_lens(tiny_gpt2, [TEXT, TEXT])
    with pytest.raises(TlgeomError, match="sharp_quantile"):
        ro.curvature_vs_readout(tiny_gpt2, TEXTS, sharp_quantile=0.7)
    with pytest.raises(TlgeomError, match="inputs"):
        ro.curvature_vs_readout(tiny_gpt2, TEXTS[:2])


# ---------------------------------------------------------------------------------------------
# The PCA view of the landscape


def _landscape_12(pos: int = 30):
    from tlgeom.experiments.landscape import Landscape

    g = torch.Generator().manual_seed(0)
    return Landscape(
        angles=torch.rand(pos, 11, generator=g, dtype=torch.float64) * math.pi,
        str_tokens=[f"t{i}" for i in range(pos)],
        vertex_labels=[f"L{i}" for i in range(11)],
        step_norms=torch.rand(pos, 12, generator=g, dtype=torch.float64),
        length_to_chord=torch.ones(pos, dtype=torch.float64),
        pca_xy=torch.randn(pos - 1, 13, 2, generator=g, dtype=torch.float64),
        pca_skip_first=1,
    )


def test_pca_view_defaults_on_a_12_layer_landscape():
    import matplotlib.pyplot as plt
    from matplotlib.collections import QuadMesh
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    land = _landscape_12()
    assert land.pca_layers() == [3, 6, 9, 12]
    fig = land.plot(view="pca")
    try:
        assert isinstance(fig, Figure)
        panels = [a for a in fig.axes if a.get_title().startswith("layer")]
        assert [a.get_title().split()[1] for a in panels] == ["3", "6", "9", "12"]
        mesh = [c for c in panels[0].collections if isinstance(c, QuadMesh)][0]
        assert isinstance(mesh.norm, TwoSlopeNorm)
        assert (mesh.norm.vmin, mesh.norm.vcenter, mesh.norm.vmax) == (75.0, 90.0, 105.0)
        assert mesh.get_cmap().name == "coolwarm"
        # layer 12's panel colours each token by the turn arriving at point 12 (vertex 10)
        pts = panels[-1].collections[-1]
        np.testing.assert_allclose(pts.get_array(), land.degrees[1:, 10].numpy())
    finally:
        plt.close(fig)
    fig = land.plot()  # the heatmap stays the default
    try:
        assert fig.axes[0].images and not fig.axes[0].collections
    finally:
        plt.close(fig)


def test_pca_layers_spread_on_other_depths():
    land = _landscape_12()
    land.pca_xy = torch.zeros(29, 31, 2, dtype=torch.float64)
    assert land.pca_layers() == [8, 15, 22, 30]
    with pytest.raises(TlgeomError, match="layers"):
        land.pca_layers([1])


def test_pca_view_needs_the_projection(tiny_gpt2):
    from tlgeom.experiments.landscape import curvature_landscape

    land = curvature_landscape(tiny_gpt2, TEXT)
    assert land.pca_xy is None
    with pytest.raises(TlgeomError, match="pca=True"):
        land.plot(view="pca")


def test_curvature_landscape_pca_projection_is_the_pca_of_all_states(tiny_gpt2):
    import matplotlib.pyplot as plt

    from tlgeom.experiments.landscape import curvature_landscape
    from tlgeom.models.trajectory import record_trajectories

    land = curvature_landscape(tiny_gpt2, TEXT, view="pca")
    assert land.view == "pca" and land.pca_xy is not None
    x = record_trajectories(tiny_gpt2, TEXT).states[0, 1:].double()  # BOS left out (pca_skip_first=1)
    flat = x.reshape(-1, x.shape[-1]).numpy()
    c = flat - flat.mean(0)
    w, v = np.linalg.eigh(c.T @ c)  # independent: eigenvectors of the scatter matrix
    proj = c @ v[:, ::-1][:, :2]
    got = land.pca_xy.reshape(-1, 2).numpy()
    for j in range(2):
        np.testing.assert_allclose(np.abs(got[:, j]), np.abs(proj[:, j]), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(land.pca_explained.numpy(), w[::-1][:2] / w.sum(), rtol=1e-8)
    fig = land.plot()  # the result's view
    try:
        assert any(a.get_title().startswith("layer 2") for a in fig.axes)
    finally:
        plt.close(fig)


def test_cli_landscape_view_option():
    from tlgeom.cli import build_parser

    p = build_parser()
    assert p.parse_args(["landscape", "--view", "pca"]).view == "pca"
    assert p.parse_args(["landscape"]).view == "heatmap"
    with pytest.raises(SystemExit):
        p.parse_args(["landscape", "--view", "globe"])


def test_landscape_section_draws_the_pca_view(tiny_gpt2, tmp_path):
    from tlgeom.report import landscape_section

    sec = landscape_section(tiny_gpt2, TEXT, tmp_path, view="pca")
    assert (tmp_path / "landscape.png").exists() and sec.results["n_tokens"] == tiny_gpt2.to_tokens(TEXT).shape[1]


@pytest.mark.skipif(_has_tl_logit_lens(), reason="only TransformerLens < 4.3 lacks the logit lens")
def test_logit_lens_on_old_transformer_lens_is_a_clear_refusal(tiny_gpt2):
    with pytest.raises(TlgeomError, match="TransformerLens >= 4.3"):
        ro.logit_lens(tiny_gpt2, "the cat sat on the mat")


def test_adjusted_association_removes_a_step_norm_confound():
    """An event driven (linearly) by the step size alone, with sharp turns at large steps: the plain
    association is positive, the adjusted one (step norms as covariates) is about 0; an event driven by
    sharpness itself survives the adjustment. (The adjustment is linear: a confound acting through a
    threshold is only partly removed.)"""
    from tlgeom.experiments.readout import adjusted_association, association

    g = torch.Generator().manual_seed(0)
    P, V = 400, 4
    step = torch.randn(P, V, generator=g, dtype=torch.float64)
    angles = 90 + 20 * step + 5 * torch.randn(P, V, generator=g, dtype=torch.float64)  # big steps bend more
    confounded = 0.5 * step + 0.3 * torch.randn(P, V, generator=g, dtype=torch.float64)  # e.g. a rank gain
    cov = torch.stack([step, torch.randn(P, V, generator=g, dtype=torch.float64)], -1)
    assert association(angles, confounded, 0.1) > 0.3
    assert abs(adjusted_association(angles, confounded, 0.1, cov)) < 0.1
    sharp = angles >= torch.quantile(angles, 0.9, dim=0)
    real = (sharp.double() + 0.2 * torch.randn(P, V, generator=g, dtype=torch.float64) > 0.5).double()
    assert adjusted_association(angles, real, 0.1, cov) > 0.5
    assert math.isnan(adjusted_association(angles[:2], real[:2], 0.1, cov[:2]))
