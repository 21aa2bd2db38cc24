"""Calibration of the curvature tests over simulated corpora (tlgeom.experiments.calibration).

Corpora: 8 texts of 4 tokens whose steps share a per-text walk plus private noise (d = 8, 6 points),
each null hypothesis exactly true (raw: rotation and shuffle; normalized: random walks on the
sphere), or an effect planted (anti-correlated consecutive steps, a turn of ≈ 101° instead of 90°, 20 texts).

* The family-wise false-alarm rate of ``tests().reject.any()`` is at most α plus Monte-Carlo
  tolerance: a one-sided binomial test of "rate ≤ 0.05" must not reject at 1 % (with 200 corpora:
  at most 17/200 = 0.085 false alarms).
* Power for the planted effect at 20 texts × 4 tokens is at least 0.9.
* The tlgeom 0.1 procedure (tokens pooled as independent samples, per-token nulls) fails the same
  calibration: its false-alarm rate is far above α (that is why the text became the unit).

Measured numbers (more corpora) are in results/calibration.csv (``python -m tlgeom.experiments.calibration``).
"""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from tlgeom.experiments.calibration import run_scenario

pytestmark = pytest.mark.calibration
ALPHA = 0.05


def _within_alpha(row) -> bool:
    k = round(row["rate_any_reject"] * row["corpora"])
    return binomtest(k, row["corpora"], ALPHA, alternative="greater").pvalue > 0.01


@pytest.mark.parametrize("scenario", ["null_raw", "null_sphere"])
def test_family_wise_false_alarm_rate_is_at_most_alpha(scenario):
    row = run_scenario(scenario, 200, seed=1)
    print(row)
    assert _within_alpha(row), row


def test_power_for_anticorrelated_steps():
    row = run_scenario("power_raw", 40, seed=1)
    print(row)
    assert row["rate_any_reject"] >= 0.9, row


@pytest.mark.parametrize("scenario", ["old_raw", "old_sphere"])
def test_old_per_token_procedure_fails_calibration(scenario):
    row = run_scenario(scenario, 100, seed=1)
    print(row)
    assert not _within_alpha(row), row
    assert row["rate_any_reject"] > 2 * ALPHA
