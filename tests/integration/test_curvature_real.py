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
from tlgeom.stats.nulls import DEFAULT_NULLS

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
    """Each sentence of the paragraph is one text (the unit of inference)."""
    import re

    sentences = [s for s in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if s]
    t0 = time.perf_counter()
    rep = curvature_test(smollm2, sentences, n_sims=199, seed=0)
    took = time.perf_counter() - t0
    print(f"\n{rep.tests().drop(columns=['note']).to_string()}\n{rep.summary()}\n(curvature_test took {took:.1f} s)")
    traj = tlgeom.record_trajectories(smollm2, sentences)
    torch.testing.assert_close(torch.cat(rep.observed_angles), turning_angles(traj)[traj.mask])
    assert [r.name for r in rep.results] == list(DEFAULT_NULLS["raw"]) + ["untrained"]
    t = rep.tests()
    assert (t.n_texts == len(sentences)).all() and ((t.p >= 1 / 200) & (t.p <= 1)).all()
    log_ltc = sum(length_to_chord(traj)[b][traj.mask[b]].log().mean().item() for b in range(len(sentences)))
    row = t.set_index(["null", "statistic"]).loc[("rotation", "log_ltc")]
    assert row.observed == pytest.approx(log_ltc / len(sentences))
    # the rotation null's angles in d = 576: mean 90°, sd ≈ 180/π/√d per vertex
    na = torch.rad2deg(rep["rotation"].angles_sample.double())
    assert abs(na.nanmean().item() - 90) < 0.2
    assert set(rep.verdicts()) == {"rotation", "shuffle", "untrained"}


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
