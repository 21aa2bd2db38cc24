"""Straightening (across-token curvature by depth): the contrasts, the tests and the untrained references."""

from __future__ import annotations

import math

import pytest
import torch

import tlgeom
from tlgeom.experiments import straightening as S

TEXTS = [
    "the cat sat on the mat and looked at the dog .",
    "a river runs through the old town near the hills .",
    "we ate bread and cheese at the small table today .",
    "she wrote a long letter to her friend last night .",
    "the children played in the park until it was dark .",
    "rain fell on the roof all through the quiet night .",
]


def test_contrasts_and_tests_from_known_curvatures(monkeypatch):
    """Designed curvatures: the trained model straightens by 10° to the last point and 5° to mid depth in every
    text, each untrained initialisation by 0: every row rejects, with exactly those effects."""
    n, points = 8, 5
    base = torch.linspace(0, 1, n)[:, None] * 0.1

    def fake(model, texts, space, skip_first):
        trained = getattr(model, "trained", True)
        c = torch.full((n, points), 90.0) + base
        if trained:
            c[:, 2] -= 5.0
            c[:, 4] -= 10.0
        return c

    class Model:
        trained = True

    monkeypatch.setattr(S, "_curvatures", fake)
    monkeypatch.setattr(
        "tlgeom.models.trajectory.record_trajectories",
        lambda m, t: type("T", (), {"point_labels": [f"p{i}" for i in range(points)]})(),
    )

    class Untrained:
        trained = False

    monkeypatch.setattr("tlgeom.models.untrained.untrained_model", lambda m, s: Untrained())
    r = S.straightening_test(Model(), [f"t{i}" for i in range(n)], init_seeds=3, n_resamples=999)
    t = r.tests().set_index(["null", "statistic"])
    assert t.loc[("zero", "straightening_last"), "effect"] == pytest.approx(10.0)
    assert t.loc[("zero", "straightening_mid"), "effect"] == pytest.approx(5.0)
    assert t.loc[("untrained", "straightening_last"), "effect"] == pytest.approx(10.0)
    assert t.reject.all() and (t.inference_unit == "text").all() and (t.n == n).all()
    assert t.loc[("zero", "straightening_last"), "p"] == pytest.approx(1 / 2**n)
    assert "against 3 initialisations" in t.loc[("untrained", "straightening_mid"), "note"]
    assert r.reference.shape == (3, n, points)


def test_straightening_on_a_tiny_model_and_too_few_texts(tiny_gpt2, tmp_path):
    r = tlgeom.experiments.straightening.straightening_test(tiny_gpt2, TEXTS[:3], init_seeds=2, n_resamples=999)
    t = r.tests()
    assert len(t) == 4 and set(t.null) == {"zero", "untrained"}
    assert not t.informative.any() and not t.reject.any()  # 3 texts: p >= 1/8, Holm over 4 > 0.05
    assert t.note.str.contains("cannot reject at any data").all()
    assert r.curvature.shape[0] == 3 and not math.isnan(float(r.curvature.nanmean()))
    paths = r.save(tmp_path)
    assert all(p.exists() for p in paths.values()) and "across-token curvature" in r.summary()
    with pytest.raises(tlgeom.TlgeomError, match="inputs"):
        S.straightening_test(tiny_gpt2, TEXTS[:2])
