"""Curvature on smollm2-135m with the ~160-token paragraph: the landscape (streamed = recorded)
and the null-model report. Asserts the computation, never a hoped-for verdict; prints the report.

Tolerances: the landscape is computed twice from the same float32 activations (streamed and
recorded), in float64 with a different operation order: agreement to 1e-12 rad.
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

import tlgeom
from tlgeom.experiments.curvature import curvature_test, untrained_model
from tlgeom.experiments.landscape import curvature_landscape
from tlgeom.geometry.curvature import length_to_chord, turning_angles
from tlgeom.stats.nulls import NULLS

pytestmark = pytest.mark.integration


def test_landscape_on_the_paragraph(smollm2, paragraph):
    land = curvature_landscape(smollm2, paragraph)
    traj = tlgeom.record_trajectories(smollm2, paragraph)
    P = traj.tokens.shape[1]
    assert P >= 140 and land.angles.shape == (P, smollm2.cfg.n_layers - 1)
    torch.testing.assert_close(land.angles, turning_angles(traj)[0], rtol=0, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(land.length_to_chord, length_to_chord(traj)[0], rtol=1e-12, atol=0)
    ax = land.plot().axes[0]  # plot() returns the Figure
    assert len(ax.get_yticklabels()) == P  # every token labelled
    import matplotlib.pyplot as plt

    plt.close("all")
    deg = land.degrees[1:]
    print(
        f"\nlandscape: {P} tokens, median turning angle {deg.nanmedian():.1f}° (BOS excluded), "
        f"per-layer means {deg.nanmean(0).min():.0f}°–{deg.nanmean(0).max():.0f}°"
    )


def test_curvature_report_on_the_paragraph(smollm2, paragraph):
    t0 = time.perf_counter()
    rep = curvature_test(smollm2, [paragraph], seed=0)
    took = time.perf_counter() - t0
    print(f"\n{rep.summary()}\n(curvature_test took {took:.1f} s)")
    traj = tlgeom.record_trajectories(smollm2, paragraph)
    obs = turning_angles(traj)[0]
    assert [r.name for r in rep.results] == list(NULLS) + ["untrained"]
    torch.testing.assert_close(rep.observed_angles, obs)
    deg = torch.rad2deg(obs)
    g = rep["gaussian"]
    assert g.observed["sharp"].tolist() == (deg >= 110).sum(0).tolist()
    assert g.observed["flat"].tolist() == (deg <= 70).sum(0).tolist()
    assert g.ltc_observed == pytest.approx(length_to_chord(traj)[0].median().item())
    # the Gaussian null's angles follow the closed form (mean 90°, sd ≈ 180/π/√d)
    na = torch.rad2deg(g.angles_sample.double())
    assert abs(na.mean().item() - 90) < 0.1 and abs(na.std().item() / (57.29578 / 576**0.5) - 1) < 0.05
    # the dimension null's d_eff is the participation ratio of this cloud
    assert rep.d_eff == max(2, round(tlgeom.stats.nulls.participation_ratio(traj.states.double())))
    for r in rep.results:
        for kind in ("sharp", "flat", "sharp+flat"):
            if r.tests_angles:
                p = r.stats(kind)["p"]
                assert 1 / (1 + rep.n_sims) <= p <= 1
        if r.tests_ltc:
            assert 1 / (1 + rep.n_sims) <= r.ltc_stats()["p"] <= 1
    v = rep.verdicts()
    print("verdicts:", v)
    assert set(v) == set(NULLS) | {"untrained"}
    f = rep.to_frame()
    assert len(f[(f.vertex == "all") & (f.statistic == "sharp+flat")]) == 4  # every null but rotation


def test_untrained_smollm2_is_reinitialised(smollm2):
    u = untrained_model(smollm2, seed=0)
    w, wu = (
        smollm2.original_model.model.layers[0].self_attn.q_proj.weight,
        u.original_model.model.layers[0].self_attn.q_proj.weight,
    )
    assert not torch.equal(w, wu)
    std = float(getattr(smollm2.original_model.config, "initializer_range", 0.02))
    assert abs(wu.std().item() / std - 1) < 0.05  # HF's Llama init: N(0, initializer_range)
    norm_w = u.original_model.model.layers[0].input_layernorm.weight
    assert torch.equal(norm_w, torch.ones_like(norm_w))
