"""tlgeom.stats.onset: rank p-values, the max-statistic correction across layers, paired onsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tlgeom._errors import TlgeomError
from tlgeom.stats.onset import (
    corrected_onset,
    deviation_scores,
    maxstat_adjusted,
    min_attainable_p,
    paired_onset_test,
    rank_pvalues,
    uncorrected_onset,
)


def test_rank_pvalues_by_hand_and_ties_count_against_the_edit():
    edit = np.array([0.0, 2.0, 5.0, 1.0])
    controls = np.array([[0.0, 1.0, 4.0, 3.0], [0.0, 2.0, 6.0, 0.5], [0.0, 3.0, 1.0, 0.2]])
    # layer 0: all tie (3 >= edit) → (1+3)/4; layer 1: 2 and 3 >= 2 → 3/4; layer 2: 6 → 2/4; layer 3: 3 → 2/4
    np.testing.assert_array_equal(rank_pvalues(edit, controls), [1.0, 0.75, 0.5, 0.5])
    assert min_attainable_p(19) == pytest.approx(0.05) and min_attainable_p(8) == pytest.approx(1 / 9)


def test_maxstat_adjusted_is_exchangeable_count():
    """p_adjusted_l = max(p_l, #{u : max_l t_u,l >= t_edit,l} / (n+1)) with t from deviation_scores."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6))
    p, adj = maxstat_adjusted(x[0], x[1:])
    t = deviation_scores(x)
    for layer in range(6):
        count = sum(t[u].max() >= t[0, layer] for u in range(8))
        assert adj[layer] == pytest.approx(max(p[layer], count / 8))
    # by hand: unit 0's deviation from the mean of the others over their sd (ddof 1)
    others = x[1:, 2]
    assert t[0, 2] == pytest.approx((x[0, 2] - others.mean()) / others.std(ddof=1))
    assert (adj >= p).all()


def test_placebo_controls_and_old_rule():
    """Controls stuck at 0 (they cannot reach the target): the edit is significant from layer 1 on."""
    edit = np.r_[0.0, np.linspace(0.1, 1.0, 9)]
    p, adj = maxstat_adjusted(edit, np.zeros((19, 10)))
    assert p[0] == adj[0] == 1.0 and np.allclose(adj[1:], 0.05)
    assert corrected_onset(adj, 0.05) == 1 and corrected_onset(adj, 0.04) is None
    # 8 controls: 1/9 > 0.05, no layer can be significant, while the old rule fires at layer 1
    p8, adj8 = maxstat_adjusted(edit, np.zeros((8, 10)))
    assert corrected_onset(adj8) is None and uncorrected_onset(edit, np.zeros((8, 10))) == 1


def test_batched_equals_single():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 20, 7))
    p, adj = maxstat_adjusted(x[:, 0], x[:, 1:])
    for b in range(5):
        pb, ab = maxstat_adjusted(x[b, 0], x[b, 1:])
        np.testing.assert_array_equal(p[b], pb)
        np.testing.assert_array_equal(adj[b], ab)
    old = uncorrected_onset(x[:, 0], x[:, 1:])
    assert old.shape == (5,)


def test_paired_onset_test_exact_small_case_and_power():
    """With few pairs the relabelling distribution can be enumerated: compare with the seeded version."""
    rng = np.random.default_rng(1)
    edit = rng.standard_normal((3, 4)) + np.array([0.0, 0.0, 3.0, 3.0])
    controls = rng.standard_normal((3, 2, 4))
    r = paired_onset_test(edit, controls, n_perm=20000, seed=0)
    x = np.concatenate([edit[:, None], controls], 1)
    # enumerate all 3^3 relabellings: each pair's statistic is the chosen unit's mid-rank among the others
    from tlgeom.stats.onset import _midrank_scores

    s = _midrank_scores(x)
    stats = np.array([[s[p, u[p]] for p in range(3)] for u in itertools.product(range(3), repeat=3)]).mean(1)
    exact_adj = (stats.max(1)[:, None] >= r["statistic"][None] - 1e-12).mean(0)
    np.testing.assert_allclose(r["p_adjusted"], exact_adj, atol=0.015)  # Monte-Carlo error of 20000 draws
    assert (r["p_adjusted"] >= r["p"] - 1e-12).all()
    # many pairs with a planted deflection from layer 2 on: onset at 2
    edit = rng.standard_normal((30, 6)) + np.r_[0, 0, 3, 3, 3, 3]
    r = paired_onset_test(edit, rng.standard_normal((30, 5, 6)), n_perm=999, seed=0)
    assert r["onset"] == 2 and r["p_adjusted"][:2].min() > 0.05


def test_bad_input():
    with pytest.raises(TlgeomError, match="controls"):
        rank_pvalues(np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(TlgeomError, match="controls"):
        rank_pvalues(np.zeros(3), np.full((2, 3), np.nan))
    with pytest.raises(TlgeomError, match="alpha"):
        corrected_onset(np.zeros(3), 1.5)
    with pytest.raises(TlgeomError, match="seed"):
        paired_onset_test(np.zeros((2, 3)), np.zeros((2, 4, 3)), seed=-1)
